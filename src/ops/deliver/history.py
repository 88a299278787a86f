"""What git told each environment to run: the digests an overlay declared over its history, and where an image
came from (the trailers of the staging commit that first declared it: `Image-Built-From`, `Model-Version`).

Read by ops.deliver.gitops (production is promoted only to a digest staging declared), ops.deliver.shadow (the
challenger's model version) and ops.lineage (`make lineage ENV=...` in pull mode).
"""

from __future__ import annotations

from pathlib import Path

from mlcore.errors import PipelineError
from ops.deliver.pins import Pin, read_pin
from ops.deliver.settings import STAGING
from ops.repo import commit_of, run

OVERLAYS = Path("deploy/k8s/overlays")
# Trailers of a bump commit: what lineage (`make lineage ENV=...`) reads back in pull mode.
BUILT_FROM, MODEL_VERSION = "Image-Built-From", "Model-Version"


def overlay_file(env: str, root: Path = Path(".")) -> Path:
    path = root / OVERLAYS / env / "kustomization.yaml"
    if not path.is_file():
        known = (
            sorted(p.name for p in (root / OVERLAYS).iterdir() if p.is_dir())
            if (root / OVERLAYS).is_dir()
            else []
        )
        raise PipelineError(f"{path.relative_to(root)}: no such overlay (environments: {', '.join(known)})")
    return path


def declared_digests(root: Path, env: str, rev: str = "HEAD") -> list[tuple[str, Pin]]:
    """(commit, pin) for every commit of `rev`'s history that changed `env`'s overlay and left it with a digest,
    newest first: what git told that environment to run."""
    path = overlay_file(env, root).relative_to(root).as_posix()
    log = run(["git", "log", "--format=%H", rev, "--", path], root, capture=True, echo=False)
    found: list[tuple[str, Pin]] = []
    for commit in log.stdout.split():
        shown = run(["git", "show", f"{commit}:{path}"], root, check=False, capture=True, echo=False)
        if shown.returncode != 0:
            continue
        try:
            pin = read_pin(shown.stdout, f"{path} at {commit[:12]}")
        except PipelineError:
            continue  # an old revision of the file in another shape: it declared no digest we can use
        if pin.digest:
            found.append((commit, pin))
    return found


def pin_at(root: Path, env: str, rev: str) -> Pin | None:
    """`env`'s pin at commit `rev`, or None where the overlay is absent there."""
    path = f"{OVERLAYS}/{env}/kustomization.yaml"
    shown = run(["git", "show", f"{rev}:{path}"], root, check=False, capture=True, echo=False)
    return read_pin(shown.stdout, f"{path} at {rev}") if shown.returncode == 0 else None


def trailers(root: Path, commit: str) -> dict[str, str]:
    shown = run(
        ["git", "show", "-s", "--format=%(trailers:only,unfold)", commit], root, capture=True, echo=False
    )
    return dict(line.split(": ", 1) for line in shown.stdout.splitlines() if ": " in line)


def origin(root: Path, pin: Pin, rev: str = "HEAD") -> dict[str, str] | None:
    """Where the image `pin` names came from according to git at `rev`: the commit of the staging overlay that
    first declared its digest, and the commit the image was built from (that commit's `Image-Built-From`
    trailer, else its first parent) with the model version it recorded. None when staging never declared it."""
    first = [
        commit for commit, declared in declared_digests(root, STAGING, rev) if declared.digest == pin.digest
    ]
    if not pin.digest or not first:
        return None
    declaring = first[-1]  # newest first: the last is the oldest, the bump itself
    marks = trailers(root, declaring)
    built = marks.get(BUILT_FROM) or commit_of(root, f"{declaring}^") or declaring
    return {
        "image_digest": pin.reference,
        "model_version": marks.get(MODEL_VERSION, ""),
        "declared_in": declaring,
        "commit": built,
    }


def declared_build(root: Path, env: str, rev: str = "HEAD") -> dict[str, str] | None:
    """In pull mode, what `env` runs according to git at `rev` (its serving image's `origin`), or None when
    `env` declares no digest staging declared."""
    pin = pin_at(root, env, rev)
    found = origin(root, pin, rev) if pin is not None else None
    return {"environment": env, **found} if found else None
