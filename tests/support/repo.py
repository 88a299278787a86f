"""The end-to-end tests' one harness: a copy of this repository to run jobs in, and how to run them there.

Jobs run as a user would run them (`python -m ...`, `dvc`, `make`) in a subprocess whose environment is this
one minus every override the code reads (docs/contracts.md, "Environment overrides"), so a developer's or a CI
runner's settings never change what a test sees; a test passes the overrides it means explicitly.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from tests.support.paths import REPO_ROOT, TEST_PARAMS

BIN = Path(sys.executable).parent


def documented_overrides() -> set[str]:
    """The variables of docs/contracts.md's "Environment overrides" table."""
    text = (REPO_ROOT / "docs/contracts.md").read_text(encoding="utf-8")
    table = text.split("## Environment overrides", 1)[1].split("\n## ", 1)[0]
    return {
        name
        for row in table.splitlines()
        if row.startswith("| `")
        for name in re.findall(r"`([A-Z][A-Z0-9_]+)`", row.split("|")[1])
    }


def job_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This environment without the documented overrides, with this interpreter's tools first on PATH."""
    scrubbed = documented_overrides()
    env = {k: v for k, v in os.environ.items() if k not in scrubbed}
    env.update(PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}", PYTHONHASHSEED="0")
    return {**env, **(extra or {})}


def run(
    cmd: list[str] | tuple[str, ...],
    cwd: Path,
    env: dict[str, str] | None = None,
    ok: tuple[int, ...] = (0,),
    timeout: float | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run `cmd` in `cwd` with `job_env(env)`; an exit status outside `ok` fails the test with the output's tail."""
    result = subprocess.run(
        list(cmd), cwd=cwd, env=job_env(env), capture_output=True, text=True, timeout=timeout, check=False
    )
    assert result.returncode in ok, (
        f"{' '.join(map(str, cmd))} -> {result.returncode}\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    )
    return result


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """`base` with `override`'s keys replaced, nested mappings merged key by key."""
    return {
        k: merge(base[k], v) if isinstance(v, dict) and isinstance(base.get(k), dict) else v
        for k, v in {**base, **override}.items()
    }


def project_params(override: dict[str, Any] | None = None) -> dict[str, Any]:
    """The test project's params (tests/support/params.yaml, never the repository's), merged with `override`."""
    params = yaml.safe_load(TEST_PARAMS.read_text(encoding="utf-8"))
    return merge(params, override or {})


def tiny_params() -> dict[str, Any]:
    """The test project's params, shrunk: five months of 700 rows, no search, short windows."""
    params = project_params()
    params["data"].update(start_month="2025-01", months=5, rows_per_month=700)
    params["extract"]["window_days"] = 400
    params["prepare"].update(valid_days=20, test_days=20)
    params["tune"]["n_trials"] = 0
    params["model"]["defaults"]["max_iter"] = 60
    params["evaluate"].update(importance_repeats=1, gate={"roc_auc": 0.55})
    params["promotion"].update(
        min_improvement=0.01, floors={"roc_auc": 0.55}, max_regression={"log_loss": 0.05}
    )
    return params


def write_params(repo: Path, params: dict[str, Any]) -> None:
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")


def copy_tracked(dest: Path, skip: tuple[str, ...] = ("data/", "data.dvc", "docs/")) -> Path:
    """The files git tracks here (not those under `skip`), copied to `dest`: a clone without history, with the
    test project's params as its params.yaml (the repository's own params.yaml and data never reach a copy)."""
    files = subprocess.run(["git", "ls-files", "-z"], cwd=REPO_ROOT, capture_output=True, check=True).stdout
    for rel in filter(None, files.decode().split("\0")):
        src = REPO_ROOT / rel
        if src.is_file() and not rel.startswith(skip):
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    shutil.copy2(TEST_PARAMS, dest / "params.yaml")
    return dest


def git_commit_all(repo: Path, message: str) -> None:
    run(["git", "add", "-A"], repo)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-qm", message], repo)


def demo_repo(dest: Path, params: dict[str, Any]) -> Path:
    """`copy_tracked` with `params`, fresh demo data under DVC, all committed on `main`."""
    copy_tracked(dest)
    write_params(dest, params)
    run(["git", "init", "-q", "-b", "main"], dest)
    run([sys.executable, "-m", "demo.generate", "--params", "params.yaml"], dest)
    run([str(BIN / "dvc"), "add", "-q", "data"], dest)
    git_commit_all(dest, "small copy")
    return dest


def venv_alias(tmp_path: Path) -> Path:
    """A venv directory for a copy's Makefile that reuses this interpreter's packages: `make` finds it up to
    date and never reinstalls (which would point the editable install at the copy)."""
    real = BIN.parent
    alias = tmp_path / "venv"
    alias.mkdir()
    for name in ("bin", "lib", "include"):
        if (real / name).exists():
            (alias / name).symlink_to(real / name)
    shutil.copy2(real / "pyvenv.cfg", alias / "pyvenv.cfg")
    (alias / ".installed").touch()
    return alias
