"""Run the real service (gunicorn + app/gunicorn.conf.py) on a free loopback port, for end-to-end tests."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.paths import REPO_ROOT


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def request(port: int, method: str, path: str, body=None, timeout: float = 10.0) -> tuple[int, bytes]:
    """One request on a fresh connection (as a load balancer's health check or a simple client would)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        conn.request(method, path, body=None if body is None else json.dumps(body), headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


@contextmanager
def gunicorn(
    model_dir: Path, log_url: str, log_file: Path, **env: str
) -> Iterator[tuple[subprocess.Popen, int]]:
    port = free_port()
    environ = {
        **os.environ,
        "PORT": str(port),
        "MODEL_DIR": str(model_dir),
        "PREDICTION_LOG_URL": log_url,
        "WEB_CONCURRENCY": "2",
        "GRACEFUL_TIMEOUT": "20",
        **env,
    }
    environ.pop("BIND", None)
    environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
    with open(log_file, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "app/gunicorn.conf.py", "app.wsgi:app"],
            cwd=REPO_ROOT,
            env=environ,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                if request(port, "GET", "/ready", timeout=2)[0] == 200:
                    break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"gunicorn did not become ready:\n{log_file.read_text()[-3000:]}")
            time.sleep(0.2)
        yield proc, port
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
