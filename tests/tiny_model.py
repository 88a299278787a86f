"""A small real model for tests that serve one (image, smoke): the pipeline's own train code on tiny data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipeline.artifact import save_model
from pipeline.prepare import split_by_time
from pipeline.train import build_metadata, train_model
from tests.factories import default_params, make_snapshot


def train_tiny_model(model_dir: Path, rows: int = 600, seed: int = 0) -> dict[str, Any]:
    """Split, fit and save a model as `pipeline.train` does, on `rows` synthetic rows; returns metadata."""
    params = default_params()
    snapshot = make_snapshot(n=rows, seed=seed)
    splits = split_by_time(snapshot, params.schema, params.prepare)
    pipe, test_metrics, fit_df = train_model(params, splits, tuned={})
    metadata = build_metadata(params, pipe, fit_df, splits, {}, test_metrics, {"rows": len(snapshot)})
    return save_model(pipe, metadata, model_dir)
