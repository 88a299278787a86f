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


def _eval_on_every_call(path: Path) -> None:
    estimator, _ = load_model(path)
    replace_model(path, Pipeline([("sneak", FunctionTransformer(builtins.eval)), *estimator.steps]))


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
