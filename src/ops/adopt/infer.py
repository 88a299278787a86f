"""What `make adopt` decides from the user's data: the contract, the windows, the floors. Pure: a DataFrame in,
a `Plan` out (or one AdoptError naming what is wrong and how to fix it); ops.adopt.run writes it.

Rules, stated once (docs/data.md, "Adopt your data"):
- Features: every column but id, time and label (and DROP). Nullability and the observed min/max come from
  pandera's schema inference (`pandera.infer_schema`); the type and the categories are decided here. Whole
  numbers stored as floats because of missing values (pandas' int-with-NaN) are `int, nullable: true`; 0/1 flags
  and booleans are `int` 0..1. Other ranges are
  widened by `RANGE_MARGIN` of the observed span on each side, never below 0 for data that is never negative.
  Text with at most `MAX_CATEGORIES` distinct values is a category; with more it is left out (an id or free text),
  as are all-missing and constant columns and timestamps other than TIME: each with the reason printed.
- Windows: the test and validation windows are the newest days holding `WINDOW_SHARE` of the rows each; each of
  train, validation and test must hold at least `MIN_WINDOW_ROWS` rows and `MIN_WINDOW_POSITIVES` positives of
  both classes, or adoption is refused with the counts. The training window covers all the data today.
- Floors: evaluate.gate (the `&floors` anchor promotion and monitoring reuse) is reset to `DEFAULT_FLOORS`, a
  better-than-chance floor only: the demo's floors were set for the demo's data.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import pandera.pandas as pa

from mlcore.errors import PipelineError

RANGE_MARGIN = 0.1
MAX_CATEGORIES = 20
WINDOW_SHARE = 0.15
MIN_WINDOW_ROWS = 50
MIN_WINDOW_POSITIVES = 10
MIN_ROWS_SHARE = 0.5  # schema.min_rows: half of today's rows (a much smaller extract means something broke)
DEFAULT_FLOORS = {"roc_auc": 0.6}


class AdoptError(PipelineError):
    """The data cannot become the project's data as it is; the message says what to change."""


@dataclass(frozen=True)
class Window:
    name: str
    rows: int
    positives: int
    start: str
    end: str


@dataclass(frozen=True)
class Plan:
    schema: dict[str, Any]
    valid_days: int
    test_days: int
    window_days: int
    windows: list[Window]
    rows: int
    positives: int
    left_out: dict[str, str] = field(default_factory=dict)
    floors: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_FLOORS))


def clean_names(df: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, str]]:
    """Column names as plain identifiers (lowercase letters, digits, `_`): they become SQL columns, params.yaml
    keys and the API's request fields. Returns the frame and the renames."""
    renames: dict[str, str] = {}
    for name in df.columns:
        clean = re.sub(r"[^0-9a-z]+", "_", str(name).strip().lower()).strip("_") or "column"
        if clean[0].isdigit():
            clean = f"f_{clean}"
        if clean != name:
            renames[str(name)] = clean
    taken = [renames.get(str(c), str(c)) for c in df.columns]
    clash = sorted({c for c in taken if taken.count(c) > 1})
    if clash:
        raise AdoptError(f"columns {clash} would have the same name after cleaning: rename them in the data")
    return df.rename(columns=renames), renames


