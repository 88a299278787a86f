"""The served model: load and verify the artifact once per worker, then predict fast.

`load_service(model_dir)` never raises: a missing, corrupt or mismatching model gives a service that is not ready,
with the reason (logged once, and returned by /ready). Checks, in order:
1. `mlcore.artifact.load_model`: files present, the model file's sha256 and metadata.json's content as
   `model_version` records (the version served is the one derived there), only the exact allow-listed types,
   tree arrays in bounds;
2. metadata.json's served fields are well typed (`app.schema.parse_metadata`: threshold in (0, 1), feature types,
   bounds, flags);
3. the scikit-learn version recorded at training equals the one installed (skops files are not portable across
   versions);
4. the feature schema lists exactly the model's input columns, in order;
5. the recorded example record validates and predicts a probability in [0, 1].

Prediction uses `app.fastpath` (the same arithmetic without scikit-learn's per-call overhead) when it matched
`pipeline.predict_proba` on check records at load time, and scikit-learn otherwise; either way with one BLAS/OpenMP
thread per worker (the workers already use the cores) and scikit-learn's input validation skipped (the request
validator has already checked every value).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from app.fastpath import CompiledPipeline, Unsupported, columns_of, compile_pipeline
from app.schema import Feature, RecordError, RecordValidator, parse_metadata
from mlcore.artifact import load_model
from mlcore.errors import PipelineError

log = logging.getLogger(__name__)
PARITY_TOLERANCE = 1e-9


@dataclass
class ModelService:
    ready: bool
    reason: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    model_version: str = "none"
    validator: RecordValidator | None = None
    threshold: float = 0.5
    estimator: Any = None
    compiled: CompiledPipeline | None = None
    example: dict[str, Any] | None = None
    title: str | None = None  # params.yaml `project` as train recorded it (the API docs' title)
    description: str | None = None

    def predict_proba(self, columns: Sequence[Sequence[Any]]) -> np.ndarray:
        """Validated columns (one sequence per feature, `RecordValidator.columns`) -> P(positive class) per row."""
        import sklearn

        if self.compiled is not None:
            return self.compiled.predict_proba(columns)
        with sklearn.config_context(assume_finite=True, skip_parameter_validation=True):
            return self.estimator.predict_proba(self.frame(columns))[:, 1]

    def predict_rows(self, rows: Sequence[Sequence[Any]]) -> np.ndarray:
        """Validated rows (values in feature order, `RecordValidator.validate`) -> P(positive class) per row."""
        return self.predict_proba(columns_of(rows))

    def frame(self, columns: Sequence[Sequence[Any]]):
        """Columns -> the DataFrame the pipeline was trained on: numbers float64 (NaN = missing), categories object."""
        import pandas as pd

        assert self.validator is not None
        return pd.DataFrame(
            {
                feature.name: np.asarray(values, dtype=object if feature.type == "category" else float)
                for feature, values in zip(self.validator.features, columns, strict=True)
            },
            copy=False,
        )


def not_ready(
    reason: str, metadata: dict[str, Any] | None = None, log_as: str = "model not ready"
) -> ModelService:
    log.error("%s: %s", log_as, reason)
    return ModelService(ready=False, reason=reason, metadata=metadata or {})


def load_service(
    model_dir: str | Path, use_fastpath: bool = True, log_as: str = "model not ready"
) -> ModelService:
    """`log_as` begins the log line of a refusal (app/shadow.py: "shadow model <dir> refused")."""
    import sklearn

    try:
        estimator, metadata = load_model(model_dir)
    except PipelineError as exc:
        return not_ready(str(exc), log_as=log_as)
    except Exception as exc:  # a damaged file can fail deep inside skops/zipfile: report it, do not crash
        return not_ready(
            f"{model_dir}: model could not be loaded ({type(exc).__name__}: {exc})", log_as=log_as
        )

    try:
        served = parse_metadata(metadata)
    except ValueError as exc:
        return not_ready(str(exc), metadata, log_as)
    if served.trained_with != sklearn.__version__:
        return not_ready(
            f"model trained with scikit-learn {served.trained_with}, this server has {sklearn.__version__}",
            metadata,
            log_as,
        )
    features = served.features
    names = [f.name for f in features]
    expected = list(getattr(estimator, "feature_names_in_", names))
    if expected != names:
        return not_ready(
            f"metadata.json features {names} do not match the model's input columns {expected}",
            metadata,
            log_as,
        )

    service = ModelService(
        ready=True,
        metadata=metadata,
        model_version=metadata["model_version"],  # derived by load_model from the bytes it verified
        validator=RecordValidator(features),
        threshold=served.threshold,
        estimator=estimator,
        example=served.example,
        title=served.title,
        description=served.description,
    )
    try:
        example_rows = [service.validator.validate(service.example)] if service.example else []
    except RecordError as exc:
        return not_ready(
            f"metadata.json example does not match the feature schema: {exc.message}", metadata, log_as
        )
    check_rows = example_rows + check_records(features)
    try:
        reference = service.predict_rows(check_rows)  # scikit-learn path: compiled is still None
    except Exception as exc:  # a model that loads but cannot predict: not ready, never a dead worker
        return not_ready(f"the model failed on check records ({type(exc).__name__}: {exc})", metadata, log_as)
    if not np.all((reference >= 0) & (reference <= 1)):
        return not_ready("the model returned probabilities outside [0, 1]", metadata, log_as)
    if use_fastpath:
        service.compiled = verified_fastpath(estimator, features, check_rows, reference)
    return service


def verified_fastpath(
    estimator: Any, features: list[Feature], rows: list[list[Any]], reference: np.ndarray
) -> CompiledPipeline | None:
    """The compiled pipeline if each of its heads matches scikit-learn on the check rows, else None."""
    try:
        compiled = compile_pipeline(estimator, features)
        X = compiled.transform(columns_of(rows))
        heads = [compiled.small] + ([compiled.large] if compiled.large is not None else [])
        gap = max(float(np.max(np.abs(head(X) - reference))) for head in heads)
    except Unsupported as exc:
        log.info("fast path not available (%s): predicting with scikit-learn", exc)
        return None
    if not gap <= PARITY_TOLERANCE:
        log.warning("fast path differs from scikit-learn by %.3g: predicting with scikit-learn", gap)
        return None
    log.info("fast path verified on %d check records (max difference %.3g)", len(rows), gap)
    return compiled


def check_records(features: list[Feature], n: int = 200, seed: int = 0) -> list[list[Any]]:
    """Valid records spread over the schema (every category, bounds, missing values) for the parity check."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        row: list[Any] = []
        for f in features:
            if f.nullable and i % 5 == 1:
                row.append(None)
            elif f.type == "category":
                allowed = f.allowed or ()
                row.append(
                    allowed[i % len(allowed)] if i < 2 * len(allowed) else allowed[rng.integers(len(allowed))]
                )
            else:
                lo = f.min if f.min is not None else -1e3
                hi = f.max if f.max is not None else 1e3
                value = lo if i % 7 == 2 else hi if i % 7 == 3 else rng.uniform(lo, hi)
                row.append(float(round(value)) if f.type == "int" else float(value))
        rows.append(row)
    return rows
