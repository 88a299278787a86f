"""Throw-away git repositories for the delivery tests: `git` with a fixed identity, and a `gh` stand-in."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

GIT_ID = ["-c", "user.name=t", "-c", "user.email=t@example.invalid"]


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *GIT_ID, *args], cwd=repo, check=True, capture_output=True, text=True
    ).stdout


def fake_gh(tmp_path: Path) -> Path:
    """A `gh` on PATH that records its arguments and knows no pull requests (GitHub cannot be reached)."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    log = tmp_path / "gh.log"
    script = bindir / "gh"
    script.write_text(
        f"#!{sys.executable}\nimport json, sys\n"
        f"open({str(log)!r}, 'a').write(json.dumps(sys.argv[1:]) + '\\n')\n"
        "print('[]' if sys.argv[1:3] == ['pr', 'list'] else 'https://github.invalid/pr/1')\n"
    )
    script.chmod(0o755)
    return log
