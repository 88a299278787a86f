"""Monitoring: is the served model still good? Reads the prediction log, judges it, and triggers retraining.

`make monitor` (this module's CLI) reads predictions and feedback labels (`PREDICTION_LOG_URL`, any SQLAlchemy
URL; tables as docs/contracts.md) over a time window, for the model version in `model/`, and computes:
- traffic: predictions, rows it could not read, labelled share (label coverage) and label delay;
- live performance on the labelled predictions, with the same metrics as `evaluate` (mlcore.metrics);
- drift of every feature and of the predicted probability against the training reference in
  model/metadata.json (ops.drift: PSI + KS / chi-square).

The verdict (monitoring/verdict.json, exit status):
- `healthy` (exit 0): enough data, nothing breached;
- `insufficient_data` (exit 0, not an alarm): too little traffic, or too few labels to judge performance;
- `breach` (exit 3): a performance floor, the share of drifted features, prediction drift or the rate of
  unreadable rows crossed its threshold (params.yaml `monitor`).
On a breach the trigger command (`monitor.trigger_command`, or MONITOR_TRIGGER_COMMAND) runs once per
breach: the state file remembers (model version, breach kinds) and the same breach of the same model does not
trigger again within `cooldown_hours` - it is already being retrained for. The command gets MONITOR_REASON and
MONITOR_VERDICT (the verdict file) in its environment.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mlcore.artifact import load_metadata
from mlcore.errors import PipelineError, cli_entrypoint
from mlcore.io import atomic_write, write_json
from mlcore.metrics import HIGHER_IS_BETTER, classification_metrics
from ops.drift import DriftResult, feature_drift, prediction_drift
from pipeline.config import load_params

EXIT_HEALTHY = 0
EXIT_BREACH = 3
Status = Literal["healthy", "breach", "insufficient_data"]
REPORT_FILE, VERDICT_FILE = "report.md", "verdict.json"
PERFORMANCE_PLOT, DRIFT_PLOT = "performance_over_time.png", "drift.png"


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
    state_file: str = "monitoring/state.json"
    trigger_command: str = ""


def monitor_params(params_path: str | Path) -> tuple[MonitorParams, Any]:
    params = load_params(params_path)
    try:
        section = MonitorParams.model_validate(params.section("monitor"))
    except ValidationError as exc:
        first = exc.errors()[0]
        raise PipelineError(
            f"{params_path}: monitor.{'.'.join(map(str, first['loc']))}: {first['msg']}"
        ) from exc
    unknown = sorted(set(section.performance_floors) - set(HIGHER_IS_BETTER))
    if unknown:
        raise PipelineError(
            f"{params_path}: monitor.performance_floors.{unknown[0]}: unknown metric "
            f"(one of {sorted(HIGHER_IS_BETTER)})"
        )
    return section, params


# -- reading the log -------------------------------------------------------------------------------
def read_log(url: str, start: datetime, end: datetime) -> pd.DataFrame:
    """Predictions with created_at in [start, end), each with its feedback label (NaN when none arrived)."""
    import sqlalchemy as sa

    meta = sa.MetaData()
    predictions = sa.Table(
        "predictions",
        meta,
        sa.Column("prediction_id", sa.String),
        sa.Column("created_at", sa.DateTime(timezone=True)),
        sa.Column("model_version", sa.String),
        sa.Column("features", sa.JSON),
        sa.Column("probability", sa.Float),
        sa.Column("prediction", sa.Integer),
    )
    feedback = sa.Table(
        "feedback",
        meta,
        sa.Column("prediction_id", sa.String),
        sa.Column("label", sa.Integer),
        sa.Column("received_at", sa.DateTime(timezone=True)),
    )
    engine = sa.create_engine(url)
    if engine.dialect.name == "sqlite":  # SQLite stores naive UTC timestamps
        start, end = start.astimezone(UTC).replace(tzinfo=None), end.astimezone(UTC).replace(tzinfo=None)
    query = (
        sa.select(*predictions.c, feedback.c.label, feedback.c.received_at)
        .select_from(predictions.outerjoin(feedback, predictions.c.prediction_id == feedback.c.prediction_id))
        .where(predictions.c.created_at >= start, predictions.c.created_at < end)
        .order_by(predictions.c.created_at)
    )
    try:
        with engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
    except sa.exc.SQLAlchemyError as exc:
        raise PipelineError(
            f"prediction log {engine.url.render_as_string(hide_password=True)}: "
            f"{str(exc.orig if hasattr(exc, 'orig') else exc).splitlines()[0]}"
        ) from exc
    finally:
        engine.dispose()
    frame = pd.DataFrame(
        rows,
        columns=[
            "prediction_id",
            "created_at",
            "model_version",
            "features",
            "probability",
            "prediction",
            "label",
            "received_at",
        ],
    )
    for column in ("created_at", "received_at"):
        frame[column] = pd.to_datetime(frame[column], utc=True)
    return frame


def features_table(log: pd.DataFrame, names: list[str]) -> tuple[pd.DataFrame, np.ndarray]:
    """The logged records as a frame of the model's features, and a mask of the rows that could be read."""
    records, valid = [], []
    for raw in log["features"]:
        record = json.loads(raw) if isinstance(raw, str | bytes) else raw
        ok = isinstance(record, dict) and all(name in record for name in names)
        valid.append(ok)
        records.append({name: record.get(name) for name in names} if isinstance(record, dict) else {})
    return pd.DataFrame.from_records(records, columns=names), np.asarray(valid, dtype=bool)


