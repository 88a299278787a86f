"""Prometheus metrics for the service: requests, latency, predictions, model version, prediction-log backlog.

Under gunicorn the metrics of all workers are merged: app/gunicorn.conf.py points PROMETHEUS_MULTIPROC_DIR at a
directory before the workers start (prometheus_client then keeps values in per-process files) and marks dead
workers. Without it (tests, a single process) each app instance has its own registry.
"""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
PROBABILITY_BUCKETS = tuple(round(0.1 * i, 1) for i in range(1, 11))


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "http_requests_total",
            "HTTP requests by endpoint, method and status.",
            ["endpoint", "method", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "http_request_duration_seconds",
            "Request latency by endpoint and status.",
            ["endpoint", "status"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.predictions = Counter(
            "predictions_total", "Predictions by predicted class.", ["predicted_class"], registry=r
        )
        self.probability = Histogram(
            "prediction_probability",
            "Predicted probability of the positive class.",
            buckets=PROBABILITY_BUCKETS,
            registry=r,
        )
        self.model_info = Gauge(
            "model_info",
            "The served model (value 1); model_version in the label.",
            ["model_version"],
            multiprocess_mode="max",
            registry=r,
        )
        self.model_ready = Gauge(
            "model_ready", "1 when the model is loaded and verified.", multiprocess_mode="min", registry=r
        )
        self.log_backlog = Gauge(
            "prediction_log_backlog",
            "Predictions queued but not yet written.",
            multiprocess_mode="livesum",
            registry=r,
        )
        self.log_written = Counter(
            "prediction_log_written_total", "Predictions written to the log.", registry=r
        )
        self.feedback = Counter("feedback_total", "Feedback labels by outcome.", ["outcome"], registry=r)

    def exposition(self) -> bytes:
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            merged = CollectorRegistry()
            multiprocess.MultiProcessCollector(merged)
            return generate_latest(merged)
        return generate_latest(self.registry)
