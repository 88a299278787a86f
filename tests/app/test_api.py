"""The HTTP API on the tiny model: predictions, every error case, feedback, health, readiness, metrics."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from app import create_app
from app.fastpath import columns_of
from mlcore.example import example_record
from mlcore.predlog_schema import feedback, predictions


@pytest.fixture
def example(app) -> dict:
    return dict(app.extensions["serve"].model.example)


def test_predict_one_record(client, example, app):
    response = client.post("/predict", json=example)
    assert response.status_code == 200
    [prediction] = response.get_json()["predictions"]
    assert set(prediction) == {"prediction", "probability", "prediction_id", "model_version"}
    assert 0.0 <= prediction["probability"] <= 1.0
    assert prediction["prediction"] == int(prediction["probability"] >= 0.5)
    assert prediction["model_version"] == app.extensions["serve"].model.model_version


def test_predict_batch_matches_the_scikit_learn_pipeline(client, example, app):
    other = example | {"contract": "month-to-month", "support_tickets": 9, "total_charges": None}
    response = client.post("/predict", json=[example, other])
    probabilities = [p["probability"] for p in response.get_json()["predictions"]]
    model = app.extensions["serve"].model
    rows = [model.validator.validate(r) for r in (example, other)]
    expected = model.estimator.predict_proba(model.frame(columns_of(rows)))[:, 1]
    assert probabilities == pytest.approx(expected.tolist(), abs=1e-12)
    assert len({p["prediction_id"] for p in response.get_json()["predictions"]}) == 2


def test_predictions_are_logged_with_their_features(client, example, app):
    ids = [
        p["prediction_id"] for p in client.post("/predict", json=[example, example]).get_json()["predictions"]
    ]
    log = app.extensions["serve"].log
    log.flush()
    with log.engine.connect() as conn:
        rows = (
            conn.execute(sa.select(predictions).where(predictions.c.prediction_id.in_(ids))).mappings().all()
        )
    assert len(rows) == 2
    assert rows[0]["features"] == example
    assert rows[0]["model_version"] == app.extensions["serve"].model.model_version


def _without(record: dict, key: str) -> dict:
    return {k: v for k, v in record.items() if k != key}


INVALID = [
    # (change to the example record, status, error code, field)
    (lambda r: _without(r, "tenure_months"), 422, "missing_field", "tenure_months"),
    (lambda r: r | {"tenure_months": None}, 422, "null_value", "tenure_months"),
    (lambda r: r | {"tenure_months": "12"}, 422, "invalid_type", "tenure_months"),
    (lambda r: r | {"tenure_months": 2.5}, 422, "invalid_type", "tenure_months"),
    (lambda r: r | {"tenure_months": True}, 422, "invalid_type", "tenure_months"),
    (lambda r: r | {"tenure_months": 500}, 422, "out_of_range", "tenure_months"),
    (lambda r: r | {"monthly_charges": -1.0}, 422, "out_of_range", "monthly_charges"),
    (lambda r: r | {"contract": "weekly"}, 422, "invalid_category", "contract"),
    (lambda r: r | {"contract": 1}, 422, "invalid_type", "contract"),
    (lambda r: r | {"favourite_colour": "blue"}, 422, "unknown_field", "favourite_colour"),
]


@pytest.mark.parametrize(("change", "status", "code", "field"), INVALID)
def test_invalid_records_are_rejected_naming_the_field(client, example, change, status, code, field):
    response = client.post("/predict", json=change(example))
    assert response.status_code == status
    error = response.get_json()["error"]
    assert (error["code"], error["field"]) == (code, field)
    assert "index" not in error


def test_an_invalid_record_in_a_batch_is_named_by_index(client, example):
    response = client.post("/predict", json=[example, example | {"region": "moon"}])
    assert response.status_code == 422
    assert response.get_json()["error"] | {"message": ""} == {
        "code": "invalid_category",
        "field": "region",
        "index": 1,
        "message": "",
    }


@pytest.mark.parametrize(("change", "status", "code", "field"), INVALID)
def test_an_invalid_record_in_a_large_batch_gets_the_same_error(
    client, example, app, change, status, code, field
):
    """Large batches are validated column by column: the error is still the first invalid record's."""
    app.extensions["serve"].config["MAX_BATCH"] = 1000
    batch = [example] * 70
    batch[37] = change(example)
    batch[52] = example | {"region": "moon"}  # a later invalid record is not the one reported
    response = client.post("/predict", json=batch)
    assert response.status_code == status
    assert response.get_json()["error"] | {"message": ""} == {
        "code": code,
        "field": field,
        "index": 37,
        "message": "",
    }


