"""Stage `prepare`: split the snapshot by time into train / validation / test windows.

The newest `prepare.test_days` are the test window, the `prepare.valid_days` before them the validation window,
everything older is training data: no model ever sees rows from after the window it is judged on.
Feature handling that must also happen at serving time lives in the model pipeline (pipeline.modeling).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from pipeline.config import PrepareParams, SchemaParams, load_params
from pipeline.errors import PipelineError, cli_entrypoint
from pipeline.io import atomic_write, read_json

SPLITS = ("train", "valid", "test")


def split_by_time(df: pd.DataFrame, schema: SchemaParams, prepare: PrepareParams) -> dict[str, pd.DataFrame]:
    time = pd.to_datetime(df[schema.time_column])
    newest = time.max()
    test_start = newest - pd.Timedelta(days=prepare.test_days)
    valid_start = test_start - pd.Timedelta(days=prepare.valid_days)
    masks = {
        "train": time <= valid_start,
        "valid": (time > valid_start) & (time <= test_start),
        "test": time > test_start,
    }
    columns = [schema.id_column, schema.time_column, *schema.feature_names, schema.label]
    splits = {}
    for name, mask in masks.items():
        part = df.loc[mask, columns].sort_values([schema.time_column, schema.id_column], kind="stable")
        labels = part[schema.label].nunique()
        if len(part) == 0 or labels < 2:
            raise PipelineError(
                f"prepare: the {name} window has {len(part)} rows and {labels} label class(es); it needs both "
                f"classes: change prepare.valid_days/test_days or widen extract.window_days"
            )
        splits[name] = part.reset_index(drop=True)
    return splits


def run_prepare(
    params_path: str | Path, snapshot: str | Path, validation: str | Path, out_dir: str | Path
) -> dict[str, pd.DataFrame]:
    params = load_params(params_path)
    if not read_json(validation).get("passed"):
        raise PipelineError(f"{validation}: the snapshot did not pass validation")
    splits = split_by_time(pd.read_parquet(snapshot), params.schema, params.prepare)
    for name, part in splits.items():
        atomic_write(
            Path(out_dir) / f"{name}.parquet", lambda tmp, part=part: part.to_parquet(tmp, index=False)
        )
    return splits


@cli_entrypoint
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--snapshot", required=True)
    parser.add_argument("--validation", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    splits = run_prepare(args.params, args.snapshot, args.validation, args.out)
    print("prepare: " + ", ".join(f"{k} {len(v)} rows" for k, v in splits.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
