"""SageMaker's container contract and the MLflow scoring server's bodies, on the same routes.

SageMaker starts the image with the argument `serve` (app/entrypoint.sh: port 8080, or SAGEMAKER_BIND_TO_PORT),
asks GET /ping (200 only when the verified model is loaded) and sends records to POST /invocations. The body of
/invocations is JSON in any of the MLflow scoring server's shapes, or the native one:

    {"dataframe_records": [{...}, ...]}              records
    {"dataframe_split": {"columns": [...], "data": [[...], ...]}}   columns and rows ("index" is ignored)
    {"instances": [{...}, ...]} / {"inputs": [{...}, ...]}          records, or {"feature": [values], ...} columns
    [{...}, ...] / {...}                             the native /predict body: records, or one record

with an optional "params" that must be empty (the model takes none). The answer is MLflow's,
`{"predictions": [...]}`, each prediction the native one. Errors are MLflow's (`error_code`, `message`) with the
native `error` object beside them.
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
    records_of,
    require_ready,
    scoring,
    state,
)
from app.protocols.common import no_parameters, use_error_shape

bp = Blueprint("sagemaker", __name__)
MLFLOW_KEYS = ("dataframe_records", "dataframe_split", "instances", "inputs")
# MLflow's error codes (mlflow.protos.databricks_pb2) for the statuses this service answers
MLFLOW_ERROR_CODES = {
    400: "BAD_REQUEST",
    401: "UNAUTHENTICATED",
    404: "RESOURCE_DOES_NOT_EXIST",
    413: "BAD_REQUEST",
    415: "BAD_REQUEST",
    422: "BAD_REQUEST",
    503: "TEMPORARILY_UNAVAILABLE",
}


def mlflow_error(status: int, error: dict[str, Any]) -> dict[str, Any]:
    return {
        "error_code": MLFLOW_ERROR_CODES.get(status, "INTERNAL_ERROR"),
        "message": error["message"],
        "error": error,
    }


use_error_shape(bp, mlflow_error)


def invalid(key: str, what: str) -> ApiError:
    return ApiError(422, "invalid_body", f"'{key}' must be {what}", field=key)


def columns_to_records(key: str, columns: dict[str, Any]) -> list[Any]:
    """{"feature": [values], ...} -> records (every list the same length)."""
    if not all(isinstance(values, list) for values in columns.values()):
        raise invalid(key, "a list of records or an object of equally long lists (one per feature)")
    lengths = {len(values) for values in columns.values()}
    if len(lengths) > 1:
        raise invalid(key, "an object of equally long lists (one per feature)")
    names = list(columns)
    return [dict(zip(names, row, strict=True)) for row in zip(*columns.values(), strict=True)]


def split_to_records(split: Any) -> list[Any]:
    """pandas' "split" orient -> records."""
    if (
        not isinstance(split, dict)
        or not isinstance(split.get("columns"), list)
        or not isinstance(split.get("data"), list)
    ):
        raise invalid("dataframe_split", 'an object {"columns": [...], "data": [[...], ...]}')
    columns = split["columns"]
    records = []
    for i, row in enumerate(split["data"]):
        if not isinstance(row, list) or len(row) != len(columns):
            raise ApiError(
                422,
                "invalid_body",
                f"'dataframe_split' row {i} must be a list of {len(columns)} values (one per column)",
                field="dataframe_split",
                index=i,
            )
        records.append(dict(zip(columns, row, strict=True)))
    return records


def invocation_records(body: Any) -> tuple[list[Any], bool]:
    """Any accepted /invocations body -> (records, whether it was one bare record)."""
    keys = [key for key in MLFLOW_KEYS if isinstance(body, dict) and key in body]
    if not keys:
        return records_of(body)
    if len(keys) > 1:
        raise ApiError(422, "invalid_body", f"send one of {', '.join(MLFLOW_KEYS)}, not {' and '.join(keys)}")
    [key] = keys
    unknown = sorted(set(body) - {key, "params"})
    if unknown:
        raise ApiError(422, "unknown_field", f"unknown field '{unknown[0]}'", field=unknown[0])
    no_parameters(body, "params")
    value = body[key]
    if key == "dataframe_split":
        return split_to_records(value), False
    if isinstance(value, dict):
        if key == "dataframe_records":
            raise invalid(key, "a list of records")
        return columns_to_records(key, value), False
    if not isinstance(value, list):
        raise invalid(key, "a list of records")
    return value, False


@bp.post("/invocations")
@scoring
def invocations() -> Response:
    st = state()
    require_ready(st.model)
    records, single = invocation_records(read_json())
    outputs, version = predict_records(st, records, single)
    return json_response({"predictions": prediction_objects(outputs, version)})


@bp.get("/ping")
def ping() -> Response:
    st = state()
    reason = readiness(st)
    if reason:
        return json_response({"ready": False, "reason": reason}, 503)
    return json_response({"ready": True, "model_version": st.model.model_version})
