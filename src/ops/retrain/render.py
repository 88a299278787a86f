"""The decision as files: retrain/decision.json and retrain/report.md (the decision, then the PR report)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from mlcore.errors import PipelineError
from mlcore.io import atomic_write, write_json
from mlcore.metrics import HIGHER_IS_BETTER

# The PR report (`make report`) is another feature, optional here: without it report.md holds the decision only.
# A fork that deletes src/ops/report/ keeps retraining.
try:
    from ops.report.build import build_report
except ModuleNotFoundError:
    build_report = None

PR_REPORT_DIR = "pr-report"


def pr_report(root: Path, base_rev: str, out: Path) -> str:
    """The pull-request report (ops.report, `make report`) of the workspace against `base_rev`, as markdown
    whose image links are relative to out's parent. This is the seam to the PR report: a fork without it (or
    with another report) changes only this function."""
    if build_report is None:
        return ""
    try:
        report = build_report(root, base_rev, out)
    except PipelineError as exc:
        return f"_The pull-request report could not be built: {exc}_\n"
    text = report.markdown.read_text(encoding="utf-8")
    return re.sub(r"\]\(([^()/:]+\.png)\)", rf"]({out.name}/\1)", text)


def finish(decision: dict[str, Any], out_dir: Path, root: Path | None = None) -> dict[str, Any]:
    """Write decision.json and report.md into `out_dir`; with `root`, a decision that trained a challenger
    gets the PR report of the workspace against the champion's revision appended."""
    write_json(out_dir / "decision.json", decision)
    text = render_report(decision)
    if root is not None and decision.get("challenger"):
        text += (
            f"\n---\n\n### Against {decision['rule']['champion_rev']}'s committed outputs\n\n"
            f"The pull-request report: the challenger's outputs against the metrics `{decision['rule']['champion_rev']}` "
            "committed for the champion on *its own* test window. With new data the windows differ; the "
            "like-for-like comparison is the table above.\n\n"
            + pr_report(root, decision["rule"]["champion_rev"], out_dir / PR_REPORT_DIR)
        )
    atomic_write(out_dir / "report.md", lambda tmp: tmp.write_text(text, encoding="utf-8"))
    return decision


def render_report(decision: dict[str, Any]) -> str:
    """The decision as markdown: verdict and reasons first, then both models side by side on one window."""
    verdict = decision["decision"]
    icon = {"promote": "✅", "reject": "❌", "skip": "⏭️"}[verdict]
    data = decision["data"]
    lines = [
        f"## {icon} Retrain decision: **{verdict}**",
        "",
        f"Trigger: {decision.get('trigger', 'manual')}",
        "",
    ]
    lines += [f"- {reason}" for reason in decision["reasons"]]
    lines += [
        "",
        f"- **Data**: snapshot `{data['snapshot_sha256'][:12]}`, {data['rows']:,} rows, "
        f"{data['window_start']} .. {data['window_end']} (cutoff {data['cutoff']}; {data['state']})",
        f"- **Champion**: `{decision['champion']['model_version']}` from {decision['champion']['source']}",
    ]
    challenger = decision.get("challenger")
    if challenger:
        lines.append(
            f"- **Challenger**: `{challenger['model_version']}`, scored with the champion on the same "
            f"newest test window ({decision['test_window']['rows']:,} rows)"
        )
        lines += ["", "| metric | champion | challenger | delta | check |", "|---|---:|---:|---:|---|"]
        champion = decision["champion"].get("metrics") or {}
        by_metric = {}
        for check in decision["checks"]:
            by_metric.setdefault(check["metric"], []).append(
                ("✅ " if check["passed"] else "❌ ") + check["rule"]
            )
        for metric in HIGHER_IS_BETTER:
            new, old = challenger["metrics"][metric], champion.get(metric)
            delta = f"{new - old:+.4f}" if old is not None else ""
            old_cell = f"{old:.4f}" if old is not None else "n/a"
            lines.append(
                f"| {metric} | {old_cell} | {new:.4f} | {delta} | {'; '.join(by_metric.get(metric, []))} |"
            )
    lines.append("")
    if decision.get("lineage_record"):
        lines.append(f"Lineage record: `{decision['lineage_record']}`.")
    if verdict == "promote":
        lines.append(
            f"Proposed from branch `{decision['branch']}`; merging it deploys through the normal flow."
        )
    return "\n".join(lines) + "\n"