def normalise(
    df: pd.DataFrame, id_col: str, time_col: str, label_col: str, positive: str | None = None
) -> pd.DataFrame:
    """The frame as the warehouse will hold it: time as naive UTC timestamps, the label as 0/1, booleans as 0/1.
    Refuses missing columns, unparseable times, a label that is not binary and duplicate (id, time) rows."""
    missing = [c for c in (id_col, time_col, label_col) if c not in df.columns]
    if missing:
        raise AdoptError(
            f"column(s) {missing} not in the data (columns: {list(df.columns)}): check ID, TIME, LABEL"
        )
    df = df.copy()
    times = pd.to_datetime(df[time_col], errors="coerce", utc=True)
    bad = times.isna()
    if bad.any():
        example = df.loc[bad, time_col].iloc[0]
        raise AdoptError(
            f"TIME column '{time_col}': {int(bad.sum())} of {len(df)} values are missing or not timestamps "
            f"(e.g. {example!r}): the pipeline splits by time; give a column of dates or timestamps"
        )
    df[time_col] = times.dt.tz_localize(None).astype("datetime64[us]")
    df[label_col] = _binary_label(df[label_col], label_col, positive)
    if df[id_col].isna().any():
        raise AdoptError(
            f"ID column '{id_col}': {int(df[id_col].isna().sum())} missing values: every row needs an id"
        )
    dup = df.duplicated([id_col, time_col], keep=False)
    if dup.any():
        first = df.loc[dup, [id_col, time_col]].iloc[0]
        raise AdoptError(
            f"{int(dup.sum())} rows share an (id, time) pair, e.g. ({first[id_col]!r}, {first[time_col]}): one row "
            f"per '{id_col}' and '{time_col}' is the contract; de-duplicate the data or choose other ID/TIME columns"
        )
    for name in df.columns:
        if pd.api.types.is_bool_dtype(df[name]):
            df[name] = df[name].astype("Int64")
    return df.sort_values([time_col, id_col], kind="stable").reset_index(drop=True)


def _binary_label(values: pd.Series, name: str, positive: str | None) -> pd.Series:
    if values.isna().any():
        raise AdoptError(
            f"LABEL column '{name}': {int(values.isna().sum())} missing values: drop unlabelled rows"
        )
    distinct = sorted(values.astype(str).unique())
    if positive is not None:
        if positive not in distinct or len(distinct) != 2:
            raise AdoptError(
                f"LABEL column '{name}' has values {distinct[:10]}: POSITIVE={positive!r} must be one of exactly two"
            )
        return (values.astype(str) == positive).astype("int64")
    if pd.api.types.is_bool_dtype(values):
        return values.astype("int64")
    if set(distinct) <= {"0", "1", "0.0", "1.0"} and pd.api.types.is_numeric_dtype(values):
        return values.astype("int64")
    raise AdoptError(
        f"LABEL column '{name}' has values {distinct[:10]}: the label must be 0/1 or true/false; name the positive "
        "class with POSITIVE=<value> when it has exactly two values"
    )


def _whole(values: pd.Series) -> bool:
    present = values.dropna()
    return bool(len(present)) and bool((present == present.round()).all())


def infer_features(
    df: pd.DataFrame, exclude: set[str], drop: set[str]
) -> tuple[dict[str, Any], dict[str, str]]:
    """The `schema.features` mapping and the columns left out with why."""
    features: dict[str, Any] = {}
    left_out = {name: "DROP" for name in df.columns if name in drop}
    candidates = [c for c in df.columns if c not in exclude and c not in drop]
    inferred = pa.infer_schema(df[candidates]).columns if candidates else {}
    for name in candidates:
        values = df[name]
        present = values.dropna()
        column = inferred[name]
        if present.empty:
            left_out[name] = "every value is missing"
        elif present.nunique() == 1:
            left_out[name] = f"one value only ({present.iloc[0]!r}): it cannot tell rows apart"
        elif pd.api.types.is_datetime64_any_dtype(values):
            left_out[name] = "a timestamp other than TIME (derive numeric features from it in extract.query)"
        elif pd.api.types.is_numeric_dtype(values):
            features[name] = _numeric_spec(values, column)
        elif present.nunique() <= MAX_CATEGORIES:
            spec: dict[str, Any] = {"type": "category", "allowed": sorted(present.astype(str).unique())}
            if column.nullable:
                spec["nullable"] = True
            features[name] = spec
        else:
            left_out[name] = (
                f"{present.nunique()} distinct text values (more than {MAX_CATEGORIES}): an id or free text, "
                "not a category"
            )
    return features, left_out


def _numeric_spec(values: pd.Series, column: pa.Column) -> dict[str, Any]:
    stats = {k: v for check in column.checks for k, v in (check.statistics or {}).items()}
    low, high = float(stats["min_value"]), float(stats["max_value"])
    integer = pd.api.types.is_integer_dtype(values) or (values.isna().any() and _whole(values))
    margin = (high - low) * RANGE_MARGIN
    lower, upper = low - margin, high + margin
    if low >= 0:
        lower = max(0.0, lower)
    spec: dict[str, Any] = {"type": "int" if integer else "float"}
    if integer and set(values.dropna().unique()) <= {0, 1}:
        spec.update(min=0, max=1)  # a flag (or a boolean, stored as 0/1): exactly its two values
    elif integer:
        spec.update(min=math.floor(lower), max=math.ceil(upper))
    else:
        spec.update(min=round(lower, 6), max=round(upper, 6))
    if column.nullable:
        spec["nullable"] = True
    return spec


