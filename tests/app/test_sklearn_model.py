"""The service serves a model of the generic type (`model.type: sklearn`, a RandomForest named in params.yaml)
exactly as it serves the registered ones: same predictions as the pipeline, the same request validation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from threadpoolctl import threadpool_limits

from app import create_app
from mlcore.artifact import load_model, save_model
from pipeline.modeling import features_frame
from pipeline.train import build_metadata, train_model
from tests.support.factories import default_params, make_snapshot, params_with


@pytest.fixture(scope="module")
def forest_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    params = params_with(
        {
            "model.type": "sklearn",
            "model.estimator": "sklearn.ensemble.RandomForestClassifier",
            "model.defaults": {"n_estimators": 20, "min_samples_leaf": 5},
        }
    )
    rows = make_snapshot(n=600)
    splits = {"train": rows.iloc[:420], "valid": rows.iloc[420:510], "test": rows.iloc[510:]}
    data_info = {"snapshot_sha256": "0" * 64, "rows": 600, "window_start": "2025-01-01"}
    data_info |= {"window_end": "2025-12-31", "cutoff": "2025-12-31"}
    with threadpool_limits(1):
        pipe, test_metrics, fit_df = train_model(params, splits, {})
        metadata = build_metadata(params, pipe, fit_df, splits, {}, test_metrics, data_info)
    path = tmp_path_factory.mktemp("forest")
    save_model(pipe, metadata, path)
    return path


@pytest.fixture
def client(forest_dir: Path, tmp_path: Path):
    app = create_app(
        {"MODEL_DIR": str(forest_dir), "PREDICTION_LOG_URL": f"sqlite:///{tmp_path}/log.db", "TESTING": True}
    )
    yield app.test_client()
    app.extensions["serve"].log.close()


def test_a_random_forest_of_the_generic_type_is_served(client, forest_dir):
    pipe, metadata = load_model(forest_dir)
    assert metadata["params"]["model_type"] == "sklearn"
    assert metadata["params"]["estimator"] == "sklearn.ensemble.RandomForestClassifier"
    assert type(pipe.steps[-1][1]).__name__ == "RandomForestClassifier"
    example = dict(metadata["example"])
    other = example | {"contract": "two-year", "tenure_months": 60}
    response = client.post("/predict", json=[example, other])
    assert response.status_code == 200, response.get_json()
    got = [p["probability"] for p in response.get_json()["predictions"]]
    schema = default_params().schema
    expected = pipe.predict_proba(features_frame(pd.DataFrame([example, other]), schema))[:, 1]
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    assert {p["model_version"] for p in response.get_json()["predictions"]} == {metadata["model_version"]}


@pytest.mark.parametrize(
    ("change", "code", "field"),
    [
        (lambda r: {k: v for k, v in r.items() if k != "tenure_months"}, "missing_field", "tenure_months"),
        (lambda r: r | {"tenure_months": "12"}, "invalid_type", "tenure_months"),
        (lambda r: r | {"contract": "weekly"}, "invalid_category", "contract"),
        (lambda r: r | {"favourite_colour": "blue"}, "unknown_field", "favourite_colour"),
    ],
)
def test_requests_to_the_forest_are_validated(client, forest_dir, change, code, field):
    example = dict(load_model(forest_dir)[1]["example"])
    response = client.post("/predict", json=change(example))
    assert response.status_code == 422
    assert (response.get_json()["error"]["code"], response.get_json()["error"]["field"]) == (code, field)
