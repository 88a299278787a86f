"""The delivery tests' throw-away world: a real docker-registry on loopback with pushed images, and a repository
holding this one's deploy/ and params.yaml (renamed to the project `acme`) on `staging`, `origin` a bare one."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.gitrepo import git
from tests.support.project import renamed_copy
from tests.support.registry import image_registry, push_image


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with image_registry(tmp_path_factory.mktemp("registry")) as address:
        yield address


@pytest.fixture(scope="module")
def images(registry: str) -> dict[str, str]:
    """Three pushed images of acme/api: name -> digest reference."""
    return {
        tag: f"{registry}/acme/api@{push_image(registry, 'acme/api', tag)}" for tag in ("one", "two", "three")
    }


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A repository on `staging` holding the renamed deploy/ and params.yaml, `origin` a bare repository; cwd."""
    origin = tmp_path / "origin.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(origin)], check=True)
    work = tmp_path / "work"
    work.mkdir()
    renamed_copy(work, "acme")
    git(work, "init", "-q", "-b", "main")
    git(work, "remote", "add", "origin", str(origin))
    git(work, "add", "-A")
    git(work, "commit", "-qm", "template")
    git(work, "push", "-q", "origin", "main")
    git(work, "switch", "-q", "-c", "staging")
    git(work, "push", "-q", "origin", "staging")
    monkeypatch.chdir(work)
    return work
