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
from ops.monitor.drift import DriftResult, feature_drift, prediction_drift
from ops.monitor.estimate import estimate_performance
from ops.monitor.log import features_table
from ops.monitor.shadow import ShadowRule
from ops.monitor.trigger import Persistence
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


def served_rows(
    log: pd.DataFrame, version: str, names: list[str]
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """The readable rows of the served model version (log columns, feature frame) and the traffic figures."""
    others = log[log["model_version"] != version]["model_version"].value_counts().to_dict()
    log = log[log["model_version"] == version].reset_index(drop=True)
    live, readable = features_table(log, names)
    invalid = int((~readable).sum())
    log, live = log[readable].reset_index(drop=True), live[readable].reset_index(drop=True)
    labelled = log[log["label"].notna()]
    delay_h = (labelled["received_at"] - labelled["created_at"]).dt.total_seconds() / 3600
    n_all = len(log) + invalid
    traffic = {
        "predictions": len(log),
        "invalid_rows": invalid,
        "invalid_fraction": invalid / n_all if n_all else 0.0,
        "other_model_versions": {str(k): int(v) for k, v in others.items()},
        "labelled": len(labelled),
        "label_coverage": len(labelled) / len(log) if len(log) else 0.0,
        "label_delay_hours": {
            "median": float(delay_h.median()) if len(delay_h) else None,
            "p90": float(delay_h.quantile(0.9)) if len(delay_h) else None,
        },
        "first": log["created_at"].min().isoformat() if len(log) else None,
        "last": log["created_at"].max().isoformat() if len(log) else None,
    }
    return log, live, traffic


def judge_drift(
    log: pd.DataFrame, live: pd.DataFrame, metadata: dict[str, Any], cfg: MonitorParams
) -> tuple[dict[str, Any], list[DriftResult], list[dict[str, str]]]:
    """Feature and prediction drift against the training reference: the verdict's `drift`, the results, and
    the breaches."""
    features = metadata["features"]
    numeric = [f["name"] for f in features if f["type"] != "category"]
    categorical = [f["name"] for f in features if f["type"] == "category"]
    reasons: list[dict[str, str]] = []
    results = feature_drift(metadata["reference"], live, numeric, categorical, cfg.psi_threshold, cfg.p_value)
    drifted = [r.name for r in sorted(results, key=lambda r: -r.psi) if r.drifted]
    share = len(drifted) / len(results) if results else 0.0
    pred = prediction_drift(
        metadata["reference"], log["probability"], cfg.prediction_psi_threshold, cfg.p_value
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
    labelled: pd.DataFrame, threshold: float, performance: dict[str, Any], cfg: MonitorParams
) -> tuple[list[dict[str, str]], list[str]]:
    """Live metrics on the labelled predictions (into `performance`): the breaches and notes."""
    reasons: list[dict[str, str]] = []
    notes: list[str] = []
    if len(labelled) < cfg.min_labels:
        notes.append(
            f"only {len(labelled)} labelled predictions (min {cfg.min_labels}): performance not judged"
        )
    else:
        values = classification_metrics(labelled["label"], labelled["probability"], threshold)
        checks, reasons = performance_floors(values, cfg.performance_floors, len(labelled))
        failed = [check.metric for check in checks if not check.passed]
        performance.update(
            judged=True,
            labels=len(labelled),
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
    log: pd.DataFrame, metadata: dict[str, Any], cfg: MonitorParams, start: datetime, end: datetime
) -> tuple[dict[str, Any], pd.DataFrame, list[DriftResult]]:
    """The verdict for one window of the log; also returns the judged rows (log columns + features) and the
    drift results, for plotting."""
    version = metadata["model_version"]
    threshold = float(metadata["threshold"])
    log, live, traffic = served_rows(log, version, [f["name"] for f in metadata["features"]])
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
    if len(log) < cfg.min_predictions:
        notes.append(
            f"only {len(log)} predictions by model {version} in the window (min {cfg.min_predictions}):"
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
        drift, results, drift_reasons = judge_drift(log, live, metadata, cfg)
        estimated = estimate_performance(log, live, metadata)
        labelled = log[log["label"].notna()]
        perf_reasons, notes = judge_performance(labelled, threshold, performance, cfg)
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
    return verdict, pd.concat([log[["created_at", "probability"]], live], axis=1), results
