"""The README's tree is the code's: every folder a clone holds is in it, and every folder it names exists."""

from __future__ import annotations

import re
import subprocess

from tests.support.paths import REPO_ROOT

README = (REPO_ROOT / "README.md").read_text(encoding="utf-8")


def _tree() -> list[str]:
    """The paths that start the lines of the README's Layout block (`a/, b/` lines give both)."""
    block = README.split("## Layout", 1)[1].split("```", 2)[1]
    paths = []
    for line in block.splitlines():
        if line and not line.startswith(" "):
            head = re.split(r"\s{2,}", line, maxsplit=1)[0]
            paths += [p.strip() for p in head.split(",")]
    return paths


def _tracked_folders() -> set[str]:
    files = subprocess.run(
        ["git", "ls-files"], cwd=REPO_ROOT, check=True, capture_output=True, text=True
    ).stdout.splitlines()
    folders = {f.split("/")[0] + "/" for f in files if "/" in f}
    packages = {"/".join(f.split("/")[:2]) + "/" for f in files if f.startswith("src/") and f.count("/") >= 2}
    return (folders - {"src/"}) | packages


def test_every_tracked_folder_is_in_the_readme_tree():
    named = {p.rstrip("/") + "/" for p in _tree()}
    assert _tracked_folders() - named == set()


def test_every_tracked_path_the_tree_names_exists():
    # written by a command (git-ignored, or lineage/: committed with the first promoted retrain)
    made_later = {
        "data/",
        "artifacts/",
        "model/",
        "report/",
        "monitoring/",
        "retrain/",
        ".venv/",
        ".optuna/",
        "lineage/",
    }
    missing = [p for p in _tree() if p not in made_later and not (REPO_ROOT / p).exists()]
    assert missing == []
