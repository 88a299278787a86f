"""The model a revision tracks: the `model/` hash its dvc.lock records, fetched or reproduced, always verified.

`python -m ops.repo get` (`make model-from-lock`, which `make image-model` and `make monitor-model`
use) puts into model/ exactly the model HEAD's dvc.lock records:
1. model/ already has that hash: nothing to do;
2. `dvc pull model` from the DVC cache or a remote;
3. no remote answers (a fresh clone, a fork's CI): get the data (`make data`) and `dvc repro train`. Every
   stage output is a function of its declared inputs, so this gives the recorded hash; the result is checked,
   and a difference stops with one line naming both hashes and the first stage whose outputs differ.
Retraining's champion (`ops.retrain`) goes through the same `verify_reproduced`.

`python -m ops.repo data` (`make data-or-skip`, ci.yaml's pipeline job) is `make data` for a job that holds no
credential for the DVC remote: when nothing can provide data.dvc's version (your own data, no
`data.regenerate`), it says why in a warning and the job summary, sets the step output `available=false` and
exits 0, so the pipeline and report steps skip instead of failing every pull request. Any other data problem
still fails.

Also the one home of the git/DVC plumbing the ops jobs share: `run` (the subprocess runner and its one-line
error), `remote_branch_exists`, `pull_requests_from` (GitHub CLI), `dvc`, `git_show`, `commit_of`,
`workspace_is`, `stage_is_current`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import yaml

from mlcore.artifact import load_metadata
from mlcore.errors import PipelineError, cli_entrypoint
from ops.github import add_summary, set_outputs
from pipeline.data import DataUnavailable, dir_md5, ensure_data

MODEL_STAGE = "train"
MODEL_OUT = "model"
# The files that decide what the pipeline produces: unmodified, the workspace reproduces the revision's model.
PIPELINE_INPUTS = ("dvc.lock", "dvc.yaml", "params.yaml", "data.dvc", "src")


def tool_env() -> dict[str, str]:
    # Stage commands call `python` and `dvc`: make them the interpreter this runs under (the venv).
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def run(
    cmd: list[str], root: Path, check: bool = True, capture: bool = False, echo: bool = True
) -> subprocess.CompletedProcess:
    """Run `cmd` in `root` (echoed as `+ cmd` on stderr); with `check`, a failure raises one line naming the
    command, its exit status and (when captured) the last line of its stderr."""
    if echo:
        print("+ " + " ".join(cmd), file=sys.stderr, flush=True)
    result = subprocess.run(cmd, cwd=root, env=tool_env(), text=True, capture_output=capture)
    if check and result.returncode != 0:
        detail = f": {result.stderr.strip().splitlines()[-1]}" if capture and result.stderr.strip() else ""
        raise PipelineError(f"`{' '.join(cmd)}` failed with exit status {result.returncode}{detail}")
    return result


def remote_branch_exists(root: Path, remote: str, branch: str) -> bool:
    ls_remote = ["git", "ls-remote", "--exit-code", "--heads", remote, branch]
    result = run(ls_remote, root, check=False, capture=True, echo=False)
    if result.returncode not in (0, 2):
        raise PipelineError(f"git ls-remote {remote}: {result.stderr.strip() or 'failed'}")
    return result.returncode == 0


def pull_requests_from(root: Path, branch: str) -> list[int]:
    """Numbers of pull requests (open, closed or merged) whose head is `branch` (GitHub CLI)."""
    result = run(
        ["gh", "pr", "list", "--head", branch, "--state", "all", "--json", "number"], root, capture=True
    )
    return [pr["number"] for pr in json.loads(result.stdout or "[]")]


def dvc(*args: str) -> list[str]:
    """The command line of `dvc ARGS` under this interpreter."""
    return [sys.executable, "-m", "dvc", *args]


def commit_of(root: Path, rev: str) -> str:
    """The commit `rev` names, or "" when it names none."""
    result = run(
        ["git", "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"],
        root,
        check=False,
        capture=True,
        echo=False,
    )
    return result.stdout.strip()


def workspace_is(root: Path, rev: str) -> bool:
    """Whether HEAD is `rev` and the pipeline's inputs are unmodified."""
    commit = commit_of(root, rev)
    if not commit or commit != commit_of(root, "HEAD"):
        return False
    return (
        run(
            ["git", "diff", "--quiet", "HEAD", "--", *PIPELINE_INPUTS], root, check=False, echo=False
        ).returncode
        == 0
    )


