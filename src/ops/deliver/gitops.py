"""Pull-mode delivery: git declares the image each environment runs; Argo CD or Flux applies it.

    python -m ops.deliver.gitops bump staging --image ghcr.io/o/r@sha256:...   # pin a pushed digest (verified)
    python -m ops.deliver.gitops promote [--digest sha256:...]                 # staging's digest -> production
                                                    # (or its shadow: params.yaml delivery.production_entry)
    python -m ops.deliver.gitops publish staging --how commit|pull-request     # commit + push, or a PR
    python -m ops.deliver.gitops check                                         # every overlay deployable?

params.yaml `delivery.mode` chooses: `push` (the deploy workflow runs `kubectl apply` with a cluster credential,
ops.deliver.deploy) or `pull` (this module: the workflow holds no cluster credential; it writes the digest into
deploy/k8s/overlays/<env>/kustomization.yaml, ops.deliver.pins, and a controller in the cluster syncs it). The
same overlays serve both modes.

The rules: a bump names a digest the registry holds (ops.deliver.registry); production is promoted only to a
digest the staging overlay declared at some commit of the history (what staging ran is what production gets);
an overlay pinned by a tag is refused. A rollback is `git revert` of the bump or promotion commit: the overlay
declares the previous digest again, and the deploy workflow's plan (ops.deliver.plan) does not answer a commit
that changes only overlays with a new build (which would undo the revert). Settings: ops.deliver.settings.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mlcore.errors import PipelineError, cli_entrypoint
from ops.deliver.history import (  # noqa: F401  (BUILT_FROM, declared_build: lineage and the tests read them here)
    BUILT_FROM,
    MODEL_VERSION,
    OVERLAYS,
    declared_build,
    declared_digests,
    overlay_file,
)
from ops.deliver.pins import (
    CHALLENGER,
    IMAGE_NAME,
    Pin,
    pin_text,
    read_challenger,
    read_pin,
    refusal,
    shadow_refusal,
    split_reference,
)
from ops.deliver.registry import require_manifest
from ops.deliver.settings import PRODUCTION, STAGING, DeliveryParams, load_delivery
from ops.github import add_summary
from ops.repo import commit_of, pull_requests_from, remote_branch_exists, run
from pipeline.config import DEFAULT_PARAMS


def current_pin(root: Path, env: str) -> Pin:
    path = overlay_file(env, root)
    return read_pin(path.read_text(encoding="utf-8"), str(path.relative_to(root)))


@dataclass(frozen=True)
class Change:
    """`image`'s pin in `env`'s overlay before and after; a challenger's is None where no shadow runs."""

    env: str
    before: Pin | None
    after: Pin | None
    image: str = IMAGE_NAME

    @property
    def changed(self) -> bool:
        return self.before != self.after

    def line(self) -> str:
        ref = {None: "(no shadow)"}
        what = self.env if self.image == IMAGE_NAME else f"{self.env} {self.image}"
        if not self.changed:
            return (
                f"{what}: already declares {ref.get(self.after) or self.after.reference}; nothing to change"
            )
        return f"{what}: {ref.get(self.before) or self.before.reference} -> {ref.get(self.after) or self.after.reference}"


def write_pin(root: Path, env: str, name: str, digest: str, image: str = IMAGE_NAME) -> Change:
    path = overlay_file(env, root)
    where = str(path.relative_to(root))
    text = path.read_text(encoding="utf-8")
    before = read_pin(text, where) if image == IMAGE_NAME else read_challenger(text, where)
    after = Pin(name=name, digest=digest)
    if before != after:
        path.write_text(pin_text(text, where, name, digest, image), encoding="utf-8")
    return Change(env, before, after, image)


