"""Where the server listens on each platform (app/gunicorn.conf.py) and where the image's HEALTHCHECK asks
(app/healthcheck.py): BIND wins; else Vertex AI's AIP_HTTP_PORT on all interfaces; else HOST:PORT."""

from __future__ import annotations

import runpy

import pytest

from app import healthcheck
from tests.support.paths import REPO_ROOT

UNSET = ("BIND", "AIP_HTTP_PORT", "HOST", "PORT")


@pytest.mark.parametrize(
    ("env", "bind"),
    [
        ({}, "127.0.0.1:8000"),
        ({"PORT": "9000"}, "127.0.0.1:9000"),
        ({"HOST": "0.0.0.0", "PORT": "8000"}, "0.0.0.0:8000"),  # the image's own settings
        ({"HOST": "0.0.0.0", "PORT": "8000", "AIP_HTTP_PORT": "7080"}, "0.0.0.0:7080"),  # Vertex AI
        ({"BIND": "127.0.0.1:6000", "AIP_HTTP_PORT": "7080"}, "127.0.0.1:6000"),  # set explicitly: it wins
    ],
)
def test_the_listen_address_precedence(monkeypatch, tmp_path, env, bind):
    for name in UNSET:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))  # no directory of its own to create
    settings = runpy.run_path(str(REPO_ROOT / "app" / "gunicorn.conf.py"))
    assert settings["bind"] == bind


@pytest.mark.parametrize(
    ("env", "ports"),
    [
        ({"PORT": "8000"}, ["8000", "8080"]),  # then 8080: `serve` sets PORT in gunicorn's process only
        ({"BIND": "0.0.0.0:9000", "AIP_HTTP_PORT": "7080"}, ["9000", "8080"]),
        ({"AIP_HTTP_PORT": "8080", "PORT": "8000"}, ["8080"]),
    ],
)
def test_the_healthcheck_asks_where_the_server_listens(monkeypatch, env, ports):
    for name in UNSET:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert healthcheck.ports() == ports


def test_the_entry_point_starts_sagemakers_serve_on_8080_and_passes_other_arguments_to_gunicorn():
    script = (REPO_ROOT / "app" / "entrypoint.sh").read_text()
    assert 'PORT="${SAGEMAKER_BIND_TO_PORT:-8080}"' in script
    assert 'exec /opt/venv/bin/gunicorn --config /srv/app/gunicorn.conf.py app.wsgi:app "$@"' in script
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["/bin/sh", "/srv/app/entrypoint.sh"]' in dockerfile
    assert (
        "BIND=" not in dockerfile
    )  # the image must not set BIND, or Vertex AI's AIP_HTTP_PORT could not win
