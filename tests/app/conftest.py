"""Fixtures the service's tests share."""

from __future__ import annotations

from pathlib import Path

import pytest

from app import create_app


@pytest.fixture
def make_app(model_dir: Path, tmp_path: Path):
    """`make(**config)`: the app serving the test model, logging to a SQLite file in tmp_path; closed after."""
    apps = []

    def make(**config):
        flask_app = create_app(
            {
                "MODEL_DIR": str(model_dir),
                "PREDICTION_LOG_URL": f"sqlite:///{tmp_path}/log.db",
                "TESTING": True,
                **config,
            }
        )
        apps.append(flask_app)
        return flask_app

    yield make
    for flask_app in apps:
        flask_app.extensions["serve"].close()
