"""A tiny model artifact for the serving tests, written by the pipeline's own training code.

`train_tiny_model` fits `pipeline.modeling.build_pipeline` (via `pipeline.train.train_model`) on the synthetic
snapshot from tests/support/factories.py, builds metadata.json with `pipeline.train.build_metadata` and saves it with
`mlcore.artifact.save_model`: the app under test loads it exactly as it loads the model `make run` trains.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from threadpoolctl import threadpool_limits

from mlcore.artifact import save_model
from pipeline.train import build_metadata, train_model
from tests.support.factories import default_params, make_snapshot, params_with


def train_tiny_model(
    model_dir: Path,
    model_type: str = "hist_gradient_boosting",
    rows: int = 600,
    max_iter: int = 30,
    nullable: tuple[str, ...] = (),
    invert_labels: bool = False,
    drop_features: tuple[str, ...] = (),
) -> dict[str, Any]:
    """`nullable`: features made nullable in the contract, with every 7th value missing (as pandas reads a
    nullable int column: float64 with NaN). `invert_labels`: trained on 1 - label, so the model's predicted
    probabilities are those of a model gone wrong (a canary whose predictions shifted). `drop_features`: left out
    of the contract (a model with another feature set)."""
    overrides: dict[str, Any] = {f"schema.features.{name}.nullable": True for name in nullable}
    if drop_features:
        features = default_params().schema.model_dump()["features"]
        overrides["schema.features"] = {k: v for k, v in features.items() if k not in drop_features}
    params = params_with(overrides) if overrides else default_params()
    params = params.model_copy(update={"model": params.model.model_copy(update={"type": model_type})})
    snapshot = make_snapshot(n=rows)
    for name in nullable:
        snapshot[name] = snapshot[name].astype("float64").where(snapshot.index % 7 != 0)
    if invert_labels:
        snapshot[params.schema.label] = 1 - snapshot[params.schema.label]
    cut1, cut2 = int(rows * 0.7), int(rows * 0.85)
    splits = {"train": snapshot.iloc[:cut1], "valid": snapshot.iloc[cut1:cut2], "test": snapshot.iloc[cut2:]}
    tuned = {"max_iter": max_iter}
    data_info = {
        "snapshot_sha256": "0" * 64,
        "rows": rows,
        "window_start": "2025-01-01",
        "window_end": "2025-12-31",
        "cutoff": "2025-12-31",
    }
    with threadpool_limits(1):  # OpenMP threads on a busy 2-core machine make a tiny fit take a minute
        pipe, test_metrics, fit_df = train_model(params, splits, tuned)
        metadata = build_metadata(params, pipe, fit_df, splits, tuned, test_metrics, data_info)
    return save_model(pipe, metadata, model_dir)
