"""Shared fixtures. Each test builds its own tiny data in tmp_path; nothing here touches the network."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.postgres import postgres_server

# The longest modules run first. `make test` runs two pytest-xdist workers that take one module at a time
# (`--dist loadfile`), so a long module started last would keep one worker busy while the other sits idle. The
# image comes first: on a new machine it is minutes of download and build that overlap the other worker's CPU.
LONGEST_FIRST = (
    "test_fresh_clone.py",
    "test_image.py",
    "test_closed_loop.py",
    "test_retrain.py",
    "test_pipeline_e2e.py",
    "test_workflows_act.py",
    "test_tune_worker.py",
    "test_tune.py",
    "test_canary_analysis.py",
    "test_gunicorn_conf.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: the rest keep their order


@pytest.fixture(scope="session")
def postgres_url(tmp_path_factory: pytest.TempPathFactory):
    """A real PostgreSQL server on a loopback port, shared by the session's tests (each uses its own tables)."""
    with postgres_server(tmp_path_factory.mktemp("postgres")) as url:
        yield url


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny HistGradientBoosting model artifact, written once per session (copy it before changing it)."""
    from tests.support.model_fixture import train_tiny_model

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
