"""The verdict for one window of the prediction log: traffic, drift and live performance against params.yaml
`monitor` (typed here by MonitorParams)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from mlcore.metrics import classification_metrics
from mlcore.rules import Check, known_metrics
from mlcore.rules import floors as rule_floors
from ops.monitor.drift import DriftResult, feature_drift, numeric_result
from ops.monitor.estimate import estimate_performance
from ops.monitor.shadow import ShadowRule
from ops.monitor.trigger import Persistence
from ops.monitor.window import WindowStats
from pipeline.config import Params, load_params

EXIT_HEALTHY = 0
EXIT_BREACH = 3
Status = Literal["healthy", "breach", "insufficient_data"]


class MonitorParams(BaseModel):
    """params.yaml `monitor` (see the comments there)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model_dir: str = "model"
    log_url: str = "sqlite:///predictions.db"
    report_dir: str = "monitoring"
    window_days: float = Field(gt=0)
    min_predictions: int = Field(ge=1)
    min_labels: int = Field(ge=1)
    performance_floors: dict[str, float]
    psi_threshold: float = Field(gt=0)
    p_value: float = Field(gt=0, lt=1)
    max_drifted_share: float = Field(ge=0, le=1)
    prediction_psi_threshold: float = Field(gt=0)
    max_invalid_fraction: float = Field(ge=0, le=1)
    time_buckets: int = Field(ge=1)
    min_bucket_labels: int = Field(ge=1)
    cooldown_hours: float = Field(ge=0)
    chunk_rows: int = Field(default=50_000, ge=1)
    sample_size: int = Field(default=200_000, ge=1)
    sample_seed: int = 0
    trigger_persistence: Persistence = Persistence()
    shadow: ShadowRule = ShadowRule()
    state_file: str = "monitoring/state.json"
    trigger_command: str = ""


def monitor_params(params_path: str | Path) -> tuple[MonitorParams, Params]:
    params = load_params(params_path)
    section = params.section("monitor", MonitorParams, str(params_path))
    known_metrics(section.performance_floors, f"{params_path}: monitor.performance_floors")
    return section, params


def performance_over_time(
    labelled: pd.DataFrame, buckets: int, min_labels: int, threshold: float, metrics: list[str]
) -> list[dict[str, Any]]:
    """Metrics per equal-width time bucket of the labelled predictions (too-small buckets left out)."""
    if labelled.empty:
        return []
    t0, t1 = labelled["created_at"].min(), labelled["created_at"].max()
    width = (t1 - t0) / buckets if t1 > t0 else pd.Timedelta(seconds=1)
    index = np.minimum(((labelled["created_at"] - t0) / width).astype(int), buckets - 1)
    out = []
    for bucket, part in labelled.groupby(index):
        if len(part) < min_labels:
            continue
        values = classification_metrics(part["label"], part["probability"], threshold)
        out.append(
            {
                "start": (t0 + bucket * width).isoformat(),
                "end": (t0 + (bucket + 1) * width).isoformat(),
                "labels": len(part),
                **{m: values[m] for m in metrics},
            }
        )
    return out


def traffic_of(stats: WindowStats) -> dict[str, Any]:
    """The traffic figures of a window: predictions, unreadable rows, labels and their delay (on the labelled
    sample: `label_delay_hours.sample` gives its size when that is fewer than all)."""
    labelled = stats.labelled_frame()
    delay_h = (labelled["received_at"] - labelled["created_at"]).dt.total_seconds() / 3600
    n_all = stats.predictions + stats.invalid
    return {
        "predictions": stats.predictions,
        "invalid_rows": stats.invalid,
        "invalid_fraction": stats.invalid / n_all if n_all else 0.0,
        "other_model_versions": stats.other_versions,
        "labelled": stats.labelled,
        "label_coverage": stats.labelled / stats.predictions if stats.predictions else 0.0,
        "label_delay_hours": {
            "median": float(delay_h.median()) if len(delay_h) else None,
            "p90": float(delay_h.quantile(0.9)) if len(delay_h) else None,
            "sample": len(delay_h) if stats.labels.sampled else None,
        },
        "first": stats.first.isoformat() if stats.first is not None else None,
        "last": stats.last.isoformat() if stats.last is not None else None,
    }


def judge_drift(
    stats: WindowStats, cfg: MonitorParams
) -> tuple[dict[str, Any], list[DriftResult], list[dict[str, str]]]:
    """Feature and prediction drift against the training reference: the verdict's `drift`, the results, and
    the breaches."""
    reasons: list[dict[str, str]] = []
    results = feature_drift(stats.reference, stats.numeric, stats.categorical, cfg.psi_threshold, cfg.p_value)
    drifted = [r.name for r in sorted(results, key=lambda r: -r.psi) if r.drifted]
    share = len(drifted) / len(results) if results else 0.0
    pred = numeric_result(
        "prediction", stats.prediction, cfg.prediction_psi_threshold, cfg.p_value, kind="prediction"
    )
    drift = {
        "features": [r.as_dict() for r in results],
        "drifted": drifted,
        "share": share,
        "max_share": cfg.max_drifted_share,
        "prediction": pred.as_dict(),
    }
    if drifted and share > cfg.max_drifted_share:
        reasons.append(
            {
                "code": "feature_drift",
                "message": f"{len(drifted)} of {len(results)} features "
                f"drifted ({', '.join(drifted)}): {share:.0%} > {cfg.max_drifted_share:.0%}",
            }
        )
    if pred.drifted:
        reasons.append(
            {
                "code": "prediction_drift",
                "message": f"predicted probabilities drifted "
                f"(PSI {pred.psi:.3f} >= {cfg.prediction_psi_threshold}, p {pred.p_value:.2g})",
            }
        )
    return drift, results, reasons


