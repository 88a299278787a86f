"""ops.deliver.analysis's pure core: args merged and substituted as Argo Rollouts does, conditions judged with
Argo's rules, anything else refused with one line. (Against a real Prometheus: test_canary_analysis.py.)"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
import yaml

from mlcore.errors import PipelineError
from ops.deliver import analysis


def template(metrics: list[dict], args: list[dict] | None = None) -> dict:
    return {"kind": "AnalysisTemplate", "spec": {"args": args or [], "metrics": metrics}}


def metric(query: str = "up", success: str = "result[0] >= 1", **extra) -> dict:
    return {
        "name": "m",
        "successCondition": success,
        "provider": {"prometheus": {"address": "http://prom:9090", "query": query}},
        **extra,
    }


def test_args_take_defaults_and_overrides_and_every_arg_needs_a_value() -> None:
    tpl = template([], [{"name": "hash"}, {"name": "window", "value": "5m"}])
    assert analysis.merge_args(tpl, {"hash": "abc"}) == {"hash": "abc", "window": "5m"}
    assert analysis.merge_args(tpl, {"hash": "abc", "window": "30s"})["window"] == "30s"
    with pytest.raises(PipelineError, match=r"args.hash was not resolved: pass --arg hash=VALUE"):
        analysis.merge_args(tpl, {})
    with pytest.raises(
        PipelineError, match=r"--arg hsh: the template has no such arg; use one of hash, window"
    ):
        analysis.merge_args(tpl, {"hsh": "abc"})


def test_args_are_substituted_everywhere_in_the_metric_with_spaces_in_tags_and_json_escaping() -> None:
    raw = metric('rate(x{h="{{ args.hash }}"}[{{args.window}}])', "result[0] <= {{args.max}}")
    resolved = analysis.resolve_args(raw, {"hash": 'a"b', "window": "5m", "max": "0.5"})
    assert resolved["provider"]["prometheus"]["query"] == 'rate(x{h="a"b"}[5m])'
    assert resolved["successCondition"] == "result[0] <= 0.5"


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("x{{args.nope}}", r"failed to resolve \{\{args.nope\}\}"),
        # as in Argo, the tag runs to the next '}}' of the metric's JSON
        ("x{{args.hash", r"failed to resolve \{\{args.hash\"\}\}"),
    ],
)
def test_an_unresolvable_tag_is_refused(query: str, message: str) -> None:
    with pytest.raises(PipelineError, match=message):
        analysis.resolve_args(metric(query), {"hash": "abc"})


@pytest.mark.parametrize(
    ("success", "failure", "result", "phase"),
    [
        ("result[0] <= 0.01", "", [0.0], "Successful"),
        ("result[0] <= 0.01", "", [0.5], "Failed"),
        ("result[0] >= 0.99", "", [math.nan], "Failed"),  # 0/0: no traffic in the window
        ("", "result[0] > 0.1", [0.2], "Failed"),
        ("", "result[0] > 0.1", [0.05], "Successful"),
        ("result[0] < 0.1", "result[0] > 0.5", [0.3], "Inconclusive"),
        ("result[0] <= 0.01", "", [], "Error"),  # Argo cannot index an empty result
    ],
)
def test_conditions_are_judged_with_argos_rules(success, failure, result, phase) -> None:
    m = metric(success=success)
    if failure:
        m["failureCondition"] = failure
    assert analysis.judge(m, result)[0] == phase


@pytest.mark.parametrize(
    "condition", ["len(result) > 0", "result[0] == 1", "result[1] <= 2", "result[0] <= x"]
)
def test_other_condition_forms_are_refused(condition: str) -> None:
    with pytest.raises(PipelineError, match=r"is not understood; write `result\[0\] <= N`"):
        analysis.judge(metric(success=condition), [1.0])


@pytest.fixture
def prometheus() -> Iterator[tuple[str, list[str]]]:
    """A stub Prometheus HTTP API: answers every query with the vector [0.2] and records the queries."""
    queries: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urlparse(self.path)
            queries.append(parse_qs(url.query)["query"][0])
            body = {
                "status": "success",
                "data": {"resultType": "vector", "result": [{"metric": {}, "value": [0, "0.2"]}]},
            }
            data = json.dumps(body).encode()
            self.send_response(200 if url.path == "/api/v1/query" else 404)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", queries
    finally:
        server.shutdown()
        server.server_close()


def test_the_cli_prints_one_line_per_metric_and_fails_when_one_fails(
    prometheus, tmp_path: Path, capsys
) -> None:
    url, queries = prometheus
    tpl = template(
        [
            {**metric('a{h="{{args.hash}}"}', "result[0] <= {{args.max}}"), "name": "low"},
            {**metric("b", "result[0] >= 0.5"), "name": "high"},
        ],
        [{"name": "hash"}, {"name": "max", "value": "0.3"}],
    )
    path = tmp_path / "t.yaml"
    path.write_text(yaml.safe_dump_all([{"kind": "Rollout"}, tpl]))
    assert analysis.main(["--template", str(path), "--prometheus", url, "--arg", "hash=abc"]) == 1
    out, err = capsys.readouterr()
    assert out.splitlines() == [
        "ok   low: 0.2 (Successful: successCondition result[0] <= 0.3)",
        "FAIL high: 0.2 (Failed: successCondition result[0] >= 0.5)",
    ]
    assert queries == ['a{h="abc"}', "b"]
    assert "canary analysis FAILED: high" in err
    assert (
        analysis.main(["--template", str(path), "--prometheus", url, "--arg", "hash=abc", "--arg", "max=0.1"])
        == 1
    )


def test_a_bad_template_or_argument_is_one_line_and_exit_2(tmp_path: Path, capsys) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(yaml.safe_dump(template([{**metric(), "provider": {"web": {"url": "http://x"}}}])))
    assert analysis.main(["--template", str(path)]) == 2
    assert "provider ['web'] is not prometheus" in capsys.readouterr().err
    assert analysis.main(["--template", str(path), "--arg", "novalue"]) == 2
    assert "--arg 'novalue': write NAME=VALUE" in capsys.readouterr().err
    path.write_text(yaml.safe_dump({"kind": "Rollout"}))
    assert analysis.main(["--template", str(path)]) == 2
    assert "holds 0 AnalysisTemplate documents" in capsys.readouterr().err
