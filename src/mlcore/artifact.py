"""The model artifact: a fitted scikit-learn Pipeline in skops format plus metadata.json.

skops loads only types it is told to trust (no arbitrary-code pickle loading). The trusted types are recorded at
save time in the metadata, and loading refuses any type outside an allow-list of scikit-learn/numpy types.
skops writes a zip whose entries carry the current time; `dumps_deterministic` rewrites it with a fixed timestamp
so the same fitted model always gives the same bytes.

This module is imported by the serving app, so it depends only on the serving requirements.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import zipfile
from pathlib import Path
from typing import Any

from mlcore.errors import PipelineError

MODEL_FILE = "model.skops"
METADATA_FILE = "metadata.json"
_FIXED_ZIP_TIME = (1980, 1, 1, 0, 0, 0)
# skops refers to objects by id() ("__id__": 1406...) and names array files after it ("1406....npy").
_OBJECT_REFERENCE = re.compile(r'("__id__": |"file": ")(\d+)(\.npy"|(?=[,}\s]))')
# Type-name prefixes a model may contain. Anything else in a model file is refused at load time.
TRUSTED_PREFIXES = ("sklearn.", "numpy.", "scipy.sparse.", "builtins.", "collections.")
# skops checks the function a partial wraps against the same allow-list (scikit-learn stores partials of its
# own validation helpers).
TRUSTED_NAMES = frozenset({"functools.partial"})


class ArtifactError(PipelineError):
    """The model artifact is missing, corrupt, or does not match its metadata."""


def dumps_deterministic(estimator: Any) -> bytes:
    """skops bytes that depend only on the model: fixed zip timestamps, and the memory addresses skops uses as
    object ids and array file names replaced by their order of first appearance."""
    import skops.io as sio

    src = zipfile.ZipFile(io.BytesIO(sio.dumps(estimator)))
    schema = src.read("schema.json").decode("utf-8")
    renumber: dict[str, str] = {}

    def stable(number: str) -> str:
        return renumber.setdefault(number, str(len(renumber) + 1))

    schema = _OBJECT_REFERENCE.sub(lambda m: m.group(1) + stable(m.group(2)) + m.group(3), schema)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as dst:
        entries = {"schema.json": schema.encode("utf-8")}
        for name in src.namelist():
            if name != "schema.json":
                stem, dot, ext = name.partition(".")
                entries[f"{renumber.get(stem, stem)}{dot}{ext}"] = src.read(name)
        for name in sorted(entries):
            info = zipfile.ZipInfo(name, date_time=_FIXED_ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            dst.writestr(info, entries[name])
    return out.getvalue()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def save_model(estimator: Any, metadata: dict[str, Any], model_dir: str | Path) -> dict[str, Any]:
    """Write model.skops and metadata.json (atomically); returns the metadata as written.

    The metadata gains `artifact` (file, sha256, trusted types) and `model_version` (derived from the bytes).
    """
    import skops.io as sio

    from mlcore.io import write_bytes, write_json

    data = dumps_deterministic(estimator)
    digest = sha256_bytes(data)
    metadata = dict(metadata)
    metadata["artifact"] = {
        "file": MODEL_FILE,
        "format": "skops",
        "sha256": digest,
        "trusted_types": sorted(sio.get_untrusted_types(data=data)),
    }
    metadata["model_version"] = digest[:12]
    model_dir = Path(model_dir)
    write_bytes(model_dir / MODEL_FILE, data)
    write_json(model_dir / METADATA_FILE, metadata)
    return metadata


def load_metadata(model_dir: str | Path) -> dict[str, Any]:
    path = Path(model_dir) / METADATA_FILE
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ArtifactError(f"{path}: model metadata not found (run `make run` to train a model)") from exc
    except json.JSONDecodeError as exc:
        raise ArtifactError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from exc


def load_model(model_dir: str | Path) -> tuple[Any, dict[str, Any]]:
    """Load and verify the model: file present, sha256 as recorded, only allow-listed types."""
    import skops.io as sio

    model_dir = Path(model_dir)
    metadata = load_metadata(model_dir)
    artifact = metadata.get("artifact") or {}
    path = model_dir / artifact.get("file", MODEL_FILE)
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise ArtifactError(f"{path}: model file not found") from exc
    expected = artifact.get("sha256")
    if sha256_bytes(data) != expected:
        raise ArtifactError(f"{path}: sha256 does not match metadata.json (corrupt or replaced model file)")
    try:
        untrusted = sio.get_untrusted_types(data=data)
    except Exception as exc:  # a corrupt zip or skops schema raises many types; report them as one
        raise ArtifactError(f"{path}: not a readable skops file ({exc})") from exc
    refused = [t for t in untrusted if not t.startswith(TRUSTED_PREFIXES) and t not in TRUSTED_NAMES]
    if refused:
        raise ArtifactError(f"{path}: refusing to load untrusted types {refused}")
    return sio.loads(data, trusted=untrusted), metadata