# -- judging ---------------------------------------------------------------------------------------
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


def _fmt(value: float) -> str:
    return "n/a" if value is None or (isinstance(value, float) and np.isnan(value)) else f"{value:.3f}"


def judge(
    log: pd.DataFrame, metadata: dict[str, Any], cfg: MonitorParams, start: datetime, end: datetime
) -> tuple[dict[str, Any], pd.DataFrame, list[DriftResult]]:
    """The verdict for one window of the log; also returns the judged rows (log columns + features) and the
    drift results, for plotting."""
    version = metadata["model_version"]
    features = metadata["features"]
    names = [f["name"] for f in features]
    numeric = [f["name"] for f in features if f["type"] != "category"]
    categorical = [f["name"] for f in features if f["type"] == "category"]
    threshold = float(metadata["threshold"])

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
    reasons: list[dict[str, str]] = []
    notes: list[str] = []
    performance: dict[str, Any] = {
        "judged": False,
        "floors": cfg.performance_floors,
        "training": (metadata.get("metrics") or {}).get("test", {}),
    }
    drift: dict[str, Any] = {"features": [], "drifted": [], "share": 0.0, "prediction": None}
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
                    "message": f"{invalid} unreadable log rows "
                    f"({traffic['invalid_fraction']:.1%} > {cfg.max_invalid_fraction:.1%})",
                }
            )
        results = feature_drift(
            metadata["reference"], live, numeric, categorical, cfg.psi_threshold, cfg.p_value
        )
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
        if len(labelled) < cfg.min_labels:
            notes.append(
                f"only {len(labelled)} labelled predictions (min {cfg.min_labels}): performance not judged"
            )
        else:
            values = classification_metrics(labelled["label"], labelled["probability"], threshold)
            failed = [
                m
                for m, floor in cfg.performance_floors.items()
                if not (values[m] >= floor if HIGHER_IS_BETTER[m] else values[m] <= floor)
            ]
            performance.update(judged=True, labels=len(labelled), metrics=values, failed=failed)
            for m in failed:
                op = "<" if HIGHER_IS_BETTER[m] else ">"
                reasons.append(
                    {
                        "code": "performance",
                        "message": f"live {m} {_fmt(values[m])} {op} floor "
                        f"{cfg.performance_floors[m]} on {len(labelled)} labels",
                    }
                )
        performance["over_time"] = performance_over_time(
            labelled, cfg.time_buckets, cfg.min_bucket_labels, threshold, list(cfg.performance_floors)
        )

    status: Status = "breach" if reasons else "insufficient_data" if notes else "healthy"
    summary = "; ".join([r["message"] for r in reasons] or notes or ["all checks passed"])
    verdict = {
        "status": status,
        "exit_code": EXIT_BREACH if status == "breach" else EXIT_HEALTHY,
        "summary": summary,
        "reasons": reasons,
        "notes": notes,
        "model_version": version,
        "window": {"start": start.isoformat(), "end": end.isoformat()},
        "generated_at": datetime.now(UTC).replace(microsecond=0).isoformat(),
        "traffic": traffic,
        "performance": performance,
        "drift": drift,
        "thresholds": {
            "psi": cfg.psi_threshold,
            "p_value": cfg.p_value,
            "max_drifted_share": cfg.max_drifted_share,
            "prediction_psi": cfg.prediction_psi_threshold,
            "min_predictions": cfg.min_predictions,
            "min_labels": cfg.min_labels,
            "max_invalid_fraction": cfg.max_invalid_fraction,
        },
    }
    return verdict, pd.concat([log[["created_at", "probability"]], live], axis=1), results


