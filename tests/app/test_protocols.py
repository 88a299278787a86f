"""The platforms' contracts (app/protocols) over the one prediction core: each route scores like the native
/predict, logs the id it answers, counts its predictions, refuses an invalid record naming the field in its
protocol's error shape, answers 503 until the model is loaded, and takes /predict's tokens."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from app.protocols.common import served_name
from mlcore.errors import PipelineError
from mlcore.predlog_schema import predictions

TOKEN = "p" * 32
VERTEX = {
    "AIP_HEALTH_ROUTE": "/v1/endpoints/1/deployedModels/2",
    "AIP_PREDICT_ROUTE": "/v1/endpoints/1/deployedModels/2:predict",
}


def _tensors(records: list[dict]) -> dict:
    names = list(records[0])
    kinds = {str: "BYTES", int: "INT64", float: "FP64"}
    return {
        "id": "r1",
        "inputs": [
            {
                "name": name,
                "shape": [len(records)],
                "datatype": kinds.get(type(records[0][name]), "FP64"),
                "data": [r[name] for r in records],
            }
            for name in names
        ],
    }


def _split(records: list[dict]) -> dict:
    columns = list(records[0])
    return {"dataframe_split": {"columns": columns, "data": [[r[c] for c in columns] for r in records]}}


def _from_predictions(body: dict) -> list[tuple[str, float]]:
    return [(p["prediction_id"], p["probability"]) for p in body["predictions"]]


def _from_outputs(body: dict) -> list[tuple[str, float]]:
    out = {o["name"]: o["data"] for o in body["outputs"]}
    return list(zip(out["prediction_id"], out["probability"], strict=True))


# protocol -> (route ({name}: params.yaml project.name, from the model's metadata), body for a list of records, (id, probability) per record from the answer)
PROTOCOLS: dict[str, tuple[str, Any, Any]] = {
    "vertex": (
        VERTEX["AIP_PREDICT_ROUTE"],
        lambda rs: {"instances": rs, "parameters": {}},
        _from_predictions,
    ),
    "mlflow-records": ("/invocations", lambda rs: {"dataframe_records": rs}, _from_predictions),
    "mlflow-split": ("/invocations", _split, _from_predictions),
    "mlflow-instances": ("/invocations", lambda rs: {"instances": rs}, _from_predictions),
    "mlflow-inputs-columns": (
        "/invocations",
        lambda rs: {"inputs": {k: [r[k] for r in rs] for k in rs[0]}},
        _from_predictions,
    ),
    "sagemaker-records": ("/invocations", lambda rs: rs, _from_predictions),
    "kserve-v1": ("/v1/models/{name}:predict", lambda rs: {"instances": rs}, _from_predictions),
    "kserve-v2": ("/v2/models/{name}/infer", _tensors, _from_outputs),
}
# protocol family -> the invalid field's message from its error body
ERROR_MESSAGE = {
    "vertex": lambda body: body["error"]["message"],
    "mlflow": lambda body: body["error"]["message"] if body["error_code"] == "BAD_REQUEST" else "",
    "sagemaker": lambda body: body["message"],
    "kserve": lambda body: body["error"],
}


@pytest.fixture
def make_app(make_app):
    """tests/app/conftest.py's, with this module's defaults: a small MAX_BATCH and Vertex AI's environment."""
    return lambda **config: make_app(**{"MAX_BATCH": 50, **VERTEX, **config})


@pytest.fixture
def served(make_app):
    return make_app()


@pytest.fixture
def example(served) -> dict:
    return dict(served.extensions["serve"].model.example)


def _named(route: str, flask_app) -> str:
    return route.format(name=served_name(flask_app.extensions["serve"].model))


