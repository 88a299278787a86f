"""Which source files a pipeline stage runs: the rule behind dvc.yaml's `deps:` and the model's code hash.

A stage's code is its module plus every project module it imports, transitively (found by reading the
imports, not by running them). dvc.yaml lists exactly those files under the stage's `deps:`, so editing any
of them re-runs the stage and editing anything else does not. `python -m pipeline.sources check dvc.yaml`
(run by `make lint` and the tests) fails when a stage's list differs; `python -m pipeline.sources list
pipeline.train` prints what to write there.

`code_sha256(module)` hashes those files' contents: train stores it in metadata.json, so a served model names
the exact code that produced it with a value that does not change between machines or runs.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import re
from pathlib import Path

import yaml

from mlcore.errors import PipelineError, cli_entrypoint

PACKAGE = "pipeline"  # the package whose modules dvc.yaml runs
# The packages a stage may import: its own and the shared core. Imports of anything else (ops, demo) are not
# stage code and are not followed; tests/test_layers.py makes sure a stage never imports them.
STAGE_PACKAGES = (PACKAGE, "mlcore")
SRC = Path(__file__).resolve().parents[1]  # src/, the folder that holds the packages
_STAGE_MODULE = re.compile(r"python -m ([A-Za-z_][\w.]*)")


def _module_path(module: str) -> Path | None:
    base = SRC.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imports(path: Path) -> set[str]:
    """The project modules a file imports, at any depth of the file (function-level imports count too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            # `from pipeline import io` names a module; `from mlcore.io import x` names a member of one.
            names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
        else:
            continue
        found.update(n for n in names if n.split(".")[0] in STAGE_PACKAGES and _module_path(n))
    return found


def stage_files(module: str) -> list[Path]:
    """The module's file and every project file it imports, transitively; sorted, package __init__ omitted."""
    if _module_path(module) is None:
        raise PipelineError(f"{module}: no such module under {SRC}")
    seen: set[str] = set()
    todo = [module]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo.extend(_imports(_module_path(name)) - seen)
    # A package's __init__ runs too, but holds only a docstring here: listing it would re-run every stage.
    return sorted(p for p in map(_module_path, seen) if p.name != "__init__.py")


def code_sha256(module: str) -> str:
    """sha256 over the relative paths and contents of `stage_files(module)`."""
    digest = hashlib.sha256()
    for path in stage_files(module):
        digest.update(path.relative_to(SRC).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def stage_modules(dvc_yaml: dict) -> dict[str, str]:
    """Stage name -> the module its `cmd` runs (`python -m <module>`), for stages that run project code."""
    found = {}
    for name, stage in (dvc_yaml.get("stages") or {}).items():
        match = _STAGE_MODULE.search(str(stage.get("cmd", "")))
        if match and match.group(1).split(".")[0] == PACKAGE:
            found[name] = match.group(1)
    return found


def dependency_problems(spec: dict, root: Path, name: str = "dvc.yaml") -> list[str]:
    """One line per stage of a parsed dvc.yaml (in `root`) whose source `deps:` differ from its imports."""
    problems = []
    for stage, module in stage_modules(spec).items():
        wanted = {p.relative_to(root).as_posix() for p in stage_files(module)}
        listed = {
            d for d in spec["stages"][stage].get("deps", []) if isinstance(d, str) and d.endswith(".py")
        }
        missing, extra = sorted(wanted - listed), sorted(listed - wanted)
        if missing or extra:
            fix = "; ".join(
                [
                    *([f"add {', '.join(missing)}"] if missing else []),
                    *([f"remove {', '.join(extra)}"] if extra else []),
                ]
            )
            problems.append(f"{name}: stage '{stage}' runs {module}, so its deps must list its code: {fix}")
    return problems


@cli_entrypoint
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    listing = sub.add_parser("list", help="print the source files a module runs (its dvc.yaml deps)")
    listing.add_argument("module")
    check = sub.add_parser("check", help="exit 1 when a stage's deps in dvc.yaml differ from its imports")
    check.add_argument("dvc_yaml", nargs="?", default="dvc.yaml", type=Path)
    args = parser.parse_args(argv)
    if args.command == "list":
        for path in stage_files(args.module):
            print(path.relative_to(SRC.parent).as_posix())
        return 0
    path = args.dvc_yaml.resolve()
    try:
        spec = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise PipelineError(f"{args.dvc_yaml}: cannot read it ({' '.join(str(exc).split())})") from exc
    problems = dependency_problems(spec, path.parent, args.dvc_yaml.name)
    for line in problems:
        print(line)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
