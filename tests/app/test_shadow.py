"""The shadow model (app/shadow.py): every route's predictions are also scored by SHADOW_MODEL_DIR's model and
logged under the serving row's id, the answer never changes, a failing or refused shadow never fails a request,
shutdown drains its rows; /metadata, /metrics and the smoke test show it."""

from __future__ import annotations

import json
import signal
import sqlite3
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from app import api
from app.model import check_records
from app.schema import Feature
from app.shadow import schema_difference
from ops.deliver import smoke
from tests.app.test_protocols import PROTOCOLS, VERTEX
from tests.support.gunicorn_server import gunicorn, request
from tests.support.model_fixture import train_tiny_model

ROUTES = {
    "native": ("/predict", lambda rs: rs),
    **{k: PROTOCOLS[k][:2] for k in ("vertex", "kserve-v1", "kserve-v2")},
}


@pytest.fixture(scope="module")
def challenger_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Another model on the same feature schema (fewer boosting rounds: other probabilities, another version)."""
    path = tmp_path_factory.mktemp("challenger")
    train_tiny_model(path, max_iter=5)
    return path


@pytest.fixture(scope="module")
def other_schema_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model trained without the `region` feature."""
    path = tmp_path_factory.mktemp("other-schema")
    train_tiny_model(path, drop_features=("region",))
    return path


@pytest.fixture
def make_app(make_app):
    return lambda **config: make_app(**{**VERTEX, **config})


def _records(flask_app, n: int) -> list[dict]:
    """n valid, varied records (spread over the schema, as the fast path's check records)."""
    validator = flask_app.extensions["serve"].model.validator
    return [
        dict(zip(validator.names, row, strict=True)) for row in check_records(validator.features, n=n, seed=3)
    ]


def _post(flask_app, route: str, records: list[dict], single: bool = False):
    path, body = ROUTES[route]
    name = flask_app.extensions["serve"].model.metadata["project"]["name"]
    payload = records[0] if single else body(records)
    return flask_app.test_client().post(path.format(name=name), json=payload)


def _rows(db: Path, table: str) -> dict[str, tuple]:
    with sqlite3.connect(db) as conn:
        return {
            r[0]: r[1:]
            for r in conn.execute(f"SELECT prediction_id, model_version, probability FROM {table}")
        }


