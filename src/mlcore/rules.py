"""The one rules engine: floors, regression tolerances and minimum improvements on metrics.

Every judgement in the template is built from these checks and has the same serialisable shape: the quality
gate (`evaluate`, metrics/gate.json), the pull-request report's gate (`make report`), the promotion rule
(`make retrain`, retrain/decision.json) and live performance in monitoring (monitoring/verdict.json).
Which way a metric is better comes only from `mlcore.metrics.HIGHER_IS_BETTER`.

A `Check` is one comparison; a `Verdict` is a list of checks (passed when all pass) plus notes on what could
not be judged. `Verdict.to_dict()` / `Check.to_dict()` are what the JSON files hold.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal

from mlcore.errors import PipelineError
from mlcore.metrics import HIGHER_IS_BETTER

Kind = Literal["floor", "regression", "improvement"]
EPSILON = 1e-12  # float noise: a value exactly at its limit passes


@dataclass(frozen=True)
class Check:
    """One comparison. `value` is the judged model's metric; `against` the compared model's (None for a floor);
    `limit` the floor, the tolerance or the minimum improvement; `param` the params.yaml key that set it."""

    kind: Kind
    metric: str
    value: float | None
    against: float | None
    limit: float
    passed: bool
    rule: (
        str  # the rule as written: "roc_auc >= 0.7", "pr_auc worse by <= 0.02", "roc_auc better by >= 0.002"
    )
    detail: str  # one line: the numbers and the outcome
    param: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Verdict:
    checks: tuple[Check, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def passed(self) -> bool:
        return all(check.passed for check in self.checks)

    @property
    def failed(self) -> list[Check]:
        return [check for check in self.checks if not check.passed]

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "checks": [check.to_dict() for check in self.checks],
            "failed": [check.metric for check in self.failed],
            "notes": list(self.notes),
        }


def verdict(checks: Iterable[Check], notes: Iterable[str] = ()) -> Verdict:
    return Verdict(tuple(checks), tuple(notes))


def higher_is_better(metric: str, where: str = "metric") -> bool:
    """The metric's direction; an unknown name is an error naming `where` it was written."""
    try:
        return HIGHER_IS_BETTER[metric]
    except KeyError:
        raise PipelineError(
            f"{where}: unknown metric '{metric}' (one of {sorted(HIGHER_IS_BETTER)})"
        ) from None


def better_by(metric: str, new: float, old: float) -> float:
    """How much better `new` is than `old` (positive = better), whatever the metric's direction."""
    return new - old if higher_is_better(metric) else old - new


