"""model.type: sklearn: any scikit-learn classifier with predict_proba, named in params.yaml, trains, saves,
loads and predicts the same, with no edit outside params.yaml; and what the declaration refuses."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.utils import all_estimators
from threadpoolctl import threadpool_limits

from mlcore.artifact import ArtifactError, load_model, save_model
from mlcore.errors import PipelineError
from pipeline.modeling import build_pipeline, features_frame, select_hyperparameters
from tests.support.factories import make_snapshot, params_with

# (dotted path, model.defaults): small settings keep the fits fast
ROUND_TRIP = [
    ("sklearn.ensemble.RandomForestClassifier", {"n_estimators": 10, "max_depth": 6}),
    ("sklearn.ensemble.ExtraTreesClassifier", {"n_estimators": 10}),
    ("sklearn.ensemble.GradientBoostingClassifier", {"n_estimators": 10}),
    ("sklearn.ensemble.HistGradientBoostingClassifier", {"max_iter": 10}),
    ("sklearn.tree.DecisionTreeClassifier", {"max_depth": 5}),
    ("sklearn.neighbors.KNeighborsClassifier", {"n_neighbors": 7}),
    ("sklearn.linear_model.LogisticRegression", {"C": 0.5}),
    ("sklearn.svm.SVC", {"probability": True}),
    ("sklearn.neural_network.MLPClassifier", {"hidden_layer_sizes": 8, "max_iter": 50}),
    ("sklearn.naive_bayes.GaussianNB", {}),
    ("sklearn.linear_model.SGDClassifier", {"loss": "log_loss"}),
    ("sklearn.ensemble.AdaBoostClassifier", {"n_estimators": 10}),
    ("sklearn.ensemble.BaggingClassifier", {"n_estimators": 5}),
]


def _model(estimator: str, defaults: dict):
    return params_with({"model.type": "sklearn", "model.estimator": estimator, "model.defaults": defaults})


def _fit(params, rows: int = 300):
    df = make_snapshot(rows)
    x, y = features_frame(df, params.schema), df[params.schema.label].to_numpy()
    pipe = build_pipeline(params.schema, params.model, select_hyperparameters(params.model))
    with threadpool_limits(1), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence warnings of the tiny fits
        pipe.fit(x, y)
    return pipe, x


@pytest.mark.parametrize(
    ("estimator", "defaults"), ROUND_TRIP, ids=[r[0].rsplit(".", 1)[1] for r in ROUND_TRIP]
)
def test_a_declared_classifier_round_trips_through_the_artifact(tmp_path, estimator, defaults):
    params = _model(estimator, defaults)
    pipe, x = _fit(params)
    assert pipe.steps[-1][1].get_params() | defaults == pipe.steps[-1][1].get_params()
    save_model(pipe, {}, tmp_path)
    loaded, _ = load_model(tmp_path)
    np.testing.assert_array_equal(loaded.predict_proba(x), pipe.predict_proba(x))


def test_seed_and_class_weight_reach_the_estimator():
    params = _model("sklearn.ensemble.RandomForestClassifier", {"n_estimators": 3})
    clf = build_pipeline(params.schema, params.model, {}).steps[-1][1]
    assert (clf.random_state, clf.class_weight) == (params.model.seed, "balanced")
    knn = _model("sklearn.neighbors.KNeighborsClassifier", {})
    build_pipeline(knn.schema, knn.model, {})  # takes neither: not passed


def test_tuned_values_keep_their_types_and_unknown_keys_name_the_valid_ones():
    params = _model("sklearn.ensemble.RandomForestClassifier", {"n_estimators": 50})
    hp = select_hyperparameters(params.model, {"max_depth": 4, "max_features": 0.5})
    assert hp == {"n_estimators": 50, "max_depth": 4, "max_features": 0.5}
    assert isinstance(hp["max_depth"], int)
    with pytest.raises(
        PipelineError, match=r"\['n_estimator'\] are not parameters of .*valid: .*'n_estimators'"
    ):
        select_hyperparameters(params.model, {"n_estimator": 10})


REFUSED = [
    (None, "required with model.type: sklearn"),
    ("os.system", "'os.system' is not under sklearn."),
    ("sklearn.nope.Forest", "cannot import module 'sklearn.nope'"),
    ("sklearn.ensemble.NoSuchForest", "'sklearn.ensemble' has no 'NoSuchForest'"),
    ("sklearn.datasets.fetch_openml", "'sklearn.datasets.fetch_openml' is not an estimator class"),
    ("sklearn.preprocessing.StandardScaler", "'sklearn.preprocessing.StandardScaler' is not a classifier"),
    ("sklearn.svm.LinearSVC", "'sklearn.svm.LinearSVC' has no predict_proba"),
]


@pytest.mark.parametrize(("estimator", "message"), REFUSED)
def test_a_wrong_estimator_gets_one_clear_message(estimator, message):
    params = _model(estimator, {})
    with pytest.raises(PipelineError, match=r"params\.yaml: model\.estimator") as refused:
        build_pipeline(params.schema, params.model, {})
    assert message in str(refused.value) and "e.g. sklearn.ensemble.RandomForestClassifier" in str(
        refused.value
    )


def test_an_estimator_with_another_model_type_is_not_silently_ignored():
    params = params_with({"model.estimator": "sklearn.ensemble.RandomForestClassifier"})
    with pytest.raises(
        PipelineError, match=r"only read with model.type: sklearn \(model.type is 'hist_gradient"
    ):
        build_pipeline(params.schema, params.model, {})


def test_settings_without_predict_proba_are_refused():
    params = _model("sklearn.svm.SVC", {})
    with pytest.raises(PipelineError, match=r"has no predict_proba .*SVC probability: true"):
        build_pipeline(params.schema, params.model, {})


# The classifiers of sklearn.utils.all_estimators with predict_proba that do not load with model.defaults: {}.
NOT_WITH_DEFAULTS = {
    # meta-estimators: they need a base estimator as a parameter, which params.yaml cannot express
    **dict.fromkeys(
        [
            "ClassifierChain",
            "FixedThresholdClassifier",
            "MultiOutputClassifier",
            "OneVsRestClassifier",
            "StackingClassifier",
            "TunedThresholdClassifierCV",
            "VotingClassifier",
        ],
        "needs a base estimator or other arguments",
    ),
    # the default estimator (SVC) has no predict_proba
    "SelfTrainingClassifier": "has no predict_proba",
    # predict_proba only with a setting: probability=True / loss="log_loss" (round trip above)
    "SVC": "has no predict_proba",
    "NuSVC": "has no predict_proba",
    "SGDClassifier": "has no predict_proba",
    # counts-only models: the scaled numeric features are negative
    "CategoricalNB": "Negative values",
    "ComplementNB": "Negative values",
    "MultinomialNB": "Negative values",
    # one-hot columns are collinear within a class: needs reg_param
    "QuadraticDiscriminantAnalysis": "not full rank",
    # refused by mlcore.artifact: its kernels (sklearn.gaussian_process.kernels.*) are not estimators
    "GaussianProcessClassifier": "types mlcore.artifact does not trust",
}


def test_survey_of_scikit_learn_classifiers(tmp_path):
    outcome = {}
    for name, cls in all_estimators(type_filter="classifier"):
        if not hasattr(cls, "predict_proba"):
            continue
        try:
            pipe, x = _fit(_model(f"{cls.__module__}.{name}", {}), rows=200)
            save_model(pipe, {}, tmp_path / name)
            loaded, _ = load_model(tmp_path / name)
            np.testing.assert_array_equal(loaded.predict_proba(x), pipe.predict_proba(x))
            outcome[name] = "loads"
        except (PipelineError, ArtifactError, TypeError, ValueError, np.linalg.LinAlgError) as exc:
            outcome[name] = str(exc)
    refused = {name: why for name, why in outcome.items() if why != "loads"}
    assert sorted(refused) == sorted(NOT_WITH_DEFAULTS), refused
    for name, why in refused.items():
        assert NOT_WITH_DEFAULTS[name] in why, (name, why)
    assert len(outcome) - len(refused) >= 15


FOREST_SEARCH = {
    "max_depth": {"type": "int", "low": 2, "high": 8},
    "max_features": {"type": "float", "low": 0.3, "high": 1.0},
}


def _tune(tmp_path, search_space):
    from pipeline.tune import run_tune
    from tests.support.factories import write_splits

    prepared = tmp_path / "prepared"
    write_splits(make_snapshot(600, seed=3), prepared)
    params = params_with(
        {
            "model.type": "sklearn",
            "model.estimator": "sklearn.ensemble.RandomForestClassifier",
            "model.defaults": {"n_estimators": 10},
            "tune.n_trials": 3,
            "tune.storage": f"sqlite:///{tmp_path}/tune.db",
            "tune.search_space": search_space,
        }
    )
    out = tmp_path / "tune"
    return run_tune(params, prepared, out, out / "tune.json", out / "history.png", log_trials=False)


def test_tuning_searches_the_declared_estimator(tmp_path, monkeypatch):
    monkeypatch.delenv("OPTUNA_STORAGE", raising=False)
    best = _tune(tmp_path, FOREST_SEARCH)["hyperparameters"]
    assert set(best) == {"n_estimators", "max_depth", "max_features"}
    assert isinstance(best["max_depth"], int) and isinstance(best["max_features"], float)


def test_a_search_space_key_the_estimator_lacks_is_named(tmp_path, monkeypatch):
    monkeypatch.delenv("OPTUNA_STORAGE", raising=False)
    with pytest.raises(PipelineError, match=r"\['learning_rate'\] are not parameters of .*RandomForest"):
        _tune(tmp_path, {**FOREST_SEARCH, "learning_rate": {"type": "float", "low": 0.01, "high": 0.3}})
