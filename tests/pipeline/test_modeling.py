import numpy as np
import pandas as pd
import pytest

from mlcore.artifact import TRUSTED_TYPES, dumps_deterministic, types_in
from mlcore.metrics import classification_metrics, score
from pipeline.modeling import MODEL_TYPES, build_pipeline, features_frame, select_hyperparameters
from tests.support.factories import default_params, make_snapshot, params_with


@pytest.mark.parametrize("model_type", ["hist_gradient_boosting", "logistic_regression"])
def test_pipeline_learns_signal_and_handles_missing_and_unknown(model_type):
    params = params_with({"model.type": model_type})
    df = make_snapshot(1500)
    x, y = features_frame(df, params.schema), df["churned"]
    pipe = build_pipeline(params.schema, params.model, {"max_iter": 50}).fit(x, y)
    assert classification_metrics(y, pipe.predict_proba(x)[:, 1], 0.5)["roc_auc"] > 0.7
    odd = x.head(3).copy()
    odd.loc[odd.index[0], "contract"] = "never-seen"
    odd.loc[odd.index[1], "monthly_charges"] = np.nan
    odd.loc[odd.index[2], "region"] = None
    proba = pipe.predict_proba(odd)[:, 1]
    assert np.all((proba > 0) & (proba < 1))


def test_hyperparameters_are_filtered_by_model_type():
    params = default_params()
    hp = select_hyperparameters(params.model, {"max_iter": 120.0, "C": 3.0})
    assert hp["max_iter"] == 120 and isinstance(hp["max_iter"], int)
    assert "C" not in hp
    lr = params_with({"model.type": "logistic_regression"}).model
    assert select_hyperparameters(lr, {"C": 3.0, "max_iter": 5}) == {"C": 3.0}


def test_features_frame_orders_and_types_columns():
    params = default_params()
    frame = features_frame(make_snapshot(50), params.schema)
    assert list(frame.columns) == params.schema.feature_names
    assert frame["tenure_months"].dtype == np.float64
    assert frame["contract"].dtype == object


def test_metrics_on_known_values():
    y = np.array([0, 0, 1, 1])
    m = classification_metrics(y, np.array([0.1, 0.6, 0.4, 0.9]), threshold=0.5)
    assert m["roc_auc"] == pytest.approx(0.75)
    assert m["precision"] == pytest.approx(0.5) and m["recall"] == pytest.approx(0.5)
    assert m["accuracy"] == pytest.approx(0.5)
    assert score("log_loss", y, [0.1, 0.6, 0.4, 0.9]) == pytest.approx(-m["log_loss"])
    assert pd.isna(classification_metrics([1, 1], [0.2, 0.8], 0.5)["roc_auc"])


def test_the_artifact_allow_list_is_exactly_what_the_registered_models_serialise():
    """mlcore.artifact.TRUSTED_TYPES cannot import the model declaration (layers): this proves it matches it.
    Every registered model type, with each class_weight, needs nothing outside the list, and every listed type is
    needed by one of them (a stale entry would be trust nobody uses)."""
    used: set[str] = set()
    df = make_snapshot(300)
    for model_type in MODEL_TYPES:
        for class_weight in ("balanced", "none"):
            params = params_with({"model.type": model_type, "model.class_weight": class_weight})
            pipe = build_pipeline(params.schema, params.model, {"max_iter": 5})
            pipe.fit(features_frame(df, params.schema), df["churned"])
            types = set(types_in(dumps_deterministic(pipe)))
            assert types <= TRUSTED_TYPES, (model_type, class_weight, sorted(types - TRUSTED_TYPES))
            used |= types
    assert used == TRUSTED_TYPES, sorted(TRUSTED_TYPES - used)
