"""The pull-request report: what a change did to the model compared with its base, and the gate verdict.

`python -m ops.report --base REV --out report/` compares the pipeline outputs in the working tree
(the PR) with the ones committed at REV (the base: metrics/*.json and plots/evaluate/*.json are in git, see
docs/contracts.md) and writes report/report.md with PNG images beside it, referenced relatively, and
report/verdict.json. It exits with status 1 when the gate (gate.py) fails.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlcore.errors import PipelineError, cli_entrypoint
from mlcore.io import atomic_write, write_json
from ops.repo import git_reader, resolve_revision, worktree_reader
from ops.report.contract import ContractDiff, compare
from ops.report.gate import Verdict, judge, report_params
from ops.report.outputs import PARAMS, champion_on_same_window, read_outputs
from ops.report.plots import write_images
from ops.report.render import metric_rows, params_diff, render_markdown

EXIT_GATE_FAILED = 1


@dataclass(frozen=True)
class Report:
    verdict: Verdict
    markdown: Path
    images: dict[str, Path]


def build_report(
    root: Path, base_rev: str, out: Path, image_url: str | None = None, pull_request: int | None = None
) -> Report:
    """Compare the working tree at `root` with commit `base_rev`; write out/report.md and PNGs beside it."""
    commit = resolve_revision(root, base_rev, name=f"--base {base_rev}")
    base_ref = f"{base_rev} ({commit[:8]})" if not commit.startswith(base_rev) else commit[:8]
    base = read_outputs(git_reader(root, commit), "base")
    pr = read_outputs(worktree_reader(root), "PR")
    if pr.params is None:
        raise PipelineError(f"{root / PARAMS}: file not found")

    pr_policy = report_params(pr.params, f"{PARAMS} (PR)")
    base_policy = report_params(base.params, f"{PARAMS} (base {base_rev})")
    # A base without params.yaml has no contract to compare with (its missing metrics are reported as such).
    contract = compare(base.params, pr.params) if base.params is not None else ContractDiff(True)
    verdict = judge(base, pr, pr_policy, base_policy, champion_on_same_window(root, pr, base), contract)

    out.mkdir(parents=True, exist_ok=True)
    images = write_images(base, pr, out)
    sections = dict(
        verdict=verdict,
        base=base,
        pr=pr,
        base_ref=base_ref,
        rows=metric_rows(base.evaluate, pr.evaluate, comparable=contract.comparable),
        contract=contract,
        diff=params_diff(base.params, pr.params),
        headline=str((pr.params.get("tune") or {}).get("metric", "roc_auc")),
    )
    markdown = write_markdown(out, images, image_url, sections)
    write_json(
        out / "verdict.json",
        {
            "passed": verdict.passed,
            "base": commit,
            "comparable": contract.comparable,
            "contract_reasons": list(contract.reasons),
            "failed": [check.detail for check in verdict.failed],
            "checks": [check.to_dict() for check in verdict.checks],
            "notes": list(verdict.notes),
            "pull_request": pull_request,
        },
    )
    return Report(verdict=verdict, markdown=markdown, images=images)


def write_markdown(
    out: Path, images: dict[str, Path], image_url: str | None, sections: dict[str, Any]
) -> Path:
    """out/report.md (images linked relatively) and, given `image_url`, out/comment.md; returns report.md."""
    text = render_markdown(images={k: p.name for k, p in images.items()}, **sections)
    markdown = atomic_write(out / "report.md", lambda tmp: tmp.write_text(text, encoding="utf-8"))
    if image_url:
        # The same report with absolute image links, for the PR comment (.github/workflows/pr-comment.yaml).
        prefix = image_url.rstrip("/")
        comment = render_markdown(images={k: f"{prefix}/{p.name}" for k, p in images.items()}, **sections)
        atomic_write(out / "comment.md", lambda tmp: tmp.write_text(comment, encoding="utf-8"))
    return markdown


@cli_entrypoint
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.report", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--base", required=True, help="git revision to compare with (e.g. origin/main, HEAD~1)"
    )
    parser.add_argument(
        "--out", type=Path, default=Path("report"), help="directory for report.md and the PNGs"
    )
    parser.add_argument(
        "--root", type=Path, default=Path("."), help="repository root (the PR's working tree)"
    )
    parser.add_argument(
        "--image-url",
        default=None,
        help="also write comment.md with images at this URL prefix (where pr-comment.yaml publishes them)",
    )
    parser.add_argument("--pr", type=int, default=None, help="pull request number, recorded in verdict.json")
    args = parser.parse_args(argv)
    report = build_report(
        args.root.resolve(), args.base, args.out, image_url=args.image_url, pull_request=args.pr
    )
    print(f"report: {report.markdown} ({len(report.images)} images)")
    if not report.verdict.passed:
        for check in report.verdict.failed:
            print(f"gate failed: {check.kind} rule: {check.detail}", file=sys.stderr)
        return EXIT_GATE_FAILED
    print("gate passed")
    return 0
