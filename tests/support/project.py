"""A copy of the repository's named files (params.yaml, deploy/) with the project renamed: one edit, then
`ops.project write`, as a fork does it."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from ops import project
from pipeline.config import load_params
from tests.support.paths import REPO_ROOT, TEST_PARAMS


def rename_params(params: Path, name: str, title: str) -> None:
    """The one edit: params.yaml's `project.name` and `project.title` lines."""
    text = params.read_text(encoding="utf-8")
    text, names = re.subn(r"(?m)^(project:\n  name: )[a-z0-9-]+", rf"\g<1>{name}", text)
    text, titles = re.subn(r"(?m)^(  title: ).*$", rf"\g<1>{title}", text)
    assert names == titles == 1, "params.yaml: expected one `project:` section with name and title"
    params.write_text(text, encoding="utf-8")


def renamed_copy(dest: Path, name: str, title: str = "Acme risk API") -> Path:
    """The test project's params and this repository's deploy/ copied to `dest`, renamed to `name` and propagated; returns `dest`."""
    shutil.copy(TEST_PARAMS, dest / "params.yaml")
    shutil.copytree(REPO_ROOT / "deploy", dest / "deploy")
    rename_params(dest / "params.yaml", name, title)
    project.write(load_params(dest / "params.yaml").project, dest)
    return dest
