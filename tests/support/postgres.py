"""A throw-away PostgreSQL server for tests: initdb in a temp dir, listening on a free loopback port."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _find_bin(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    for base in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (base / name).exists():
            return str(base / name)
    raise RuntimeError(f"{name} not found: install PostgreSQL (`.ci/run` does: apt-get install postgresql)")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def postgres_server(workdir: Path) -> Iterator[str]:
    """Yield a SQLAlchemy URL (postgresql+psycopg://...) to a fresh database `test` owned by the current user."""
    user = "postgres"
    env = dict(os.environ)
    run_as: list[str] = []
    if os.geteuid() == 0:
        # initdb refuses to run as root: run the server as `nobody`, in a directory it can reach
        # (pytest's tmp_path sits under a root-only 0700 directory).
        run_as = ["runuser", "-u", "nobody", "--"]
        workdir = Path(tempfile.mkdtemp(prefix="pytest-postgres-"))
        os.chmod(workdir, 0o777)
    datadir, sockdir = workdir / "pgdata", workdir / "pgsock"
    sockdir.mkdir(parents=True, exist_ok=True)
    os.chmod(sockdir, 0o777)
    subprocess.run(
        [
            *run_as,
            _find_bin("initdb"),
            "-D",
            str(datadir),
            "-U",
            user,
            "-A",
            "trust",
            "--no-sync",
            "-E",
            "UTF8",
        ],
        check=True,
        capture_output=True,
        env=env,
    )
    port = _free_port()
    log = workdir / "postgres.log"
    log_file = open(log, "wb")  # noqa: SIM115 - open as long as the server runs; closed in `finally`
    proc = subprocess.Popen(
        [
            *run_as,
            _find_bin("postgres"),
            "-D",
            str(datadir),
            "-p",
            str(port),
            "-h",
            "127.0.0.1",
            "-k",
            str(sockdir),
            "-c",
            "fsync=off",
            "-c",
            "full_page_writes=off",
        ],
        stdout=log_file,
        stderr=subprocess.STDOUT,
        env=env,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            ready = subprocess.run(
                [_find_bin("pg_isready"), "-h", "127.0.0.1", "-p", str(port)], capture_output=True
            )
            if ready.returncode == 0:
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"postgres did not start: {log.read_text()[-2000:]}")
            time.sleep(0.2)
        subprocess.run(
            [
                _find_bin("psql"),
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
                "-U",
                user,
                "-d",
                "postgres",
                "-c",
                "CREATE DATABASE test",
            ],
            check=True,
            capture_output=True,
        )
        yield f"postgresql+psycopg://{user}@127.0.0.1:{port}/test"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log_file.close()
        if run_as:
            shutil.rmtree(workdir, ignore_errors=True)
