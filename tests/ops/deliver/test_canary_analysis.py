"""The canary (deploy/k8s/canary): its kustomize component renders with the project's names, and its
AnalysisTemplate, evaluated as written by ops.deliver.analysis against a real Prometheus that scrapes real
gunicorn instances of the service, passes a healthy canary and fails a shifted or an erroring one. The Grafana
dashboard's queries run against the same Prometheus.

The fleet: a stable server and three canaries, each a Prometheus target labelled as Argo's pods are
(`rollouts_pod_template_hash`), all sent the same requests in lock step:
- healthy:  the stable's model;
- shifted:  a model trained on inverted labels (its predicted probabilities move, nothing else does);
- erroring: the stable's model, but its prediction log cannot be written (the table is dropped once it serves),
            so after a one-batch backlog every /predict answers 503 `log_behind`, as with a log database outage.
The rate windows are short (`--arg window=...`); the template's defaults stay production-sized.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from ops.deliver import analysis
from tests.support.factories import make_snapshot
from tests.support.gunicorn_server import gunicorn, request
from tests.support.model_fixture import train_tiny_model
from tests.support.paths import REPO_ROOT
from tests.support.prometheus import prometheus_server

TEMPLATE = REPO_ROOT / "deploy" / "k8s" / "canary" / "analysis-template.yaml"
DASHBOARD = REPO_ROOT / "deploy" / "monitoring" / "dashboard.json"
STABLE, HEALTHY, SHIFTED, ERRORING = "5d9c4b7f6", "6b8f7c9d4", "7c4d8e5f2", "8e2f9a6b1"
WINDOW = "20s"
TRAFFIC_SECONDS = 24  # more than WINDOW: every query's window is full of traffic
BATCH = 25


@dataclass
class Fleet:
    prometheus: str
    ports: dict[str, int]


def feature_records(model_dir: Path, n: int) -> list[dict]:
    names = [f["name"] for f in json.loads((model_dir / "metadata.json").read_text())["features"]]
    frame = make_snapshot(n=n, seed=7)[names].astype(object)
    return [
        {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}
        for r in frame.to_dict("records")
    ]


def prom_value(url: str, query: str) -> float | None:
    values = analysis.prometheus_query(url, query)
    return values[0] if values else None


def send_traffic(ports: dict[str, int], records: list[dict]) -> int:
    """The same batch to every server at once, round after round, for TRAFFIC_SECONDS; after the first round an
    invalid record (a 4xx) to each and a label to the stable (early: every series has samples to rate by the end).
    Returns the records each server was sent."""
    sent, start = 0, time.monotonic()
    with ThreadPoolExecutor(len(ports)) as pool:
        while time.monotonic() - start < TRAFFIC_SECONDS:
            batch = [records[(sent + i) % len(records)] for i in range(BATCH)]
            futures = {
                name: pool.submit(request, port, "POST", "/predict", batch) for name, port in ports.items()
            }
            answers = {name: future.result() for name, future in futures.items()}
            assert {answers[name][0] for name in (STABLE, HEALTHY, SHIFTED)} == {200}, answers
            if not sent:
                assert {request(p, "POST", "/predict", {})[0] for p in ports.values()} == {422}
                label = {
                    "prediction_id": json.loads(answers[STABLE][1])["predictions"][0]["prediction_id"],
                    "label": 1,
                }
                assert request(ports[STABLE], "POST", "/feedback", label)[0] == 201
            sent += BATCH
    return sent


@pytest.fixture(scope="module")
def fleet(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    work = tmp_path_factory.mktemp("canary")
    shifted_model = work / "shifted-model"
    train_tiny_model(shifted_model, invert_labels=True)
    servers = {
        STABLE: (model_dir, {}),
        HEALTHY: (shutil.copytree(model_dir, work / "healthy-model"), {}),
        SHIFTED: (shifted_model, {}),
        ERRORING: (
            model_dir,
            {"MAX_BATCH": str(BATCH), "LOG_MAX_BACKLOG": str(BATCH), "LOG_FLUSH_INTERVAL": "0.1"},
        ),
    }
    with ExitStack() as stack:
        ports = {}
        for name, (directory, env) in servers.items():
            db = work / f"{name}.db"
            ports[name] = stack.enter_context(
                gunicorn(directory, f"sqlite:///{db}", work / f"{name}.log", WEB_CONCURRENCY="1", **env)
            )[1]
        with sqlite3.connect(work / f"{ERRORING}.db") as conn:
            conn.execute("DROP TABLE predictions")  # the erroring canary's log database loses its table
        targets = [
            {"targets": [f"127.0.0.1:{port}"], "labels": {"rollouts_pod_template_hash": name}}
            for name, port in ports.items()
        ]
        url = stack.enter_context(
            prometheus_server(work / "prometheus", [{"job_name": "api", "static_configs": targets}])
        )
        records = feature_records(model_dir, 500)
        sent = send_traffic(ports, records)
        # wait until Prometheus holds the final counts (a scrape after the last writes)
        deadline = time.monotonic() + 30
        written = f'prediction_log_written_total{{rollouts_pod_template_hash="{STABLE}"}}'
        feedback = f'sum(feedback_total{{rollouts_pod_template_hash="{STABLE}"}})'
        while (seen := (prom_value(url, written), prom_value(url, feedback))) != (sent, 1):
            if time.monotonic() > deadline:
                direct = request(ports[STABLE], "GET", "/metrics")[1].decode()
                raise AssertionError(f"Prometheus saw (written, feedback) {seen}, not {(sent, 1)}; {direct}")
            time.sleep(0.5)
        yield Fleet(url, ports)


def analyse(fleet: Fleet, canary: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, str]]:
    """ops.deliver.analysis on the template as written: (exit status, metric -> its output line)."""
    argv = ["--template", str(TEMPLATE), "--prometheus", fleet.prometheus, "--arg", f"window={WINDOW}"]
    status = analysis.main([*argv, "--arg", f"canary-hash={canary}", "--arg", f"stable-hash={STABLE}"])
    out = capsys.readouterr().out
    print(f"canary {canary}:\n{out}")  # the values seen, for `pytest -s`
    lines = {
        line.split()[1].rstrip(":"): line for line in out.splitlines() if line.startswith(("ok", "FAIL"))
    }
    return status, lines


METRICS = {"error-share", "p99-latency", "prediction-distance", "log-completeness"}


@pytest.mark.slow
def test_a_healthy_canary_passes_every_metric(fleet: Fleet, capsys) -> None:
    status, lines = analyse(fleet, HEALTHY, capsys)
    assert set(lines) == METRICS
    assert status == 0, lines
    assert all(line.startswith("ok") for line in lines.values()), lines
    # the same model on the same requests: only where the window's edges fall differs (each target is scraped
    # at its own moment), so the distance is near 0, far below the threshold
    assert float(lines["prediction-distance"].split()[2]) < 0.05, lines


@pytest.mark.slow
def test_a_canary_whose_predictions_shifted_fails_the_distance(fleet: Fleet, capsys) -> None:
    status, lines = analyse(fleet, SHIFTED, capsys)
    assert status == 1
    assert lines["prediction-distance"].startswith("FAIL"), lines
    assert all(lines[m].startswith("ok") for m in ("error-share", "log-completeness")), lines


@pytest.mark.slow
def test_a_canary_that_errors_fails_the_error_share(fleet: Fleet, capsys) -> None:
    status, lines = analyse(fleet, ERRORING, capsys)
    assert status == 1
    assert lines["error-share"].startswith("FAIL"), lines
    assert lines["log-completeness"].startswith("FAIL"), lines  # its rows never reached the log


@pytest.mark.slow
def test_a_canary_that_serves_nothing_fails_every_metric(fleet: Fleet, capsys) -> None:
    status, lines = analyse(fleet, "0000000000", capsys)
    assert status == 1
    assert set(lines) == METRICS and all(line.startswith("FAIL") for line in lines.values()), lines


@pytest.mark.slow
def test_make_canary_analysis_runs_the_same_evaluation(fleet: Fleet) -> None:
    proc = subprocess.run(
        [
            "make",
            "--no-print-directory",
            "canary-analysis",
            f"PROMETHEUS={fleet.prometheus}",
            f"CANARY={SHIFTED}",
            f"STABLE={STABLE}",
            f"ANALYSIS_ARGS=window={WINDOW}",
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0, proc.stdout
    assert "FAIL prediction-distance" in proc.stdout
    assert "canary analysis FAILED: prediction-distance" in proc.stderr


GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "5m"}


def grafana_expr(expr: str) -> str:
    """A panel's PromQL as Grafana sends it (its built-in interval variables substituted)."""
    for name, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(f"${{{name[1:]}}}", value).replace(name, value)
    assert "$" not in expr, f"unknown Grafana variable in {expr!r}"
    return expr


