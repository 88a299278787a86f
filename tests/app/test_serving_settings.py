"""docs/serving.md's settings table names every environment variable the service reads (app/*.py, including
gunicorn.conf.py), and nothing else."""

from __future__ import annotations

import ast
import re

from app import DEFAULTS
from tests.support.paths import REPO_ROOT

# a marker gunicorn.conf.py leaves for its own on_exit (it created the metrics directory), not a setting
NOT_SETTINGS = {"SERVE_OWNS_PROMETHEUS_DIR"}


def _is_environ(node: ast.AST) -> bool:
    return isinstance(node, ast.Attribute) and node.attr == "environ"


def _name(node: ast.AST, loops: dict[str, tuple[str, ...]]) -> tuple[str, ...]:
    """The variable name(s) a read names: a string, or the loop variable of `for v in ("A", "B")`."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return (node.value,)
    if isinstance(node, ast.Name) and node.id in loops:
        return loops[node.id]
    return (f"<{ast.unparse(node)}>",)


def environment_reads(source: str) -> set[str]:
    """Names read by os.environ.get/setdefault/[...], os.getenv and `in os.environ`."""
    tree = ast.parse(source)
    loops = {
        node.target.id: tuple(elt.value for elt in node.iter.elts)
        for node in ast.walk(tree)
        if isinstance(node, ast.For)
        and isinstance(node.target, ast.Name)
        and isinstance(node.iter, ast.Tuple)
    }
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.args:
            func = node.func
            if (func.attr in ("get", "setdefault") and _is_environ(func.value)) or func.attr == "getenv":
                names.update(_name(node.args[0], loops))
        elif isinstance(node, ast.Subscript) and _is_environ(node.value):
            names.update(_name(node.slice, loops))
        elif isinstance(node, ast.Compare) and any(_is_environ(c) for c in node.comparators):
            names.update(_name(node.left, loops))
    return names


def documented_settings() -> set[str]:
    text = (REPO_ROOT / "docs" / "serving.md").read_text(encoding="utf-8")
    section = text.split("## Settings (environment variables)", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    return {name for row in rows for name in re.findall(r"`([A-Z][A-Z0-9_]*)`", row.split("|")[1])}


def test_environment_reads_finds_every_form():
    source = (
        'import os\nos.environ.get("A")\nos.getenv("B")\nos.environ["C"]\n"D" in os.environ\n'
        'for v in ("E", "F"):\n    os.environ.setdefault(v, "1")\n'
    )
    assert environment_reads(source) == {"A", "B", "C", "D", "E", "F"}


def test_the_settings_table_lists_every_variable_the_service_reads():
    read: set[str] = set()
    for path in sorted((REPO_ROOT / "app").glob("*.py")):
        read |= environment_reads(path.read_text(encoding="utf-8"))
    # `<key>`: app/__init__.py's _from_env reads each key of DEFAULTS
    assert {name for name in read if name.startswith("<")} == {"<key>"}
    settings = {name for name in read if not name.startswith("<")} - NOT_SETTINGS | set(DEFAULTS)
    documented = documented_settings()
    assert settings - documented == set(), "read by app/ but missing from docs/serving.md's settings table"
    assert documented - settings == set(), "in docs/serving.md's settings table but read by nothing in app/"


def test_gunicorn_conf_describes_every_variable_it_reads():
    source = (REPO_ROOT / "app" / "gunicorn.conf.py").read_text(encoding="utf-8")
    docstring = ast.get_docstring(ast.parse(source)) or ""
    described = set(re.findall(r"^ {4}([A-Z][A-Z0-9_, ]*?)  ", docstring, flags=re.MULTILINE))
    described = {name.strip() for entry in described for name in entry.split(",")}
    assert environment_reads(source) - NOT_SETTINGS <= described
