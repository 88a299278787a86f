"""gunicorn settings for the inference service, all overridable from the environment.

    BIND              address:port to listen on; when set it wins over everything below
    AIP_HTTP_PORT     Vertex AI's port: without BIND, listen on 0.0.0.0:$AIP_HTTP_PORT
    HOST, PORT        without BIND or AIP_HTTP_PORT, listen on $HOST:$PORT (default 127.0.0.1:8000; the image
                      sets HOST=0.0.0.0, and its `serve` argument PORT=8080 for SageMaker: app/entrypoint.sh)
    WEB_CONCURRENCY   worker processes (default: the number of CPUs)
    THREADS           threads per worker (default 4: prediction is CPU-bound and the threads share the GIL, but a
                      slow client holds only one thread, for BODY_TIMEOUT seconds at most, while the others serve)
    GRACEFUL_TIMEOUT  seconds a stopping worker may take to finish in-flight requests (default 30)
    TIMEOUT           seconds before a silent worker is killed and replaced (default 30)
    WORKER_CLASS      gunicorn worker type (default gthread: THREADS requests at once per worker; sync serves
                      one at a time, so one slow client per worker stops the service: docs/serving.md)
    KEEPALIVE         gthread: seconds an idle keep-alive connection is kept (default 0: one request per
                      connection, so new connections spread over the workers; see docs/serving.md)
    WORKER_CONNECTIONS  gthread: connections one worker holds at most (default 1000)
    PRELOAD           1 (default) = the master loads and verifies the model once, then forks the workers;
                      0 = each worker loads it after the fork
    ACCESS_LOG        gunicorn's access log: "-" = stdout (default off: it costs ~10% throughput)
    LOG_LEVEL         gunicorn's log level (default info)
    PROMETHEUS_MULTIPROC_DIR  where the workers' metrics are merged (default: a temporary directory this file
                      creates, and removes at exit)
    OMP_NUM_THREADS, OPENBLAS_NUM_THREADS, MKL_NUM_THREADS  native threads per process (default 1)

The app's own settings (MODEL_DIR, ...) are `DEFAULTS` in app/__init__.py; docs/serving.md lists both.

Preloading makes a HUP reload instant: new workers are forked from the master with the model in memory, so they
serve at once while the old ones finish (measured: loading takes seconds to a minute on a busy 2-core machine,
and with PRELOAD=0 gunicorn stops the old workers before the new ones have loaded, so requests wait). The price: a
HUP does not re-read model/; deploy a new model by starting a new server (a rolling update), or with gunicorn's
USR2 binary upgrade. One OpenMP thread per process also keeps the fork safe (libgomp is not fork-safe once it has
started a thread pool). On SIGTERM a worker stops accepting, finishes in-flight requests, and `worker_exit` flushes
the shadow model's rows (app/shadow.py) and the prediction log; /ready answers 503 from the moment the signal
arrives. HUP starts new workers before stopping the old ones: no request is dropped.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import tempfile

from gunicorn import util as gunicorn_util

if os.environ.get("BIND"):
    bind = os.environ["BIND"]
elif os.environ.get("AIP_HTTP_PORT"):  # Vertex AI sends health checks and predictions to this port
    bind = f"0.0.0.0:{os.environ['AIP_HTTP_PORT']}"
else:
    bind = f"{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY") or os.cpu_count() or 1)
threads = int(os.environ.get("THREADS", "4"))
# gthread: a client that trickles its body holds one thread, not the worker (sync: the whole worker, until TIMEOUT
# kills it); without keep-alive each new connection goes to a worker that accepts it, so load spreads over the
# workers (with keep-alive one worker could hold most connections: see docs/serving.md, "Worker type")
worker_class = os.environ.get("WORKER_CLASS", "gthread")
graceful_timeout = int(os.environ.get("GRACEFUL_TIMEOUT", "30"))
timeout = int(os.environ.get("TIMEOUT", "30"))
keepalive = int(os.environ.get("KEEPALIVE", "0"))
worker_connections = int(os.environ.get("WORKER_CONNECTIONS", "1000"))
preload_app = os.environ.get("PRELOAD", "1") == "1"
accesslog = os.environ.get("ACCESS_LOG") or None  # "-" for stdout; off by default (it costs ~10% throughput)
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info")

# One OpenMP/BLAS thread per worker process (set before the workers import numpy/scikit-learn).
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

# Prometheus: merge the metrics of all workers (see app/observability.py).
# (this file is re-read on HUP: the marker remembers that the directory is ours to remove at exit)
if "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="prometheus-")
    os.environ["SERVE_OWNS_PROMETHEUS_DIR"] = "1"


def _json_error(sock, status_int, reason, mesg):
    """gunicorn's own error answers (a malformed request line or header, 400/414/431/...), as JSON like the app's
    errors (gunicorn writes HTML and has no setting for it: its `util.write_error` is replaced, in the master, so
    the forked workers inherit it)."""
    code = reason.lower().replace(" ", "_") or "error"
    body = json.dumps({"error": {"code": code, "message": mesg or reason}}).encode()
    head = (
        f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\n"
        f"X-Content-Type-Options: nosniff\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    gunicorn_util.write_nonblock(sock, head.encode("latin1") + body)


gunicorn_util.write_error = _json_error


def on_starting(server):
    path = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    os.makedirs(path, exist_ok=True)
    for name in os.listdir(path):  # values from a previous run would be merged in
        os.unlink(os.path.join(path, name))


def on_exit(server):
    if os.environ.get("SERVE_OWNS_PROMETHEUS_DIR") == "1":
        shutil.rmtree(os.environ["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def _serve_state(worker):
    app = getattr(worker, "wsgi", None)
    return getattr(app, "extensions", {}).get("serve") if app is not None else None


def post_worker_init(worker):
    state = _serve_state(worker)
    if state is not None:
        state.publish_model_metrics()  # gauges set in the master before the fork are not this process's
    # Mark the app as stopping as soon as SIGTERM arrives, so /ready answers 503 while in-flight work finishes.
    previous = signal.getsignal(signal.SIGTERM)

    def on_term(signum, frame):
        if state is not None:
            state.shutting_down = True
        if callable(previous):
            previous(signum, frame)

    signal.signal(signal.SIGTERM, on_term)


def worker_exit(server, worker):
    state = _serve_state(worker)
    if state is not None:
        state.shutting_down = True
        state.close()
        worker.log.info("prediction log flushed (%d written)", state.log.written)
        if state.shadow.active:
            worker.log.info("shadow predictions flushed (%d written)", state.shadow.written)
