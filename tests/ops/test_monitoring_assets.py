"""deploy/monitoring: the Prometheus alert rules and the Grafana dashboard load, are well-formed and name only
series the service exports (read from app/observability.py's registry: a renamed metric fails here); promtool
accepts the rules and they pass their unit tests (alerts.test.yaml), which pin every alert's threshold and `for:`."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from tests.support.paths import REPO_ROOT

ASSETS = REPO_ROOT / "deploy" / "monitoring"
RULE_TESTS = (
    "alerts.test.yaml"  # promtool's unit tests, beside the rules they test (rule_files: [alerts.yaml])
)
# after the project's prefix (`<Name>Api`, written by ops.project from params.yaml: tests/your_project)
REQUIRED_ALERTS = {"HighErrorRate", "HighLatency", "NoTraffic", "ModelNotReady"}
# PromQL words that are not series names.
PROMQL_WORDS = {
    "sum",
    "min",
    "max",
    "avg",
    "count",
    "rate",
    "irate",
    "increase",
    "histogram_quantile",
    "clamp_min",
    "clamp_max",
    "absent",
    "vector",
    "by",
    "without",
    "or",
    "and",
    "unless",
    "on",
    "ignoring",
    "bool",
    "offset",
    "topk",
}


def exported_series() -> set[str]:
    """Every sample name the app's /metrics can expose (counters: _total; histograms: _bucket/_sum/_count)."""
    from app.observability import Metrics

    names: set[str] = set()
    for family in Metrics().registry.collect():
        if family.type == "counter":
            names |= {f"{family.name}_total", f"{family.name}_created"}
        elif family.type == "histogram":
            names |= {f"{family.name}_{s}" for s in ("bucket", "sum", "count", "created")}
        else:
            names.add(family.name)
    return names


def series_in(expr: str) -> set[str]:
    """The series names a PromQL expression reads (label matchers, ranges, strings and grouping removed)."""
    text = re.sub(r'"[^"]*"', "", expr)
    text = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", " ", text)
    text = re.sub(r"(?<![A-Za-z0-9_:])\d+(\.\d+)?([eE][-+]?\d+)?", " ", text)  # numbers such as 1e-9
    return set(re.findall(r"[A-Za-z_:][A-Za-z0-9_:]*", text)) - PROMQL_WORDS


def alert_rules() -> list[dict]:
    doc = yaml.safe_load((ASSETS / "alerts.yaml").read_text(encoding="utf-8"))
    return [rule for group in doc["groups"] for rule in group["rules"]]


def dashboard() -> dict:
    return json.loads((ASSETS / "dashboard.json").read_text(encoding="utf-8"))


def test_series_extraction_ignores_labels_ranges_and_functions() -> None:
    expr = (
        'histogram_quantile(0.95, sum by (le) (rate(x_bucket{endpoint="/predict"}[5m]))) > 1e-9 or absent(up)'
    )
    assert series_in(expr) == {"x_bucket", "up"}


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda r: r["alert"])
def test_alert_rules_name_only_series_the_app_exports(rule: dict) -> None:
    used = series_in(rule["expr"])
    assert used, rule["alert"]
    assert used <= exported_series(), f"{rule['alert']}: unknown series {sorted(used - exported_series())}"


def test_dashboard_panels_are_well_formed() -> None:
    dash = dashboard()
    panels = dash["panels"]
    assert dash["uid"] and dash["title"] and isinstance(dash["schemaVersion"], int)
    assert len({p["id"] for p in panels}) == len(panels)
    assert {t["name"] for t in dash["templating"]["list"]} == {"datasource"}
    for panel in panels:
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert {"x", "y", "w", "h"} <= set(panel["gridPos"]) and panel["gridPos"]["x"] + panel["gridPos"][
            "w"
        ] <= 24
        assert panel["targets"] and all(t["expr"] for t in panel["targets"]), panel["title"]


def test_dashboard_queries_name_only_series_the_app_exports_and_cover_them() -> None:
    exported = exported_series()
    used: set[str] = set()
    for panel in dashboard()["panels"]:
        for target in panel["targets"]:
            names = series_in(target["expr"])
            assert names <= exported, f"{panel['title']}: unknown series {sorted(names - exported)}"
            used |= names
    base = {n.removesuffix("_total").removesuffix("_bucket") for n in used}
    from app.observability import Metrics

    assert {f.name for f in Metrics().registry.collect()} <= base


