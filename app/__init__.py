"""The inference service: a Flask app serving the model that `make run` trained.

`create_app(test_config=None)` builds it: defaults, then environment variables (same names, e.g. MODEL_DIR), then
`test_config`. Production runs it under gunicorn (`app/gunicorn.conf.py`, entry point `app.wsgi:app`); the model is
loaded once per worker, here, never per request. `DEFAULTS` lists every setting the app reads (gunicorn.conf.py
lists the server's own; docs/serving.md both).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Any

from flask import Flask
from threadpoolctl import threadpool_limits

from app import api, auth, docs, protocols
from app.model import load_service
from app.observability import Metrics
from app.predlog import PredictionLog
from app.protocols.vertex import model_dir
from app.shadow import Shadow, load_shadow

DEFAULTS: dict[str, Any] = {
    "MODEL_DIR": "model",  # model.skops + metadata.json written by `make run`
    "SHADOW_MODEL_DIR": "",  # a second model that scores every request unanswered (app/shadow.py); empty: none
    "PREDICTION_LOG_URL": "sqlite:///predictions.db",  # any SQLAlchemy URL, e.g. postgresql+psycopg://...
    "MAX_BATCH": 1000,  # records per /predict request (more: 413)
    "MAX_CONTENT_LENGTH": 4 * 1024 * 1024,  # bytes per request body (more: 413)
    "LOG_FLUSH_INTERVAL": 0.5,  # seconds between prediction-log batch writes
    "LOG_BATCH_SIZE": 1000,  # rows per prediction-log insert
    "LOG_MAX_BACKLOG": 50_000,  # rows queued at most per worker (more: /predict answers 503 with Retry-After)
    "BODY_TIMEOUT": 10.0,  # seconds a client may send nothing while its request body is read (more: 408)
    "MODEL_THREADS": 1,  # BLAS/OpenMP threads per worker
    "FASTPATH": True,  # use app.fastpath when it matches scikit-learn
    "FEEDBACK_TOKENS": "",  # name:token,... required on /feedback when set (app/auth.py); empty: open
    "PREDICT_TOKENS": "",  # the same for /predict
    "AUTH_REQUIRED": "",  # endpoints that must have tokens (e.g. "feedback"): refuse to start otherwise
    # Vertex AI sets these (app/protocols/vertex.py); unset, its routes are not served
    "AIP_HEALTH_ROUTE": "",  # GET: 200 only when the verified model is loaded
    "AIP_PREDICT_ROUTE": "",  # POST {"instances": [...]}
    "AIP_STORAGE_URI": "",  # the model directory (local path or file://) instead of MODEL_DIR
}


@dataclass
class ServeState:
    """Everything the request handlers share, in `app.extensions["serve"]`."""

    model: Any
    log: Any
    metrics: Any
    config: dict[str, Any]
    shadow: Any = None  # app.shadow.Shadow
    shutting_down: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def publish_model_metrics(self) -> None:
        self.metrics.model_info.labels(model_version=self.model.model_version).set(1)
        self.metrics.model_ready.set(1 if self.model.ready else 0)
        self.shadow.publish()

    def close(self) -> None:
        """Drain the shadow's rows and the prediction log (gunicorn's worker_exit; tests)."""
        self.shadow.close()
        self.log.close()


def _from_env(defaults: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key, default in defaults.items():
        raw = os.environ.get(key)
        if raw is None:
            continue
        if isinstance(default, bool):
            out[key] = raw.strip().lower() in ("1", "true", "yes", "on")
        elif isinstance(default, int | float):
            out[key] = type(default)(raw)
        else:
            out[key] = raw
    return out


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    app = Flask(__name__)
    app.config.from_mapping(DEFAULTS)
    app.config.from_mapping(_from_env(DEFAULTS))
    if test_config:
        app.config.from_mapping(test_config)
    if not app.logger.handlers or app.logger.level == logging.NOTSET:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    metrics = Metrics()
    model = load_service(model_dir(app.config), use_fastpath=bool(app.config["FASTPATH"]))
    shadow_model = load_shadow(
        app.config["SHADOW_MODEL_DIR"], model, use_fastpath=bool(app.config["FASTPATH"])
    )
    # One thread per worker: the workers already occupy the cores, and OpenMP threads in each worker
    # oversubscribe them (measured 7x slower for HistGradientBoosting; docs/benchmarks.md).
    # (after loading: threadpoolctl only reaches the libraries already loaded, and scikit-learn brings OpenMP)
    threadpool_limits(limits=int(app.config["MODEL_THREADS"]))

    if int(app.config["LOG_MAX_BACKLOG"]) < int(app.config["MAX_BATCH"]):
        raise ValueError(
            f"LOG_MAX_BACKLOG ({app.config['LOG_MAX_BACKLOG']}) must be at least MAX_BATCH "
            f"({app.config['MAX_BATCH']}): a full batch could never be logged"
        )
    log = PredictionLog(
        app.config["PREDICTION_LOG_URL"],
        flush_interval=float(app.config["LOG_FLUSH_INTERVAL"]),
        batch_size=int(app.config["LOG_BATCH_SIZE"]),
        max_backlog=int(app.config["LOG_MAX_BACKLOG"]),
    )
    log.on_flush = lambda written, backlog: (
        metrics.log_written.inc(written),
        metrics.log_backlog.set(backlog),
    )
    shadow = Shadow(
        shadow_model,
        log.engine,
        metrics,
        flush_interval=float(app.config["LOG_FLUSH_INTERVAL"]),
        max_backlog=int(app.config["LOG_MAX_BACKLOG"]),
    )
    state = app.extensions["serve"] = ServeState(
        model=model, log=log, metrics=metrics, config=dict(app.config), shadow=shadow
    )
    state.publish_model_metrics()

    protocols.register_before(app)
    app.register_blueprint(api.bp)
    app.register_blueprint(docs.bp)
    protocols.register(app)  # the platforms' contracts over the same core (app/protocols)
    api.register_hooks(app)
    auth.init_app(app)  # after api's hooks: a 401 is timed and counted like any response
    return app
