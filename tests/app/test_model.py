"""Model loading: a missing, corrupt or mismatching model never serves; the app says why on /ready."""

from __future__ import annotations

import builtins
import shutil
from pathlib import Path

import pytest
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from app import create_app
from app.model import load_service
from mlcore.artifact import load_model
from tests.support.forge import copy_model, edit_first_tree, edit_metadata, replace_model


def _truncate_model(path: Path) -> None:
    data = (path / "model.skops").read_bytes()
    (path / "model.skops").write_bytes(data[: len(data) // 2])


def _feature(name: str, **values):
    """Change one feature of metadata.json's schema (the forger reseals the file)."""
    return lambda p: edit_metadata(
        p, lambda m: next(f for f in m["features"] if f["name"] == name).update(values)
    )


def _eval_on_every_call(path: Path) -> None:
    estimator, _ = load_model(path)
    replace_model(path, Pipeline([("sneak", FunctionTransformer(builtins.eval)), *estimator.steps]))


def _cannot_predict(path: Path) -> None:
    """Allow-listed parts wired wrongly: the classifier's input check replaced by the column transformer."""
    estimator, _ = load_model(path)
    estimator.steps[-1][1]._preprocessor = estimator.steps[0][1]
    replace_model(path, estimator)


def _tree_past_the_end(path: Path) -> None:
    def change(nodes) -> None:
        nodes["left"][0] = 10**6

    edit_first_tree(path, change)


BROKEN = [
    ("missing model directory", lambda p: shutil.rmtree(p), "metadata not found"),
    ("missing model file", lambda p: (p / "model.skops").unlink(), "model file not found"),
    ("corrupt model file", _truncate_model, "sha256 does not match"),
    ("metadata not JSON", lambda p: (p / "metadata.json").write_text("{"), "not valid JSON"),
    (
        "metadata edited after training",
        lambda p: edit_metadata(p, lambda m: m.update(threshold=0.01), reseal=False),
        "does not hash to its model_version",
    ),
    ("eval through an allow-listed transformer", _eval_on_every_call, "refusing to load untrusted types"),
    ("tree node past the end", _tree_past_the_end, "refusing a malformed tree"),
    ("model fails on the check records", _cannot_predict, "the model failed on check records"),
    (
        "threshold not a number",
        lambda p: edit_metadata(p, lambda m: m.update(threshold="abc")),
        "'threshold'",
    ),
    (
        "threshold above 1",
        lambda p: edit_metadata(p, lambda m: m.update(threshold=2)),
        "strictly between 0 and 1",
    ),
    ("threshold 0", lambda p: edit_metadata(p, lambda m: m.update(threshold=0)), "strictly between 0 and 1"),
    ("threshold true", lambda p: edit_metadata(p, lambda m: m.update(threshold=True)), "'threshold'"),
    ("min a string", _feature("tenure_months", min="0"), "'min' must be a finite number or null, not '0'"),
    ("min above max", _feature("tenure_months", min=10, max=1), "'min' 10 is above 'max' 1"),
    ("nullable a string", _feature("total_charges", nullable="false"), "'nullable' must be true or false"),
    ("allowed not strings", _feature("contract", allowed=[1, 2]), "a list of distinct strings"),
    ("bounds on a category", _feature("contract", min=0), "a category takes no 'min'/'max'"),
    ("features not a list", lambda p: edit_metadata(p, lambda m: m.update(features={})), "non-empty list"),
    (
        "libraries not an object",
        lambda p: edit_metadata(p, lambda m: m.update(libraries=["scikit-learn"])),
        "'libraries' must record",
    ),
    (
        "example not a record",
        lambda p: edit_metadata(p, lambda m: m.update(example="x")),
        "'example' must be",
    ),
    (
        "feature renamed",
        lambda p: edit_metadata(p, lambda m: m["features"][0].update(name="tenure")),
        "do not match the model's input columns",
    ),
    (
        "feature type unknown",
        lambda p: edit_metadata(p, lambda m: m["features"][0].update(type="date")),
        "type must be one of",
    ),
    (
        "other scikit-learn",
        lambda p: edit_metadata(p, lambda m: m["libraries"].update({"scikit-learn": "0.24.2"})),
        "trained with scikit-learn 0.24.2",
    ),
    (
        "example breaks schema",
        lambda p: edit_metadata(p, lambda m: m["example"].update(contract="weekly")),
        "example does not match the feature schema",
    ),
]


@pytest.mark.parametrize(("case", "damage", "reason"), BROKEN, ids=[b[0] for b in BROKEN])
def test_a_broken_model_is_not_ready_and_says_why(model_dir, tmp_path, case, damage, reason):
    path = copy_model(model_dir, tmp_path)
    damage(path)
    app = create_app({"MODEL_DIR": str(path), "PREDICTION_LOG_URL": f"sqlite:///{tmp_path}/log.db"})
    client = app.test_client()
    ready = client.get("/ready")
    assert ready.status_code == 503
    assert reason in ready.get_json()["reason"]
    assert client.get("/health").status_code == 200  # alive, just not ready
    predict = client.post("/predict", json={"tenure_months": 1})
    assert (predict.status_code, predict.get_json()["error"]["code"]) == (503, "not_ready")
    assert client.get("/metadata").status_code == 503
    assert client.get("/openapi.json").status_code == 200


def test_the_fast_path_is_verified_and_used(model_dir):
    service = load_service(model_dir)
    assert service.ready and service.compiled is not None
    assert load_service(model_dir, use_fastpath=False).compiled is None
