"""The JSON endpoints: /predict, /feedback, /health, /ready, /metadata, /metrics, plus error handling and
request metrics. Every error is JSON `{"error": {"code", "message", "field"?, "index"?}}` with a 4xx/5xx status."""

from __future__ import annotations

import dataclasses
import re
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import numpy as np
import orjson
from flask import Blueprint, Flask, Response, current_app, g, request
from werkzeug.exceptions import ClientDisconnected, HTTPException

from app.predlog import LogFull
from app.schema import RecordError
from mlcore.example import example_record

bp = Blueprint("api", __name__)

# Metadata fields /metadata returns (the drift reference is large and only for the monitoring jobs).
METADATA_FIELDS = (
    "model_version",
    "code",
    "data",
    "params",
    "metrics",
    "features",
    "example",
    "label",
    "classes",
    "threshold",
    "libraries",
    "artifact",
)


ID_MASK = (1 << 128) - 1
PREDICTION_ID = re.compile(r"[0-9a-f]{32}")  # what new_prediction_ids() hands out
Output = tuple[str, float, int]  # (prediction_id, probability, prediction) of one record


class ApiError(Exception):
    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None, **extra: Any
    ):
        super().__init__(message)
        self.status, self.body, self.headers = (
            status,
            {"code": code, "message": message, **extra},
            headers or {},
        )


def state():
    return current_app.extensions["serve"]


def json_response(obj: Any, status: int = 200) -> Response:
    return Response(
        orjson.dumps(obj, option=orjson.OPT_SERIALIZE_NUMPY), status=status, mimetype="application/json"
    )


def read_body() -> bytes:
    """The whole request body, read within BODY_TIMEOUT seconds (else 408: a client trickling its body holds one
    worker thread for that long at most; gunicorn's socket gets the time left before each read).
    413 beyond MAX_CONTENT_LENGTH: werkzeug refuses a declared Content-Length above it before reading, and its
    stream raises when a chunked body would go past it (`get_data()` would stop at the limit and return a
    truncated body, so the stream is read to its end here)."""
    timeout = float(current_app.config["BODY_TIMEOUT"])
    wsgi_environ = request.environ  # (the WSGI environment, not the process's)
    sock = wsgi_environ.get("gunicorn.socket")
    deadline = time.monotonic() + timeout
    chunks = []
    try:
        while True:
            if sock is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError
                sock.settimeout(remaining)
            chunk = request.stream.read(64 * 1024)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)
    except (TimeoutError, ClientDisconnected) as exc:
        if isinstance(exc, TimeoutError) or isinstance(exc.__context__, TimeoutError):
            raise ApiError(
                408,
                "request_timeout",
                f"the request body did not arrive within {timeout:g} s (BODY_TIMEOUT): send it faster",
            ) from exc
        raise
    finally:
        if sock is not None:
            sock.settimeout(None)


def read_json() -> Any:
    """The request body as JSON: 415 unless the body is declared JSON, 400 when it does not parse."""
    if not request.is_json:
        raise ApiError(
            415, "unsupported_media_type", "send the body as JSON (Content-Type: application/json)"
        )
    try:
        return orjson.loads(read_body())
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, "invalid_json", f"the body is not valid JSON: {exc}") from exc


def records_of(body: Any) -> tuple[list[Any], bool]:
    """The native body's records (one JSON object or a list of them) and whether it was one record; 422 else."""
    if isinstance(body, dict):
        return [body], True
    if isinstance(body, list):
        return body, False
    raise ApiError(422, "invalid_body", "send one record (a JSON object) or a list of records")


def require_ready(model: Any) -> None:
    if not model.ready:
        raise ApiError(503, "not_ready", model.reason)


def readiness(st: Any) -> str:
    """Why the service is not ready ("" when it is): the one rule every health route applies."""
    if st.shutting_down:
        return "shutting down"
    return "" if st.model.ready else st.model.reason


def new_prediction_ids(count: int) -> list[str]:
    # one random 128-bit id per request, +1 per record: unique, and 30x cheaper than a uuid4 per record
    first_id = uuid.uuid4().int
    return [f"{(first_id + i) & ID_MASK:032x}" for i in range(count)]


def log_rows(log: Any, records: list[Any], outputs: list[Output], version: str) -> None:
    """Queue one prediction-log row per record (written in batches off the request path: app/predlog.py)."""
    created_at = datetime.now(UTC)
    log.record(
        [
            {
                "prediction_id": prediction_id,
                "created_at": created_at,
                "model_version": version,
                "features": record,
                "probability": probability,
                "prediction": prediction,
            }
            for record, (prediction_id, probability, prediction) in zip(records, outputs, strict=True)
        ]
    )


def predict_records(st: Any, records: list[Any], single: bool = False) -> tuple[list[Output], str]:
    """The prediction core every protocol calls: records (parsed from any body shape) -> one (prediction_id,
    probability, prediction) per record and the model version, after validation (422 naming the field, 413 above
    MAX_BATCH), the log-room check (503 with Retry-After), scoring, the prediction-log rows and the metrics.
    `single`: one record sent bare (its errors carry no index). The caller checks readiness (`require_ready`)."""
    model = st.model
    if not records:
        raise ApiError(422, "empty_batch", "the list of records is empty")
    max_batch = st.config["MAX_BATCH"]
    if len(records) > max_batch:
        raise ApiError(413, "batch_too_large", f"at most {max_batch} records per request")
    if len(records) == 1:  # the same error as `columns` would raise (index 0 unless sent bare), 10% faster
        columns = [(value,) for value in model.validator.validate(records[0], None if single else 0)]
    else:
        columns = model.validator.columns(records)
    version = model.model_version
    try:
        st.log.wait_for_room(len(records))  # a log that is behind refuses before the request is scored
        probabilities = model.predict_proba(columns)
        predicted = (probabilities >= model.threshold).astype(np.int64)
        ids = new_prediction_ids(len(records))
        outputs = list(zip(ids, probabilities.tolist(), predicted.tolist(), strict=True))
        log_rows(st.log, records, outputs, version)
        st.shadow.submit(ids, columns)  # scored off the request path (app/shadow.py); never raises
    except LogFull as exc:
        st.metrics.log_rejected.inc(len(records))
        retry = max(1, round(st.log.flush_interval * 2))
        raise ApiError(
            503,
            "log_behind",
            f"the prediction log is behind ({exc}): retry in {retry} s",
            headers={"Retry-After": str(retry)},
        ) from exc
    st.metrics.count_predictions(predicted, probabilities)
    return outputs, version


