"""A promoted challenger as a proposal: its data and model pushed to DVC, a branch, a pull request (GitHub CLI).

Nothing is proposed twice: a branch or a pull request from `retrain/<data hash>` means that data was proposed.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from ops.repo import dvc, pull_requests_from, remote_branch_exists, run
from ops.retrain.rule import PromotionRule

PROPOSAL_PATHS = ("data.dvc", "dvc.lock", "params.yaml", "metrics", "plots", "lineage")


def push_data(root: Path, decision: dict[str, Any]) -> str:
    """`dvc push` a promoted challenger's data and model to the default DVC remote, if one is configured."""
    if decision["decision"] != "promote":
        return f"nothing to push: the decision is {decision['decision']}"
    remote = run(dvc("remote", "default"), root, check=False, capture=True).stdout.strip()
    if not remote:
        return "no default DVC remote configured: the proposal's data and model stay in this cache only"
    run(dvc("push"), root)
    return f"pushed data and model to DVC remote '{remote}'"


def propose(
    root: Path,
    decision: dict[str, Any],
    report: Path,
    remote: str = "origin",
    push: bool = True,
    open_pr: bool = True,
) -> str:
    """Commit a promoted challenger on its own branch, push it, open a pull request; returns what happened."""
    if decision["decision"] != "promote":
        return f"nothing to propose: the decision is {decision['decision']}"
    rule = PromotionRule.model_validate(decision["rule"])
    branch = decision["branch"]
    if remote_branch_exists(root, remote, branch):
        return f"already proposed: branch {branch} exists on {remote}; no new pull request"
    if open_pr and (existing := pull_requests_from(root, branch)):
        return f"already proposed: pull request #{existing[0]} came from {branch}; no new pull request"
    run(["git", "switch", "-c", branch], root)
    paths = [p for p in PROPOSAL_PATHS if (root / p).exists()]
    run(["git", "add", "--", *paths], root)
    challenger = decision["challenger"]
    title = (
        f"Retrain: model {challenger['model_version']} on data {decision['data']['snapshot_sha256'][:12]} "
        f"({decision['data']['window_start'][:10]} .. {decision['data']['window_end'][:10]})"
    )
    run(["git", "commit", "-m", title, "-m", "\n".join(decision["reasons"])], root)
    if push:
        print(push_data(root, decision), file=sys.stderr)
    run(["git", "push", remote, f"HEAD:refs/heads/{branch}"], root)
    if open_pr:
        body = report.with_name("pr-body.md")
        # Images cannot be attached to a PR body; CI posts the full report with images as a comment.
        text = "\n".join(
            line
            for line in report.read_text(encoding="utf-8").splitlines()
            if not line.lstrip().startswith("![")
        )
        body.write_text(text + "\n", encoding="utf-8")
        run(
            [
                "gh",
                "pr",
                "create",
                "--base",
                rule.base_branch,
                "--head",
                branch,
                "--title",
                title,
                "--body-file",
                str(body),
            ],
            root,
        )
        return f"proposed: pull request from {branch} to {rule.base_branch}"
    return f"proposed: pushed {branch} to {remote} (no pull request opened)"
