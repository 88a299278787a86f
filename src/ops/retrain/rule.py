"""May the challenger replace the champion? The `promotion` rule of params.yaml and its judgement.

Metric direction comes from mlcore.metrics.HIGHER_IS_BETTER. The floor / improvement / regression checks are
kept together here on purpose: the shared rules engine (mlcore.rules) replaces them as one piece.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from mlcore.metrics import HIGHER_IS_BETTER
from pipeline.config import load_params

Decision = Literal["promote", "reject", "skip"]


class PromotionRule(BaseModel):
    """params.yaml `promotion`: when a challenger may replace the champion."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    champion_rev: str = "main"
    primary_metric: str = "roc_auc"
    min_improvement: float = 0.0
    floors: dict[str, float] = Field(default_factory=dict)
    max_regression: dict[str, float] = Field(default_factory=dict)
    base_branch: str = "staging"
    branch_prefix: str = "retrain/"

    @model_validator(mode="after")
    def _known_metrics(self) -> PromotionRule:
        for key, names in (
            ("primary_metric", [self.primary_metric]),
            ("floors", self.floors),
            ("max_regression", self.max_regression),
        ):
            for name in names:
                if name not in HIGHER_IS_BETTER:
                    raise ValueError(f"{key}: unknown metric '{name}' (one of {sorted(HIGHER_IS_BETTER)})")
        return self


def load_rule(params_path: str | Path) -> PromotionRule:
    return load_params(params_path).section("promotion", PromotionRule, str(params_path))


def branch_name(rule: PromotionRule, data_hash: str) -> str:
    return f"{rule.branch_prefix}{data_hash[:12]}"


def _better_by(metric: str, new: float, old: float) -> float:
    """How much better `new` is than `old` (positive = better), whatever the metric's direction."""
    return new - old if HIGHER_IS_BETTER[metric] else old - new


def judge(
    champion: dict[str, float] | None, challenger: dict[str, float], rule: PromotionRule
) -> tuple[Decision, list[str], list[dict[str, Any]]]:
    """Apply the promotion rule to metrics of both models on the same test window.

    Returns (decision, reasons, checks). Reasons say why in one line each: the failed checks for a reject,
    the improvement for a promote. Without a champion only the floors apply.
    """
    checks: list[dict[str, Any]] = []
    for metric, floor in rule.floors.items():
        value = challenger[metric]
        op = ">=" if HIGHER_IS_BETTER[metric] else "<="
        ok = value >= floor if HIGHER_IS_BETTER[metric] else value <= floor
        checks.append(
            {
                "kind": "floor",
                "metric": metric,
                "challenger": value,
                "champion": None,
                "rule": f"{metric} {op} {floor}",
                "passed": bool(ok),
                "reason": f"{metric} {value:.4f} breaks the floor {metric} {op} {floor}",
            }
        )
    if champion is not None:
        p = rule.primary_metric
        gain = _better_by(p, challenger[p], champion[p])
        checks.append(
            {
                "kind": "primary",
                "metric": p,
                "challenger": challenger[p],
                "champion": champion[p],
                "rule": f"{p} better than the champion by >= {rule.min_improvement}",
                "passed": bool(gain >= rule.min_improvement),
                "reason": f"{p} {challenger[p]:.4f} vs champion {champion[p]:.4f}: improvement "
                f"{gain:+.4f} is below promotion.min_improvement {rule.min_improvement}",
            }
        )
        for metric, allowed in rule.max_regression.items():
            loss = -_better_by(metric, challenger[metric], champion[metric])
            checks.append(
                {
                    "kind": "guard",
                    "metric": metric,
                    "challenger": challenger[metric],
                    "champion": champion[metric],
                    "rule": f"{metric} worse by <= {allowed}",
                    "passed": bool(loss <= allowed),
                    "reason": f"{metric} {challenger[metric]:.4f} vs champion {champion[metric]:.4f}: "
                    f"worse by {loss:.4f}, more than promotion.max_regression.{metric} "
                    f"{allowed}",
                }
            )
    for check in checks:  # a reason explains a failure; a passed check needs none
        if check["passed"]:
            check["reason"] = None
    failed = [c["reason"] for c in checks if not c["passed"]]
    if failed:
        return "reject", failed, checks
    if champion is None:
        return "promote", ["no champion to compare with; the challenger passes every floor"], checks
    p = rule.primary_metric
    return (
        "promote",
        [
            f"{p} {challenger[p]:.4f} beats the champion's {champion[p]:.4f} by "
            f"{_better_by(p, challenger[p], champion[p]):+.4f} (>= {rule.min_improvement}) "
            f"and every floor and guard holds"
        ],
        checks,
    )
