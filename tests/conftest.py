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
