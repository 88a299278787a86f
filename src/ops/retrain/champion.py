"""Which model is the champion, and is the newest data new? (Materialising the champion, recording data/.)"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Any

import yaml
from dvc.utils.serialize import modify_yaml

from mlcore.errors import PipelineError
from ops.lineage import find_records
from ops.repo import MODEL_OUT, MODEL_STAGE, dvc, git_show, model_md5, reproduce, run, workspace_is
from pipeline.data import dir_md5, ensure_data
from pipeline.extract import parse_cutoff


def resolve_champion(root: Path, rev: str, dest: Path) -> tuple[Path | None, str]:
    """Copy the model that `rev` tracks into `dest`; returns (dir or None, where it came from)."""
    if dest.exists():
        shutil.rmtree(dest)
    wanted = model_md5(git_show(root, rev, "dvc.lock"))
    workspace = root / MODEL_OUT
    if wanted is None:
        if (workspace / "metadata.json").exists():
            shutil.copytree(workspace, dest)
            return dest, f"workspace {MODEL_OUT}/ ({rev} tracks no model)"
        return None, f"none ({rev} tracks no model and there is no {MODEL_OUT}/)"
    if (workspace / "metadata.json").exists() and dir_md5(workspace) == wanted:
        shutil.copytree(workspace, dest)
        return dest, f"{rev} ({wanted}, the workspace {MODEL_OUT}/)"
    got = run(dvc("get", ".", MODEL_OUT, "--rev", rev, "-o", str(dest)), root, check=False, capture=True)
    if got.returncode == 0 and (dest / "metadata.json").exists():
        return dest, f"{rev} ({wanted}, via dvc get)"
    # Stored nowhere reachable (no DVC remote, a cold cache): when the workspace is `rev`, reproduce it. Every
    # stage output is a function of its inputs, so this is the recorded model, and `reproduce` verifies it.
    # Not with a live warehouse: its newer rows would leak into the "champion".
    if workspace_is(root, rev) and not os.environ.get("WAREHOUSE_URL"):
        reproduce(root, rev, wanted)
        shutil.copytree(workspace, dest)
        return dest, f"{rev} ({wanted}), reproduced with `dvc repro {MODEL_STAGE}` and verified"
    reason = (got.stderr.strip().splitlines() or ["unknown error"])[-1]
    raise PipelineError(
        f"champion: cannot get the model {rev} tracks ({wanted}) from the DVC cache or "
        f"remote: {reason} (configure a DVC remote, or pass --champion DIR to name one)"
    )


def duplicate_reason(data_hash: str, champion_meta: dict[str, Any] | None, lineage_dir: Path) -> str | None:
    """Why retraining on `data_hash` would repeat work already done, or None when the data is new."""
    if champion_meta and (champion_meta.get("data") or {}).get("snapshot_sha256") == data_hash:
        return (
            f"the champion {champion_meta.get('model_version')} was trained on this very snapshot "
            f"({data_hash[:12]}): no new data"
        )
    for path, record in find_records(lineage_dir, data_hash=data_hash, decision="promote"):
        return (
            f"model {record.get('model_version')} was already proposed for this snapshot "
            f"({data_hash[:12]}, {lineage_dir.name}/{path.name})"
        )
    return None


def record_new_data(root: Path, params_path: Path) -> str:
    """data/ as the pipeline will see it: `dvc add` a changed data/, restore a missing one."""
    dvc_file = root / "data.dvc"
    if not dvc_file.exists():
        return "no data.dvc: the warehouse is the source"
    recorded = yaml.safe_load(dvc_file.read_text(encoding="utf-8"))["outs"][0]
    data_dir = root / recorded["path"]
    if not data_dir.exists():
        return ensure_data(
            root,
            params_path.relative_to(root) if params_path.is_absolute() else params_path,
            progress=lambda m: print(m, file=sys.stderr),
        )
    if dir_md5(data_dir) == recorded["md5"]:
        return "unchanged"
    run(dvc("add", recorded["path"]), root)
    return "recorded a new data version (dvc add)"


def set_cutoff(params_path: Path, cutoff: str) -> None:
    """Write extract.cutoff into params.yaml, keeping its comments (DVC's own round-trip YAML editor)."""
    parse_cutoff(cutoff)
    with modify_yaml(params_path) as data:
        data["extract"]["cutoff"] = cutoff
