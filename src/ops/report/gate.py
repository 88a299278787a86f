"""Whether the pull request passes the report's gate: the rules, and the verdict they give.

The gate has two kinds of rules and fails `make report` (exit status 1) when any rule fails:
- the absolute floors of params.yaml `evaluate.gate`, as recorded by `evaluate` in metrics/gate.json (where a
  PR lowers a floor, the base's floor applies too);
- no metric of `report.max_regression` may get worse than the base by more than its tolerance. The tolerances
  come from the base revision's params.yaml when it has them, so a pull request cannot loosen the rule that
  judges it (a change to them shows in the params diff and applies from the next pull request on).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from mlcore.errors import PipelineError
from ops.report.outputs import EVALUATE, GATE, Outputs
from ops.report.render import _fmt, _number
from pipeline.config import parse_section


class ReportParams(BaseModel):
    """params.yaml `report:`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_regression: dict[str, float] = Field(default_factory=dict)
    lower_is_better: list[str] = Field(default_factory=lambda: ["log_loss", "brier"])


def report_params(params: Mapping[str, Any] | None, source: str) -> ReportParams | None:
    if not params or "report" not in params:
        return None
    return parse_section(params["report"] or {}, ReportParams, f"{source}: report")


@dataclass(frozen=True)
class Rule:
    name: str  # "floor" | "regression"
    metric: str
    passed: bool
    detail: str


@dataclass(frozen=True)
class Verdict:
    passed: bool
    rules: list[Rule]
    notes: list[str] = field(default_factory=list)

    @property
    def failed(self) -> list[Rule]:
        return [rule for rule in self.rules if not rule.passed]


def floor_rules(
    gate: Mapping[str, Any] | None,
    base_floors: Mapping[str, Any] | None = None,
    pr_metrics: Mapping[str, Any] | None = None,
) -> list[Rule]:
    """The floors as `evaluate` recorded them; where the PR lowered a floor, the base's floor also applies."""
    if gate is None:
        raise PipelineError(f"{GATE}: not found in the working tree: run the pipeline first (`make run`)")
    rules = []
    for entry in gate.get("rules", []):
        try:
            metric, floor, value, passed = entry["metric"], entry["floor"], entry["value"], entry["passed"]
        except (KeyError, TypeError) as exc:
            raise PipelineError(f"{GATE}: each rule needs metric, floor, value and passed") from exc
        relation = ">=" if passed else "<"
        rules.append(
            Rule("floor", metric, bool(passed), f"{metric} {_fmt(value)} {relation} floor {_fmt(floor)}")
        )
        base_floor = _number((base_floors or {}).get(metric))
        if base_floor is not None and _number(floor) is not None and base_floor > _number(floor):
            ok = _number(value) is not None and value >= base_floor
            detail = (
                f"{metric} {_fmt(value)} {'>=' if ok else '<'} the base's floor {_fmt(base_floor)} "
                f"(this PR lowers it to {_fmt(floor)}; merge a gate change on its own)"
            )
            rules.append(Rule("floor", metric, ok, detail))
    recorded = {rule.metric for rule in rules}
    for metric, base_floor in (base_floors or {}).items():
        if metric not in recorded and _number(base_floor) is not None:
            value = _number((pr_metrics or {}).get(metric))
            ok = value is not None and value >= base_floor
            detail = (
                f"{metric} {_fmt(value)} {'>=' if ok else '<'} the base's floor {_fmt(base_floor)} "
                "(this PR removes it; merge a gate change on its own)"
            )
            rules.append(Rule("floor", metric, ok, detail))
    if not rules and gate.get("passed") is False:
        rules.append(Rule("floor", "-", False, f"{GATE} says the gate failed: {gate.get('failed')}"))
    return rules


def regression_rules(
    base: Mapping[str, Any] | None, pr: Mapping[str, Any], policy: ReportParams
) -> tuple[list[Rule], list[str]]:
    if not policy.max_regression:
        return [], [
            "no `report.max_regression` tolerances in params.yaml: "
            "regressions against the base are not checked"
        ]
    if base is None:
        return [], [f"the base revision has no committed {EVALUATE}: regressions against it are not checked"]
    rules, notes = [], []
    for metric, tolerance in policy.max_regression.items():
        old, new = _number(base.get(metric)), _number(pr.get(metric))
        if old is None or new is None:
            notes.append(f"{metric}: missing on one side, regression not checked")
            continue
        worse_by = (new - old) if metric in policy.lower_is_better else (old - new)
        passed = worse_by <= tolerance + 1e-12
        if worse_by > 0:
            relation = "<=" if passed else ">"
            detail = f"{metric} worse than base by {_fmt(worse_by)} ({relation} tolerance {_fmt(tolerance)})"
        else:
            detail = f"{metric} not worse than base ({_fmt(old)} -> {_fmt(new)}; tolerance {_fmt(tolerance)})"
        rules.append(Rule("regression", metric, passed, detail))
    return rules, notes


def judge(
    base: Outputs,
    pr: Outputs,
    pr_policy: ReportParams | None,
    base_policy: ReportParams | None,
    same_window_base: tuple[dict[str, Any] | None, str | None] = (None, None),
) -> Verdict:
    if pr.evaluate is None:
        raise PipelineError(f"{EVALUATE}: not found in the working tree: run the pipeline first (`make run`)")
    notes = []
    policy = base_policy or pr_policy or ReportParams()
    if base_policy is not None and pr_policy is not None and pr_policy != base_policy:
        notes.append(
            "this pull request changes `report:` tolerances: "
            "the base revision's apply to it, the new ones to later pull requests"
        )
    base_floors = ((base.params or {}).get("evaluate") or {}).get("gate")
    rules = floor_rules(pr.gate, base_floors if isinstance(base_floors, dict) else None, pr.evaluate)
    champion, source = same_window_base
    if champion is not None:
        notes.append(
            f"the training data changed: regressions are checked against the production model scored on this "
            f"pull request's test window ({source}), not against the base's older window"
        )
    more_rules, more_notes = regression_rules(
        champion if champion is not None else base.evaluate, pr.evaluate, policy
    )
    rules += more_rules
    notes += more_notes
    return Verdict(passed=all(rule.passed for rule in rules), rules=rules, notes=notes)