def prediction_objects(outputs: list[Output], version: str) -> list[dict[str, Any]]:
    """The native per-record answer, which the Vertex AI, KServe V1 and MLflow adapters return too."""
    return [
        {
            "prediction": prediction,
            "probability": probability,
            "prediction_id": prediction_id,
            "model_version": version,
        }
        for prediction_id, probability, prediction in outputs
    ]


def scoring(view: Any) -> Any:
    """Marks a view that scores records: PREDICT_TOKENS guards it (app/auth.py), whatever its protocol."""
    view.protected_as = "predict"
    return view


@bp.post("/predict")
@scoring
def predict() -> Response:
    st = state()
    require_ready(st.model)
    records, single = records_of(read_json())
    outputs, version = predict_records(st, records, single)
    return json_response({"predictions": prediction_objects(outputs, version)})


@bp.post("/feedback")
def post_feedback() -> Response:
    st = state()
    body = read_json()
    if not isinstance(body, dict):
        raise ApiError(422, "invalid_body", "send a JSON object {prediction_id, label}")
    unknown = sorted(set(body) - {"prediction_id", "label"})
    if unknown:
        raise ApiError(422, "unknown_field", f"unknown field '{unknown[0]}'", field=unknown[0])
    prediction_id, label = body.get("prediction_id"), body.get("label")
    if not isinstance(prediction_id, str) or not PREDICTION_ID.fullmatch(prediction_id):
        raise ApiError(
            422,
            "invalid_prediction_id",
            "'prediction_id' must be the 32 lower-case hex characters /predict returned",
            field="prediction_id",
        )
    if label.__class__ is not int or label not in (0, 1):
        raise ApiError(422, "invalid_label", "'label' must be 0 or 1", field="label")
    outcome = st.log.add_feedback(prediction_id, label, client=g.get("client"))  # app/auth.py sets it
    st.metrics.feedback.labels(outcome).inc()
    if outcome == "unknown":
        raise ApiError(
            404, "unknown_prediction", f"no prediction with id '{prediction_id}'", field="prediction_id"
        )
    if outcome == "duplicate":
        raise ApiError(
            409,
            "already_labelled",
            f"prediction '{prediction_id}' already has a label",
            field="prediction_id",
        )
    return json_response({"prediction_id": prediction_id, "label": label, "status": "recorded"}, 201)


@bp.get("/health")
def health() -> Response:
    return json_response({"status": "ok"})


@bp.get("/ready")
def ready() -> Response:
    st = state()
    reason = readiness(st)
    if reason:
        return json_response({"ready": False, "reason": reason}, 503)
    return json_response({"ready": True, "model_version": st.model.model_version})


def published_example(model: Any) -> dict[str, Any]:
    """The example /metadata and /openapi.json show: built from the feature contract, never the metadata's own
    `example` (a model trained before mlcore.example carries a real test-window record there)."""
    return example_record([dataclasses.asdict(feature) for feature in model.validator.features])


@bp.get("/metadata")
def metadata() -> Response:
    st = state()
    require_ready(st.model)
    published = {k: st.model.metadata[k] for k in METADATA_FIELDS if k in st.model.metadata}
    models = {
        "serving": {"status": "loaded", "model_version": st.model.model_version},
        "shadow": st.shadow.describe(),
    }
    return json_response(published | {"example": published_example(st.model), "models": models})


@bp.get("/metrics")
def metrics() -> Response:
    st = state()
    st.metrics.log_backlog.set(st.log.backlog)
    return Response(st.metrics.exposition(), mimetype="text/plain; version=0.0.4")


def register_hooks(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def api_error(exc: ApiError):
        response = json_response({"error": exc.body}, exc.status)
        response.headers.update(exc.headers)
        return response

    @app.errorhandler(RecordError)
    def record_error(exc: RecordError):
        return json_response({"error": exc.as_dict()}, 422)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        code = (exc.name or "error").lower().replace(" ", "_")
        response = json_response({"error": {"code": code, "message": exc.description}}, exc.code or 500)
        if exc.code == 405 and exc.valid_methods:
            response.headers["Allow"] = ", ".join(exc.valid_methods)
        return response

    @app.before_request
    def start_timer() -> None:
        g.started = time.perf_counter()

    @app.after_request
    def observe(response: Response) -> Response:
        response.headers["X-Content-Type-Options"] = "nosniff"  # browsers must not guess another content type
        started = g.get("started")
        if started is not None:
            m = state().metrics
            endpoint = request.url_rule.rule if request.url_rule is not None else "unmatched"
            status = str(response.status_code)
            requests, latency = m.request_metrics(endpoint, request.method, status)
            requests.inc()
            latency.observe(time.perf_counter() - started)
        return response
