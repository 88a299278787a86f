"""deploy/monitoring: the Prometheus alert rules and the Grafana dashboard load, are well-formed and name only
series the service exports (read from app/observability.py's registry: a renamed metric fails here)."""

from __future__ import annotations

import json
import re

import pytest
import yaml

from tests.support.paths import REPO_ROOT

ASSETS = REPO_ROOT / "deploy" / "monitoring"
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
        assert rule["expr"].count("(") == rule["expr"].count(")"), rule["alert"]
