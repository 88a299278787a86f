"""What a monitoring run writes: monitoring/verdict.json and report.md (which embeds the PNGs of plots.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlcore.io import atomic_write, write_json
from mlcore.rules import fmt

REPORT_FILE, VERDICT_FILE = "report.md", "verdict.json"
PERFORMANCE_PLOT, DRIFT_PLOT = "performance_over_time.png", "drift.png"


def _header(verdict: dict[str, Any]) -> list[str]:
    title = {"healthy": "HEALTHY", "breach": "BREACH", "insufficient_data": "INSUFFICIENT DATA"}[
        verdict["status"]
    ]
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
    if trigger.get("action") == "not_persistent":
        lines += [
            f"Retraining trigger: **not yet**: a breach in {trigger['breaches']} of the last {trigger['of_last']} "
            f"judged runs of this model ({trigger['breaches']} < {trigger['breaches_needed']} needed, "
            "`monitor.trigger_persistence`)",
            "",
        ]
    elif trigger.get("action", "none") not in ("none", "disabled"):
        lines += [
            f"Retraining trigger: **{trigger['action']}** (`{trigger.get('key')}`"
            + (f", command exit {trigger['returncode']}" if "returncode" in trigger else "")
            + ")",
            "",
        ]
    return lines


def _traffic(t: dict[str, Any]) -> list[str]:
    delay = t["label_delay_hours"]
    lines = [
        "## Traffic and labels",
        "",
        "| predictions | unreadable rows | labelled | label coverage | label delay median (h) | p90 (h) |",
        "|---:|---:|---:|---:|---:|---:|",
        f"| {t['predictions']} | {t['invalid_rows']} | {t['labelled']} | {t['label_coverage']:.1%} | "
        f"{fmt(delay['median'])} | {fmt(delay['p90'])} |",
        "",
    ]
    if delay.get("sample"):
        lines += [
            f"Label delays on a uniform sample of {delay['sample']} labelled predictions (`monitor.sample_size`).",
            "",
        ]
    if t["other_model_versions"]:
        lines += [
            "Other model versions in the window (not judged): "
            + ", ".join(f"`{k}` ({v})" for k, v in t["other_model_versions"].items()),
            "",
        ]
    return lines


def _performance(perf: dict[str, Any], images: list[str]) -> list[str]:
    lines = ["## Live performance", ""]
    if perf["judged"]:
        lines += ["| metric | live | at training (test window) | floor | ok |", "|---|---:|---:|---:|:---:|"]
        for metric in sorted(perf["metrics"]):
            floor = perf["floors"].get(metric)
            ok = "" if floor is None else ("no" if metric in perf["failed"] else "yes")
            lines.append(
                f"| {metric} | {fmt(perf['metrics'][metric])} | {fmt(perf['training'].get(metric))} | "
                f"{'' if floor is None else floor} | {ok} |"
            )
        if perf.get("sample"):
            lines += [
                "",
                f"Metrics and the plot on a uniform sample of {perf['sample']} of the {perf['labels']} labelled "
                "predictions (`monitor.sample_size`).",
            ]
    else:
        lines.append("Not judged: too few labelled predictions.")
    lines += [""]
    if PERFORMANCE_PLOT in images:
        lines += [f"![live performance over time]({PERFORMANCE_PLOT})", ""]
    return lines


def _estimated(est: dict[str, Any] | None) -> list[str]:
    if not est:
        return []
    labelled = est["labelled"]
    lines = [
        "## Estimated performance (before labels)",
        "",
        f"{est['method']}. The unlabelled predictions are what realised figures cannot judge yet; on the labelled",
        "ones, estimate and truth side by side show how far the estimate can be trusted.",
        "",
        f"| metric | window ({est['window']['rows']}) | unlabelled ({est['unlabelled']['rows']}) | "
        f"labelled ({labelled['rows']}): estimated | realised |",
        "|---|---:|---:|---:|---:|",
    ]
    for metric in ("roc_auc", "f1", "precision", "recall", "accuracy"):
        lines.append(
            f"| {metric} | {fmt(est['window'].get(metric))} | {fmt(est['unlabelled'].get(metric))} | "
            f"{fmt((labelled.get('estimated') or {}).get(metric))} | "
            f"{fmt((labelled.get('realised') or {}).get(metric))} |"
        )
    a, sample = est["assumptions"], est.get("sample")
    outside = a["outside_training_ranges"]
    calibration = (
        f"calibration error on the test window {fmt(a['calibration_error_test_window'])}, "
        f"{fmt(a['calibration_error_after_map'])} after the isotonic map fitted on it (in-sample)"
        if a["calibrated"]
        else "no calibration map in this model's metadata: probabilities used as they are (retrain to record one)"
    )
    where = ", ".join(f"{k} {v:.1%}" for k, v in list(outside["features"].items())[:5])
    lines += [
        "",
        f"Assumptions: {calibration}; {outside['share']:.1%} of the rows have a value training never saw"
        + (f" ({where})" if where else "")
        + "; a changed relation between inputs and label (concept drift) is invisible to the estimate.",
        "",
    ]
    if sample:
        lines += [
            f"Estimated on uniform samples of {sample['rows']} of the window's predictions and "
            f"{sample['labelled_rows']} of its labelled ones (`monitor.sample_size`).",
            "",
        ]
    return lines


def _shadow(shadow: dict[str, Any]) -> list[str]:
    if not shadow:
        return []
    lines = [
        "## Shadow models (live comparison)",
        "",
        "Challengers that scored the same requests without answering them; judged on the labels that came back.",
        "",
        "| shadow | requests | agreement | mean abs Δp | output PSI | labelled | metric: serving → shadow | "
        "difference (interval) | live evidence |",
        "|---|---:|---:|---:|---:|---:|---|---|---|",
    ]
    for version, s in shadow.items():
        metric = f"{s['metric']}: {fmt(s['serving'])} → {fmt(s['shadow'])}" if "metric" in s else "n/a"
        interval = (
            f"{s['difference']:+.4f} ([{s['interval'][0]:+.4f}, {s['interval'][1]:+.4f}])"
            if "difference" in s
            else "n/a"
        )
        verdict = "yes" if s["evidence"]["passed"] else "not yet"
        lines.append(
            f"| `{version}` | {s['requests']} | {s['agreement']:.1%} | {fmt(s['mean_abs_probability_difference'])} "
            f"| {fmt(s['output_psi'])} | {s['labelled']} | {metric} | {interval} | {verdict}: "
            f"{'; '.join(s['evidence']['reasons'])} |"
        )
    return [*lines, ""]


def _drift(drift: dict[str, Any], thresholds: dict[str, Any], images: list[str]) -> list[str]:
    lines = ["## Drift against the training reference", ""]
    if drift["features"]:
        lines += [
            f"Drifted features: {len(drift['drifted'])} of {len(drift['features'])} "
            f"({drift['share']:.0%}; breach above {drift['max_share']:.0%}). A feature drifts when PSI >= "
            f"{thresholds['psi']} and the test's p-value < {thresholds['p_value']}.",
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
    return lines


def render_report(verdict: dict[str, Any], images: list[str]) -> str:
    lines = [
        *_header(verdict),
        *_traffic(verdict["traffic"]),
        *_performance(verdict["performance"], images),
        *_estimated(verdict.get("estimated")),
        *_shadow(verdict.get("shadow") or {}),
        *_drift(verdict["drift"], verdict["thresholds"], images),
    ]
    if verdict["notes"]:
        lines += ["## Notes", "", *[f"- {n}" for n in verdict["notes"]], ""]
    return "\n".join(lines)


def write_outputs(verdict: dict[str, Any], out_dir: Path, images: list[str]) -> None:
    write_json(out_dir / VERDICT_FILE, verdict)
    text = render_report(verdict, images)
    atomic_write(out_dir / REPORT_FILE, lambda tmp: tmp.write_text(text, encoding="utf-8"))
