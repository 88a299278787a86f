"""Evaluate an Argo Rollouts AnalysisTemplate against a Prometheus, as the Argo controller would measure it once.

    python -m ops.deliver.analysis --template deploy/k8s/canary/analysis-template.yaml \
        --prometheus http://localhost:9090 --arg canary-hash=6b8f7c --arg stable-hash=5d9c4b [--arg window=10m]

(`make canary-analysis`). The template's args take their default values, `--arg` overrides them, and every
`{{args.NAME}}` in a metric is substituted exactly as Argo Rollouts does it (the metric as JSON, each value
JSON-escaped, a tag that names no arg is an error). Each metric's query runs once on /api/v1/query (Argo repeats
it `count` times, `interval` apart, after `initialDelay`; `failureLimit` is Argo's business); its result vector
is `result`, and successCondition/failureCondition are judged with Argo's rules (only success: fail unless it
holds; both: neither holding is inconclusive; an empty result cannot be judged: an error). Only the condition
forms the template uses are understood (`result[0] <= N`, `>=`, `<`, `>`); any other is refused.
`--prometheus` replaces the template's address (the in-cluster one is rarely reachable from where this runs).
One line per metric; exit 1 when any metric is not successful, 2 for a bad template, argument or Prometheus.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from mlcore.errors import PipelineError, cli_entrypoint

KINDS = ("AnalysisTemplate", "ClusterAnalysisTemplate")
TAG = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)  # fasttemplate's tags: the shortest text between {{ and }}
CONDITION = re.compile(r"\s*result\[0\]\s*(<=|>=|<|>)\s*([-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)\s*")
COMPARE = {
    "<=": lambda a, b: a <= b,
    ">=": lambda a, b: a >= b,
    "<": lambda a, b: a < b,
    ">": lambda a, b: a > b,
}


@dataclass
class Measurement:
    metric: str
    phase: str  # Successful | Failed | Inconclusive | Error (Argo's AnalysisPhase names)
    value: list[float] | None
    detail: str

    def line(self) -> str:
        mark = "ok  " if self.phase == "Successful" else "FAIL"
        shown = "no data" if not self.value else ", ".join(f"{v:.6g}" for v in self.value)
        return f"{mark} {self.metric}: {shown} ({self.phase}: {self.detail})"


def read_template(path: Path) -> dict[str, Any]:
    """The one AnalysisTemplate (or ClusterAnalysisTemplate) document in `path`."""
    try:
        docs = [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]
    except (OSError, yaml.YAMLError) as exc:
        raise PipelineError(
            f"{path}: cannot read the template ({exc}); pass an AnalysisTemplate YAML"
        ) from exc
    found = [d for d in docs if isinstance(d, dict) and d.get("kind") in KINDS]
    if len(found) != 1:
        raise PipelineError(
            f"{path}: holds {len(found)} AnalysisTemplate documents; pass a file with exactly one"
        )
    return found[0]


def merge_args(template: dict[str, Any], given: dict[str, str]) -> dict[str, str]:
    """The template's arg defaults overridden by `given`; every arg must end up with a value."""
    declared = {a["name"]: a.get("value") for a in template.get("spec", {}).get("args") or []}
    unknown = sorted(set(given) - set(declared))
    if unknown:
        raise PipelineError(
            f"--arg {unknown[0]}: the template has no such arg; use one of {', '.join(sorted(declared))}"
        )
    merged = {**declared, **given}
    missing = [name for name, value in merged.items() if value is None]
    if missing:
        raise PipelineError(f"args.{missing[0]} was not resolved: pass --arg {missing[0]}=VALUE")
    return {name: str(value) for name, value in merged.items()}


def resolve_args(metric: dict[str, Any], args: dict[str, str]) -> dict[str, Any]:
    """The metric with `{{args.NAME}}` substituted as Argo's ResolveMetricArgs does: on the metric's JSON, with
    each value escaped for a JSON string; a tag that names no arg is an error."""
    text = json.dumps(metric)
    if "{{" in TAG.sub("", text):  # fasttemplate refuses an opening tag that is never closed
        raise PipelineError(f"metric {metric.get('name')!r}: a '{{{{' has no closing '}}}}'; close the tag")
    values = {f"args.{name}": json.dumps(value)[1:-1] for name, value in args.items()}

    def substitute(match: re.Match[str]) -> str:
        tag = match.group(1).strip()
        if tag not in values:
            raise PipelineError(f"metric {metric.get('name')!r}: failed to resolve {{{{{match.group(1)}}}}}")
        return values[tag]

    return json.loads(TAG.sub(substitute, text))