def test_alert_rules_are_well_formed() -> None:
    """The rules' shape; that they carry YOUR project's prefix is tests/your_project/test_project_name.py's."""
    rules = alert_rules()
    assert all(any(r["alert"].endswith(alert) for r in rules) for alert in REQUIRED_ALERTS)
    for rule in rules:
        assert set(rule) == {"alert", "expr", "for", "labels", "annotations"}, rule["alert"]
        assert re.fullmatch(r"\d+[smh]", rule["for"]), rule["alert"]
        assert rule["labels"]["severity"] in {"page", "warn"}, rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule["alert"]


def promtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["promtool", *map(str, args)], capture_output=True, text=True, check=False)


def test_promtool_accepts_the_alert_rules() -> None:
    """PromQL that parses, templates that compile, no duplicate rules: what Prometheus checks when it loads them."""
    result = promtool("check", "rules", ASSETS / "alerts.yaml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_alert_rules_pass_their_unit_tests() -> None:
    result = promtool("test", "rules", ASSETS / RULE_TESTS)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_case_that_fires_and_one_that_stays_quiet() -> None:
    """A new or renamed alert in alerts.yaml fails here until alerts.test.yaml has both cases for it."""
    tests = yaml.safe_load((ASSETS / RULE_TESTS).read_text(encoding="utf-8"))
    assert tests["rule_files"] == ["alerts.yaml"]
    fires: set[str] = set()
    quiet: set[str] = set()
    for case in tests["tests"]:
        for check in case["alert_rule_test"]:
            (fires if check["exp_alerts"] else quiet).add(check["alertname"])
    alerts = {rule["alert"] for rule in alert_rules()}
    assert (sorted(alerts - fires), sorted(alerts - quiet), sorted((fires | quiet) - alerts)) == ([], [], [])


THRESHOLD = re.compile(r"(>\s*)([0-9.]+)\s*$")  # the comparison that ends an alert's expression


def scale_threshold(expr: str, factor: float) -> str:
    """`... > 0.05` -> `... > 0.06` for factor 1.2."""
    return THRESHOLD.sub(lambda m: f"{m.group(1)}{float(m.group(2)) * factor:g}", expr.strip())


def shift_duration(duration: str, step: int) -> str:
    """`10m` -> `11m` for step 1."""
    return f"{int(duration[:-1]) + step}{duration[-1]}"


Drift = Callable[[dict], dict]
DRIFTS: dict[str, Drift] = {
    "threshold +20%": lambda rule: {**rule, "expr": scale_threshold(rule["expr"], 1.2)},
    "threshold -20%": lambda rule: {**rule, "expr": scale_threshold(rule["expr"], 0.8)},
    "for: one unit longer": lambda rule: {**rule, "for": shift_duration(rule["for"], 1)},
    "for: one unit shorter": lambda rule: {**rule, "for": shift_duration(rule["for"], -1)},
}


def has_positive_threshold(rule: dict) -> bool:
    match = THRESHOLD.search(rule["expr"].strip())
    return bool(match and float(match.group(2)) > 0)


def rules_copy(directory: Path, alert: str | None = None, drift: Drift | None = None) -> Path:
    """alerts.yaml and its unit tests copied to `directory`, with `drift` applied to the rule named `alert`."""
    doc = yaml.safe_load((ASSETS / "alerts.yaml").read_text(encoding="utf-8"))
    for group in doc["groups"]:
        group["rules"] = [drift(r) if drift and r["alert"] == alert else r for r in group["rules"]]
    (directory / "alerts.yaml").write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    shutil.copy(ASSETS / RULE_TESTS, directory / RULE_TESTS)
    return directory / RULE_TESTS


def test_the_copy_the_drift_tests_edit_passes_unchanged(tmp_path: Path) -> None:
    result = promtool("test", "rules", rules_copy(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("alert", "drift"),
    [
        (rule["alert"], name)
        for rule in alert_rules()
        for name in DRIFTS
        if has_positive_threshold(rule) or not name.startswith("threshold")
    ],
)
def test_the_unit_tests_fail_when_a_rule_drifts(tmp_path: Path, alert: str, drift: str) -> None:
    """The tests pin each alert: a changed threshold or `for:` fails, naming the alert."""
    result = promtool("test", "rules", rules_copy(tmp_path, alert, DRIFTS[drift]))
    assert result.returncode != 0, f"{alert} with {drift} still passes alerts.test.yaml"
    assert f"alertname: {alert}," in result.stdout + result.stderr
