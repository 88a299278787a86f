"""Every environment variable the pipeline, the jobs and the tools read is in docs/contracts.md's one table."""

from __future__ import annotations

import re

from tests.support.paths import REPO_ROOT
from tests.support.repo import documented_overrides

# os.environ["X"], os.environ.get("X"), env.get("X") on a copy of os.environ, os.getenv("X"), NAME_ENV = "X"
READ = re.compile(
    r"""(?:environ(?:\.get)?|getenv|env\.get)\(?\[?\s*["']([A-Z][A-Z0-9_]+)["']|_ENV\s*=\s*["']([A-Z][A-Z0-9_]+)["']"""
)


SYSTEM = {"PATH", "HOME"}  # the process's own, extended or passed on, never a setting


def _read_in(folder: str) -> set[str]:
    names = set()
    for path in (REPO_ROOT / folder).rglob("*.py"):
        for match in READ.finditer(path.read_text(encoding="utf-8")):
            names.add(match.group(1) or match.group(2))
    return names


def test_every_variable_the_code_reads_is_documented_once():
    read = _read_in("src") | _read_in("tools")
    assert read, "the pattern found nothing: it no longer matches how the code reads the environment"
    assert read - SYSTEM - documented_overrides() == set()


def test_the_table_names_no_variable_the_code_does_not_use():
    used = set()
    for folder in ("src", "tools"):
        for path in (REPO_ROOT / folder).rglob("*.py"):
            text = path.read_text(encoding="utf-8")
            used |= {name for name in documented_overrides() if f'"{name}"' in text}
    assert documented_overrides() - used == set()
