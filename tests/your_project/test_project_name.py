"""params.yaml `project.name` is the one home of YOUR project's name: deploy/ and the alerts carry it
(`make project` writes them; tests/ops/test_project.py tests the renaming itself on a copy)."""

from __future__ import annotations

import subprocess

from ops import project
from pipeline.config import load_params
from tests.ops.test_monitoring_assets import REQUIRED_ALERTS, alert_rules
from tests.support.paths import REPO_ROOT

PARAMS = REPO_ROOT / "params.yaml"


def test_the_repository_agrees_with_its_params_yaml():
    name = load_params(PARAMS).project
    assert project.stale(name, REPO_ROOT) == [], "run `make project`"


def test_the_alert_rules_carry_the_project_prefix() -> None:
    prefix = project.alert_prefix(load_params(PARAMS).project)
    assert {r["alert"] for r in alert_rules()} >= {prefix + alert for alert in REQUIRED_ALERTS}


def test_the_service_name_appears_only_where_make_project_writes_it():
    """One home: params.yaml. Elsewhere only the files ops.project writes (and dvc.lock, which records params)."""
    current = load_params(PARAMS).project
    forms = {project.service_name(current), project.alert_prefix(current)}
    allowed = {"params.yaml", "dvc.lock"} | {
        str(path.relative_to(REPO_ROOT)) for path in project.expected_files(current, REPO_ROOT)
    }
    tracked = subprocess.run(
        ["git", "-C", str(REPO_ROOT), "ls-files", "--cached", "--others", "--exclude-standard"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    found = []
    for rel in tracked:
        path = REPO_ROOT / rel
        if rel in allowed or not path.is_file():
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        found += [f"{rel}: {form}" for form in forms if form in text]
    assert found == []
