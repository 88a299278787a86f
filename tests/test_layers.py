"""The folders are the architecture: imports run one way, features stand alone, no cycle is hidden.

    app  ->  mlcore  <-  pipeline  <-  ops        demo -> pipeline, mlcore        (nothing imports demo)

`mlcore` is what the service and the pipeline share (the image copies only it); `pipeline` is exactly the DVC
stages; `ops/<feature>` is one lifecycle job a fork may delete with its mk file and workflow, so no other
feature imports it, except through an optional seam (a module-level `try: ... except ModuleNotFoundError`).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.support.paths import REPO_ROOT

ROOTS = {
    "mlcore": "src/mlcore",
    "pipeline": "src/pipeline",
    "demo": "src/demo",
    "ops": "src/ops",
    "app": "app",
}
ALLOWED = {
    "mlcore": {"mlcore"},
    "pipeline": {"mlcore", "pipeline"},
    "demo": {"mlcore", "pipeline", "demo"},
    "ops": {"mlcore", "pipeline", "ops"},
    "app": {"mlcore", "app"},
}
SHARED_OPS = {"ops.repo", "ops.github", "ops.lineage", "ops.project"}  # plumbing every ops feature may use


def _module(path: Path) -> str:
    rel = path.relative_to(REPO_ROOT / ("" if path.is_relative_to(REPO_ROOT / "app") else "src"))
    parts = list(rel.with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> list[tuple[str, str]]:
    """(imported project module, where: 'top' | 'optional' | 'function') for each import in the file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []

    def add(node: ast.AST, where: str) -> None:
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            return
        found.extend((n, where) for n in names if n.split(".")[0] in ROOTS)

    for node in tree.body:
        if isinstance(node, ast.Try) and any(
            isinstance(h.type, ast.Name) and h.type.id in ("ModuleNotFoundError", "ImportError")
            for h in node.handlers
        ):
            for inner in node.body:
                add(inner, "optional")
        elif isinstance(node, ast.Import | ast.ImportFrom):
            add(node, "top")
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            for inner in ast.walk(node):
                add(inner, "function")
    return found


FILES = sorted(p for root in ROOTS.values() for p in (REPO_ROOT / root).rglob("*.py"))
GRAPH = {_module(p): _imports(p) for p in FILES}


def _feature(module: str) -> str | None:
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "ops" and module not in SHARED_OPS and len(parts) > 1 else None


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_imports_run_one_way_and_features_stand_alone(module):
    package = module.split(".")[0]
    for target, where in GRAPH[module]:
        assert target.split(".")[0] in ALLOWED[package], f"{module} imports {target}: against the layers"
        mine, theirs = _feature(module), _feature(target)
        if mine and theirs and mine != theirs:
            assert where == "optional", (
                f"{module} imports another feature, {target}, without an optional seam"
            )
        if target.split(".")[0] != package:
            assert where != "function", f"{module} imports {target} inside a function: import it at the top"


def test_no_import_cycle_between_modules():
    edges = {m: {t for t, where in imports if t in GRAPH and t != m} for m, imports in GRAPH.items()}
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(edges[node]):
            assert state.get(nxt) != 1, "import cycle: " + " -> ".join([*path, node, nxt])
            if nxt not in state:
                visit(nxt, [*path, node])
        state[node] = 2

    for module in sorted(edges):
        if module not in state:
            visit(module, [])


def test_the_graph_covers_every_package():
    assert {m.split(".")[0] for m in GRAPH} == set(ROOTS)
