import json

import pytest

from mlcore.errors import PipelineError
from pipeline.evaluate import apply_gate, main
from pipeline.train import run_train
from tests.support.factories import make_snapshot, write_splits
from tests.support.paths import TEST_PARAMS

PNG = b"\x89PNG\r\n\x1a\n"


def test_gate_checks_floors_in_the_right_direction():
    metrics = {"roc_auc": 0.8, "f1": 0.3, "log_loss": 0.6}
    gate = apply_gate(metrics, {"roc_auc": 0.75, "f1": 0.35, "log_loss": 0.5})
    assert gate["passed"] is False
    assert gate["failed"] == ["f1", "log_loss"]
    assert apply_gate(metrics, {"roc_auc": 0.75})["passed"] is True
    with pytest.raises(PipelineError, match=r"evaluate.gate.auc: unknown metric"):
        apply_gate(metrics, {"auc": 0.7})


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("evaluate")
    write_splits(make_snapshot(1500, seed=11), root / "prepared")
    (root / "best.json").write_text(json.dumps({"max_iter": 60}))
    run_train(TEST_PARAMS, root / "prepared", root / "best.json", None, root / "model")
    return root


def _evaluate(root, params_path):
    return main(
        [
            "--params",
            str(params_path),
            "--model",
            str(root / "model"),
            "--prepared",
            str(root / "prepared"),
            "--metrics",
            str(root / "metrics.json"),
            "--plots",
            str(root / "plots"),
            "--gate",
            str(root / "gate.json"),
        ]
    )


def test_evaluate_writes_metrics_plots_and_passing_gate(trained):
    assert _evaluate(trained, TEST_PARAMS) == 0
    metrics = json.loads((trained / "metrics.json").read_text())
    for key in ("roc_auc", "pr_auc", "f1", "precision", "recall", "log_loss", "n_test"):
        assert key in metrics
    assert json.loads((trained / "gate.json").read_text())["passed"] is True
    for name in ("roc", "precision_recall", "calibration", "confusion", "feature_importance"):
        assert (trained / "plots" / f"{name}.png").read_bytes()[:8] == PNG
        points = json.loads((trained / "plots" / f"{name}.json").read_text())
        assert isinstance(points, list) and points
    roc = json.loads((trained / "plots/roc.json").read_text())
    assert roc[0]["fpr"] == 0.0 and roc[-1]["tpr"] == 1.0
    importance = json.loads((trained / "plots/feature_importance.json").read_text())
    assert len(importance) == 11


def test_failed_gate_fails_the_stage_and_says_which_rule(trained, tmp_path, capsys):
    import yaml

    raw = yaml.safe_load(TEST_PARAMS.read_text())
    raw["evaluate"]["gate"]["roc_auc"] = 0.999
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(raw))
    assert _evaluate(trained, params) == 2
    err = capsys.readouterr().err
    assert (
        "quality gate failed" in err and "roc_auc" in err and "< floor 0.999 (evaluate.gate.roc_auc)" in err
    )
    gate = json.loads((trained / "gate.json").read_text())
    assert gate["passed"] is False and gate["failed"] == ["roc_auc"]
