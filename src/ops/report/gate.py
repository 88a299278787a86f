"""Whether the pull request passes the report's gate: the rules, and the verdict they give.

The gate has two kinds of rules and fails `make report` (exit status 1) when any rule fails:
- the absolute floors of params.yaml `evaluate.gate`, as recorded by `evaluate` in metrics/gate.json (where a
  PR lowers a floor, the base's floor applies too);
- no metric of `report.max_regression` may get worse than the base by more than its tolerance. The tolerances
  come from the base revision's params.yaml when it has them, so a pull request cannot loosen the rule that
  judges it (a change to them shows in the params diff and applies from the next pull request on).

When the data contract changed (ops.report.contract: another label, id, time column or feature set), the base's
metrics measure another problem: regressions are not checked (one note says why) and only the PR's own floors
judge, since the base's floors were set for another dataset.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from mlcore.errors import PipelineError
from mlcore.rules import (
    Check,
    Verdict,
    floor_check,
    known_metrics,
    number,
    regression_check,
    stricter,
    verdict,
    verdict_from_dict,
)
from ops.report.contract import ContractDiff
from ops.report.outputs import EVALUATE, GATE, Outputs
from pipeline.config import parse_section

NOT_COMPARABLE = (
    "data contract changed: the base's metrics are not comparable, so regressions are not checked and only "
    "this pull request's floors (evaluate.gate) judge it"
)


class ReportParams(BaseModel):
    """params.yaml `report:` (metric direction comes from mlcore.metrics, not from here)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_regression: dict[str, float] = Field(default_factory=dict)

    @field_validator("max_regression")
    @classmethod
    def _known(cls, value: dict[str, float]) -> dict[str, float]:
        known_metrics(value, "max_regression")
        return value


def report_params(params: Mapping[str, Any] | None, source: str) -> ReportParams | None:
    if not params or "report" not in params:
        return None
    return parse_section(params["report"] or {}, ReportParams, f"{source}: report")


def _base_floor(metric: str, value: Any, floor: float, pr_floor: float | None) -> Check:
    """The base's floor, applied because the PR lowered (or removed) it: a gate change merges on its own."""
    check = floor_check(metric, value, floor, f"evaluate.gate.{metric} (base)")
    change = "removes it" if pr_floor is None else f"lowers it to {pr_floor}"
    detail = check.detail.replace(" floor ", " the base's floor ", 1)
    return replace(check, detail=f"{detail} (this PR {change}; merge a gate change on its own)")


def floor_checks(
    gate: Mapping[str, Any] | None,
    base_floors: Mapping[str, Any] | None = None,
    pr_metrics: Mapping[str, Any] | None = None,
) -> list[Check]:
    """The floors as `evaluate` recorded them; where the PR lowered or removed a floor, the base's applies too."""
    if gate is None:
        raise PipelineError(f"{GATE}: not found in the working tree: run the pipeline first (`make run`)")
    checks = list(verdict_from_dict(gate, GATE).checks)
    pr_floors = {check.metric: check.limit for check in checks}
    for metric, floor in (base_floors or {}).items():
        if number(floor) is None:
            continue
        pr_floor = pr_floors.get(metric)
        if pr_floor is None or stricter(metric, floor, pr_floor):
            checks.append(_base_floor(metric, (pr_metrics or {}).get(metric), floor, pr_floor))
    return checks


def regression_checks(
    base: Mapping[str, Any] | None, pr: Mapping[str, Any], policy: ReportParams
) -> tuple[list[Check], list[str]]:
    if not policy.max_regression:
        return [], [
            "no `report.max_regression` tolerances in params.yaml: regressions against the base are not checked"
        ]
    if base is None:
        return [], [f"the base revision has no committed {EVALUATE}: regressions against it are not checked"]
    checks, notes = [], []
    for metric, tolerance in policy.max_regression.items():
        if number(base.get(metric)) is None or number(pr.get(metric)) is None:
            notes.append(f"{metric}: missing on one side, regression not checked")
            continue
        checks.append(
            regression_check(metric, pr[metric], base[metric], tolerance, f"report.max_regression.{metric}")
        )
    return checks, notes


def judge(
    base: Outputs,
    pr: Outputs,
    pr_policy: ReportParams | None,
    base_policy: ReportParams | None,
    same_window_base: tuple[dict[str, Any] | None, str | None] = (None, None),
    contract: ContractDiff | None = None,
) -> Verdict:
    if pr.evaluate is None:
        raise PipelineError(f"{EVALUATE}: not found in the working tree: run the pipeline first (`make run`)")
    if contract is not None and not contract.comparable:
        return verdict(floor_checks(pr.gate), [NOT_COMPARABLE])
    notes = []
    policy = base_policy or pr_policy or ReportParams()
    if base_policy is not None and pr_policy is not None and pr_policy != base_policy:
        notes.append(
            "this pull request changes `report:` tolerances: "
            "the base revision's apply to it, the new ones to later pull requests"
        )
    base_floors = ((base.params or {}).get("evaluate") or {}).get("gate")
    checks = floor_checks(pr.gate, base_floors if isinstance(base_floors, dict) else None, pr.evaluate)
    champion, source = same_window_base
    if champion is not None:
        notes.append(
            f"the training data changed: regressions are checked against the production model scored on this "
            f"pull request's test window ({source}), not against the base's older window"
        )
    more, more_notes = regression_checks(
        champion if champion is not None else base.evaluate, pr.evaluate, policy
    )
    return verdict([*checks, *more], [*notes, *more_notes])