def stage_is_current(root: Path, stage: str) -> bool:
    """Whether `dvc status` finds the stage's outputs up to date with its inputs."""
    return run(dvc("status", "-q", stage), root, check=False, capture=True).returncode == 0


# One side of a comparison, as a function of a repository path: the file's bytes, or None where it is absent.
Reader = Callable[[str], bytes | None]


def git_show_bytes(root: Path, rev: str, path: str) -> bytes | None:
    """`git show REV:PATH` as bytes (a PNG too), or None when the revision or the file does not exist."""
    result = subprocess.run(["git", "show", f"{rev}:{path}"], cwd=root, capture_output=True)
    return result.stdout if result.returncode == 0 else None


def git_show(root: Path, rev: str, path: str) -> str | None:
    """`git show REV:PATH` as text, or None when the revision or the file does not exist."""
    raw = git_show_bytes(root, rev, path)
    return None if raw is None else raw.decode("utf-8")


def resolve_revision(root: Path, rev: str, name: str | None = None) -> str:
    """The full commit id of `rev`, or a clear error naming it as `name` (a shallow CI clone may lack it)."""
    commit = commit_of(root, rev)
    if not commit:
        raise PipelineError(
            f"{name or rev}: not a commit in {root} (fetch it first, e.g. `git fetch origin main`, "
            "or check out with enough history)"
        )
    return commit


def git_reader(root: Path, commit: str) -> Reader:
    """Read files as committed at `commit`."""

    def read(path: str) -> bytes | None:
        return git_show_bytes(root, commit, path)

    return read


def worktree_reader(root: Path) -> Reader:
    """Read files from the working tree at `root`."""

    def read(path: str) -> bytes | None:
        file = root / path
        return file.read_bytes() if file.is_file() else None

    return read


def lock_outputs(dvc_lock_text: str | None) -> dict[tuple[str, str], str | None]:
    """(stage, output path) -> md5 recorded in a dvc.lock, in the lock's (pipeline) order."""
    lock = yaml.safe_load(dvc_lock_text or "") or {}
    return {
        (stage, out.get("path")): out.get("md5")
        for stage, entry in (lock.get("stages") or {}).items()
        for out in (entry or {}).get("outs", [])
    }


def model_md5(dvc_lock_text: str | None) -> str | None:
    """The DVC hash of the model directory that a dvc.lock records, or None."""
    return lock_outputs(dvc_lock_text).get((MODEL_STAGE, MODEL_OUT))


def first_difference(
    recorded: str | None, reproduced: str | None
) -> tuple[str, str, str | None, str | None] | None:
    """The first (stage, path, recorded md5, reproduced md5) where two dvc.lock texts disagree, or None."""
    want, got = lock_outputs(recorded), lock_outputs(reproduced)
    for key, md5 in want.items():
        if key in got and got[key] != md5:
            return (*key, md5, got[key])
    return None


