"""What a run of the deploy workflow does, decided once: `python -m ops.deliver.plan` (`make delivery-plan`).

For a push to a deploy branch (or, with --environment, a manual run): the environment, params.yaml's
`delivery.mode`, the action (`deploy` in push mode; `bump`, `promote` or `skip` in pull mode) and whether the
image job builds; as step outputs for the jobs after it (.github/workflows/deploy.yaml).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mlcore.errors import PipelineError, cli_entrypoint
from ops.deliver.settings import PRODUCTION, STAGING, DeliveryParams, load_delivery
from ops.github import set_outputs
from ops.repo import commit_of, run
from pipeline.config import DEFAULT_PARAMS

OVERLAYS = Path("deploy/k8s/overlays")
# A commit that changes only these declares what runs; it needs no new image (a bump, a promotion, a revert).
DECLARATIONS = (f"{OVERLAYS}/",)
ZERO_SHA = "0" * 40


def changed_files(root: Path, before: str, after: str) -> list[str] | None:
    """Files changed between two commits; None when `before` is unknown (a new branch, a shallow clone)."""
    if not before or before == ZERO_SHA or not commit_of(root, before) or not commit_of(root, after):
        return None
    diff = run(["git", "diff", "--name-only", before, after], root, capture=True, echo=False)
    return diff.stdout.split()


def plan(
    root: Path,
    delivery: DeliveryParams,
    ref: str,
    before: str = "",
    after: str = "HEAD",
    environment: str = "",
) -> dict[str, str]:
    """What the deploy workflow does for a push to `ref` (or, with `environment`, a manual run for it):
    `deploy` (push mode: kubectl apply), `bump` (pull mode, staging: pin a digest), `promote` (pull mode,
    production: a pull request with a digest staging ran) or `skip` (pull mode: the push changed only overlays,
    a bump, a promotion or a revert, which the controller applies as it is). `build` says whether the image job
    runs: a push that deploys or bumps; a manual run names its image, and a promotion never builds."""
    envs = {delivery.staging_branch: STAGING, delivery.production_branch: PRODUCTION}
    if environment:
        if environment not in (STAGING, PRODUCTION):
            raise PipelineError(f"environment {environment!r}: {STAGING} or {PRODUCTION}")
        env, manual = environment, True
    elif ref in envs:
        env, manual = envs[ref], False
    else:
        raise PipelineError(f"ref {ref!r}: deploys come from {' or '.join(envs)} (params.yaml delivery)")
    out = {"mode": delivery.mode, "environment": env}
    if delivery.mode == "push":
        return out | {
            "action": "deploy",
            "build": str(not manual).lower(),
            "reason": "push mode: kubectl apply",
        }
    files = None if manual else changed_files(root, before, after)
    if files and all(f.startswith(DECLARATIONS) for f in files):
        return out | {
            "action": "skip",
            "build": "false",
            "reason": f"only {OVERLAYS}/ changed ({', '.join(files)}): the controller syncs it; no new image",
        }
    if env == STAGING:
        return out | {
            "action": "bump",
            "build": str(not manual).lower(),
            "reason": "pull mode: pin the digest",
        }
    return out | {"action": "promote", "build": "false", "reason": "pull mode: pin a digest staging ran"}


@cli_entrypoint
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.deliver.plan", description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=Path, default=DEFAULT_PARAMS)
    parser.add_argument("--ref", default="", help="the pushed branch")
    parser.add_argument(
        "--environment", default="", help="a manual run (workflow_dispatch) for this environment"
    )
    parser.add_argument("--before", default="", help="the commit before the push (github.event.before)")
    parser.add_argument("--after", default="HEAD")
    args = parser.parse_args(argv)
    decided = plan(Path("."), load_delivery(args.params), args.ref, args.before, args.after, args.environment)
    print(f"{decided['environment']}: {decided['action']} ({decided['reason']})")
    set_outputs(decided)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
