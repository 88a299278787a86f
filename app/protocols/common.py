"""What the adapters share: the model's name, and errors in each protocol's own shape from the native API's
errors (same status, same one-line message)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Blueprint, Response
from werkzeug.exceptions import HTTPException

from app.api import ApiError, json_response
from app.schema import RecordError

DEFAULT_MODEL_NAME = "model"  # a model trained before metadata.json recorded params.yaml `project.name`


def served_name(model: Any) -> str:
    """The model's name in KServe's routes: params.yaml `project.name`, which train records in metadata.json."""
    project = model.metadata.get("project")
    name = project.get("name") if isinstance(project, dict) else None
    return name if isinstance(name, str) and name else DEFAULT_MODEL_NAME


def native_error(exc: Exception) -> tuple[int, dict[str, Any], dict[str, str]]:
    """(status, the native `error` object, headers) for what a view raised."""
    if isinstance(exc, ApiError):
        return exc.status, exc.body, exc.headers
    if isinstance(exc, RecordError):
        return 422, exc.as_dict(), {}
    assert isinstance(exc, HTTPException)
    code = (exc.name or "error").lower().replace(" ", "_")
    return exc.code or 500, {"code": code, "message": exc.description}, {}


def use_error_shape(bp: Blueprint, shape: Callable[[int, dict[str, Any]], dict[str, Any]]) -> None:
    """Errors raised in `bp`'s views answer `shape(status, native error)`, with the native status and headers."""

    def handle(exc: Exception) -> Response:
        status, error, headers = native_error(exc)
        response = json_response(shape(status, error), status)
        response.headers.update(headers)
        return response

    for kind in (ApiError, RecordError, HTTPException):
        bp.register_error_handler(kind, handle)


def message_only(status: int, error: dict[str, Any]) -> dict[str, Any]:
    """KServe (V1 and V2): `{"error": "<message>"}`; the message names the field (and the record's index)."""
    message = error["message"]
    if "index" in error:
        message = f"record {error['index']}: {message}"
    return {"error": message}


def no_parameters(body: dict[str, Any], key: str) -> None:
    """The model takes no parameters: `key` may be absent, null or {} (MLflow's `params`, Vertex AI's
    `parameters`); anything else is a 422 naming it."""
    value = body.get(key)
    if value is not None and value != {}:
        raise ApiError(
            422, f"invalid_{key}", f"this model takes no '{key}' (send {{}} or leave it out)", field=key
        )
