"""GET /openapi.json (OpenAPI 3.0, generated from the same feature schema that validates requests, with the real
example record from the model's metadata) and GET /docs (Swagger UI, its files served by this app: works offline).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, send_from_directory

from app.api import json_response, state

bp = Blueprint("docs", __name__)

DOCS_PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Churn model API</title>
  <link rel="stylesheet" href="/docs/static/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="/docs/static/swagger-ui-bundle.js"></script>
  <script>
    window.ui = SwaggerUIBundle({url: "/openapi.json", dom_id: "#swagger-ui", docExpansion: "full",
                                 deepLinking: true, validatorUrl: null});
  </script>
</body>
</html>
"""


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def _json(ref: str, description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": {"$ref": ref}}}}


def openapi_spec(
    record_schema: dict[str, Any], example: dict[str, Any] | None, max_batch: int, model_version: str
) -> dict[str, Any]:
    predict_examples = {}
    if example:
        predict_examples = {
            "one": {"summary": "One record", "value": example},
            "batch": {"summary": "A batch", "value": [example, example]},
        }
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "Churn model API",
            "version": model_version,
            "description": "Predicts customer churn with the model trained by the pipeline. Records are "
            "validated against the model's feature schema; unknown fields are rejected.",
        },
        "paths": {
            "/predict": {
                "post": {
                    "summary": "Predict churn for one record or a batch",
                    "operationId": "predict",
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "oneOf": [
                                        {"$ref": "#/components/schemas/Record"},
                                        {
                                            "type": "array",
                                            "items": {"$ref": "#/components/schemas/Record"},
                                            "minItems": 1,
                                            "maxItems": max_batch,
                                        },
                                    ]
                                },
                                **({"examples": predict_examples} if predict_examples else {}),
                            }
                        },
                    },
                    "responses": {
                        "200": _json(
                            "#/components/schemas/Predictions", "One prediction per record, in order"
                        ),
                        "400": _error("The body is not valid JSON"),
                        "413": _error("Too many records or too large a body"),
                        "415": _error("The body is not declared as JSON"),
                        "422": _error(
                            "A record breaks the schema (the error names the field and record index)"
                        ),
                        "503": _error("No verified model is loaded"),
                    },
                }
            },
            "/feedback": {
                "post": {
                    "summary": "Report the true label of an earlier prediction",
                    "operationId": "feedback",
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "additionalProperties": False,
                                    "required": ["prediction_id", "label"],
                                    "properties": {
                                        "prediction_id": {"type": "string", "minLength": 1},
                                        "label": {"type": "integer", "enum": [0, 1]},
                                    },
                                }
                            }
                        },
                    },
                    "responses": {
                        "201": _json("#/components/schemas/Feedback", "Recorded"),
                        "400": _error("The body is not valid JSON"),
                        "404": _error(
                            "No prediction with this id (or not yet written: retry after a second)"
                        ),
                        "409": _error("This prediction already has a label"),
                        "413": _error("Too large a body"),
                        "415": _error("The body is not declared as JSON"),
                        "422": _error("Invalid fields"),
                    },
                }
            },
            "/health": {
                "get": {
                    "summary": "Liveness: the process answers",
                    "operationId": "health",
                    "responses": {"200": _json("#/components/schemas/Health", "Alive")},
                }
            },
            "/ready": {
                "get": {
                    "summary": "Readiness: a verified model is loaded and the server is not stopping",
                    "operationId": "ready",
                    "responses": {
                        "200": _json("#/components/schemas/Readiness", "Ready"),
                        "503": _json("#/components/schemas/Readiness", "Not ready"),
                    },
                }
            },
            "/metadata": {
                "get": {
                    "summary": "The model: version, data hash, params, metrics, features schema",
                    "operationId": "metadata",
                    "responses": {
                        "200": {
                            "description": "metadata.json (without the drift reference)",
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        },
                        "503": _error("No verified model is loaded"),
                    },
                }
            },
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics",
                    "operationId": "metrics",
                    "responses": {
                        "200": {
                            "description": "Prometheus text format",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        }
                    },
                }
            },
        },
        "components": {
            "schemas": {
                "Record": record_schema,
                "Prediction": {
                    "type": "object",
                    "required": ["prediction", "probability", "prediction_id", "model_version"],
                    "properties": {
                        "prediction": {"type": "integer", "enum": [0, 1]},
                        "probability": {"type": "number", "minimum": 0, "maximum": 1},
                        "prediction_id": {"type": "string"},
                        "model_version": {"type": "string"},
                    },
                },
                "Predictions": {
                    "type": "object",
                    "required": ["predictions"],
                    "properties": {
                        "predictions": {"type": "array", "items": {"$ref": "#/components/schemas/Prediction"}}
                    },
                },
                "Feedback": {
                    "type": "object",
                    "required": ["prediction_id", "label", "status"],
                    "properties": {
                        "prediction_id": {"type": "string"},
                        "label": {"type": "integer", "enum": [0, 1]},
                        "status": {"type": "string"},
                    },
                },
                "Health": {
                    "type": "object",
                    "required": ["status"],
                    "properties": {"status": {"type": "string"}},
                },
                "Readiness": {
                    "type": "object",
                    "required": ["ready"],
                    "properties": {
                        "ready": {"type": "boolean"},
                        "reason": {"type": "string"},
                        "model_version": {"type": "string"},
                    },
                },
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {
                        "error": {
                            "type": "object",
                            "required": ["code", "message"],
                            "properties": {
                                "code": {"type": "string"},
                                "message": {"type": "string"},
                                "field": {"type": "string"},
                                "index": {"type": "integer"},
                            },
                        }
                    },
                },
            }
        },
    }


@bp.get("/openapi.json")
def openapi() -> Response:
    st = state()
    spec = st.extra.get("openapi")
    if spec is None:
        model = st.model
        record = (
            model.validator.json_schema(model.example)
            if model.validator is not None
            else {"type": "object", "description": "no model loaded: see GET /ready"}
        )
        spec = st.extra["openapi"] = openapi_spec(
            record, model.example, st.config["MAX_BATCH"], model.model_version
        )
    return json_response(spec)


@bp.get("/docs")
def docs_page() -> Response:
    return Response(DOCS_PAGE, mimetype="text/html")


@bp.get("/docs/static/<path:filename>")
def docs_static(filename: str) -> Response:
    from swagger_ui_bundle import swagger_ui_path

    return send_from_directory(
        swagger_ui_path, filename, max_age=current_app.config.get("DOCS_MAX_AGE", 3600)
    )