def number(value: Any) -> float | None:
    """A usable metric value, or None (missing, NaN, a bool or not a number)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        return None
    return value


def fmt(value: Any, missing: str = "n/a") -> str:
    """A value as reports and messages show it: numbers with 4 decimals (trailing zeros trimmed), thousands
    separated; bools as true/false; None or NaN as `missing`."""
    if isinstance(value, bool):
        return str(value).lower()
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return missing
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.4f}".rstrip("0").rstrip(".") if abs(value) < 1e6 else f"{value:.4g}"
    return str(value)


def stricter(metric: str, limit: float, other: float) -> bool:
    """Whether floor `limit` is stricter than floor `other` for this metric (higher, or lower for losses)."""
    return better_by(metric, limit, other) > 0


def floor_check(metric: str, value: Any, floor: float, param: str = "") -> Check:
    """`value` meets the floor (a minimum; a maximum for lower-is-better metrics). Missing values fail."""
    up = higher_is_better(metric, param or "floor")
    ok_op, bad_op = (">=", "<") if up else ("<=", ">")
    v = number(value)
    passed = v is not None and (v >= floor - EPSILON if up else v <= floor + EPSILON)
    detail = f"{metric} {fmt(v)} {ok_op if passed else bad_op} floor {fmt(floor)}"
    return Check("floor", metric, v, None, floor, passed, f"{metric} {ok_op} {fmt(floor)}", detail, param)


def _not_comparable(
    kind: Kind, metric: str, v: float | None, a: float | None, limit: float, rule: str, param: str
) -> Check:
    """A comparison with a value missing on one side: it fails."""
    detail = f"{metric} {fmt(v)} vs {fmt(a)}: missing on one side, not comparable"
    return Check(kind, metric, v, a, limit, False, rule, detail, param)


def regression_check(metric: str, value: Any, against: Any, tolerance: float, param: str = "") -> Check:
    """`value` is worse than `against` by at most `tolerance` (absolute units). Missing values fail."""
    v, a = number(value), number(against)
    rule = f"{metric} worse by <= {fmt(tolerance)}"
    if v is None or a is None:
        return _not_comparable("regression", metric, v, a, tolerance, rule, param)
    worse = -better_by(metric, v, a)
    passed = worse <= tolerance + EPSILON
    if worse > 0:
        outcome = f"worse by {fmt(worse)} ({'<=' if passed else '>'} tolerance {fmt(tolerance)})"
    else:
        outcome = f"not worse (tolerance {fmt(tolerance)})"
    return Check(
        "regression",
        metric,
        v,
        a,
        tolerance,
        passed,
        rule,
        f"{metric} {fmt(v)} vs {fmt(a)}: {outcome}",
        param,
    )


def improvement_check(metric: str, value: Any, against: Any, minimum: float, param: str = "") -> Check:
    """`value` is better than `against` by at least `minimum`. Missing values fail."""
    v, a = number(value), number(against)
    rule = f"{metric} better by >= {fmt(minimum)}"
    if v is None or a is None:
        return _not_comparable("improvement", metric, v, a, minimum, rule, param)
    gain = better_by(metric, v, a)
    passed = gain >= minimum - EPSILON
    detail = (
        f"{metric} {fmt(v)} vs {fmt(a)}: better by {gain:+.4f} ({'>=' if passed else '<'} {fmt(minimum)})"
    )
    return Check("improvement", metric, v, a, minimum, passed, rule, detail, param)


def floors(metrics: Mapping[str, Any], limits: Mapping[str, float], param: str) -> list[Check]:
    """One floor check per entry of `limits` (a params.yaml mapping metric -> floor named `param`)."""
    return [floor_check(m, metrics.get(m), floor, f"{param}.{m}") for m, floor in limits.items()]


def regressions(
    metrics: Mapping[str, Any], against: Mapping[str, Any], tolerances: Mapping[str, float], param: str
) -> list[Check]:
    return [
        regression_check(m, metrics.get(m), against.get(m), tol, f"{param}.{m}")
        for m, tol in tolerances.items()
    ]


def check_from_dict(raw: Mapping[str, Any], where: str) -> Check:
    """A check read back from a JSON file (e.g. metrics/gate.json); a malformed entry is a clear error."""
    try:
        return Check(
            **{name: raw[name] for name in Check.__dataclass_fields__ if name != "param"},
            param=raw.get("param", ""),
        )
    except (KeyError, TypeError) as exc:
        fields = ", ".join(Check.__dataclass_fields__)
        raise PipelineError(f"{where}: each check needs {fields}") from exc


def verdict_from_dict(raw: Mapping[str, Any], where: str) -> Verdict:
    if not isinstance(raw, Mapping) or not isinstance(raw.get("checks"), list):
        raise PipelineError(f"{where}: expected {{passed, checks: [...], failed, notes}}")
    return verdict((check_from_dict(c, where) for c in raw["checks"]), raw.get("notes") or ())


def unknown_metric(names: Iterable[str]) -> str | None:
    """The first name that is not a metric, as one line, or None when all are metrics."""
    for name in names:
        if name not in HIGHER_IS_BETTER:
            return f"unknown metric '{name}' (one of {sorted(HIGHER_IS_BETTER)})"
    return None


def known_metrics(names: Iterable[str], where: str) -> None:
    """Fail on the first name that is not a metric (for validating params.yaml sections)."""
    for name in names:
        higher_is_better(name, f"{where}.{name}")
