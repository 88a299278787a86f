"""Stage `train`: fit the model pipeline with the tuned hyperparameters and save it with its metadata.

The metadata records what a reader of a served model needs: the data (hash, window), params, the hash of the
code that ran, library versions, the feature schema the API validates against, reference statistics of the
training data for drift checks, the validation metrics, and an example record built from the schema (no customer's
row: mlcore.example). Everything in model/ is a function of the stage's declared inputs: same data, params, code
and seed give the same bytes on any machine, so the model/ hash dvc.lock records can be reproduced and verified.
Facts that differ between runs (when, on which commit, with which uncommitted changes) belong to the lineage
record that retraining writes.
"""

from __future__ import annotations

import argparse
import platform
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlcore.artifact import save_model
from mlcore.cbpe import fit_calibration
from mlcore.errors import PipelineError, cli_entrypoint
from mlcore.example import example_record
from mlcore.io import read_json, sha256_file
from mlcore.metrics import classification_metrics
from pipeline.config import Params, SchemaParams, load_params
from pipeline.modeling import build_pipeline, features_frame, limit_threads, select_hyperparameters
from pipeline.sources import code_sha256

REFERENCE_BINS = 10


def numeric_reference(values: pd.Series, sample_size: int, seed: int) -> dict[str, Any]:
    present = values.dropna().to_numpy(dtype=float)
    edges = np.unique(np.quantile(present, np.linspace(0, 1, REFERENCE_BINS + 1))) if len(present) else []
    counts = np.histogram(np.clip(present, edges[0], edges[-1]), bins=edges)[0] if len(edges) > 1 else []
    rng = np.random.default_rng(seed)
    sample = rng.choice(present, size=min(sample_size, len(present)), replace=False) if len(present) else []
    return {
        "bin_edges": [float(x) for x in edges],
        "bin_fractions": [float(c) / max(1, len(present)) for c in counts],
        "null_fraction": float(values.isna().mean()),
        "mean": float(present.mean()) if len(present) else None,
        "std": float(present.std()) if len(present) else None,
        "sample": [float(x) for x in np.sort(sample)],
    }


def reference_statistics(
    x: pd.DataFrame, proba: np.ndarray, schema: SchemaParams, sample_size: int, seed: int
) -> dict[str, Any]:
    """What the training data looked like: the baseline that monitoring compares live traffic against.
    `proba` are the model's predictions on data it did not fit (the test window)."""
    numeric = {n: numeric_reference(x[n], sample_size, seed) for n in schema.numeric_features}
    categorical = {}
    for name in schema.categorical_features:
        freq = x[name].value_counts(normalize=True, dropna=True)
        categorical[name] = {
            "frequencies": {str(k): float(v) for k, v in sorted(freq.items())},
            "null_fraction": float(x[name].isna().mean()),
        }
    prediction = numeric_reference(pd.Series(proba), sample_size, seed)
    return {"numeric": numeric, "categorical": categorical, "prediction": prediction}


def feature_schema(schema: SchemaParams) -> list[dict[str, Any]]:
    return [
        {
            "name": name,
            "type": spec.type,
            "nullable": spec.nullable,
            "min": spec.min,
            "max": spec.max,
            "allowed": spec.allowed,
        }
        for name, spec in schema.features.items()
    ]


def train_model(params: Params, splits: dict[str, pd.DataFrame], tuned: dict[str, Any]):
    """Fit the pipeline; returns (fitted pipeline, test-window metrics, training frame)."""
    schema = params.schema
    fit_frames = (
        [splits["train"], splits["valid"]] if params.train.fit_on == "train_valid" else [splits["train"]]
    )
    fit_df = pd.concat(fit_frames, ignore_index=True)
    pipe = build_pipeline(schema, params.model, select_hyperparameters(params.model, tuned))
    with limit_threads(params.model):
        pipe.fit(features_frame(fit_df, schema), fit_df[schema.label].to_numpy())
    # The test window is never fitted on; its metrics are recorded so a served model can say how good it is.
    test_proba = pipe.predict_proba(features_frame(splits["test"], schema))[:, 1]
    test_metrics = classification_metrics(splits["test"][schema.label], test_proba, params.evaluate.threshold)
    return pipe, test_metrics, fit_df


def build_metadata(
    params: Params,
    pipe,
    fit_df: pd.DataFrame,
    splits: dict[str, pd.DataFrame],
    tuned: dict[str, Any],
    test_metrics: dict[str, float],
    data_info: dict[str, Any],
) -> dict[str, Any]:
    schema = params.schema
    x_fit = features_frame(fit_df, schema)
    test_proba = pipe.predict_proba(features_frame(splits["test"], schema))[:, 1]
    libraries = {
        "python": platform.python_version(),
        **{lib: version(lib) for lib in ("scikit-learn", "numpy", "pandas", "skops")},
    }
    return {
        "project": params.project.model_dump(),  # the service's API title and description (app/docs.py)
        "code": {"sha256": code_sha256("pipeline.train")},
        "data": {**data_info, "train_rows": len(fit_df), "fit_on": params.train.fit_on},
        "params": {
            "model_type": params.model.type,
            **({"estimator": params.model.estimator} if params.model.estimator else {}),
            "seed": params.model.seed,
            "class_weight": params.model.class_weight,
            "hyperparameters": select_hyperparameters(params.model, tuned),
        },
        "libraries": libraries,
        "label": schema.label,
        "classes": [0, 1],
        "threshold": params.evaluate.threshold,
        "features": feature_schema(schema),
        # Predictions on the held-out test window, not on the fitted rows: a boosted model is over-confident on
        # rows it learned, and live traffic is never such rows (monitoring would see false prediction drift).
        "reference": {
            **reference_statistics(
                x_fit, test_proba, schema, params.train.reference_sample, params.model.seed
            ),
            # how calibrated the test window's probabilities are, and the isotonic map that calibrates them:
            # what monitoring's label-free estimate (mlcore.cbpe) rests on
            "calibration": fit_calibration(splits["test"][schema.label].to_numpy(), test_proba),
        },
        "metrics": {"test": test_metrics},
        "example": example_record(feature_schema(schema)),
    }


def run_train(
    params_path: str | Path, prepared: Path, best_params: Path, data_info_path: Path | None, out_dir: Path
) -> dict[str, Any]:
    params = load_params(params_path)
    try:
        splits = {s: pd.read_parquet(prepared / f"{s}.parquet") for s in ("train", "valid", "test")}
        tuned = read_json(best_params)
    except FileNotFoundError as exc:
        raise PipelineError(f"{exc.filename}: missing input (run the earlier stages: `dvc repro`)") from exc
    data_info = read_json(data_info_path) if data_info_path and data_info_path.exists() else {}
    data_info.setdefault("snapshot_sha256", sha256_file(prepared / "train.parquet"))
    pipe, test_metrics, fit_df = train_model(params, splits, tuned)
    metadata = build_metadata(params, pipe, fit_df, splits, tuned, test_metrics, data_info)
    return save_model(pipe, metadata, out_dir)


@cli_entrypoint
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--prepared", required=True, type=Path)
    parser.add_argument("--best-params", required=True, type=Path)
    parser.add_argument("--data-info", default="metrics/data.json", type=Path)
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args(argv)
    print("train: fitting the model pipeline ...", flush=True)
    meta = run_train(args.params, args.prepared, args.best_params, args.data_info, args.out)
    print(
        f"train: saved model {meta['model_version']} ({meta['data']['train_rows']} rows) to {args.out}/; "
        f"test roc_auc {meta['metrics']['test']['roc_auc']:.4f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