def _days_holding(times: pd.Series, end: pd.Timestamp, rows: int) -> int:
    """The fewest whole days before `end` whose window (end - days, end] holds at least `rows` rows."""
    newest_first = times.sort_values(ascending=False).reset_index(drop=True)
    if rows > len(newest_first):
        return math.ceil((end - newest_first.iloc[-1]) / pd.Timedelta(days=1)) + 1
    edge = newest_first.iloc[rows - 1]
    return max(1, math.ceil((end - edge) / pd.Timedelta(days=1) + 1e-9))


def plan(df: pd.DataFrame, id_col: str, time_col: str, label_col: str, drop: set[str] | None = None) -> Plan:
    """The contract and windows for a normalised frame (`normalise`)."""
    features, left_out = infer_features(df, {id_col, time_col, label_col}, drop or set())
    if not features:
        raise AdoptError(f"no usable feature column (left out: {left_out}): a model needs at least one")
    n, positives = len(df), int(df[label_col].sum())
    times, newest = df[time_col], df[time_col].max()
    span_days = math.ceil((newest - times.min()) / pd.Timedelta(days=1)) + 1
    share = max(MIN_WINDOW_ROWS, math.ceil(n * WINDOW_SHARE))
    test_days = _days_holding(times, newest, share)
    test_start = newest - pd.Timedelta(days=test_days)
    valid_days = (
        _days_holding(times[times < test_start], test_start, share) if (times < test_start).any() else 1
    )
    valid_start = test_start - pd.Timedelta(days=valid_days)
    masks = {
        "train": times < valid_start,
        "validation": (times >= valid_start) & (times < test_start),
        "test": times >= test_start,
    }
    windows = [
        Window(
            name,
            int(mask.sum()),
            int(df.loc[mask, label_col].sum()),
            str(times[mask].min()) if mask.any() else "-",
            str(times[mask].max()) if mask.any() else "-",
        )
        for name, mask in masks.items()
    ]
    short = [
        w
        for w in windows
        if w.rows < MIN_WINDOW_ROWS or min(w.positives, w.rows - w.positives) < MIN_WINDOW_POSITIVES
    ]
    if short:
        counts = ", ".join(f"{w.name} {w.rows} rows / {w.positives} positives" for w in windows)
        raise AdoptError(
            f"too little data to judge a model: {n} rows with {positives} positives over {span_days} days split "
            f"into {counts}; each of train, validation and test needs at least {MIN_WINDOW_ROWS} rows and "
            f"{MIN_WINDOW_POSITIVES} of each class (add rows, or a longer history)"
        )
    schema = {
        "id_column": id_col,
        "time_column": time_col,
        "label": label_col,
        "min_rows": max(3 * MIN_WINDOW_ROWS, math.floor(n * MIN_ROWS_SHARE)),
        "max_label_null_fraction": 0.0,
        "features": features,
    }
    return Plan(schema, valid_days, test_days, span_days, windows, n, positives, left_out)


def extract_query(table: str, plan: Plan) -> str:
    """The warehouse query: the contract's columns in the window, in time order."""
    s = plan.schema
    names = [f'"{c}"' for c in [s["id_column"], s["time_column"], *s["features"], s["label"]]]
    rows, line = [], []
    for name in names:  # a few columns per line, as a person would write it
        if line and len(", ".join([*line, name])) > 96:
            rows.append(", ".join(line))
            line = []
        line.append(name)
    columns = ",\n       ".join([*rows, ", ".join(line)])
    time, id_ = f'"{s["time_column"]}"', f'"{s["id_column"]}"'
    return (
        f"SELECT {columns}\nFROM {table}\n"
        f"WHERE {time} >= :window_start AND {time} < :window_end\nORDER BY {time}, {id_}\n"
    )
