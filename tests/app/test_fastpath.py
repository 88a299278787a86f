"""The fast path computes exactly what the fitted scikit-learn pipeline computes, or declines."""

from __future__ import annotations

import numpy as np
import pytest

from app.fastpath import Unsupported, columns_of, compile_pipeline
from app.model import check_records, load_service
from tests.support.model_fixture import train_tiny_model


@pytest.fixture(scope="module")
def lr_model_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("lr-model")
    train_tiny_model(path, model_type="logistic_regression")
    return path


@pytest.mark.parametrize("which", ["hgb", "lr"])
def test_fast_path_matches_scikit_learn(which, model_dir, lr_model_dir):
    service = load_service(model_dir if which == "hgb" else lr_model_dir, use_fastpath=False)
    features = service.validator.features
    compiled = compile_pipeline(service.estimator, features)
    rows = check_records(features, n=300, seed=7)
    # values the validator would reject still follow scikit-learn (unknown category, out of range, missing)
    rows[0][-1] = "atlantis"
    rows[1][0] = -1e6
    rows[2][-1] = None
    columns = columns_of(rows)
    expected = service.estimator.predict_proba(service.frame(columns))[:, 1]
    X = compiled.transform(columns)
    heads = {"small": compiled.small} | ({"large": compiled.large} if compiled.large is not None else {})
    assert set(heads) == ({"small", "large"} if which == "hgb" else {"small"})
    for name, head in heads.items():
        assert np.max(np.abs(head(X) - expected)) < 1e-12, name
    # predict_proba picks the head by batch size; every size gives scikit-learn's answer
    for n in (1, 2, compiled.max_rows or 50, (compiled.max_rows or 50) + 1, len(rows)):
        got = compiled.predict_proba(columns_of(rows[:n]))
        assert np.max(np.abs(got - expected[:n])) < 1e-12, n


def test_unknown_steps_are_declined_and_served_by_scikit_learn(model_dir, tmp_path, monkeypatch):
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OrdinalEncoder

    from mlcore import artifact

    forest_types = {
        "numpy.int64",
        "sklearn.ensemble._forest.RandomForestClassifier",
        "sklearn.tree._classes.DecisionTreeClassifier",
        "sklearn.tree._tree.Tree",
    }
    # as a fork that registers a forest in MODEL_TYPES would list its types
    monkeypatch.setattr(artifact, "TRUSTED_TYPES", artifact.TRUSTED_TYPES | forest_types)

    service = load_service(model_dir)
    features = service.validator.features
    rows = check_records(features, n=60)
    numeric = [f.name for f in features if f.type != "category"]
    categorical = [f.name for f in features if f.type == "category"]
    forest = Pipeline(
        [
            (
                "preprocess",
                ColumnTransformer([("num", "passthrough", numeric), ("cat", OrdinalEncoder(), categorical)]),
            ),
            ("classifier", RandomForestClassifier(n_estimators=5, random_state=0)),
        ]
    ).fit(service.frame(columns_of(rows)).fillna(0), [i % 2 for i in range(len(rows))])
    with pytest.raises(Unsupported):
        compile_pipeline(forest, features)
    artifact.save_model(
        forest,
        service.metadata | {"example": {k: v for k, v in service.example.items() if v is not None}},
        tmp_path,
    )
    served = load_service(tmp_path)
    assert served.ready and served.compiled is None
    assert 0 <= served.predict_rows(rows[3:4])[0] <= 1


def test_large_batches_fall_back_to_predict_proba_when_the_tree_predictor_changes(model_dir, monkeypatch):
    """The per-tree loop calls a private scikit-learn function; with another signature the large-batch head is the
    estimator's own predict_proba, and the answers stay scikit-learn's."""
    from sklearn.ensemble._hist_gradient_boosting import _predictor

    def changed(*args):
        raise TypeError("takes 8 positional arguments")

    service = load_service(model_dir, use_fastpath=False)
    features = service.validator.features
    rows = check_records(features, n=100, seed=3)
    expected = service.estimator.predict_proba(service.frame(columns_of(rows)))[:, 1]
    tree_loop = compile_pipeline(service.estimator, features).large
    monkeypatch.setattr(_predictor, "_predict_from_raw_data", changed)
    compiled = compile_pipeline(service.estimator, features)
    assert compiled.large is not None and compiled.large.__code__ is not tree_loop.__code__
    assert np.max(np.abs(compiled.predict_proba(columns_of(rows)) - expected)) < 1e-12