# -- the trigger -----------------------------------------------------------------------------------
def breach_key(verdict: dict[str, Any]) -> str:
    """What makes two breaches 'the same': the model version and the kinds of threshold crossed."""
    return f"{verdict['model_version']}:{'+'.join(sorted({r['code'] for r in verdict['reasons']}))}"


def load_state(path: Path) -> dict[str, Any]:
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {"triggers": []}
    except json.JSONDecodeError as exc:
        raise PipelineError(
            f"{path}: monitoring state is not valid JSON ({exc.msg}); delete it to reset"
        ) from exc
    return state if isinstance(state, dict) and isinstance(state.get("triggers"), list) else {"triggers": []}


def decide_trigger(
    verdict: dict[str, Any], state: dict[str, Any], cooldown_hours: float, now: datetime
) -> dict[str, Any]:
    """`trigger` (a new breach), `already_triggered` (same breach of the same model within the cool-down) or
    `none` (no breach)."""
    if verdict["status"] != "breach":
        return {"action": "none"}
    key = breach_key(verdict)
    for entry in reversed(state["triggers"]):
        at = datetime.fromisoformat(entry["at"])
        if entry["key"] == key and now - at < timedelta(hours=cooldown_hours):
            return {"action": "already_triggered", "key": key, "since": entry["at"]}
    return {"action": "trigger", "key": key}


def run_trigger(command: str, verdict: dict[str, Any], verdict_path: Path) -> int:
    env = {**os.environ, "MONITOR_REASON": verdict["summary"], "MONITOR_VERDICT": str(verdict_path.resolve())}
    print(f"monitor: breach -> running trigger: {command}", flush=True)
    return subprocess.run(command, shell=True, env=env, check=False).returncode


# -- the report ------------------------------------------------------------------------------------
def plot_performance(verdict: dict[str, Any], path: Path) -> bool:
    points = verdict["performance"].get("over_time") or []
    if not points:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    times = pd.to_datetime([p["start"] for p in points])
    fig, ax = plt.subplots(figsize=(8, 3.8))
    for i, (metric, floor) in enumerate(verdict["performance"]["floors"].items()):
        color = f"C{i}"
        ax.plot(times, [p[metric] for p in points], marker="o", color=color, label=f"live {metric}")
        ax.axhline(floor, color=color, linestyle="--", linewidth=1, label=f"{metric} floor {floor}")
        trained = verdict["performance"]["training"].get(metric)
        if trained is not None:
            ax.axhline(trained, color=color, linestyle=":", linewidth=1, label=f"{metric} at training")
    ax.set_ylim(0, 1)
    ax.set_title(f"Live performance over time (model {verdict['model_version']})")
    ax.set_ylabel("metric on labelled predictions")
    ax.legend(fontsize=7, loc="lower left", ncol=2)
    fig.autofmt_xdate()
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))
    plt.close(fig)
    return True