def _batch(example: dict) -> list[dict]:
    other = example | {"contract": "month-to-month", "support_tickets": 9, "total_charges": 10.5}
    return [example, other, example]


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("size", [1, 3])
def test_each_protocol_scores_like_the_native_route_and_logs_the_ids_it_answers(
    served, example, protocol, size
):
    route, body, answered = PROTOCOLS[protocol]
    route = _named(route, served)
    records = _batch(example)[:size]
    client = served.test_client()
    native = [p["probability"] for p in client.post("/predict", json=records).get_json()["predictions"]]
    response = client.post(route, json=body(records))
    assert response.status_code == 200, response.get_json()
    pairs = answered(response.get_json())
    assert [probability for _, probability in pairs] == native
    log = served.extensions["serve"].log
    log.flush()
    with log.engine.connect() as conn:
        rows = conn.execute(
            sa.select(predictions.c.prediction_id, predictions.c.features).where(
                predictions.c.prediction_id.in_([i for i, _ in pairs])
            )
        ).all()
    assert {row.prediction_id: row.features for row in rows} == {
        i: record for (i, _), record in zip(pairs, records, strict=True)
    }


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_each_protocol_counts_its_predictions(served, example, protocol):
    route, body, _ = PROTOCOLS[protocol]
    route = _named(route, served)
    client = served.test_client()
    assert client.post(route, json=body(_batch(example))).status_code == 200
    text = client.get("/metrics").get_data(as_text=True)
    counted = sum(
        float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith("predictions_total{")
    )
    assert counted == 3
    assert "prediction_probability_count 3.0" in text


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_an_invalid_record_is_422_naming_the_field_in_the_protocols_error_shape(served, example, protocol):
    route, body, _ = PROTOCOLS[protocol]
    route = _named(route, served)
    records = _batch(example)
    records[1] = records[1] | {"tenure_months": -5}
    response = served.test_client().post(route, json=body(records))
    assert response.status_code == 422
    family = "mlflow" if route == "/invocations" else protocol.split("-")[0]
    message = ERROR_MESSAGE[family](response.get_json())
    assert "'tenure_months' must be between" in message
    if family == "kserve":
        assert response.get_json() == {"error": f"record 1: {message.removeprefix('record 1: ')}"}
    if family in ("vertex", "mlflow"):
        assert response.get_json()["error"]["field"] == "tenure_months"
        assert response.get_json()["error"]["index"] == 1


def test_an_unknown_field_is_named_too(served, example):
    route = _named("/v2/models/{name}/infer", served)
    response = served.test_client().post(route, json=_tensors([example | {"tenure": 3}]))
    assert (response.status_code, response.get_json()) == (422, {"error": "record 0: unknown field 'tenure'"})


HEALTH_ROUTES = [
    VERTEX["AIP_HEALTH_ROUTE"],
    "/ping",
    "/v1/models/{name}",
    "/v2/health/ready",
    "/v2/models/{name}/ready",
    "/v2/models/{name}",
]


@pytest.mark.parametrize("route", HEALTH_ROUTES)
def test_health_routes_answer_200_only_with_the_verified_model_loaded(make_app, tmp_path, route):
    loaded = make_app()
    assert loaded.test_client().get(_named(route, loaded)).status_code == 200
    unloaded = make_app(MODEL_DIR=str(tmp_path / "no-model")).test_client()
    assert unloaded.get(_named(route, loaded)).status_code == 503
    assert unloaded.get("/v2/health/live").status_code == 200  # liveness: the process answers


