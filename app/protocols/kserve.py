"""KServe's V1 protocol and V2, the Open Inference Protocol (REST), on the model params.yaml `project.name` names.

V1: GET /v1/models/<name> (ready), POST /v1/models/<name>:predict {"instances": [records]} -> {"predictions":
[native predictions]}. V2: GET /v2 (server), /v2/health/live, /v2/health/ready, /v2/models/<name> (metadata),
/v2/models/<name>/ready; POST /v2/models/<name>/infer with one 1-D tensor per feature (the feature's name, shape
[n]; BYTES for a category, INT64 for an int, FP64 for a float; null = missing), answered with the tensors
`probability` FP64 [n], `prediction` INT64 [n] and `prediction_id` BYTES [n]. A name other than the model's is 404;
errors are `{"error": "<message>"}` (both protocols) with the native status.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response

from app.api import (
    ApiError,
    json_response,
    predict_records,
    prediction_objects,
    read_json,
    readiness,
    require_ready,
    scoring,
    state,
)
from app.protocols.common import message_only, served_name, use_error_shape

v1 = Blueprint("kserve_v1", __name__)
v2 = Blueprint("kserve_v2", __name__)
use_error_shape(v1, message_only)
use_error_shape(v2, message_only)
DATATYPES = {"category": "BYTES", "int": "INT64", "float": "FP64"}
OUTPUTS = {"probability": "FP64", "prediction": "INT64", "prediction_id": "BYTES"}


def known_model(name: str) -> Any:
    """The served model when it is loaded and `name` is its name: else 503 (not loaded) or 404 (another name)."""
    model = state().model
    require_ready(model)
    if name != served_name(model):
        raise ApiError(404, "unknown_model", f"no model '{name}' (this server serves '{served_name(model)}')")
    return model


def ready_model(name: str) -> Any:
    """`known_model`, and 503 from the moment the server is stopping (a scoring route still serves then)."""
    reason = readiness(state())
    if reason:
        raise ApiError(503, "not_ready", reason)
    return known_model(name)


@v1.get("/v1/models/<name>")
def v1_model(name: str) -> Response:
    ready_model(name)
    return json_response({"name": name, "ready": True})


@v1.post("/v1/models/<name>:predict")
@scoring
def v1_predict(name: str) -> Response:
    st = state()
    known_model(name)
    body = read_json()
    if not isinstance(body, dict) or not isinstance(body.get("instances"), list):
        raise ApiError(422, "invalid_body", 'send {"instances": [record, ...]}', field="instances")
    outputs, version = predict_records(st, body["instances"])
    return json_response({"predictions": prediction_objects(outputs, version)})


@v2.get("/v2")
def v2_server() -> Response:
    return json_response({"name": served_name(state().model), "version": "2", "extensions": []})


@v2.get("/v2/health/live")
def v2_live() -> Response:
    return json_response({"live": True})


@v2.get("/v2/health/ready")
def v2_ready() -> Response:
    reason = readiness(state())
    if reason:
        return json_response({"ready": False, "error": reason}, 503)
    return json_response({"ready": True})


@v2.get("/v2/models/<name>/ready")
def v2_model_ready(name: str) -> Response:
    ready_model(name)
    return json_response({"name": name, "ready": True})


@v2.get("/v2/models/<name>")
def v2_model(name: str) -> Response:
    model = ready_model(name)
    return json_response(
        {
            "name": name,
            "versions": [model.model_version],
            "platform": "scikit-learn",
            "inputs": [
                {"name": feature, "datatype": kind, "shape": [-1]}
                for feature, kind in input_datatypes(model).items()
            ],
            "outputs": [{"name": key, "datatype": kind, "shape": [-1]} for key, kind in OUTPUTS.items()],
        }
    )


def input_datatypes(model: Any) -> dict[str, str]:
    """Each feature's V2 datatype, in the model's feature order."""
    return {f.name: DATATYPES[f.type] for f in model.validator.features}


def v2_tensors(records: list[dict[str, Any]], datatypes: dict[str, str]) -> list[dict[str, Any]]:
    """Records -> V2 inputs, one 1-D tensor per feature (the inverse of `tensor_records`)."""
    return [
        {"name": name, "datatype": kind, "shape": [len(records)], "data": [r.get(name) for r in records]}
        for name, kind in datatypes.items()
    ]


def tensor_records(body: Any) -> list[Any]:
    """V2 inputs (one 1-D tensor per feature) -> records; the validator then checks every value."""
    if not isinstance(body, dict) or not isinstance(body.get("inputs"), list) or not body["inputs"]:
        raise ApiError(422, "invalid_body", 'send {"inputs": [tensor, ...]} (one tensor per feature)')
    columns: dict[str, list[Any]] = {}
    for i, tensor in enumerate(body["inputs"]):
        name = tensor.get("name") if isinstance(tensor, dict) else None
        if not isinstance(name, str):
            raise ApiError(422, "invalid_tensor", f"inputs[{i}] needs a 'name' (the feature's)")
        shape, data = tensor.get("shape"), tensor.get("data")
        if not isinstance(tensor.get("datatype"), str):
            raise ApiError(422, "invalid_tensor", f"input '{name}' needs a 'datatype'", field=name)
        if not isinstance(data, list) or not (
            isinstance(shape, list)
            and len(shape) in (1, 2)
            and shape[1:] in ([], [1])
            and shape[0] == len(data)
        ):
            raise ApiError(
                422,
                "invalid_tensor",
                f"input '{name}' must be 1-D: shape [n] and n values in 'data'",
                field=name,
            )
        if name in columns:
            raise ApiError(422, "invalid_tensor", f"input '{name}' appears twice", field=name)
        columns[name] = data
    lengths = {len(data) for data in columns.values()}
    if len(lengths) > 1:
        raise ApiError(422, "invalid_tensor", "every input must have the same shape [n]")
    names = list(columns)
    return [dict(zip(names, row, strict=True)) for row in zip(*columns.values(), strict=True)]


def requested_outputs(body: dict[str, Any]) -> list[str]:
    wanted = body.get("outputs")
    if wanted is None:
        return list(OUTPUTS)
    names = [item.get("name") if isinstance(item, dict) else None for item in wanted or ()]
    unknown = [name for name in names if name not in OUTPUTS]
    if not isinstance(wanted, list) or unknown:
        raise ApiError(422, "invalid_outputs", f"outputs may only name {', '.join(OUTPUTS)}", field="outputs")
    return names


@v2.post("/v2/models/<name>/infer")
@scoring
def v2_infer(name: str) -> Response:
    st = state()
    known_model(name)
    body = read_json()
    records = tensor_records(body)
    wanted = requested_outputs(body)
    outputs, version = predict_records(st, records)
    ids, probabilities, predictions = (list(column) for column in zip(*outputs, strict=True))
    data = {"probability": probabilities, "prediction": predictions, "prediction_id": ids}
    answer: dict[str, Any] = {"model_name": name, "model_version": version}
    if isinstance(body.get("id"), str):
        answer["id"] = body["id"]
    answer["outputs"] = [
        {"name": key, "datatype": OUTPUTS[key], "shape": [len(ids)], "data": data[key]} for key in wanted
    ]
    return json_response(answer)
