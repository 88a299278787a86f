import json

import pytest

from mlcore.artifact import ArtifactError, derive_version, load_model
from pipeline.sources import code_sha256
from pipeline.train import run_train
from tests.support.factories import make_snapshot, write_splits
from tests.support.paths import TEST_PARAMS

HYPER = {
    "learning_rate": 0.1,
    "max_iter": 40,
    "max_leaf_nodes": 15,
    "min_samples_leaf": 20,
    "l2_regularization": 0.0,
}


@pytest.fixture
def inputs(tmp_path):
    write_splits(make_snapshot(1200, seed=5), tmp_path / "prepared")
    (tmp_path / "best.json").write_text(json.dumps(HYPER))
    (tmp_path / "data.json").write_text(json.dumps({"snapshot_sha256": "ab" * 32, "rows": 1200}))
    return tmp_path


def _train(inputs, out):
    return run_train(TEST_PARAMS, inputs / "prepared", inputs / "best.json", inputs / "data.json", out)


def test_same_inputs_give_the_same_model_bytes(inputs, monkeypatch, tmp_path):
    """Every file of model/ is a function of the inputs: not of the time, the git commit or the directory
    that ran it (otherwise the hash dvc.lock records could never be reproduced and verified)."""
    a = _train(inputs, inputs / "a")
    elsewhere = tmp_path / "not-a-git-repo"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    b = _train(inputs, inputs / "b")
    files = sorted(p.name for p in (inputs / "a").iterdir())
    assert files == ["metadata.json", "model.skops"] == sorted(p.name for p in (inputs / "b").iterdir())
    for name in files:
        assert (inputs / "a" / name).read_bytes() == (inputs / "b" / name).read_bytes(), name
    assert a["model_version"] == b["model_version"] == derive_version(a)
    assert a == b
    assert not {"trained_at", "code_version", "lineage"} & set(a)
    assert a["code"]["sha256"] == code_sha256("pipeline.train")


def test_metadata_records_lineage_schema_and_reference(inputs):
    meta = _train(inputs, inputs / "m")
    assert meta["data"]["snapshot_sha256"] == "ab" * 32
    assert meta["data"]["train_rows"] > 0 and meta["data"]["fit_on"] == "train_valid"
    assert meta["params"]["hyperparameters"] == HYPER
    assert meta["libraries"]["scikit-learn"]
    names = [f["name"] for f in meta["features"]]
    assert names[:2] == ["tenure_months", "monthly_charges"]
    contract = next(f for f in meta["features"] if f["name"] == "contract")
    assert contract["allowed"] == ["month-to-month", "one-year", "two-year"]
    ref = meta["reference"]
    assert sum(ref["numeric"]["monthly_charges"]["bin_fractions"]) == pytest.approx(1.0)
    assert 0 < ref["numeric"]["total_charges"]["null_fraction"] < 0.2
    assert sum(ref["categorical"]["contract"]["frequencies"].values()) == pytest.approx(1.0)
    assert set(meta["example"]) == set(names)
    assert 0.5 < meta["metrics"]["test"]["roc_auc"] <= 1.0


def test_loaded_model_predicts_like_the_trained_one(inputs):
    _train(inputs, inputs / "m")
    model, meta = load_model(inputs / "m")
    import pandas as pd

    proba = model.predict_proba(pd.DataFrame([meta["example"]]))[:, 1]
    assert 0 < proba[0] < 1


def test_tampered_or_missing_model_is_refused(inputs):
    _train(inputs, inputs / "m")
    path = inputs / "m/model.skops"
    data = bytearray(path.read_bytes())
    data[100] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="sha256 does not match"):
        load_model(inputs / "m")
    path.unlink()
    with pytest.raises(ArtifactError, match="model file not found"):
        load_model(inputs / "m")
    with pytest.raises(ArtifactError, match="metadata not found"):
        load_model(inputs / "absent")