def pending_change(root: Path, env: str) -> Change:
    """`env`'s overlay at HEAD against the working tree's (what `bump`, `promote` or ops.deliver.shadow wrote):
    the api pin's change, else the challenger's."""
    path = overlay_file(env, root).relative_to(root).as_posix()
    shown = run(["git", "show", f"HEAD:{path}"], root, capture=True, echo=False).stdout
    now = overlay_file(env, root).read_text(encoding="utf-8")
    api = Change(env, read_pin(shown, f"{path} at HEAD"), read_pin(now, path))
    challenger = Change(
        env, read_challenger(shown, f"{path} at HEAD"), read_challenger(now, path), CHALLENGER
    )
    return api if api.changed or not challenger.changed else challenger


def bump(
    root: Path,
    env: str,
    reference: str,
    verify: Callable[[str], None] = require_manifest,
    image: str = IMAGE_NAME,
) -> Change:
    """Pin `env`'s `image` (the api, or the challenger in the shadow) to `reference` (name@sha256:...) after
    `verify(reference)` confirms the registry has it (ops.deliver.registry; it raises, and nothing is written,
    when the registry has not)."""
    name, digest = split_reference(reference)
    verify(reference)
    return write_pin(root, env, name, digest, image)


def promote(root: Path, digest: str = "", rev: str = "HEAD", image: str = IMAGE_NAME) -> Change:
    """Copy into the production overlay the digest staging runs (or `digest`, which staging must have run), as
    its serving image or (`image` challenger: params.yaml delivery.production_entry shadow) its shadow."""
    if not commit_of(root, rev):
        raise PipelineError(f"--rev {rev!r}: names no commit")
    history = declared_digests(root, STAGING, rev)
    if not history:
        raise PipelineError(
            f"{OVERLAYS}/{STAGING}: no digest in its history at {rev}: nothing was deployed to staging, so "
            "there is nothing to promote; merge to staging first (its deploy bumps the overlay)"
        )
    if not digest:
        staging = current_pin(root, STAGING)
        if not staging.digest:
            raise PipelineError(f"{OVERLAYS}/{STAGING}: declares no digest now; name one with --digest")
        digest = staging.digest
    ran = [pin for _, pin in history if pin.digest == digest]
    if not ran:
        raise PipelineError(
            f"digest {digest}: staging never ran it (no commit of {OVERLAYS}/{STAGING} at {rev} declared it); "
            "production runs only what staging verified: deploy it to staging first"
        )
    return write_pin(root, PRODUCTION, ran[0].name, digest, image)


def check(root: Path, mode: str) -> list[str]:
    """One line per overlay that cannot be deployed in `mode`: a shadow without its challenger pinned by digest
    (or the reverse), and in pull mode a serving image pinned by a tag instead of a digest."""
    problems = []
    for path in sorted((root / OVERLAYS).glob("*/kustomization.yaml")):
        where = str(path.relative_to(root))
        text = path.read_text(encoding="utf-8")
        try:
            pin = read_pin(text, where)
        except PipelineError as exc:
            problems.append(str(exc))
            continue
        reasons = (refusal(pin, where) if mode == "pull" else "", shadow_refusal(text, where))
        problems += [reason for reason in reasons if reason]
    return problems


