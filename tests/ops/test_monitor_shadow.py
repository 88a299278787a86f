"""Champion vs challenger on live traffic (ops.monitor.shadow): shadow predictions logged under the serving rows'
ids, judged on the labels that came back, through `run_monitor` as the monitor job runs it.

The serving model is the demo world's old churn model; under concept drift the world changed, so a challenger
that knows the new world (its true log-odds) is better, and one that repeats the champion is not.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from demo.generate import generate_month
from demo.world import churn_log_odds
from mlcore.predlog_schema import predictions, shadow_predictions
from ops.monitor.run import run_monitor
from ops.monitor.shadow import ShadowRule, compare, read_shadow
from tests.ops.test_monitor import CFG, NOW, SEED, create_log, old_model_proba, replay
from tests.ops.test_monitor import model_dir as model_dir  # the served model's metadata: a fixture

FAST = ShadowRule(min_labelled=300, resamples=200, seed=7)


def log_with_shadow(tmp_path: Path, challenger, rows: int = 2400, label_every: int = 2) -> str:
    """A drifted month replayed through the serving model, and `challenger(frame)`'s probabilities as the shadow
    model `cccccccccccc`'s predictions of the same requests."""
    url = f"sqlite:///{tmp_path / 'log.db'}"
    frame = generate_month("2025-06", rows, SEED, concept_drift=1.0)
    engine = create_log(url)
    replay(engine, frame, label_every=label_every)
    with engine.begin() as conn:
        query = sa.select(predictions.c.prediction_id).order_by(predictions.c.created_at)
        served = conn.execute(query).scalars().all()
        proba = challenger(frame)
        conn.execute(
            shadow_predictions.insert(),
            [
                {
                    "prediction_id": pid,
                    "model_version": "cccccccccccc",
                    "created_at": NOW,
                    "probability": float(p),
                    "prediction": int(p >= 0.5),
                }
                for pid, p in zip(served, proba, strict=True)
            ],
        )
    return url


def knows_the_new_world(frame: pd.DataFrame) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-churn_log_odds(frame, concept_drift=1.0)))


def monitor(model_dir: Path, url: str, tmp_path: Path, rule: ShadowRule = FAST) -> dict:
    cfg = CFG.model_copy(update={"shadow": rule})
    return run_monitor(
        cfg, model_dir, url, tmp_path / "report", now=NOW, state_path=tmp_path / "s.json", trigger=False
    )


def test_a_better_challenger_has_live_evidence_with_an_interval_above_zero(
    model_dir: Path, tmp_path: Path
) -> None:
    verdict = monitor(model_dir, log_with_shadow(tmp_path, knows_the_new_world), tmp_path)
    shadow = verdict["shadow"]["cccccccccccc"]
    assert shadow["requests"] == 2400 and shadow["labelled"] == 1200
    assert shadow["shadow"] > shadow["serving"] and shadow["interval"][0] > 0
    assert shadow["evidence"]["passed"] and "better by +" in shadow["evidence"]["reasons"][0]
    assert 0.5 < shadow["agreement"] < 1 and shadow["output_psi"] >= 0
    report = (tmp_path / "report" / "report.md").read_text()
    assert "## Shadow models (live comparison)" in report and "| `cccccccccccc` | 2400 |" in report


def test_a_challenger_no_better_than_the_champion_has_no_evidence(model_dir: Path, tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    same = lambda frame: np.clip(old_model_proba(frame) + rng.normal(0, 0.01, len(frame)), 0, 1)  # noqa: E731
    verdict = monitor(model_dir, log_with_shadow(tmp_path, same), tmp_path)
    shadow = verdict["shadow"]["cccccccccccc"]
    low, high = shadow["interval"]
    assert low < 0 < high and not shadow["evidence"]["passed"]
    assert "does not lie above the margin" in shadow["evidence"]["reasons"][0]
    assert shadow["agreement"] > 0.95


def test_too_few_labels_is_not_evidence_however_good_the_challenger(model_dir: Path, tmp_path: Path) -> None:
    verdict = monitor(model_dir, log_with_shadow(tmp_path, knows_the_new_world, label_every=10), tmp_path)
    shadow = verdict["shadow"]["cccccccccccc"]
    assert shadow["labelled"] == 240
    assert shadow["evidence"] == {
        "passed": False,
        "reasons": ["only 240 labelled shadow predictions (min 300)"],
    }


def test_the_interval_is_a_function_of_the_log_and_the_seed(tmp_path: Path) -> None:
    url = log_with_shadow(tmp_path, knows_the_new_world, rows=1200)
    pairs = read_shadow(url, NOW - pd.Timedelta(days=30), NOW)
    first, again = compare(pairs, 0.5, FAST), compare(pairs, 0.5, FAST)
    other_seed = compare(pairs, 0.5, FAST.model_copy(update={"seed": 8}))
    assert first == again
    assert first["cccccccccccc"]["interval"] != other_seed["cccccccccccc"]["interval"]


def test_a_log_from_before_shadow_models_reads_as_no_shadow(model_dir: Path, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'log.db'}"
    replay(create_log(url), generate_month("2025-06", 600, SEED))
    with sa.create_engine(url).begin() as conn:
        conn.exec_driver_sql("DROP TABLE shadow_predictions")
    assert monitor(model_dir, url, tmp_path)["shadow"] == {}


def test_a_rule_needs_a_known_metric_and_enough_resamples() -> None:
    with pytest.raises(ValueError, match="resamples"):
        ShadowRule(resamples=10)
    with pytest.raises(ValueError, match="unknown metric 'auc'; one of roc_auc"):
        ShadowRule(primary_metric="auc")
