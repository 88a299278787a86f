"""Vertex AI custom container: `{"instances": [...], "parameters": {...}}` -> `{"predictions": [...]}`.

Vertex AI sets AIP_PREDICT_ROUTE and AIP_HEALTH_ROUTE (the routes are registered only when set: unset, the
container is not on Vertex AI and the native API is all there is), AIP_HTTP_PORT (app/gunicorn.conf.py listens on
0.0.0.0:$AIP_HTTP_PORT unless BIND is set) and, for a model uploaded with an artifact URI, AIP_STORAGE_URI
(`model_dir`). Each prediction is the native one (prediction, probability, prediction_id, model_version); errors
are the native ones (Vertex AI defines no error body and passes the container's through).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote, urlparse

from flask import Blueprint, Flask, Response

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
from app.protocols.common import no_parameters
from mlcore.errors import PipelineError


def model_dir(config: dict[str, Any]) -> str:
    """Where the model is: AIP_STORAGE_URI when set (a local path or a file:// URI), else MODEL_DIR.

    Other schemes (gs://: Vertex AI copies the artifact URI there) stop the server at start: the serving stack
    has no Cloud Storage client, and serving the model baked into the image instead would serve another model."""
    uri = str(config.get("AIP_STORAGE_URI") or "")
    if not uri:
        return str(config["MODEL_DIR"])
    parsed = urlparse(uri)
    if parsed.scheme == "":
        return uri
    if parsed.scheme == "file" and parsed.netloc in ("", "localhost"):
        return unquote(parsed.path)
    raise PipelineError(
        f"AIP_STORAGE_URI={uri}: only a local path or a file:// URI can be served (no {parsed.scheme}:// client "
        "in the serving image); upload the model to Vertex AI without an artifact URI (the image carries "
        "model/), or mount the artifact and point AIP_STORAGE_URI at it"
    )


def instances_of(body: Any) -> list[Any]:
    if not isinstance(body, dict) or not isinstance(body.get("instances"), list):
        raise ApiError(422, "invalid_body", 'send {"instances": [record, ...]}', field="instances")
    unknown = sorted(set(body) - {"instances", "parameters"})
    if unknown:
        raise ApiError(422, "unknown_field", f"unknown field '{unknown[0]}'", field=unknown[0])
    no_parameters(body, "parameters")
    return body["instances"]


def vertex_predict() -> Response:
    st = state()
    require_ready(st.model)
    outputs, version = predict_records(st, instances_of(read_json()))
    return json_response({"predictions": prediction_objects(outputs, version)})


def vertex_health() -> Response:
    st = state()
    reason = readiness(st)
    if reason:
        return json_response({"ready": False, "reason": reason}, 503)
    return json_response({"ready": True, "model_version": st.model.model_version})


def register(app: Flask) -> None:
    """The routes Vertex AI named, when it named them."""
    bp = Blueprint("vertex", __name__)
    health_route, predict_route = app.config["AIP_HEALTH_ROUTE"], app.config["AIP_PREDICT_ROUTE"]
    if health_route:
        bp.add_url_rule(health_route, "health", vertex_health, methods=["GET"])
    if predict_route:
        bp.add_url_rule(predict_route, "predict", scoring(vertex_predict), methods=["POST"])
    app.register_blueprint(bp)
