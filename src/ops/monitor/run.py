"""Monitoring: is the served model still good? Reads the prediction log, judges it, and triggers retraining.

The whole run (`run_monitor`: read, judge, plot, write, trigger) and the CLI, `python -m ops.monitor` (`make
monitor`); the package docstring (ops/monitor/__init__.py) describes the verdict and the trigger.
"""

from __future__ import annotations

import argparse
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from mlcore.artifact import load_metadata
from mlcore.errors import PipelineError, cli_entrypoint
from mlcore.io import write_json
from ops.github import add_summary, set_outputs
from ops.monitor.judge import MonitorParams, judge, monitor_params
from ops.monitor.log import read_window
from ops.monitor.plots import plot_drift, plot_performance
from ops.monitor.render import DRIFT_PLOT, PERFORMANCE_PLOT, REPORT_FILE, VERDICT_FILE, write_outputs
from ops.monitor.shadow import compare, read_shadow
from ops.monitor.trigger import decide_trigger, load_state, record_run, record_trigger, run_trigger
from ops.monitor.window import WindowStats


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
    stats = WindowStats.for_model(metadata, cfg.sample_size, cfg.sample_seed)
    stats.other_versions, chunks = read_window(log_url, start, end, metadata["model_version"], cfg.chunk_rows)
    verdict, results = judge(stats.add_all(chunks), metadata, cfg, start, end)
    pairs = read_shadow(log_url, start, end)
    pairs = pairs[pairs["serving_version"] == metadata["model_version"]]
    verdict["shadow"] = compare(pairs, float(metadata["threshold"]), cfg.shadow) if len(pairs) else {}

    images = []
    if plot_performance(verdict, out_dir / PERFORMANCE_PLOT):
        images.append(PERFORMANCE_PLOT)
    if plot_drift(verdict, results, stats, out_dir / DRIFT_PLOT):
        images.append(DRIFT_PLOT)

    state_path = state_path or Path(cfg.state_file)
    state = load_state(state_path)
    decision = (
        decide_trigger(verdict, state, cfg.cooldown_hours, now, cfg.trigger_persistence)
        if trigger
        else {"action": "disabled"}
    )
    verdict["trigger"] = {**decision, "command": trigger_command or None}
    write_outputs(verdict, out_dir, images)
    if trigger and record_run(state, verdict, now) and decision["action"] != "trigger":
        write_json(state_path, state)  # the evidence the next run's persistence counts
    if decision["action"] == "trigger":
        record_trigger(state, state_path, decision["key"], verdict["summary"], trigger_command, now)
        if trigger_command:
            verdict["trigger"]["returncode"] = run_trigger(trigger_command, verdict, out_dir / VERDICT_FILE)
            write_outputs(verdict, out_dir, images)
    return verdict


def github_outputs(verdict: dict[str, Any], out_dir: Path) -> None:
    """For the workflow: step outputs (status, trigger, reason) and the report as the job summary."""
    trigger = (verdict.get("trigger") or {}).get("action") == "trigger"
    set_outputs(
        {"status": verdict["status"], "trigger": trigger, "reason": verdict["summary"].replace("\n", " ")}
    )
    add_summary((out_dir / REPORT_FILE).read_text(encoding="utf-8"))


def preflight() -> bool:
    """In the workflow: is a production log configured? Without one (a fork, a new repository) say so in a
    notice and let the job skip the rest, green."""
    ready = bool(os.environ.get("PREDICTION_LOG_URL"))
    if not ready:
        print(
            "::notice title=Monitoring skipped::no PREDICTION_LOG_URL secret: set it to the production "
            "prediction log (README, section Monitoring)"
        )
    set_outputs({"ready": ready})
    return ready


def _parse_time(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise PipelineError(f"'{text}': expected an ISO-8601 time such as 2026-01-31T00:00:00Z") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _parser() -> argparse.ArgumentParser:
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
    return parser


@cli_entrypoint
def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
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