@pytest.mark.parametrize("route", HEALTH_ROUTES)
def test_health_routes_answer_503_once_the_server_is_stopping(served, route):
    served.extensions["serve"].shutting_down = True
    assert served.test_client().get(_named(route, served)).status_code == 503


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_scoring_routes_answer_503_without_the_model(make_app, tmp_path, example, protocol):
    route, body, _ = PROTOCOLS[protocol]
    unloaded = make_app(MODEL_DIR=str(tmp_path / "no-model"))
    response = unloaded.test_client().post(_named(route, unloaded), json=body([example]))
    assert response.status_code == 503


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_scoring_routes_take_the_predict_tokens(make_app, example, protocol):
    route, body, _ = PROTOCOLS[protocol]
    guarded = make_app(PREDICT_TOKENS=f"crm:{TOKEN}")
    route, client = _named(route, guarded), guarded.test_client()
    assert client.post(route, json=body([example])).status_code == 401
    response = client.post(route, json=body([example]), headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200


def test_every_scoring_route_is_guarded(make_app):
    """A new adapter's POST route that is not marked `app.api.scoring` would be open: only /feedback may differ."""
    flask_app = make_app(PREDICT_TOKENS=f"crm:{TOKEN}")
    guarded = flask_app.extensions["auth"]
    for rule in flask_app.url_map.iter_rules():
        if "POST" in (rule.methods or ()) and rule.endpoint != "api.post_feedback":
            assert guarded.get(rule.endpoint) == guarded["api.predict"], rule.rule


def test_another_model_name_is_404(served, example):
    client = served.test_client()
    for response in (
        client.get("/v1/models/other"),
        client.post("/v1/models/other:predict", json={"instances": [example]}),
        client.get("/v2/models/other/ready"),
        client.post("/v2/models/other/infer", json=_tensors([example])),
    ):
        assert response.status_code == 404
        assert "no model 'other'" in response.get_json()["error"]


def test_v2_answers_the_output_tensors_and_the_request_id(served, example):
    route = _named("/v2/models/{name}/infer", served)
    body = served.test_client().post(route, json=_tensors(_batch(example))).get_json()
    assert (body["id"], body["model_name"]) == ("r1", _named("{name}", served))
    assert body["model_version"] == served.extensions["serve"].model.model_version
    assert [(o["name"], o["datatype"], o["shape"]) for o in body["outputs"]] == [
        ("probability", "FP64", [3]),
        ("prediction", "INT64", [3]),
        ("prediction_id", "BYTES", [3]),
    ]


def test_v2_model_metadata_lists_one_input_per_feature(served):
    body = served.test_client().get(_named("/v2/models/{name}", served)).get_json()
    features = served.extensions["serve"].model.validator.features
    assert [i["name"] for i in body["inputs"]] == [f.name for f in features]
    assert {i["datatype"] for i in body["inputs"]} <= {"BYTES", "INT64", "FP64"}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"dataframe_records": [], "instances": []}, "not dataframe_records and instances"),
        ({"dataframe_split": {"columns": ["a"], "data": [[1, 2]]}}, "row 0 must be a list of 1 values"),
        ({"dataframe_records": {"a": 1}}, "'dataframe_records' must be a list of records"),
        ({"inputs": {"a": [1], "b": [1, 2]}}, "equally long lists"),
        ({"instances": [{}], "params": {"threshold": 0.1}}, "takes no 'params'"),
        ({"instances": [{}], "params": []}, "takes no 'params'"),  # not an object: refused, not ignored
        ({"dataframe_records": []}, "the list of records is empty"),
    ],
)
def test_invalid_mlflow_bodies_say_what_to_send(served, body, message):
    response = served.test_client().post("/invocations", json=body)
    assert response.status_code == 422
    assert message in response.get_json()["message"]
    assert response.get_json()["error_code"] == "BAD_REQUEST"


@pytest.mark.parametrize("parameters", [{"threshold": 0.1}, [], "x", 0])
def test_vertex_refuses_parameters_it_would_ignore(served, example, parameters):
    response = served.test_client().post(
        VERTEX["AIP_PREDICT_ROUTE"], json={"instances": [example], "parameters": parameters}
    )
    assert response.status_code == 422
    assert response.get_json()["error"]["field"] == "parameters"


@pytest.mark.parametrize("parameters", [{}, None])
def test_vertex_takes_empty_or_null_parameters(served, example, parameters):
    response = served.test_client().post(
        VERTEX["AIP_PREDICT_ROUTE"], json={"instances": [example], "parameters": parameters}
    )
    assert response.status_code == 200


def test_vertex_routes_exist_only_when_vertex_names_them(make_app):
    client = make_app(AIP_HEALTH_ROUTE="", AIP_PREDICT_ROUTE="").test_client()
    assert client.get(VERTEX["AIP_HEALTH_ROUTE"]).status_code == 404


def test_a_vertex_route_on_a_native_path_is_vertexs(make_app, tmp_path, example):
    """Vertex AI's local endpoint uses /health and /predict: there, those answer Vertex AI's contract."""
    client = make_app(AIP_HEALTH_ROUTE="/health", AIP_PREDICT_ROUTE="/predict").test_client()
    response = client.post("/predict", json={"instances": [example]})
    assert response.status_code == 200 and len(response.get_json()["predictions"]) == 1
    unloaded = make_app(
        MODEL_DIR=str(tmp_path / "no-model"), AIP_HEALTH_ROUTE="/health", AIP_PREDICT_ROUTE="/predict"
    )
    assert unloaded.test_client().get("/health").status_code == 503


@pytest.mark.parametrize("scheme", ["", "file://"])
def test_aip_storage_uri_names_the_model_served(make_app, model_dir, tmp_path, scheme):
    served = make_app(MODEL_DIR=str(tmp_path / "no-model"), AIP_STORAGE_URI=f"{scheme}{model_dir}")
    assert served.extensions["serve"].model.ready


def test_a_cloud_storage_uri_stops_the_server_instead_of_serving_another_model(make_app):
    with pytest.raises(PipelineError, match=r"AIP_STORAGE_URI=gs://bucket/model: only a local path"):
        make_app(AIP_STORAGE_URI="gs://bucket/model")
