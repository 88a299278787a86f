"""ops.deliver.smoke (`make smoke URL=...`) against the real service under gunicorn on 127.0.0.1, and against a
stub that answers 200 with nonsense (a smoke test must catch that)."""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from ops.deliver import smoke
from ops.deliver.smoke import free_port
from tests.support.gunicorn_server import gunicorn
from tests.support.paths import REPO_ROOT

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def service(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """(base URL, model version) of the app served by gunicorn with its production config on 127.0.0.1."""
    work = tmp_path_factory.mktemp("smoke")
    version = json.loads((model_dir / "metadata.json").read_text())["model_version"]
    with gunicorn(
        model_dir, f"sqlite:///{work / 'predictions.db'}", work / "gunicorn.log", WEB_CONCURRENCY="1"
    ) as (_, port):
        yield f"http://127.0.0.1:{port}", version


def test_smoke_passes_against_the_real_service(service, capsys):
    url, version = service
    assert smoke.main([url, "--model-version", version]) == 0
    out = capsys.readouterr().out
    assert "FAIL" not in out
    assert "ok   POST /predict with the example record predicts" in out
    assert "ok   POST /predict with an invalid record is a 4xx JSON error" in out
    assert f"served '{version}', expected '{version}'" in out


def test_smoke_fails_when_another_model_is_served(service, capsys):
    url, version = service
    assert smoke.main([url, "--model-version", "000000000000"]) == 1
    captured = capsys.readouterr()
    assert f"FAIL the served model is the expected one: served '{version}'" in captured.out
    assert "smoke test FAILED" in captured.err


def test_make_smoke_runs_the_same_check(service):
    url, version = service
    proc = subprocess.run(
        ["make", "--no-print-directory", "smoke", f"URL={url}", f"MODEL_VERSION={version}"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"smoke test passed against {url}" in proc.stdout


def test_an_unreachable_service_fails_with_a_clear_message(capsys):
    url = f"http://127.0.0.1:{free_port()}"
    assert smoke.main([url, "--wait", "1"]) == 2
    assert f"error: {url}/ready did not answer 200 within 1s" in capsys.readouterr().err


def test_a_url_without_a_scheme_is_refused(capsys):
    assert smoke.main(["api.example.com"]) == 2
    assert "must start with http:// or https://" in capsys.readouterr().err


class _Liar(BaseHTTPRequestHandler):
    """Answers 200 to everything; /predict returns an error inside a 200."""

    def _send(self, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        meta = {"model_version": "abc", "example": {"tenure_months": 3}}
        self._send(meta if self.path == "/metadata" else {})

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self._send({"error": "model not loaded"})

    def log_message(self, *args):
        pass


def test_a_200_carrying_an_error_fails_the_smoke_test(capsys):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Liar)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        assert smoke.main([url, "--wait", "5"]) == 1
    finally:
        server.shutdown()
    out = capsys.readouterr().out
    assert "FAIL POST /predict with the example record predicts" in out
    assert "FAIL POST /predict with an invalid record is a 4xx JSON error: status 200" in out


def test_invalid_record_changes_only_the_first_feature():
    example = {"tenure_months": 3, "contract": "one-year"}
    assert smoke.invalid_record(example) == {"tenure_months": "not-a-valid-value", "contract": "one-year"}
    assert example == {"tenure_months": 3, "contract": "one-year"}


def test_smoke_sends_the_token_a_closed_predict_requires(
    model_dir: Path, tmp_path: Path, monkeypatch, capsys
):
    token = "smoke-test-token-0123456789"
    version = json.loads((model_dir / "metadata.json").read_text())["model_version"]
    with gunicorn(
        model_dir,
        f"sqlite:///{tmp_path / 'predictions.db'}",
        tmp_path / "gunicorn.log",
        WEB_CONCURRENCY="1",
        PREDICT_TOKENS=f"smoke:{token}",
    ) as (_, port):
        url = f"http://127.0.0.1:{port}"
        monkeypatch.delenv(smoke.TOKEN_ENV, raising=False)
        assert smoke.main([url, "--model-version", version]) == 1  # /predict answers 401 without it
        monkeypatch.setenv(smoke.TOKEN_ENV, token)
        assert smoke.main([url, "--model-version", version]) == 0
    assert token not in capsys.readouterr().out