def publish(
    root: Path,
    change: Change,
    delivery: DeliveryParams,
    how: str,
    remote: str = "origin",
    open_pr: bool = True,
    marks: dict[str, str] | None = None,
) -> str:
    """Commit `change` and land it: straight onto the environment's branch (`commit`) or as a pull request from
    `<branch_prefix><env>-<digest 12>` (`pull-request`; production is always promoted that way). `marks` become
    the commit's trailers (Image-Built-From, Model-Version: what lineage reads back)."""
    if not change.changed:
        return change.line()
    base = delivery.staging_branch if change.env == STAGING else delivery.production_branch
    verb = "promote" if change.env == PRODUCTION else "deploy"
    if change.image == CHALLENGER:
        verb = "shadow" if change.after else "unshadow"
    pin = change.after or change.before
    short = pin.digest.removeprefix("sha256:")[:12]
    title = f"{verb}({change.env}): {pin.name}@sha256:{short}"
    body = (
        f"{change.line()}\n\n"
        f"Pull mode (params.yaml delivery.mode): Argo CD or Flux applies {OVERLAYS}/{change.env}.\n"
        "Roll back with `git revert` of this commit."
    )
    recorded = {key: value for key, value in (marks or {}).items() if value}
    if recorded:
        body += "\n\n" + "\n".join(f"{key}: {value}" for key, value in recorded.items())
    path = overlay_file(change.env, root).relative_to(root).as_posix()
    if how == "pull-request":
        kind = "" if change.image == IMAGE_NAME else f"{verb}-"
        branch = f"{delivery.branch_prefix}{change.env}-{kind}{short}"
        if remote_branch_exists(root, remote, branch):
            return f"already proposed: branch {branch} exists on {remote}"
        if open_pr and (existing := pull_requests_from(root, branch)):
            return f"already proposed: pull request #{existing[0]} came from {branch}"
        run(["git", "switch", "-c", branch], root)
    run(["git", "add", "--", path], root)
    run(["git", "commit", "-m", title, "-m", body], root)
    if how == "commit":
        run(["git", "push", remote, f"HEAD:refs/heads/{base}"], root)
        return f"committed to {base}: {title}"
    run(["git", "push", remote, f"HEAD:refs/heads/{branch}"], root)
    if open_pr:
        run(["gh", "pr", "create", "--base", base, "--head", branch, "--title", title, "--body", body], root)
        return f"proposed: pull request from {branch} to {base}: {title}"
    return f"pushed {branch} to {remote} (no pull request opened)"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m ops.deliver.gitops", description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=Path, default=DEFAULT_PARAMS)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("bump", help="pin ENV's overlay to an image digest the registry holds")
    p.add_argument("env")
    p.add_argument("--image", required=True, help="registry/name@sha256:<64 hex>")
    p = sub.add_parser("promote", help="pin production to the digest staging ran")
    p.add_argument(
        "--digest", default="", help="sha256:... or name@sha256:...; default: the staging overlay's"
    )
    p.add_argument("--rev", default="HEAD", help="whose staging history counts")
    p = sub.add_parser("publish", help="commit ENV's overlay change and push it (or open a pull request)")
    p.add_argument("env")
    p.add_argument("--how", choices=("commit", "pull-request", "params"), default="params")
    p.add_argument("--remote", default="origin")
    p.add_argument("--no-pr", action="store_true", help="push the branch, open no pull request")
    p.add_argument("--model-version", default="", help="recorded as a trailer (make lineage reads it)")
    p.add_argument("--built-from", default="", help="the commit the image was built from (default: HEAD)")
    sub.add_parser("check", help="refuse overlays pull mode cannot deploy (a tag instead of a digest)")
    return parser


@cli_entrypoint
def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    root = Path(".")
    delivery = load_delivery(args.params)
    if args.command == "bump":
        print(bump(root, args.env, args.image).line())
    elif args.command == "promote":
        digest = split_reference(args.digest)[1] if "@" in args.digest else args.digest
        image = CHALLENGER if delivery.production_entry == "shadow" else IMAGE_NAME
        print(promote(root, digest, args.rev, image).line())
    elif args.command == "publish":
        change = pending_change(root, args.env)
        how = args.how
        if how == "params":
            how = delivery.staging_bump if args.env == STAGING else "pull-request"
        marks = {BUILT_FROM: args.built_from or commit_of(root, "HEAD"), MODEL_VERSION: args.model_version}
        outcome = publish(root, change, delivery, how, args.remote, not args.no_pr, marks)
        print(outcome)
        add_summary(f"GitOps: {outcome}")
    else:
        problems = check(root, delivery.mode)
        for line in problems:
            print(line, file=sys.stderr)
        if problems:
            return 1
        print(f"overlays: deployable in {delivery.mode} mode")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
