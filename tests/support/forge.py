"""Hostile and damaged model artifacts, made from a good one the way an attacker with write access would.

A forger recomputes the hashes the artifact records (`reseal`: the model file's sha256, then model_version), so
these artifacts pass those checks and reach the ones behind them (types, trees, the typed metadata schema).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlcore.artifact import MODEL_FILE, derive_version, dumps_deterministic, load_model


def copy_model(model_dir: Path, tmp_path: Path) -> Path:
    target = tmp_path / "model"
    shutil.copytree(model_dir, target)
    return target


def write_metadata(path: Path, metadata: dict[str, Any], reseal: bool = True) -> None:
    if reseal:
        metadata["artifact"]["sha256"] = hashlib.sha256((path / MODEL_FILE).read_bytes()).hexdigest()
        metadata["model_version"] = derive_version(metadata)
    (path / "metadata.json").write_text(json.dumps(metadata))


def edit_metadata(path: Path, change: Callable[[dict[str, Any]], Any], reseal: bool = True) -> None:
    """Apply `change` to metadata.json; resealed (hashes recomputed) unless `reseal` is False."""
    metadata = json.loads((path / "metadata.json").read_text())
    change(metadata)
    write_metadata(path, metadata, reseal)


def replace_model(path: Path, estimator: Any) -> None:
    """Write `estimator` as the model file (without save_model's type check) and reseal metadata.json."""
    (path / MODEL_FILE).write_bytes(dumps_deterministic(estimator))
    edit_metadata(path, lambda m: None)


def edit_classifier(path: Path, change: Callable[[Any], Any]) -> None:
    """Apply `change` to the fitted classifier (the pipeline's last step) and write it back, resealed."""
    estimator, _ = load_model(path)
    change(estimator.steps[-1][1])
    replace_model(path, estimator)


def edit_first_tree(path: Path, change: Callable[[Any], Any]) -> None:
    """Apply `change` to the node records of the first tree of a HistGradientBoosting classifier."""

    def edit(clf: Any) -> None:
        nodes = clf._predictors[0][0].nodes.copy()
        change(nodes)
        clf._predictors[0][0].nodes = nodes

    edit_classifier(path, edit)
