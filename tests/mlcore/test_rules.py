"""mlcore.rules: the one engine behind the gate, the PR report, promotion and monitoring."""

from __future__ import annotations

import json
import math

import pytest

from mlcore.errors import PipelineError
from mlcore.metrics import HIGHER_IS_BETTER
from mlcore.rules import (
    floor_check,
    floors,
    fmt,
    improvement_check,
    known_metrics,
    regression_check,
    verdict,
    verdict_from_dict,
)


def test_a_floor_is_a_minimum_and_a_maximum_for_losses():
    assert floor_check("roc_auc", 0.71, 0.7).passed and not floor_check("roc_auc", 0.69, 0.7).passed
    assert floor_check("log_loss", 0.4, 0.5).passed and not floor_check("log_loss", 0.6, 0.5).passed
    assert floor_check("log_loss", 0.6, 0.5).detail == "log_loss 0.6 > floor 0.5"
    assert floor_check("roc_auc", 0.69, 0.7, "evaluate.gate.roc_auc").detail == "roc_auc 0.69 < floor 0.7"
    # exactly at the limit passes, float noise included
    assert floor_check("recall", 0.1 + 0.2, 0.3).passed


@pytest.mark.parametrize("missing", [None, math.nan, "0.9", True])
def test_a_missing_or_unusable_value_fails_every_kind_of_check(missing):
    assert not floor_check("f1", missing, 0.3).passed
    assert not regression_check("f1", missing, 0.5, 0.1).passed
    assert not improvement_check("f1", 0.5, missing, 0.0).passed


def test_regression_and_improvement_follow_the_metric_direction():
    # a higher log_loss is worse; a lower one is an improvement
    assert not regression_check("log_loss", 0.55, 0.50, 0.02).passed
    assert regression_check("log_loss", 0.45, 0.50, 0.0).passed
    assert improvement_check("log_loss", 0.45, 0.50, 0.04).passed
    assert not improvement_check("roc_auc", 0.801, 0.800, 0.002).passed
    check = regression_check("pr_auc", 0.47, 0.50, 0.02, "promotion.max_regression.pr_auc")
    assert check.detail == "pr_auc 0.47 vs 0.5: worse by 0.03 (> tolerance 0.02)"
    assert check.param == "promotion.max_regression.pr_auc"


def test_every_metric_has_a_direction_and_unknown_names_are_refused_with_where():
    for metric in HIGHER_IS_BETTER:
        assert floor_check(metric, 0.5, 0.5).passed
    with pytest.raises(
        PipelineError, match=r"params.yaml: monitor.performance_floors.auc: unknown metric 'auc'"
    ):
        known_metrics({"roc_auc": 0.7, "auc": 0.7}, "params.yaml: monitor.performance_floors")


def test_a_verdict_serialises_to_json_and_reads_back():
    v = verdict(floors({"roc_auc": 0.8, "f1": 0.2}, {"roc_auc": 0.7, "f1": 0.3}, "evaluate.gate"), ["a note"])
    raw = json.loads(json.dumps(v.to_dict()))
    assert raw["passed"] is False and raw["failed"] == ["f1"] and raw["notes"] == ["a note"]
    assert raw["checks"][1]["param"] == "evaluate.gate.f1" and raw["checks"][1]["kind"] == "floor"
    assert verdict_from_dict(raw, "metrics/gate.json") == v
    with pytest.raises(PipelineError, match=r"metrics/gate.json: each check needs kind, metric"):
        verdict_from_dict({"checks": [{"metric": "f1"}]}, "metrics/gate.json")
    assert verdict([]).passed  # nothing to check: nothing failed


def test_numbers_are_shown_one_way():
    assert [fmt(0.70), fmt(0.80021), fmt(None), fmt(math.nan), fmt(12345)] == [
        "0.7",
        "0.8002",
        "n/a",
        "n/a",
        "12,345",
    ]
