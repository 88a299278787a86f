"""`make adopt`: make this repository your project from one data file (or a glob of them), CSV or Parquet.

    make adopt DATA=exports/loans.csv ID=loan_id TIME=applied_at LABEL=defaulted [NAME=loan-risk]
               [POSITIVE=yes] [DROP=a,b] [FORCE=1]

Reads the data, decides the contract, windows and floors (ops.adopt.infer, rules stated there), writes them into
params.yaml in place (comments, order and the `&floors` anchor kept; validated by pipeline.config before the
atomic replace), writes the data as Parquet under data/<table>/, records it with `dvc add data`, renames the
project when NAME is given (as `make project`), and prints what it decided and what to review.

The demo (params.yaml still has `data.regenerate`) is replaced without asking; an already adopted project, or
data/ holding changes data.dvc does not record, only with FORCE=1 (the earlier version stays in the DVC cache).
"""

from __future__ import annotations

import argparse
import glob
import io
import os
import re
import shutil
import tempfile
from pathlib import Path

import pandas as pd
from ruamel.yaml import YAML
from ruamel.yaml.scalarstring import LiteralScalarString

from mlcore.errors import PipelineError, cli_entrypoint
from ops import project as project_names
from ops.adopt.infer import (
    DEFAULT_FLOORS,
    MIN_WINDOW_POSITIVES,
    MIN_WINDOW_ROWS,
    Plan,
    clean_names,
    normalise,
    plan,
)
from ops.adopt.infer import extract_query as build_query
from ops.repo import dvc, run
from pipeline.config import load_params, parse_params
from pipeline.data import dir_md5


def read_data(pattern: str) -> pd.DataFrame:
    paths = sorted(glob.glob(pattern)) or ([pattern] if Path(pattern).is_file() else [])
    if not paths:
        raise PipelineError(f"DATA={pattern}: no such file (a CSV or Parquet file, or a glob of them)")
    frames = []
    for path in paths:
        try:
            if path.lower().endswith((".parquet", ".pq")):
                frames.append(pd.read_parquet(path))
            elif path.lower().endswith((".csv", ".csv.gz")):
                frames.append(pd.read_csv(path))
            else:
                raise PipelineError(
                    f"{path}: not .csv, .csv.gz or .parquet: convert it, or name it by its type"
                )
        except (OSError, ValueError) as exc:
            raise PipelineError(f"{path}: cannot be read: {str(exc).splitlines()[0]}") from exc
    return pd.concat(frames, ignore_index=True)


def table_name(pattern: str) -> str:
    stem = re.sub(r"\.(csv|parquet|pq)(\.gz)?$", "", Path(pattern).name.lower())
    name = re.sub(r"[^a-z0-9_]+", "_", stem).strip("_")
    return name if name and not name[0].isdigit() and "*" not in stem else "events"


def refuse_overwrite(root: Path, raw: dict, force: bool) -> None:
    """The demo may be replaced; anything else only with FORCE=1, saying what would be replaced."""
    if force:
        return
    if not (raw.get("data") or {}).get("regenerate"):
        raise PipelineError(
            "params.yaml is already your project (no data.regenerate): adopting again replaces its contract "
            "and data/ (data.dvc's current version stays in the DVC cache): run again with FORCE=1"
        )
    data_dvc = root / "data.dvc"
    if (root / "data").is_dir() and data_dvc.exists():
        recorded = YAML(typ="safe").load(data_dvc.read_text(encoding="utf-8"))["outs"][0]["md5"]
        if dir_md5(root / "data") != recorded:
            raise PipelineError(
                "data/ holds changes data.dvc does not record: `dvc add data` to keep them, "
                "or run again with FORCE=1 to replace them"
            )


def apply(raw, decided: Plan, table: str, name: str | None) -> None:
    """Write the decisions into the round-trip params mapping `raw`, in place."""
    raw["warehouse"]["table"] = table
    raw["warehouse"]["files"] = f"data/{table}/*.parquet"
    extract = raw["extract"]
    extract["query"] = LiteralScalarString(build_query(table, decided))
    extract["window_days"] = decided.window_days
    extract["warn_dropped_share"] = 0.2
    raw["schema"] = decided.schema
    prepare = raw["prepare"]
    prepare.update(
        valid_days=decided.valid_days,
        test_days=decided.test_days,
        min_window_rows=MIN_WINDOW_ROWS,
        min_window_positives=MIN_WINDOW_POSITIVES,
    )
    gate = raw["evaluate"]["gate"]  # the &floors anchor: cleared in place so the aliases follow
    for key in list(gate):
        del gate[key]
    gate.update(DEFAULT_FLOORS)
    # One home of the floors: promotion and monitoring alias evaluate.gate (as the template ships them).
    gate.yaml_set_anchor(gate.anchor.value or "floors", always_dump=True)
    raw["promotion"]["floors"] = gate
    raw["monitor"]["performance_floors"] = gate
    if name:
        raw["project"].update(
            name=name,
            title=f"{name.replace('-', ' ').capitalize()} model API",
            description=f"Predicts {decided.schema['label']} with the model trained by the pipeline.",
        )


def drop_section(text: str, key: str) -> str:
    """`text` without the top-level section `key` and the comment lines just above it; the comments above the
    next section stay with it (ruamel would attach them to the section it deletes)."""
    lines = text.splitlines(keepends=True)
    if f"{key}:\n" not in lines:
        return text
    start = lines.index(f"{key}:\n")
    while start > 0 and lines[start - 1].startswith("#"):
        start -= 1
    end = lines.index(f"{key}:\n") + 1
    while end < len(lines) and (lines[end].startswith(" ") or not lines[end].strip()):
        end += 1
    return "".join(lines[:start] + lines[end:])