def test_a_large_batch_matches_the_scikit_learn_pipeline(client, example, app):
    app.extensions["serve"].config["MAX_BATCH"] = 1000
    model = app.extensions["serve"].model
    batch = [
        example
        | {"tenure_months": i % 60, "monthly_charges": 20.0 + i, "contract": ("one-year", "two-year")[i % 2]}
        | ({"total_charges": None} if i % 3 == 0 else {})
        for i in range(300)
    ]
    response = client.post("/predict", json=batch)
    assert response.status_code == 200
    got = [p["probability"] for p in response.get_json()["predictions"]]
    rows = [model.validator.validate(r) for r in batch]
    expected = model.estimator.predict_proba(model.frame(columns_of(rows)))[:, 1]
    assert got == pytest.approx(expected.tolist(), abs=1e-12)
    assert [p["prediction"] for p in response.get_json()["predictions"]] == [
        int(p >= model.threshold) for p in expected
    ]


def test_nullable_features_may_be_omitted_or_null(client, example):
    assert client.post("/predict", json=_without(example, "total_charges")).status_code == 200
    assert client.post("/predict", json=example | {"avg_session_minutes": None}).status_code == 200


@pytest.mark.parametrize(
    ("body", "code"),
    [("[]", "empty_batch"), ("3", "invalid_body"), ('"x"', "invalid_body"), ("[1]", "invalid_record")],
)
def test_bodies_that_are_not_records(client, body, code):
    response = client.post("/predict", data=body, content_type="application/json")
    assert (response.status_code, response.get_json()["error"]["code"]) == (422, code)


def test_malformed_json_is_400(client):
    response = client.post("/predict", data="{not json", content_type="application/json")
    assert (response.status_code, response.get_json()["error"]["code"]) == (400, "invalid_json")


def test_non_json_is_415(client, example):
    response = client.post("/predict", data=json.dumps(example), content_type="text/plain")
    assert (response.status_code, response.get_json()["error"]["code"]) == (415, "unsupported_media_type")


def test_too_many_records_is_413(client, example):
    response = client.post("/predict", json=[example] * 51)  # MAX_BATCH is 50 in the fixture
    assert (response.status_code, response.get_json()["error"]["code"]) == (413, "batch_too_large")


def test_too_large_a_body_is_413(app, example):
    app.config["MAX_CONTENT_LENGTH"] = 1000
    response = app.test_client().post("/predict", json=[example] * 20)
    assert response.status_code == 413
    assert response.get_json()["error"]["code"] == "request_entity_too_large"


def test_unknown_path_is_404_and_wrong_method_405(client):
    missing = client.get("/nope")
    assert (missing.status_code, missing.get_json()["error"]["code"]) == (404, "not_found")
    wrong = client.get("/predict")
    assert (wrong.status_code, wrong.get_json()["error"]["code"]) == (405, "method_not_allowed")
    assert "POST" in wrong.headers["Allow"]


def test_feedback_is_stored_once(client, example, app):
    prediction_id = client.post("/predict", json=example).get_json()["predictions"][0]["prediction_id"]
    response = client.post("/feedback", json={"prediction_id": prediction_id, "label": 1})
    assert response.status_code == 201
    again = client.post("/feedback", json={"prediction_id": prediction_id, "label": 0})
    assert (again.status_code, again.get_json()["error"]["code"]) == (409, "already_labelled")
    with app.extensions["serve"].log.engine.connect() as conn:
        rows = conn.execute(sa.select(feedback.c.prediction_id, feedback.c.label)).all()
    assert [tuple(r) for r in rows] == [(prediction_id, 1)]


