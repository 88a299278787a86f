"""Champion vs challenger on live traffic: the predictions a shadow model made on the same requests, judged on the
labels that came back (mlcore.predlog_schema's shadow_predictions, joined by prediction id).

`read_shadow(url, start, end)` returns one row per (request, shadow version) with the serving model's and the
shadow's probability and the label (NaN while none came). `compare(pairs, ...)` gives, per shadow version:
- agreement: the share of requests both models classified alike, and the mean |probability difference|;
- output drift: PSI of the shadow's probabilities against the serving model's on the same requests;
- on the labelled requests, the primary metric of both and their difference with a paired bootstrap confidence
  interval (the same resampled requests score both models, so the interval is of the difference itself);
- `evidence`: params.yaml `monitor.shadow`'s rule: at least `min_labelled` labelled shadow predictions and a
  difference whose whole interval lies above `min_margin` (in the metric's better direction). Only then is live
  evidence "the challenger is better"; otherwise the reasons say which part is missing.
Seeds and the number of resamples are params; the same log gives the same interval.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field, field_validator

from mlcore.errors import PipelineError
from mlcore.metrics import HIGHER_IS_BETTER, classification_metrics
from mlcore.predlog_schema import feedback, predictions, shadow_predictions
from ops.monitor.drift import psi

PSI_BINS = np.linspace(0.0, 1.0, 11)


class ShadowRule(BaseModel):
    """params.yaml `monitor.shadow`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    primary_metric: str = "roc_auc"
    min_labelled: int = Field(default=500, ge=1)
    min_margin: float = 0.0
    confidence: float = Field(default=0.95, gt=0, lt=1)
    resamples: int = Field(default=1000, ge=100)
    seed: int = 0

    @field_validator("primary_metric")
    @classmethod
    def _known(cls, metric: str) -> str:
        if metric not in HIGHER_IS_BETTER:
            raise ValueError(f"unknown metric {metric!r}; one of {', '.join(HIGHER_IS_BETTER)}")
        return metric


def read_shadow(url: str, start: datetime, end: datetime) -> pd.DataFrame:
    """(prediction_id, created_at, serving_version, serving_probability, shadow_version, shadow_probability,
    label) for the shadow predictions of requests made in [start, end)."""
    engine = sa.create_engine(url)
    if engine.dialect.name == "sqlite":
        start, end = start.astimezone(UTC).replace(tzinfo=None), end.astimezone(UTC).replace(tzinfo=None)
    s, p, f = shadow_predictions, predictions, feedback
    query = (
        sa.select(
            p.c.prediction_id,
            p.c.created_at,
            p.c.model_version.label("serving_version"),
            p.c.probability.label("serving_probability"),
            s.c.model_version.label("shadow_version"),
            s.c.probability.label("shadow_probability"),
            f.c.label,
        )
        .select_from(
            s.join(p, s.c.prediction_id == p.c.prediction_id).outerjoin(
                f, f.c.prediction_id == p.c.prediction_id
            )
        )
        .where(p.c.created_at >= start, p.c.created_at < end)
    )
    try:
        with engine.connect() as conn:
            if not sa.inspect(conn).has_table("shadow_predictions"):
                return pd.DataFrame(columns=[c.name for c in query.selected_columns])
            rows = conn.execute(query).mappings().all()
    except sa.exc.SQLAlchemyError as exc:
        raise PipelineError(
            f"prediction log {engine.url.render_as_string(hide_password=True)}: shadow predictions: "
            f"{str(exc.orig if hasattr(exc, 'orig') else exc).splitlines()[0]}"
        ) from exc
    finally:
        engine.dispose()
    return pd.DataFrame(rows, columns=[c.name for c in query.selected_columns])


def paired_bootstrap(
    y: np.ndarray, serving: np.ndarray, shadow: np.ndarray, metric: str, threshold: float, rule: ShadowRule
) -> tuple[float, float, float]:
    """(difference shadow - serving of `metric`, lower, upper) with a percentile interval over `rule.resamples`
    resamples of the labelled requests (both models scored on the same resample)."""

    def value(idx: np.ndarray | slice) -> float:
        return (
            classification_metrics(y[idx], shadow[idx], threshold)[metric]
            - classification_metrics(y[idx], serving[idx], threshold)[metric]
        )

    rng = np.random.default_rng(rule.seed)
    n = len(y)
    diffs = []
    for _ in range(rule.resamples):
        idx = rng.integers(0, n, n)
        if len(np.unique(y[idx])) == 2:  # a resample of one class has no ROC AUC
            diffs.append(value(idx))
    tail = (1 - rule.confidence) / 2 * 100
    low, high = np.percentile(diffs, [tail, 100 - tail]) if diffs else (float("nan"), float("nan"))
    return value(slice(None)), float(low), float(high)


def evidence(labelled: int, diff: float, low: float, high: float, rule: ShadowRule) -> dict[str, Any]:
    better = HIGHER_IS_BETTER[rule.primary_metric]
    bound = low if better else -high  # the interval's worst end, as an improvement
    reasons = []
    if labelled < rule.min_labelled:
        reasons.append(f"only {labelled} labelled shadow predictions (min {rule.min_labelled})")
    elif not bound > rule.min_margin:
        reasons.append(
            f"{rule.primary_metric} difference {diff:+.4f}, {rule.confidence:.0%} interval [{low:+.4f}, {high:+.4f}]"
            f": does not lie above the margin {rule.min_margin:+.4f}"
        )
    return {
        "passed": not reasons,
        "reasons": reasons
        or [
            f"{rule.primary_metric} better by {diff:+.4f} ({rule.confidence:.0%} interval [{low:+.4f}, {high:+.4f}]) "
            f"on {labelled} labelled requests"
        ],
    }


def compare(pairs: pd.DataFrame, threshold: float, rule: ShadowRule) -> dict[str, Any]:
    """The live comparison per shadow version (see the module docstring)."""
    out: dict[str, Any] = {}
    for version, group in pairs.groupby("shadow_version"):
        serving = group["serving_probability"].to_numpy(dtype=float)
        shadow = group["shadow_probability"].to_numpy(dtype=float)
        agree = float(np.mean((serving >= threshold) == (shadow >= threshold)))
        drift = psi(
            np.histogram(serving, PSI_BINS)[0] / len(serving), np.histogram(shadow, PSI_BINS)[0] / len(shadow)
        )
        labelled = group[group["label"].notna()]
        entry: dict[str, Any] = {
            "requests": len(group),
            "serving_versions": sorted(group["serving_version"].unique().tolist()),
            "agreement": agree,
            "mean_abs_probability_difference": float(np.mean(np.abs(serving - shadow))),
            "output_psi": drift,
            "labelled": len(labelled),
        }
        y = labelled["label"].to_numpy(dtype=int)
        if len(labelled) and len(np.unique(y)) == 2:
            ls, lh = (
                labelled[c].to_numpy(dtype=float) for c in ("serving_probability", "shadow_probability")
            )
            diff, low, high = paired_bootstrap(y, ls, lh, rule.primary_metric, threshold, rule)
            entry.update(
                metric=rule.primary_metric,
                serving=classification_metrics(y, ls, threshold)[rule.primary_metric],
                shadow=classification_metrics(y, lh, threshold)[rule.primary_metric],
                difference=diff,
                interval=[low, high],
                confidence=rule.confidence,
            )
            entry["evidence"] = evidence(len(labelled), diff, low, high, rule)
        else:
            entry["evidence"] = evidence(len(labelled), float("nan"), float("nan"), float("nan"), rule)
        out[str(version)] = entry
    return out