def write_params(path: Path, yaml: YAML, raw) -> None:
    """Validate the edited params, then replace params.yaml atomically (never half-written). The demo's `data`
    section goes: nothing can regenerate your data."""
    buffer = io.StringIO()
    yaml.dump(raw, buffer)
    text = drop_section(buffer.getvalue(), "data")
    parse_params(YAML(typ="safe").load(text), source=f"{path} (as make adopt would write it)")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".params-", suffix=".yaml")
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
    os.replace(tmp, path)


def report(decided: Plan, renames: dict[str, str], table: str) -> str:
    lines = [
        "",
        "== make adopt: what it decided ==",
        f"data      {decided.rows} rows, {decided.positives} positives",
    ]
    if renames:
        lines.append("renamed   " + ", ".join(f"{a!r} -> {b}" for a, b in renames.items()))
    lines.append("features  (schema.features in params.yaml)")
    for feature, spec in decided.schema["features"].items():
        detail = (
            f"allowed {spec['allowed']}" if spec["type"] == "category" else f"{spec['min']} .. {spec['max']}"
        )
        lines.append(
            f"  {feature:<28} {spec['type']:<9}{detail}{'  nullable' if spec.get('nullable') else ''}"
        )
    for column, why in decided.left_out.items():
        lines.append(f"  left out {column}: {why}")
    lines.append(
        f"windows   extract.window_days {decided.window_days} (all the data), prepare.valid_days "
        f"{decided.valid_days}, prepare.test_days {decided.test_days}, schema.min_rows {decided.schema['min_rows']}"
    )
    for w in decided.windows:
        lines.append(f"  {w.name:<10} {w.rows:>7} rows {w.positives:>6} positives  {w.start} .. {w.end}")
    lines += [
        f"floors    evaluate.gate {DEFAULT_FLOORS} (better than chance; also promotion and monitoring)",
        f"data      data/{table}/part-0.parquet, recorded in data.dvc",
        "",
        "Review before you commit:",
        "  - the ranges and categories: serving rejects requests outside them (widen where the future may go)",
        "  - evaluate.gate: set the floors your use needs (metric names: docs/pipeline.md)",
        "  - extract.query: the columns and any derived features; WAREHOUSE_URL for a real warehouse",
        "Next: make run; git add params.yaml data.dvc dvc.lock metrics plots deploy;",
        "      dvc remote add -d storage <url> && dvc push   (docs/data.md, Remotes)",
    ]
    return "\n".join(lines)


def adopt(
    root: Path,
    data: str,
    id_col: str,
    time_col: str,
    label_col: str,
    name: str | None = None,
    positive: str | None = None,
    drop: set[str] | None = None,
    force: bool = False,
) -> str:
    params_path = root / "params.yaml"
    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.width = 4096
    if not params_path.is_file():
        raise PipelineError(f"{params_path}: not found: run make adopt in the repository's root")
    raw = yaml.load(params_path.read_text(encoding="utf-8"))
    refuse_overwrite(root, raw, force)
    frame, renames = clean_names(read_data(data))
    id_col, time_col, label_col = (renames.get(c, c) for c in (id_col, time_col, label_col))
    frame = normalise(frame, id_col, time_col, label_col, positive)
    decided = plan(frame, id_col, time_col, label_col, {renames.get(c, c) for c in drop or set()})
    table = table_name(data)
    columns = [id_col, time_col, *decided.schema["features"], label_col]
    apply(raw, decided, table, name)
    # The new data is written aside first: a file that cannot be written leaves params.yaml and data/ as they were.
    staged = Path(tempfile.mkdtemp(dir=root, prefix=".adopt-data-"))
    try:
        (staged / table).mkdir()
        frame[columns].to_parquet(staged / table / "part-0.parquet", index=False)
    except (OSError, ValueError) as exc:
        shutil.rmtree(staged, ignore_errors=True)
        raise PipelineError(f"the data cannot be written as Parquet: {str(exc).splitlines()[0]}") from exc
    try:
        write_params(params_path, yaml, raw)
    except Exception:
        shutil.rmtree(staged, ignore_errors=True)
        raise
    shutil.rmtree(root / "data", ignore_errors=True)
    staged.rename(root / "data")
    run(dvc("add", "-q", "data"), root)
    if name:
        project_names.write(load_params(params_path).project, root)
    return report(decided, renames, table)


@cli_entrypoint
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.adopt", description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="a CSV or Parquet file, or a glob of them")
    parser.add_argument("--id", required=True, help="the column identifying an entity (with TIME: one row)")
    parser.add_argument("--time", required=True, help="the column of event times (the pipeline splits by it)")
    parser.add_argument("--label", required=True, help="the 0/1 (or true/false) column to predict")
    parser.add_argument("--name", default=None, help="the project's name (a DNS label, e.g. loan-risk)")
    parser.add_argument(
        "--positive", default=None, help="the label value that means 1, for a two-valued label"
    )
    parser.add_argument("--drop", default="", help="comma-separated columns that are not features")
    parser.add_argument(
        "--force", action="store_true", help="replace an already adopted project's contract and data"
    )
    parser.add_argument("--root", type=Path, default=Path("."))
    args = parser.parse_args(argv)
    drop = {c.strip() for c in args.drop.split(",") if c.strip()}
    print(
        adopt(
            args.root,
            args.data,
            args.id,
            args.time,
            args.label,
            args.name or None,
            args.positive or None,
            drop,
            args.force,
        )
    )
    return 0
