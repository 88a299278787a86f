"""The platforms' container contracts, each a thin adapter over the one prediction core (`app.api.predict_records`):
an adapter turns its protocol's body into records and the core's outputs into its protocol's answer; validation,
the prediction log, metrics, auth (`app.api.scoring`: PREDICT_TOKENS) and readiness (`app.api.readiness`) are the
native API's. docs/serving.md, "Platforms", lists the routes and variables of each.

- vertex:    Vertex AI custom container (AIP_HEALTH_ROUTE, AIP_PREDICT_ROUTE, AIP_STORAGE_URI; AIP_HTTP_PORT in
             app/gunicorn.conf.py)
- sagemaker: SageMaker (`serve`, GET /ping) and the MLflow scoring server's bodies, both on POST /invocations
- kserve:    KServe V1 and V2 (Open Inference Protocol)
"""

from __future__ import annotations

from flask import Flask

from app.protocols import kserve, sagemaker, vertex


def register_before(app: Flask) -> None:
    """Before the native blueprint: a Vertex AI route set to a native path (e.g. AIP_HEALTH_ROUTE=/health, which
    Vertex AI's local endpoint uses) must be Vertex AI's there."""
    vertex.register(app)


def register(app: Flask) -> None:
    app.register_blueprint(sagemaker.bp)
    app.register_blueprint(kserve.v1)
    app.register_blueprint(kserve.v2)
