"""The service under real gunicorn: a graceful stop flushes the prediction log, a reload under load drops nothing."""

from __future__ import annotations

import json
import select
import signal
import socket
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


def _raw(port: int, data: bytes, timeout: float = 20.0) -> tuple[int, dict[str, str], bytes]:
    """Send raw bytes on a new connection; the status, headers and body of the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in header_lines)
    return int(status_line.split()[1]), {k.lower(): v for k, v in headers.items()}, body


def _chunked(body: bytes, size: int = 1000) -> bytes:
    chunks = [body[i : i + size] for i in range(0, len(body), size)]
    return b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks) + b"0\r\n\r\n"


@pytest.mark.slow
def test_gunicorn_edge_cases(model_dir, tmp_path):
    """Under real gunicorn: a chunked body over MAX_CONTENT_LENGTH is 413 (werkzeug used to cut it at the limit
    and answer 200), one within it is served, and the errors gunicorn answers itself are JSON."""
    example = _example(model_dir)
    with gunicorn(
        model_dir, f"sqlite:///{tmp_path}/log.db", tmp_path / "gunicorn.log", MAX_CONTENT_LENGTH="4096"
    ) as (_proc, port):
        head = b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        small = json.dumps([example] * 2).encode()
        assert len(small) < 4096
        status, _, body = _raw(port, head + _chunked(small))
        assert status == 200 and len(json.loads(body)["predictions"]) == 2
        large = json.dumps([example] * 40).encode()
        assert len(large) > 4096
        status, headers, body = _raw(port, head + _chunked(large))
        assert status == 413, body
        assert json.loads(body)["error"]["code"] == "request_entity_too_large"

        status, headers, body = _raw(port, b"GARBAGE\r\n\r\n")
        assert status == 400
        assert headers["content-type"] == "application/json"
        assert json.loads(body)["error"]["code"] == "bad_request"


class _Trickler:
    """A client that sends its headers and then its body one byte at a time, slower than any real client."""

    def __init__(self, port: int, interval: float):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=60)
        self.sock.sendall(
            b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n["
        )
        self.stop = threading.Event()
        self.sent = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(interval,), daemon=True)
        self.thread.start()

    def _run(self, interval: float) -> None:
        try:
            while not self.stop.wait(interval):
                self.sock.sendall(b" ")
                self.sent.set()
        except OSError:
            self.sent.set()  # the server closed the connection

    def answered(self) -> bool:
        """Whether the server has answered (or closed the connection) yet."""
        return bool(select.select([self.sock], [], [], 0)[0])

    def answer(self) -> bytes:
        self.stop.set()
        self.thread.join()
        received = b""
        while chunk := self.sock.recv(65536):
            received += chunk
        self.sock.close()
        return received


@pytest.mark.slow
def test_slow_clients_do_not_take_the_workers(model_dir, tmp_path):
    """Slow-client probe: more clients trickling their bodies than there are workers (2) must not stop /health
    answering for others; each trickler gets a JSON 408 once BODY_TIMEOUT has passed."""
    with gunicorn(model_dir, f"sqlite:///{tmp_path}/log.db", tmp_path / "gunicorn.log", BODY_TIMEOUT="4") as (
        _proc,
        port,
    ):
        tricklers = [_Trickler(port, interval=0.2) for _ in range(3)]
        for trickler in tricklers:
            assert trickler.sent.wait(10)
        for _ in range(5):  # while all three are still sending their bodies
            assert request(port, "GET", "/health", timeout=3)[0] == 200
        assert not any(t.answered() for t in tricklers)
        for trickler in tricklers:
            answer = trickler.answer()
            head, _, body = answer.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 408"), answer[:300]
            assert json.loads(body)["error"]["code"] == "request_timeout"
