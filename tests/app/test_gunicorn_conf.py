"""The service under real gunicorn: a graceful stop flushes the prediction log, a reload under load drops nothing."""

from __future__ import annotations

import json
import signal
import sqlite3
import threading
import time

import pytest

from tests.support.gunicorn_server import gunicorn, request


def _example(model_dir) -> dict:
    return json.loads((model_dir / "metadata.json").read_text())["example"]


def _logged_ids(db) -> set[str]:
    with sqlite3.connect(db) as conn:
        return {row[0] for row in conn.execute("SELECT prediction_id FROM predictions")}


@pytest.mark.slow
def test_sigterm_flushes_every_acknowledged_prediction(model_dir, tmp_path):
    db = tmp_path / "log.db"
    example = _example(model_dir)
    acknowledged: set[str] = set()
    # a flush interval of an hour: only the shutdown flush can write these rows
    with gunicorn(model_dir, f"sqlite:///{db}", tmp_path / "gunicorn.log", LOG_FLUSH_INTERVAL="3600") as (
        proc,
        port,
    ):
        for i in range(30):
            status, body = request(port, "POST", "/predict", [example] * (1 + i % 3))
            assert status == 200
            acknowledged |= {p["prediction_id"] for p in json.loads(body)["predictions"]}
        metrics = request(port, "GET", "/metrics")[1].decode()
        assert 'http_requests_total{endpoint="/predict",method="POST",status="200"} 30.0' in metrics
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=40) == 0
    assert len(acknowledged) == 60
    assert _logged_ids(db) == acknowledged
    assert "prediction log flushed" in (tmp_path / "gunicorn.log").read_text()


@pytest.mark.slow
def test_a_reload_under_load_drops_no_request(model_dir, tmp_path):
    db = tmp_path / "log.db"
    example = _example(model_dir)
    log_file = tmp_path / "gunicorn.log"
    results: list[int | str] = []
    acknowledged: set[str] = set()
    stop = threading.Event()

    def client(port: int) -> None:
        for _ in range(500):  # bounded: at most 500 requests per client thread
            if stop.is_set():
                return
            try:
                status, body = request(port, "POST", "/predict", example)
                results.append(status)
                if status == 200:
                    acknowledged.add(json.loads(body)["predictions"][0]["prediction_id"])
            except OSError as exc:
                results.append(f"{type(exc).__name__}: {exc}")

    with gunicorn(model_dir, f"sqlite:///{db}", log_file, LOG_FLUSH_INTERVAL="0.2") as (proc, port):
        threads = [threading.Thread(target=client, args=(port,)) for _ in range(4)]
        for t in threads:
            t.start()
        time.sleep(1.5)
        proc.send_signal(signal.SIGHUP)
        time.sleep(4)  # old workers finish their requests while new ones take over
        stop.set()
        for t in threads:
            t.join(timeout=60)
        assert request(port, "GET", "/ready")[0] == 200
    errors = [r for r in results if r != 200]
    assert not errors, errors[:5]
    assert len(results) > 50
    assert log_file.read_text().count("Booting worker") >= 4  # the reload did replace the workers
    assert _logged_ids(db) == acknowledged


def test_worker_settings_come_from_the_environment(monkeypatch):
    import runpy

    from tests.support.gunicorn_server import REPO_ROOT

    for name, value in {"WORKER_CONNECTIONS": "8", "KEEPALIVE": "2", "WEB_CONCURRENCY": "3"}.items():
        monkeypatch.setenv(name, value)
    # the file sets defaults for these: keep them out of the test process's environment
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.setenv(name, "1")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", "/nonexistent-not-created-at-import")
    conf = runpy.run_path(str(REPO_ROOT / "app" / "gunicorn.conf.py"))
    assert (conf["worker_connections"], conf["keepalive"], conf["workers"]) == (8, 2, 3)
