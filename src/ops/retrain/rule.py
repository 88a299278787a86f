"""May the challenger replace the champion? The `promotion` rule of params.yaml and its judgement.

The rule is mlcore.rules checks on both models' metrics on the same test window: the floors, the primary
metric's minimum improvement and the guards' regression tolerances (metric direction from mlcore.metrics).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from mlcore.rules import Check, floors, improvement_check, regressions, unknown_metric
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
            problem = unknown_metric(names)
            if problem:
                raise ValueError(f"{key}: {problem}")
        return self


def load_rule(params_path: str | Path) -> PromotionRule:
    return load_params(params_path).section("promotion", PromotionRule, str(params_path))


def branch_name(rule: PromotionRule, data_hash: str) -> str:
    return f"{rule.branch_prefix}{data_hash[:12]}"


def checks(
    champion: dict[str, float] | None, challenger: dict[str, float], rule: PromotionRule
) -> list[Check]:
    """The rule's checks; without a champion only the floors apply."""
    found = floors(challenger, rule.floors, "promotion.floors")
    if champion is not None:
        p = rule.primary_metric
        found.append(
            improvement_check(
                p, challenger.get(p), champion.get(p), rule.min_improvement, "promotion.min_improvement"
            )
        )
        found += regressions(challenger, champion, rule.max_regression, "promotion.max_regression")
    return found


def judge(
    champion: dict[str, float] | None, challenger: dict[str, float], rule: PromotionRule
) -> tuple[Decision, list[str], list[dict[str, Any]]]:
    """Apply the promotion rule to metrics of both models on the same test window.

    Returns (decision, reasons, checks as dicts). Reasons say why in one line each: the failed checks (with the
    params.yaml key that set each limit) for a reject, the improvement for a promote.
    """
    found = checks(champion, challenger, rule)
    failed = [f"{c.detail} ({c.param})" for c in found if not c.passed]
    as_dicts = [c.to_dict() for c in found]
    if failed:
        return "reject", failed, as_dicts
    if champion is None:
        return "promote", ["no champion to compare with; the challenger passes every floor"], as_dicts
    gain = next(c for c in found if c.kind == "improvement")
    return "promote", [f"{gain.detail} and every floor and guard holds"], as_dicts