def verify_reproduced(root: Path, rev: str, wanted: str, got: str) -> None:
    """Stop unless a reproduced model/ has the hash `rev`'s dvc.lock records (`wanted`)."""
    if got == wanted:
        return
    diff = first_difference(git_show(root, rev, "dvc.lock"), (root / "dvc.lock").read_text(encoding="utf-8"))
    where = (
        f"stage '{diff[0]}' is the first whose output differs ({diff[1]}: {diff[2]} recorded, {diff[3]} reproduced)"
        if diff
        else f"stage '{MODEL_STAGE}' differs"
    )
    raise PipelineError(
        f"dvc.lock at {rev} records {MODEL_OUT}/ as {wanted}, but reproducing it gave {got}: {where}. That lock "
        "was not written by this pipeline on these inputs (edited by hand, or by other code): run `dvc repro` "
        "and commit dvc.lock, or configure the DVC remote that holds the recorded model"
    )


def reproduce(root: Path, rev: str, wanted: str) -> None:
    """`dvc repro train` in the workspace (which must be `rev`), then verify the result against `wanted`."""
    ensure_data(root, progress=lambda m: print(m, file=sys.stderr))
    done = run(dvc("repro", MODEL_STAGE), root, check=False, capture=True)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["failed"])[-1]
        raise PipelineError(f"`dvc repro {MODEL_STAGE}` failed with exit status {done.returncode}: {last}")
    verify_reproduced(root, rev, wanted, dir_md5(root / MODEL_OUT))


def get_tracked_model(root: Path, rev: str = "HEAD") -> str:
    """Put the model `rev`'s dvc.lock records into model/ (the workspace must be `rev`); returns how."""
    wanted = model_md5(git_show(root, rev, "dvc.lock"))
    if wanted is None:
        raise PipelineError(f"dvc.lock at {rev}: records no '{MODEL_OUT}' output of stage '{MODEL_STAGE}'")
    workspace = root / MODEL_OUT
    if (workspace / "metadata.json").exists() and dir_md5(workspace) == wanted:
        return f"{MODEL_OUT}/ is already {wanted}"
    pulled = run(dvc("pull", MODEL_OUT), root, check=False, capture=True)
    if pulled.returncode == 0 and (workspace / "metadata.json").exists() and dir_md5(workspace) == wanted:
        return f"pulled {wanted}"
    print(
        f"no DVC remote answered with {wanted}: reproducing it (`dvc repro {MODEL_STAGE}`)", file=sys.stderr
    )
    reproduce(root, rev, wanted)
    return f"reproduced {wanted} and verified it against dvc.lock"


UNAVAILABLE = (
    "The pipeline did not run: this job cannot get data.dvc's data (it holds no credential for the DVC remote, "
    "and params.yaml has no data.regenerate). It runs after the merge, in deploy.yaml's image job, whose gate "
    "blocks the deploy. Review locally: `make run && make report BASE=origin/main` "
    '(docs/data.md, "Data in pull requests").'
)


def data_or_skip(root: Path) -> int:
    """`make data`; when the data is unavailable to this job, a warning and `available=false` instead of a failure."""
    try:
        ensure_data(root, progress=lambda msg: print(msg, file=sys.stderr, flush=True))
    except DataUnavailable as exc:
        print(f"data: {exc}", file=sys.stderr)
        print(f"data: {UNAVAILABLE}", file=sys.stderr)
        if os.environ.get("GITHUB_ACTIONS") == "true":
            print(f"::warning title=data unavailable::{UNAVAILABLE}", flush=True)
        add_summary(f"### Pipeline not run\n\n{UNAVAILABLE}\n")
        set_outputs({"available": False})
        return 0
    set_outputs({"available": True})
    return 0


@cli_entrypoint
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    get = sub.add_parser("get", help="put the model the revision's dvc.lock records into model/, verified")
    get.add_argument("--rev", default="HEAD")
    get.add_argument("--root", default=".", type=Path)
    data = sub.add_parser("data", help="make data, or say the data is unavailable to this job (exit 0)")
    data.add_argument("--root", default=".", type=Path)
    args = parser.parse_args(argv)
    root = args.root.resolve()
    if args.command == "data":
        return data_or_skip(root)
    print(f"model: {get_tracked_model(root, args.rev)}")
    print(f"model version: {load_metadata(root / MODEL_OUT)['model_version']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