def performance_floors(
    values: dict[str, float], floors: dict[str, float], labels: int
) -> tuple[list[Check], list[dict[str, str]]]:
    """params.yaml monitor.performance_floors on the live metrics (mlcore.rules): the checks, one breach each."""
    checks = rule_floors(values, floors, "monitor.performance_floors")
    reasons = [
        {"code": "performance", "message": f"live {check.detail} on {labels} labels"}
        for check in checks
        if not check.passed
    ]
    return checks, reasons


def judge_performance(
    stats: WindowStats, threshold: float, performance: dict[str, Any], cfg: MonitorParams
) -> tuple[list[dict[str, str]], list[str]]:
    """Live metrics on the labelled predictions (into `performance`; on the labelled sample, whose size
    `sample` gives when that is fewer than all): the breaches and notes."""
    reasons: list[dict[str, str]] = []
    notes: list[str] = []
    labelled = stats.labelled_frame()
    if stats.labelled < cfg.min_labels:
        notes.append(
            f"only {stats.labelled} labelled predictions (min {cfg.min_labels}): performance not judged"
        )
    else:
        values = classification_metrics(labelled["label"], labelled["probability"], threshold)
        checks, reasons = performance_floors(values, cfg.performance_floors, stats.labelled)
        failed = [check.metric for check in checks if not check.passed]
        performance.update(
            judged=True,
            labels=stats.labelled,
            sample=len(labelled) if stats.labels.sampled else None,
            metrics=values,
            failed=failed,
            checks=[check.to_dict() for check in checks],
        )
    performance["over_time"] = performance_over_time(
        labelled, cfg.time_buckets, cfg.min_bucket_labels, threshold, list(cfg.performance_floors)
    )
    return reasons, notes


def _thresholds(cfg: MonitorParams) -> dict[str, float]:
    return {
        "psi": cfg.psi_threshold,
        "p_value": cfg.p_value,
        "max_drifted_share": cfg.max_drifted_share,
        "prediction_psi": cfg.prediction_psi_threshold,
        "min_predictions": cfg.min_predictions,
        "min_labels": cfg.min_labels,
        "max_invalid_fraction": cfg.max_invalid_fraction,
    }


def judge(
    stats: WindowStats, metadata: dict[str, Any], cfg: MonitorParams, start: datetime, end: datetime
) -> tuple[dict[str, Any], list[DriftResult]]:
    """The verdict for one window of the log (its counts and samples, window.py); also returns the drift
    results, for plotting."""
    version = metadata["model_version"]
    threshold = float(metadata["threshold"])
    traffic = traffic_of(stats)
    reasons: list[dict[str, str]] = []
    notes: list[str] = []
    performance: dict[str, Any] = {
        "judged": False,
        "floors": cfg.performance_floors,
        "training": (metadata.get("metrics") or {}).get("test", {}),
    }
    drift: dict[str, Any] = {"features": [], "drifted": [], "share": 0.0, "prediction": None}
    estimated: dict[str, Any] | None = None
    results: list[DriftResult] = []
    if stats.predictions < cfg.min_predictions:
        notes.append(
            f"only {stats.predictions} predictions by model {version} in the window (min {cfg.min_predictions}):"
            " nothing judged"
        )
    else:
        if traffic["invalid_fraction"] > cfg.max_invalid_fraction:
            reasons.append(
                {
                    "code": "invalid_rows",
                    "message": f"{traffic['invalid_rows']} unreadable log rows "
                    f"({traffic['invalid_fraction']:.1%} > {cfg.max_invalid_fraction:.1%})",
                }
            )
        drift, results, drift_reasons = judge_drift(stats, cfg)
        estimated = estimate_performance(stats, metadata)
        perf_reasons, notes = judge_performance(stats, threshold, performance, cfg)
        reasons += drift_reasons + perf_reasons
    status: Status = "breach" if reasons else "insufficient_data" if notes else "healthy"
    verdict = {
        "status": status,
        "exit_code": EXIT_BREACH if status == "breach" else EXIT_HEALTHY,
        "summary": "; ".join([r["message"] for r in reasons] or notes or ["all checks passed"]),
        "reasons": reasons,
        "notes": notes,
        "model_version": version,
        "window": {"start": start.isoformat(), "end": end.isoformat()},
        "generated_at": datetime.now(UTC).replace(microsecond=0).isoformat(),
        "traffic": traffic,
        "performance": performance,
        "estimated": estimated,
        "drift": drift,
        "thresholds": _thresholds(cfg),
    }
    return verdict, results