@pytest.mark.slow
def test_the_dashboard_queries_run_and_return_the_served_metrics(fleet: Fleet) -> None:
    panels = json.loads(DASHBOARD.read_text(encoding="utf-8"))["panels"]
    exprs = [(p["title"], t["expr"]) for p in panels for t in p["targets"]]
    assert exprs
    for title, expr in exprs:
        values = analysis.prometheus_query(fleet.prometheus, grafana_expr(expr))
        assert values, f"{title}: {expr} returned no data over the fleet's traffic"


def render_with_component(tmp_path: Path) -> list[dict]:
    """A throw-away overlay: production's, with the canary component (listed there, or added) before the project's (as
    deploy/k8s/canary/kustomization.yaml asks: the project's namePrefix must reach the component's resources)."""
    production = REPO_ROOT / "deploy" / "k8s" / "overlays" / "production"
    overlay = tmp_path / "overlay"
    shutil.copytree(production, overlay)
    doc = yaml.safe_load((overlay / "kustomization.yaml").read_text())

    def outside(path: str | Path) -> str:  # kustomize takes relative paths only
        return os.path.relpath((production / path).resolve(), overlay)

    doc["resources"] = [outside(path) for path in doc["resources"]]
    components = [outside(path) for path in doc["components"]]
    if outside("../../canary") not in components:  # a fork that took the canary out of production
        components.insert(0, outside("../../canary"))
    doc["components"] = components
    (overlay / "kustomization.yaml").write_text(yaml.safe_dump(doc))
    out = subprocess.run(
        ["kubectl", "kustomize", str(overlay)], capture_output=True, text=True, check=True
    ).stdout
    return list(yaml.safe_load_all(out))


