"""The fresh-clone contract: what a new user, a teammate or any CI run gets from `git clone` + the README.

A clone of the last commit (no DVC cache, no remote, no data/, no .venv) runs the README's `make run`
exactly as written; afterwards git and DVC both say nothing changed, because every output is a function of
what the commit records; and `make retrain` on that clone finds the champion main records and decides.
It tests the committed tree (HEAD), as CI's clean clone does: commit before running it locally.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from pipeline.config import load_params
from tests.support.paths import REPO_ROOT
from tests.support.repo import documented_overrides

# What a new machine does not have set: every override the code reads (docs/contracts.md), and anything that
# would point the run at our own environment. Unlike tests/support/repo.job_env, the clone gets no .venv on PATH.
SCRUBBED = documented_overrides() | {"VIRTUAL_ENV", "MAKEFLAGS"}


def run(cwd: Path, *cmd: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in SCRUBBED and not k.startswith(("GITHUB_", "DVC_"))}
    venv_bin = str(REPO_ROOT / ".venv" / "bin")
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if p != venv_bin)
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=1500)


def ok(result: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert result.returncode == 0, (
        f"{' '.join(result.args)} -> {result.returncode}\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    )
    return result


@pytest.mark.slow
def test_make_run_on_a_fresh_clone_reproduces_main_and_retrains(tmp_path: Path) -> None:
    clone = tmp_path / "clone"
    ok(run(tmp_path, "git", "clone", "-q", str(REPO_ROOT), str(clone)))

    if load_params(REPO_ROOT / "params.yaml").data is None:  # your own data: nothing in the clone rebuilds it
        if not _data_in_cache(REPO_ROOT):
            # No cache holds it here (a CI job without the remote's credential): the clone must stop at once with
            # the one line naming the ways to get the data, never run on other data.
            failed = run(clone, "make", "run")
            assert failed.returncode != 0
            assert "no DVC remote provided it" in failed.stderr and "dvc remote add" in failed.stderr
            assert not (clone / "model").exists()
            return
        # A teammate with a shared DVC cache: the clone reads this checkout's (`--local`: nothing tracked changes).
        ok(
            run(
                clone,
                str(REPO_ROOT / ".venv/bin/dvc"),
                "cache",
                "dir",
                "--local",
                str(REPO_ROOT / ".dvc/cache"),
            )
        )

    summary = ok(run(clone, "make", "run")).stdout

    assert "== Pipeline summary ==" in summary
    assert ok(run(clone, "git", "status", "--porcelain")).stdout == "", "make run changed the committed tree"
    stale = run(clone, ".venv/bin/dvc", "status", "-q")
    assert stale.returncode == 0, (
        f"dvc status after make run:\n{run(clone, '.venv/bin/dvc', 'status').stdout}"
    )

    ok(run(clone, "make", "retrain"))

    decision = json.loads((clone / "retrain" / "decision.json").read_text(encoding="utf-8"))
    assert decision["decision"] == "skip"  # no new data since the champion: nothing to propose
    assert decision["champion"]["source"].startswith("main (")


def _data_in_cache(root: Path) -> bool:
    """Whether root's DVC cache holds the directory data.dvc records (its .dir manifest)."""
    md5 = yaml.safe_load((root / "data.dvc").read_text(encoding="utf-8"))["outs"][0]["md5"]
    return (root / ".dvc/cache/files/md5" / md5[:2] / md5[2:]).is_file()