def _metrics(flask_app) -> dict[str, float]:
    text = flask_app.test_client().get("/metrics").data.decode()
    return {
        s.name + "".join(f"{{{k}={v}}}" for k, v in sorted(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _version(model_dir: Path) -> str:
    return json.loads((model_dir / "metadata.json").read_text())["model_version"]


@pytest.mark.parametrize(("route", "single"), [("native", True), *((r, False) for r in ROUTES)])
def test_every_prediction_is_logged_by_the_shadow_under_the_serving_id(
    make_app, challenger_dir, tmp_path, route, single
):
    served = make_app(SHADOW_MODEL_DIR=str(challenger_dir))
    response = _post(served, route, _records(served, 1 if single else 7), single)
    assert response.status_code == 200
    served.extensions["serve"].close()
    serving, shadow = (
        _rows(tmp_path / "log.db", "predictions"),
        _rows(tmp_path / "log.db", "shadow_predictions"),
    )
    assert len(serving) == (1 if single else 7)
    assert set(shadow) == set(serving)
    assert {version for version, _ in shadow.values()} == {_version(challenger_dir)}
    assert [shadow[i][1] for i in serving] != [serving[i][1] for i in serving]  # the challenger's own scores


@pytest.mark.parametrize("route", ROUTES)
def test_the_answer_is_byte_identical_with_and_without_a_shadow(
    make_app, challenger_dir, tmp_path, monkeypatch, route
):
    monkeypatch.setattr(api, "new_prediction_ids", lambda n: [f"{i:032x}" for i in range(n)])
    alone = make_app()
    shadowed = make_app(
        SHADOW_MODEL_DIR=str(challenger_dir), PREDICTION_LOG_URL=f"sqlite:///{tmp_path}/other.db"
    )
    records = _records(alone, 9)
    assert _post(shadowed, route, records).data == _post(alone, route, records).data


def test_a_shadow_that_raises_is_counted_and_never_reaches_the_client(
    make_app, challenger_dir, tmp_path, monkeypatch
):
    served = make_app(SHADOW_MODEL_DIR=str(challenger_dir))
    records = _records(served, 4)
    expected = _post(
        make_app(PREDICTION_LOG_URL=f"sqlite:///{tmp_path}/alone.db"), "native", records
    ).get_json()

    def broken(columns):
        raise RuntimeError("challenger exploded")

    st = served.extensions["serve"]
    monkeypatch.setattr(st.shadow.service, "predict_proba", broken)
    response = _post(served, "native", records)
    assert response.status_code == 200
    got = response.get_json()["predictions"]
    assert [(p["probability"], p["model_version"]) for p in got] == [
        (p["probability"], p["model_version"]) for p in expected["predictions"]
    ]
    st.shadow.flush()
    assert _metrics(served)["shadow_errors_total{reason=predict}"] == 4
    st.close()
    assert set(_rows(tmp_path / "log.db", "predictions")) == {p["prediction_id"] for p in got}
    assert _rows(tmp_path / "log.db", "shadow_predictions") == {}


def test_a_full_shadow_queue_drops_the_shadow_rows_only(make_app, challenger_dir, tmp_path):
    served = make_app(SHADOW_MODEL_DIR=str(challenger_dir), LOG_FLUSH_INTERVAL=3600)
    st = served.extensions["serve"]
    st.shadow.max_backlog = 5
    first = _post(served, "native", _records(served, 5)).get_json()["predictions"]
    assert _post(served, "native", _records(served, 3)).status_code == 200
    assert _metrics(served)["shadow_errors_total{reason=queue_full}"] == 3
    st.close()
    assert len(_rows(tmp_path / "log.db", "predictions")) == 8
    assert set(_rows(tmp_path / "log.db", "shadow_predictions")) == {p["prediction_id"] for p in first}


def test_close_drains_the_queued_shadow_rows(make_app, challenger_dir, tmp_path):
    served = make_app(SHADOW_MODEL_DIR=str(challenger_dir), LOG_FLUSH_INTERVAL=3600)  # only close() writes
    ids = set()
    for n in (1, 3, 6):
        ids |= {
            p["prediction_id"] for p in _post(served, "native", _records(served, n)).get_json()["predictions"]
        }
    assert _rows(tmp_path / "log.db", "shadow_predictions") == {}
    served.extensions["serve"].close()
    assert set(_rows(tmp_path / "log.db", "shadow_predictions")) == ids


def test_metadata_and_metrics_show_both_models(make_app, model_dir, challenger_dir):
    served = make_app(SHADOW_MODEL_DIR=str(challenger_dir))
    models = served.test_client().get("/metadata").get_json()["models"]
    assert models == {
        "serving": {"status": "loaded", "model_version": _version(model_dir)},
        "shadow": {"status": "loaded", "model_version": _version(challenger_dir)},
    }
    _post(served, "native", _records(served, 3))
    served.extensions["serve"].shadow.flush()
    metrics = _metrics(served)
    assert metrics[f"shadow_model_info{{model_version={_version(challenger_dir)}}}"] == 1
    assert metrics["shadow_loaded"] == 1
    assert metrics["shadow_predictions_total"] == 3
    assert smoke.shadow_check(served.test_client().get("/metadata").get_json()).passed


def test_without_a_shadow_metadata_says_none(make_app):
    served = make_app()
    assert served.test_client().get("/metadata").get_json()["models"]["shadow"] == {"status": "none"}
    assert _metrics(served)["shadow_loaded"] == 0
    assert smoke.shadow_check(served.test_client().get("/metadata").get_json()) is None


def test_a_shadow_with_another_feature_schema_is_refused_naming_the_difference(
    make_app, other_schema_dir, caplog, tmp_path
):
    served = make_app(SHADOW_MODEL_DIR=str(other_schema_dir))
    reason = "its feature schema is not the serving model's: missing: region"
    assert [r.getMessage() for r in caplog.records if r.levelname == "ERROR"] == [
        f"shadow model {other_schema_dir} refused: {reason}"
    ]
    meta = served.test_client().get("/metadata").get_json()
    assert meta["models"]["shadow"] == {
        "status": "refused",
        "model_version": _version(other_schema_dir),
        "reason": reason,
    }
    assert _post(served, "native", _records(served, 2)).status_code == 200  # the serving model still serves
    metrics = _metrics(served)
    assert metrics["shadow_loaded"] == 0
    assert not any(name.startswith("shadow_model_info") for name in metrics)
    check = smoke.shadow_check(meta)
    assert not check.passed and reason in check.line()
    served.extensions["serve"].close()
    assert _rows(tmp_path / "log.db", "shadow_predictions") == {}


def test_a_shadow_that_fails_verification_is_refused_with_its_reason(make_app, tmp_path):
    served = make_app(SHADOW_MODEL_DIR=str(tmp_path / "missing"))
    shadow = served.test_client().get("/metadata").get_json()["models"]["shadow"]
    assert shadow["status"] == "refused"
    assert str(tmp_path / "missing") in shadow["reason"]


def _f(name: str, kind: str = "float", **kw) -> Feature:
    return Feature(name=name, type=kind, **kw)


@pytest.mark.parametrize(
    ("shadow", "difference"),
    [
        ([_f("age"), _f("plan", "category", allowed=("a", "b"))], ""),
        (
            [_f("age", "int"), _f("plan", "category", allowed=("a", "b"))],
            "feature 'age' is int, serving model's is float",
        ),
        (
            [_f("age"), _f("plan", "category", allowed=("a", "b", "c"))],
            "feature 'plan' has allowed ('a', 'b', 'c'), serving model's ('a', 'b')",
        ),
        (
            [_f("age", nullable=True, max=9.0), _f("plan", "category", allowed=("a", "b"))],
            "feature 'age' has nullable True, serving model's False; feature 'age' has max 9.0, serving model's None",
        ),
        ([_f("age"), _f("spend")], "missing: plan; extra: spend"),
        (
            [_f("plan", "category", allowed=("a", "b")), _f("age")],
            "features in the order plan, age, serving model's age, plan",
        ),
    ],
)
def test_schema_difference_names_each_difference(shadow, difference):
    serving = [_f("age"), _f("plan", "category", allowed=("a", "b"))]
    assert schema_difference(serving, shadow) == difference


@pytest.mark.slow
def test_sigterm_drains_the_shadow_rows_under_gunicorn(model_dir, challenger_dir, tmp_path):
    db = tmp_path / "log.db"
    example = json.loads((model_dir / "metadata.json").read_text())["example"]
    acknowledged: set[str] = set()
    # a flush interval of an hour: only the shutdown drain can write these rows
    with gunicorn(
        model_dir,
        f"sqlite:///{db}",
        tmp_path / "gunicorn.log",
        LOG_FLUSH_INTERVAL="3600",
        SHADOW_MODEL_DIR=str(challenger_dir),
    ) as (proc, port):
        for i in range(20):
            status, body = request(port, "POST", "/predict", [example] * (1 + i % 3))
            assert status == 200
            acknowledged |= {p["prediction_id"] for p in json.loads(body)["predictions"]}
        assert all(c.passed for c in smoke.check_service(f"http://127.0.0.1:{port}"))
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=40) == 0
    shadow = _rows(db, "shadow_predictions")
    assert set(shadow) == set(_rows(db, "predictions"))
    assert (
        acknowledged < set(shadow) and len(shadow) == len(acknowledged) + 1
    )  # and the smoke test's prediction
    assert "shadow predictions flushed" in (tmp_path / "gunicorn.log").read_text()