def test_feedback_on_an_unknown_prediction_is_404(client):
    response = client.post("/feedback", json={"prediction_id": "0" * 32, "label": 0})
    assert response.status_code == 404
    assert response.get_json()["error"] | {"message": ""} == {
        "code": "unknown_prediction",
        "field": "prediction_id",
        "message": "",
    }


@pytest.mark.parametrize(
    "body",
    [
        {"prediction_id": "0" * 32, "label": 2},
        {"prediction_id": "0" * 32, "label": True},
        {"prediction_id": "", "label": 1},
        {"label": 1},
        {"prediction_id": "0" * 32, "label": 1, "extra": 1},
    ],
)
def test_invalid_feedback_is_422(client, body):
    assert client.post("/feedback", json=body).status_code == 422


def test_health_ready_metadata(client, app):
    assert client.get("/health").get_json() == {"status": "ok"}
    version = app.extensions["serve"].model.model_version
    assert client.get("/ready").get_json() == {"ready": True, "model_version": version}
    meta = client.get("/metadata").get_json()
    assert meta["model_version"] == version
    assert meta["data"]["snapshot_sha256"] == "0" * 64
    assert [f["name"] for f in meta["features"]][:2] == ["tenure_months", "monthly_charges"]
    assert {"params", "metrics", "code", "example"} <= set(meta)
    assert "reference" not in meta


def test_not_ready_while_shutting_down(client, app):
    app.extensions["serve"].shutting_down = True
    response = client.get("/ready")
    assert (response.status_code, response.get_json()) == (503, {"ready": False, "reason": "shutting down"})


def test_metrics_count_requests_and_predictions(client, example, app):
    client.post("/predict", json=[example] * 3)
    client.post("/predict", json={"bad": 1})
    text = client.get("/metrics").get_data(as_text=True)
    assert 'http_requests_total{endpoint="/predict",method="POST",status="200"} 1.0' in text
    assert 'http_requests_total{endpoint="/predict",method="POST",status="422"} 1.0' in text
    assert 'http_request_duration_seconds_count{endpoint="/predict",status="200"} 1.0' in text
    assert "prediction_probability_count 3.0" in text
    version = app.extensions["serve"].model.model_version
    assert f'model_info{{model_version="{version}"}} 1.0' in text
    assert "prediction_log_backlog" in text
    counted = sum(
        float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith("predictions_total{")
    )
    assert counted == 3


def test_metrics_label_unknown_methods_as_other(client):
    """Clients must not be able to create metric series at will with made-up HTTP methods."""
    for method in ("BREW", "FOO", "BAR"):
        assert client.open("/predict", method=method).status_code == 405
    text = client.get("/metrics").get_data(as_text=True)
    assert 'http_requests_total{endpoint="unmatched",method="OTHER",status="405"} 3.0' in text
    assert "BREW" not in text and "FOO" not in text


@pytest.mark.parametrize(
    "prediction_id",
    ["x", "0" * 31, "0" * 33, "A" * 32, "g" * 32, "0" * 31 + "\x00", "0" * 32 + "\n", 5, None],
)
def test_feedback_ids_must_be_what_predict_returns(client, prediction_id):
    response = client.post("/feedback", json={"prediction_id": prediction_id, "label": 1})
    assert response.status_code == 422
    assert response.get_json()["error"] | {"message": ""} == {
        "code": "invalid_prediction_id",
        "field": "prediction_id",
        "message": "",
    }