def _distributions(
    result: DriftResult, reference: dict[str, Any], live: pd.Series
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Bin labels and reference/live fractions for one feature's panel."""
    if result.kind == "categorical":
        freq = reference["categorical"][result.name]["frequencies"]
        labels = list(freq)
        counts = live.astype("string").dropna().value_counts()
        total = max(1, int(counts.sum()))
        return (
            labels,
            np.array([freq[c] for c in labels]),
            np.array([counts.get(c, 0) / total for c in labels]),
        )
    ref = reference["prediction"] if result.kind == "prediction" else reference["numeric"][result.name]
    edges = np.asarray(ref["bin_edges"], dtype=float)
    present = pd.to_numeric(live, errors="coerce").dropna().to_numpy(dtype=float)
    if len(edges) < 3:
        edges = np.array([-0.5, 0.5, 1.5]) if set(np.unique(ref["sample"])) <= {0.0, 1.0} else edges
        sample = np.asarray(ref["sample"], dtype=float)
        ref_fr = np.histogram(sample, bins=edges)[0] / max(1, len(sample))
    else:
        ref_fr = np.asarray(ref["bin_fractions"], dtype=float)
    live_fr = np.histogram(np.clip(present, edges[0], edges[-1]), bins=edges)[0] / max(1, len(present))
    labels = [f"{lo:.3g}-{hi:.3g}" for lo, hi in itertools.pairwise(edges)]
    return labels, ref_fr, live_fr


def plot_drift(
    verdict: dict[str, Any],
    results: list[DriftResult],
    live: pd.DataFrame,
    probabilities: pd.Series,
    reference: dict[str, Any],
    path: Path,
    max_panels: int = 6,
) -> bool:
    """Reference vs live: the drifted features (else the most moved ones) and the predicted probabilities."""
    if not results:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ranked = sorted(results, key=lambda r: (not r.drifted, -r.psi))[: max_panels - 1]
    pred = DriftResult(**verdict["drift"]["prediction"])
    panels = [(r, live[r.name]) for r in ranked] + [(pred, probabilities)]
    cols = 3
    rows = (len(panels) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(12, 3.3 * rows), squeeze=False)
    for ax, (result, values) in zip(axes.flat, panels, strict=False):
        labels, ref_fr, live_fr = _distributions(result, reference, values)
        x = np.arange(len(labels))
        ax.bar(x - 0.2, ref_fr, width=0.4, label="reference (training)", color="#9aa5b1")
        ax.bar(x + 0.2, live_fr, width=0.4, label="live", color="#d9534f" if result.drifted else "#337ab7")
        ax.set_xticks(x, labels, rotation=45, ha="right", fontsize=7)
        flag = "DRIFTED" if result.drifted else "stable"
        ax.set_title(
            f"{result.name}: PSI {result.psi:.2f}, {result.test} p={result.p_value:.1g} ({flag})", fontsize=9
        )
        ax.set_ylabel("share", fontsize=8)
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.suptitle(f"Reference vs live distributions (model {verdict['model_version']})")
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    plt.close(fig)
    return True


def render_report(verdict: dict[str, Any], images: list[str]) -> str:
    t, perf, drift = verdict["traffic"], verdict["performance"], verdict["drift"]
    title = {"healthy": "HEALTHY", "breach": "BREACH", "insufficient_data": "INSUFFICIENT DATA"}[
        verdict["status"]
    ]
    delay = t["label_delay_hours"]
    lines = [
        f"# Monitoring report: {title}",
        "",
        f"Model `{verdict['model_version']}`, "
        f"window {verdict['window']['start']} to {verdict['window']['end']}.",
        "",
        f"**Verdict: {verdict['status']}** - {verdict['summary']}",
        "",
    ]
    if verdict["reasons"]:
        lines += ["## Breaches", "", *[f"- `{r['code']}`: {r['message']}" for r in verdict["reasons"]], ""]
    trigger = verdict.get("trigger") or {}
    if trigger.get("action", "none") not in ("none", "disabled"):
        lines += [
            f"Retraining trigger: **{trigger['action']}** (`{trigger.get('key')}`"
            + (f", command exit {trigger['returncode']}" if "returncode" in trigger else "")
            + ")",
            "",
        ]
    lines += [
        "## Traffic and labels",
        "",
        "| predictions | unreadable rows | labelled | label coverage | label delay median (h) | p90 (h) |",
        "|---:|---:|---:|---:|---:|---:|",
        f"| {t['predictions']} | {t['invalid_rows']} | {t['labelled']} | {t['label_coverage']:.1%} | "
        f"{_fmt(delay['median'])} | {_fmt(delay['p90'])} |",
        "",
    ]
    if t["other_model_versions"]:
        lines += [
            "Other model versions in the window (not judged): "
            + ", ".join(f"`{k}` ({v})" for k, v in t["other_model_versions"].items()),
            "",
        ]
    lines += ["## Live performance", ""]
    if perf["judged"]:
        lines += ["| metric | live | at training (test window) | floor | ok |", "|---|---:|---:|---:|:---:|"]
        for metric in sorted(perf["metrics"]):
            floor = perf["floors"].get(metric)
            ok = "" if floor is None else ("no" if metric in perf["failed"] else "yes")
            lines.append(
                f"| {metric} | {_fmt(perf['metrics'][metric])} | {_fmt(perf['training'].get(metric))} | "
                f"{'' if floor is None else floor} | {ok} |"
            )
    else:
        lines.append("Not judged: too few labelled predictions.")
    lines += [""]
    if PERFORMANCE_PLOT in images:
        lines += [f"![live performance over time]({PERFORMANCE_PLOT})", ""]
    lines += ["## Drift against the training reference", ""]
    if drift["features"]:
        lines += [
            f"Drifted features: {len(drift['drifted'])} of {len(drift['features'])} "
            f"({drift['share']:.0%}; breach above {drift['max_share']:.0%}). A feature drifts when PSI >= "
            f"{verdict['thresholds']['psi']} and the test's p-value < {verdict['thresholds']['p_value']}.",
            "",
            "| feature | type | PSI | test | statistic | p-value | missing ref / live | drifted |",
            "|---|---|---:|---|---:|---:|---:|:---:|",
        ]
        for r in [*sorted(drift["features"], key=lambda r: -r["psi"]), drift["prediction"]]:
            lines.append(
                f"| {r['name']} | {r['kind']} | {r['psi']:.3f} | {r['test']} | {r['statistic']:.3f} | "
                f"{r['p_value']:.2g} | {r['null_fraction_reference']:.1%} / {r['null_fraction_live']:.1%} "
                f"| {'yes' if r['drifted'] else ''} |"
            )
        lines += [""]
    else:
        lines += ["Not judged: too little traffic.", ""]
    if DRIFT_PLOT in images:
        lines += [f"![reference vs live distributions]({DRIFT_PLOT})", ""]
    if verdict["notes"]:
        lines += ["## Notes", "", *[f"- {n}" for n in verdict["notes"]], ""]
    return "\n".join(lines)


def write_outputs(verdict: dict[str, Any], out_dir: Path, images: list[str]) -> None:
    write_json(out_dir / VERDICT_FILE, verdict)
    text = render_report(verdict, images)
    atomic_write(out_dir / REPORT_FILE, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def github_outputs(verdict: dict[str, Any], out_dir: Path) -> None:
    """For the workflow: step outputs (status, trigger, reason) and the report as the job summary."""
    trigger = (verdict.get("trigger") or {}).get("action") == "trigger"
    reason = verdict["summary"].replace("\n", " ")
    if os.environ.get("GITHUB_OUTPUT"):
        with open(os.environ["GITHUB_OUTPUT"], "a", encoding="utf-8") as fh:
            fh.write(
                f"status={verdict['status']}\ntrigger={'true' if trigger else 'false'}\nreason={reason}\n"
            )
    if os.environ.get("GITHUB_STEP_SUMMARY"):
        with open(os.environ["GITHUB_STEP_SUMMARY"], "a", encoding="utf-8") as fh:
            fh.write((out_dir / REPORT_FILE).read_text(encoding="utf-8") + "\n")


# -- the whole run ---------------------------------------------------------------------------------
def run_monitor(
    cfg: MonitorParams,
    model_dir: Path,
    log_url: str,
    out_dir: Path,
    start: datetime | None = None,
    end: datetime | None = None,
    trigger_command: str = "",
    state_path: Path | None = None,
    now: datetime | None = None,
    trigger: bool = True,
) -> dict[str, Any]:
    """Judge the window, write the report and verdict, and (unless `trigger` is False: report only) decide,
    record and run the trigger."""
    now = now or datetime.now(UTC)
    end = end or now
    start = start or end - timedelta(days=cfg.window_days)
    metadata = load_metadata(model_dir)
    log = read_log(log_url, start, end)
    verdict, judged, results = judge(log, metadata, cfg, start, end)

    images = []
    if plot_performance(verdict, out_dir / PERFORMANCE_PLOT):
        images.append(PERFORMANCE_PLOT)
    if plot_drift(
        verdict, results, judged, judged["probability"], metadata["reference"], out_dir / DRIFT_PLOT
    ):
        images.append(DRIFT_PLOT)

    state_path = state_path or Path(cfg.state_file)
    state = load_state(state_path)
    decision = decide_trigger(verdict, state, cfg.cooldown_hours, now) if trigger else {"action": "disabled"}
    verdict["trigger"] = {**decision, "command": trigger_command or None}
    write_outputs(verdict, out_dir, images)
    if decision["action"] == "trigger":
        # Recorded before running: a retrain outlasting the next monitoring run is not started twice.
        state["triggers"] = [
            *state["triggers"][-49:],
            {
                "key": decision["key"],
                "at": now.isoformat(),
                "reason": verdict["summary"],
                "command": trigger_command or None,
            },
        ]
        write_json(state_path, state)
        if trigger_command:
            verdict["trigger"]["returncode"] = run_trigger(trigger_command, verdict, out_dir / VERDICT_FILE)
            write_outputs(verdict, out_dir, images)
    return verdict


def _parse_time(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise PipelineError(f"'{text}': expected an ISO-8601 time such as 2026-01-31T00:00:00Z") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def preflight() -> bool:
    """In the workflow: is a production log configured? Without one (a fork, a new repository) say so in a
    notice and let the job skip the rest, green."""
    ready = bool(os.environ.get("PREDICTION_LOG_URL"))
    if not ready:
        print(
            "::notice title=Monitoring skipped::no PREDICTION_LOG_URL secret: set it to the production "
            "prediction log (README, section Monitoring)"
        )
    if os.environ.get("GITHUB_OUTPUT"):
        with open(os.environ["GITHUB_OUTPUT"], "a", encoding="utf-8") as fh:
            fh.write(f"ready={'true' if ready else 'false'}\n")
    return ready


@cli_entrypoint
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.monitor", description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument(
        "--model", type=Path, help="the served model's directory (default: monitor.model_dir)"
    )
    parser.add_argument(
        "--log-url", help="prediction log (default: PREDICTION_LOG_URL, else monitor.log_url)"
    )
    parser.add_argument("--out", type=Path, help="report directory (default: monitor.report_dir)")
    parser.add_argument("--start", type=_parse_time, help="window start (default: end - monitor.window_days)")
    parser.add_argument("--end", type=_parse_time, help="window end (default: now)")
    parser.add_argument(
        "--no-trigger", action="store_true", help="report only: no trigger decided, recorded or run"
    )
    parser.add_argument(
        "--github",
        action="store_true",
        help="also write GitHub step outputs and the job summary (in GitHub Actions)",
    )
    parser.add_argument(
        "--preflight",
        action="store_true",
        help="only check that PREDICTION_LOG_URL is set (step output ready=true|false)",
    )
    args = parser.parse_args(argv)
    if args.preflight:
        preflight()
        return 0
    cfg, _ = monitor_params(args.params)
    command = os.environ.get("MONITOR_TRIGGER_COMMAND", cfg.trigger_command)
    out_dir = args.out or Path(cfg.report_dir)
    verdict = run_monitor(
        cfg,
        args.model or Path(cfg.model_dir),
        args.log_url or os.environ.get("PREDICTION_LOG_URL") or cfg.log_url,
        out_dir,
        args.start,
        args.end,
        command,
        trigger=not args.no_trigger,
    )
    if args.github:
        github_outputs(verdict, out_dir)
    print(f"monitor: {verdict['status']}: {verdict['summary']}")
    trigger = verdict["trigger"]
    if trigger["action"] not in ("none", "disabled"):
        print(
            f"monitor: trigger {trigger['action']} ({trigger['key']})"
            + (f", command exit {trigger['returncode']}" if "returncode" in trigger else "")
        )
    print(f"monitor: report {out_dir / REPORT_FILE}")
    return verdict["exit_code"]


if __name__ == "__main__":
    sys.exit(main())
