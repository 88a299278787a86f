"""File helpers: atomic writes (a failed stage never leaves a half-written output) and content hashes."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call `write(tmp_path)` then move the temporary file over `path` in one step."""
    with atomic_files([path]) as (tmp,):
        write(tmp)
    return Path(path)


@contextmanager
def atomic_files(paths: list[str | Path]) -> Iterator[list[Path]]:
    """Temporary files next to `paths`, moved over them when the block succeeds and removed when it fails."""
    temps = []
    try:
        for path in map(Path, paths):
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
            os.close(fd)
            temps.append(Path(tmp))
        yield temps
        # mkstemp creates 0600 files; give the outputs the usual permissions (0666 less the umask) so that
        # another user, e.g. the container's, can read them.
        umask = os.umask(0)
        os.umask(umask)
        for tmp, path in zip(temps, paths, strict=True):
            os.chmod(tmp, 0o666 & ~umask)
            os.replace(tmp, path)
    finally:
        for tmp in temps:
            tmp.unlink(missing_ok=True)


def write_bytes(path: str | Path, data: bytes) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_bytes(data))


def write_json(path: str | Path, obj: Any) -> Path:
    text = json.dumps(obj, indent=2, sort_keys=True, default=json_default) + "\n"
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def read_json(path: str | Path) -> Any:
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def json_default(value: Any) -> Any:
    # numpy scalars and timestamps, without importing numpy/pandas here
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
