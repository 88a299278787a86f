"""Shared fixtures. Each test builds its own tiny data in tmp_path; nothing here touches the network."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.postgres import postgres_server

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def postgres_url(tmp_path_factory: pytest.TempPathFactory):
    """A real PostgreSQL server on a loopback port, shared by the session's tests (each uses its own tables)."""
    with postgres_server(tmp_path_factory.mktemp("postgres")) as url:
        yield url


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny HistGradientBoosting model artifact, written once per session (copy it before changing it)."""
    from tests.model_fixture import train_tiny_model

    path = tmp_path_factory.mktemp("model")
    train_tiny_model(path)
    return path


@pytest.fixture
def app(model_dir: Path, tmp_path: Path):
    """The inference app on the tiny model, logging predictions to a SQLite file in tmp_path."""
    from app import create_app

    flask_app = create_app(
        {
            "MODEL_DIR": str(model_dir),
            "PREDICTION_LOG_URL": f"sqlite:///{tmp_path}/log.db",
            "MAX_BATCH": 50,
            "TESTING": True,
        }
    )
    yield flask_app
    flask_app.extensions["serve"].log.close()


@pytest.fixture
def client(app):
    return app.test_client()
