"""A challenger in the shadow of an environment, and its swap into serving once live evidence says it is better.

    python -m ops.deliver.shadow pin production --image ghcr.io/o/r@sha256:...   # run it in the shadow (verified)
    python -m ops.deliver.shadow off production                                   # remove the shadow
    python -m ops.deliver.shadow evidence production --verdict monitoring/verdict.json   # may it swap? (exit 0)
    python -m ops.deliver.shadow swap production --verdict monitoring/verdict.json       # swap, or refuse (exit 1)

The shadow is an overlay setting (deploy/k8s/shadow, ops.deliver.pins): the component listed and the `challenger`
image pinned by digest, the same in push and pull mode. A pull-mode promotion pins the challenger instead of the
serving image when params.yaml `delivery.production_entry` is `shadow` (ops.deliver.gitops promote).

The swap (the challenger becomes the serving image, the shadow is removed) needs monitoring's live evidence for
the challenger's model version: `verdict["shadow"][<version>]["evidence"]["passed"]`, which ops.monitor.shadow
decides with params.yaml `monitor.shadow` (at least `min_labelled` labelled shadow predictions, and the paired
bootstrap interval of the difference wholly above `min_margin`). Without it the swap is refused with monitoring's
reasons (too few labelled predictions, an interval that includes the margin) or the missing part (no shadow
verdict, none for this challenger, a verdict of another serving model). With it: pull mode commits the overlay on
a branch and opens a pull request (ops.deliver.gitops publish); push mode applies it now (ops.deliver.deploy,
with its rollout wait and undo) and opens the same pull request, so git agrees with the cluster.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlcore.errors import PipelineError, cli_entrypoint
from mlcore.io import read_json
from ops.deliver import deploy
from ops.deliver.gitops import Change, bump, publish, write_pin
from ops.deliver.history import MODEL_VERSION, origin, overlay_file
from ops.deliver.pins import CHALLENGER, Pin, read_challenger, read_pin, unshadow_text
from ops.deliver.registry import require_manifest
from ops.deliver.settings import PRODUCTION, load_delivery
from ops.github import add_summary, set_outputs
from pipeline.config import DEFAULT_PARAMS


def pin(root: Path, env: str, reference: str, verify: Callable[[str], None] = require_manifest) -> Change:
    """Run `reference` (name@sha256:..., which the registry must hold) in `env`'s shadow."""
    return bump(root, env, reference, verify, image=CHALLENGER)


def _overlay(root: Path, env: str) -> tuple[Path, str, str]:
    path = overlay_file(env, root)
    return path, str(path.relative_to(root)), path.read_text(encoding="utf-8")


def off(root: Path, env: str) -> Change:
    """Remove `env`'s shadow: the challenger's pin and the component."""
    path, where, text = _overlay(root, env)
    before = read_challenger(text, where)
    path.write_text(unshadow_text(text, where), encoding="utf-8")
    return Change(env, before, None, CHALLENGER)


def challenger(root: Path, env: str) -> Pin:
    _, where, text = _overlay(root, env)
    found = read_challenger(text, where)
    if found is None or not found.digest:
        raise PipelineError(
            f"{where}: runs no challenger in the shadow (no `{CHALLENGER}` image pinned by digest); "
            f"nothing to swap"
        )
    return found


def model_version_of(root: Path, image: Pin) -> str:
    """The model version staging's bump recorded for `image` (its `Model-Version` trailer), or ""."""
    found = origin(root, image)
    return found["model_version"] if found else ""


def missing_evidence(verdict: dict[str, Any], version: str, serving: str = "") -> list[str]:
    """What monitoring's verdict lacks for swapping in the challenger of model `version` ([] = nothing)."""
    if serving and verdict.get("model_version") not in (None, serving):
        return [
            f"the verdict judged serving model {verdict['model_version']}, but the overlay serves {serving}"
        ]
    shadows = verdict.get("shadow") or {}
    if not shadows:
        return [
            "no shadow verdict: monitoring's verdict holds no shadow comparison (no shadow predictions of the "
            "serving model in its window yet); run `make monitor` after the shadow has scored labelled traffic"
        ]
    if version not in shadows:
        return [f"no shadow verdict for model {version}: monitoring compared {', '.join(sorted(shadows))}"]
    found = shadows[version].get("evidence") or {}
    if found.get("passed"):
        return []
    return list(found.get("reasons") or [f"model {version}: no live evidence in the verdict"])


def check(root: Path, env: str, verdict: dict[str, Any], version: str = "") -> tuple[Pin, str, list[str]]:
    """(the challenger, its model version, what is missing for the swap)."""
    image = challenger(root, env)
    version = version or model_version_of(root, image)
    if not version:
        raise PipelineError(
            f"{image.reference}: no model version recorded for it (no staging bump with a {MODEL_VERSION} "
            "trailer declared it); name it: MODEL_VERSION=<the challenger's model_version>"
        )
    _, where, text = _overlay(root, env)
    serving = model_version_of(root, read_pin(text, where))
    return image, version, missing_evidence(verdict, version, serving)


def swap(root: Path, env: str, verdict: dict[str, Any], version: str = "") -> Change:
    """The challenger becomes `env`'s serving image and the shadow is removed, if the verdict holds live
    evidence for it; otherwise nothing is written and the refusal names what is missing."""
    image, version, missing = check(root, env, verdict, version)
    if missing:
        raise PipelineError(
            f"swap of {image.reference} (model {version}) into {env} refused: {'; '.join(missing)}"
        )
    off(root, env)
    return write_pin(root, env, image.name, image.digest)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m ops.deliver.shadow", description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=Path, default=DEFAULT_PARAMS)
    sub = parser.add_subparsers(dest="command", required=True)
    commands = {name: sub.add_parser(name) for name in ("pin", "off", "evidence", "swap")}
    for p in commands.values():
        p.add_argument("env", nargs="?", default=PRODUCTION, help="overlay name (default: production)")
    commands["pin"].add_argument("--image", required=True, help="registry/name@sha256:<64 hex>")
    for name in ("evidence", "swap"):
        commands[name].add_argument("--verdict", type=Path, default=Path("monitoring/verdict.json"))
        commands[name].add_argument("--model-version", default="", help="the challenger's (default: git's)")
    commands["swap"].add_argument("--remote", default="origin")
    commands["swap"].add_argument(
        "--no-pr", action="store_true", help="push the branch, open no pull request"
    )
    return parser


@cli_entrypoint
def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    root = Path(".")
    if args.command in ("pin", "off"):
        change = pin(root, args.env, args.image) if args.command == "pin" else off(root, args.env)
        print(change.line())
        return 0
    if not args.verdict.is_file():
        raise PipelineError(f"{args.verdict}: no monitoring verdict; run `make monitor` first")
    verdict = read_json(args.verdict)
    if args.command == "evidence":
        image, version, missing = check(root, args.env, verdict, args.model_version)
        lines = missing or [f"live evidence for model {version}: {image.reference} may be swapped in"]
        print("\n".join(lines))
        add_summary(f"Shadow {image.reference} (model {version}): " + "; ".join(lines))
        set_outputs({"ready": not missing, "model_version": version})
        return 0
    delivery = load_delivery(args.params)
    change = swap(root, args.env, verdict, args.model_version)
    print(change.line())
    if delivery.mode == "push":
        ns = deploy.apply(args.env, change.after.reference)
        print(f"deployed {change.after.reference} to namespace {ns}", file=sys.stderr)
    outcome = publish(root, change, delivery, "pull-request", args.remote, not args.no_pr)
    print(outcome)
    add_summary(f"Shadow swap: {outcome}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