@pytest.mark.postgres
def test_a_nul_in_a_feedback_id_is_422_on_postgres(model_dir, postgres_url):
    """PostgreSQL refuses NUL in text (a 500 before ids were validated)."""
    admin = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text("DROP DATABASE IF EXISTS serve_api_feedback"))
        conn.execute(sa.text("CREATE DATABASE serve_api_feedback"))
    admin.dispose()
    url = postgres_url.rsplit("/", 1)[0] + "/serve_api_feedback"
    app = create_app({"MODEL_DIR": str(model_dir), "PREDICTION_LOG_URL": url, "TESTING": True})
    try:
        response = app.test_client().post("/feedback", json={"prediction_id": "ab\x00cd", "label": 1})
        assert (response.status_code, response.get_json()["error"]["code"]) == (422, "invalid_prediction_id")
    finally:
        app.extensions["serve"].log.close()
        app.extensions["serve"].log.engine.dispose()


def test_a_full_prediction_log_is_503_with_retry_after_and_counted(client, example, app, monkeypatch):
    log = app.extensions["serve"].log
    log.max_backlog = 4
    predictions.drop(log.engine)  # the database fails: the writer falls behind
    assert client.post("/predict", json=[example] * 3).status_code == 200
    response = client.post("/predict", json=[example] * 2)
    assert response.status_code == 503
    assert response.get_json()["error"]["code"] == "log_behind"
    assert int(response.headers["Retry-After"]) >= 1
    assert log.backlog == 3  # the refused request's rows are not queued: no prediction left unlogged
    scored = []
    model = app.extensions["serve"].model
    monkeypatch.setattr(model, "predict_proba", lambda columns: scored.append(columns))
    assert client.post("/predict", json=[example] * 2).status_code == 503
    assert scored == []  # refused before it is scored: no CPU spent on an answer that cannot be logged
    monkeypatch.undo()
    text = client.get("/metrics").get_data(as_text=True)
    assert "prediction_log_rejected_total 4.0" in text
    predictions.create(log.engine)
    log.flush()
    assert client.post("/predict", json=[example] * 2).status_code == 200  # written: room again


def test_responses_forbid_content_sniffing(client, example):
    for response in (client.get("/health"), client.post("/predict", json=example), client.get("/nope")):
        assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_metadata_publishes_a_synthetic_example_not_the_recorded_one(client, app):
    """A model trained before mlcore.example carries a real test-window record in metadata.json: never shown."""
    model = app.extensions["serve"].model
    real = dict(model.example) | {"tenure_months": 37, "monthly_charges": 81.55}
    model.metadata["example"] = real
    features = client.get("/metadata").get_json()["features"]
    published = client.get("/metadata").get_json()["example"]
    assert published == example_record(features) != real
    spec = client.get("/openapi.json").get_json()
    body = spec["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]
    assert body["examples"]["one"]["value"] == published
    assert spec["components"]["schemas"]["Record"]["example"] == published
    assert client.post("/predict", json=published).status_code == 200


def test_a_log_queue_smaller_than_a_batch_is_refused_at_start(model_dir, tmp_path):
    with pytest.raises(ValueError, match=r"LOG_MAX_BACKLOG \(10\) must be at least MAX_BATCH \(50\)"):
        create_app(
            {
                "MODEL_DIR": str(model_dir),
                "PREDICTION_LOG_URL": f"sqlite:///{tmp_path}/log.db",
                "MAX_BATCH": 50,
                "LOG_MAX_BACKLOG": 10,
            }
        )


def test_a_nullable_int_feature_is_served_when_null_or_whole(tmp_path):
    from tests.support.model_fixture import train_tiny_model

    train_tiny_model(tmp_path / "model", nullable=("support_tickets",))
    app = create_app(
        {
            "MODEL_DIR": str(tmp_path / "model"),
            "PREDICTION_LOG_URL": f"sqlite:///{tmp_path}/log.db",
            "TESTING": True,
        }
    )
    try:
        client = app.test_client()
        example = dict(app.extensions["serve"].model.example)
        for value in (None, 3):
            response = client.post("/predict", json=example | {"support_tickets": value})
            assert response.status_code == 200, response.get_json()
        response = client.post("/predict", json=example | {"support_tickets": 14.5})
        assert response.status_code == 422
        assert response.get_json()["error"]["field"] == "support_tickets"
    finally:
        app.extensions["serve"].log.close()