def test_the_component_gives_the_rollout_the_projects_names(tmp_path: Path) -> None:
    docs = render_with_component(tmp_path)
    by_kind = {d["kind"]: d for d in docs}
    deployment, rollout, template = by_kind["Deployment"], by_kind["Rollout"], by_kind["AnalysisTemplate"]
    hpa = by_kind["HorizontalPodAutoscaler"]
    prefix = deployment["metadata"]["name"].removesuffix("api")
    assert prefix  # the project's namePrefix
    assert rollout["metadata"]["name"] == deployment["metadata"]["name"]
    assert rollout["spec"]["workloadRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": deployment["metadata"]["name"],
        "scaleDown": "progressively",
    }
    assert template["metadata"]["name"] == f"{prefix}api-canary"
    assert (
        rollout["metadata"]["namespace"]
        == template["metadata"]["namespace"]
        == deployment["metadata"]["namespace"]
    )
    canary = rollout["spec"]["strategy"]["canary"]
    assert canary["analysis"]["templates"] == [{"templateName": template["metadata"]["name"]}]
    assert canary["analysis"]["startingStep"] == 1
    hashes = {a["name"]: a["valueFrom"]["podTemplateHashValue"] for a in canary["analysis"]["args"]}
    assert hashes == {"canary-hash": "Latest", "stable-hash": "Stable"}
    assert [s["setWeight"] for s in canary["steps"] if "setWeight" in s] == [20, 50, 100]
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Rollout",
        "name": rollout["metadata"]["name"],
    }
    # the Rollout's selector picks the Deployment's pods' labels (Argo requires it to match the template)
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert rollout["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()


def test_every_template_arg_used_is_declared_and_thresholds_have_defaults() -> None:
    template = analysis.read_template(TEMPLATE)
    declared = {a["name"]: a.get("value") for a in template["spec"]["args"]}
    text = json.dumps(template["spec"]["metrics"])
    used = {tag.strip().removeprefix("args.") for tag in analysis.TAG.findall(text)}
    assert used == set(declared)
    assert [name for name, value in declared.items() if value is None] == ["canary-hash", "stable-hash"]
    assert declared["window"] == "5m"
    for metric in template["spec"]["metrics"]:
        assert {"interval", "count", "failureLimit", "successCondition"} <= set(metric), metric["name"]
        assert "rollouts_pod_template_hash" in metric["provider"]["prometheus"]["query"], metric["name"]