def parse_condition(metric: str, condition: str) -> tuple[str, float]:
    match = CONDITION.fullmatch(condition)
    if match is None:
        raise PipelineError(
            f"metric {metric!r}: condition {condition!r} is not understood; write `result[0] <= N` (or >=, <, >)"
        )
    return match.group(1), float(match.group(2))


def holds(condition: tuple[str, float], result: list[float]) -> bool:
    op, bound = condition
    return COMPARE[op](result[0], bound)  # NaN compares false: a 0/0 share meets no condition


def judge(metric: dict[str, Any], result: list[float]) -> tuple[str, str]:
    """(phase, why) for one measurement, with Argo's EvaluateResult rules."""
    name = metric["name"]
    success, failure = metric.get("successCondition", ""), metric.get("failureCondition", "")
    parsed = {
        key: parse_condition(name, text) for key, text in (("success", success), ("failure", failure)) if text
    }
    if not parsed:
        return "Successful", "no condition"
    if not result:
        return "Error", "the query returned no data, so no condition can be judged"
    passed = holds(parsed["success"], result) if "success" in parsed else None
    failed = holds(parsed["failure"], result) if "failure" in parsed else None
    if failed is None:
        failed = not passed
    if passed is None:
        passed = not failed
    shown = "; ".join(
        f"{key}Condition {text}" for key, text in (("success", success), ("failure", failure)) if text
    )
    if failed:
        return "Failed", shown
    return ("Successful" if passed else "Inconclusive"), shown


def prometheus_query(base_url: str, query: str, timeout: float = 30) -> list[float]:
    """The values of an instant query's result (a vector; a scalar is a list of one)."""
    url = f"{base_url.rstrip('/')}/api/v1/query?{urllib.parse.urlencode({'query': query})}"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            body = json.load(response)
    except urllib.error.HTTPError as exc:
        body = json.loads(exc.read() or b"{}")
        raise PipelineError(
            f"{base_url}: the query was refused ({body.get('error', exc)}); fix the query"
        ) from exc
    except (OSError, ValueError) as exc:
        raise PipelineError(f"{base_url}: Prometheus did not answer ({exc}); check the address") from exc
    data = body.get("data", {})
    if body.get("status") != "success":
        raise PipelineError(f"{base_url}: the query failed ({body.get('error')}); fix the query")
    if data.get("resultType") == "scalar":
        return [float(data["result"][1])]
    if data.get("resultType") != "vector":
        raise PipelineError(
            f"query returned a {data.get('resultType')}, not a vector; write an instant query"
        )
    return [float(sample["value"][1]) for sample in data["result"]]


def run_analysis(
    template: dict[str, Any], args: dict[str, str], prometheus: str | None = None
) -> list[Measurement]:
    """One measurement of each metric of `template` with `args` (merged with the template's defaults)."""
    merged = merge_args(template, args)
    measurements = []
    for raw in template.get("spec", {}).get("metrics") or []:
        metric = resolve_args(raw, merged)
        provider = metric.get("provider", {})
        if set(provider) != {"prometheus"}:
            raise PipelineError(
                f"metric {metric['name']!r}: provider {sorted(provider)} is not prometheus; only Prometheus is run"
            )
        address = prometheus or provider["prometheus"].get("address", "")
        if not address.startswith(("http://", "https://")):
            raise PipelineError(
                f"metric {metric['name']!r}: address {address!r} is not http(s); pass --prometheus"
            )
        result = prometheus_query(address, provider["prometheus"]["query"])
        phase, detail = judge(metric, result)
        measurements.append(Measurement(metric["name"], phase, result, detail))
    if not measurements:
        raise PipelineError("the template has no metrics; add at least one under spec.metrics")
    return measurements


def parse_arg(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise PipelineError(f"--arg {text!r}: write NAME=VALUE")
    return name, value


@cli_entrypoint
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ops.deliver.analysis", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--template", type=Path, required=True, help="the AnalysisTemplate YAML")
    parser.add_argument("--prometheus", help="Prometheus base URL (default: the template's address)")
    parser.add_argument("--arg", action="append", default=[], help="NAME=VALUE (repeatable): sets an arg")
    ns = parser.parse_args(argv)
    given = dict(parse_arg(text) for text in ns.arg)
    measurements = run_analysis(read_template(ns.template), given, ns.prometheus)
    for measurement in measurements:
        print(measurement.line())
    bad = [m.metric for m in measurements if m.phase != "Successful"]
    if bad:
        print(f"canary analysis FAILED: {', '.join(bad)}", file=sys.stderr)
        return 1
    print("canary analysis passed")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
