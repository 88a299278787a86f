"""Every GitHub workflow in .github/workflows passes the checkers and the project's security rules.

The rules (README: "CI and pull-request reports"): top-level `permissions` grant nothing that writes; every
action is pinned to a full commit SHA with a version comment; checkout never persists credentials; every job
has a timeout and its own permissions; `${{ }}` values never appear inside a `run:` script
(they reach it through `env:`); no `pull_request_target`; workflows that run on pull requests
cancel superseded runs.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO_ROOT

WORKFLOW_DIR = REPO_ROOT / ".github" / "workflows"
WORKFLOWS = sorted([*WORKFLOW_DIR.glob("*.yaml"), *WORKFLOW_DIR.glob("*.yml")])
BIN = Path(sys.executable).parent
PINNED = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_./-]+@[0-9a-f]{40}$")
USES_LINE = re.compile(r"^\s*(?:-\s*)?uses:\s*(\S+)(.*)$")


def tool(name: str) -> str:
    path = BIN / name
    assert path.exists(), (
        f"{name} is not installed in {BIN}: run `make venv` (it is pinned in requirements/dev.in)"
    )
    return str(path)


def load(path: Path) -> dict[str, Any]:
    workflow = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(workflow, dict), f"{path.name}: not a mapping"
    return workflow


def triggers(workflow: dict[str, Any]) -> set[str]:
    on = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` key as True
    if isinstance(on, str):
        return {on}
    if isinstance(on, list):
        return set(on)
    return set(on or {})


def steps(workflow: dict[str, Any]):
    for job_id, job in workflow.get("jobs", {}).items():
        for index, step in enumerate(job.get("steps", [])):
            yield job_id, index, step


def ids(paths: list[Path]) -> list[str]:
    return [path.name for path in paths]


def test_the_ci_and_comment_workflows_exist() -> None:
    assert {"ci.yaml", "pr-comment.yaml"} <= {path.name for path in WORKFLOWS}


def test_actionlint_passes_on_every_workflow() -> None:
    result = subprocess.run(
        [tool("actionlint"), *map(str, WORKFLOWS)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_zizmor_offline_finds_nothing_at_medium_or_above() -> None:
    result = subprocess.run(
        [tool("zizmor"), "--offline", "--min-severity", "medium", "--format", "json", *map(str, WORKFLOWS)],
        capture_output=True,
        text=True,
        check=False,
    )
    findings = json.loads(result.stdout or "[]")
    assert findings == [], [(f["ident"], f["desc"]) for f in findings]
    assert result.returncode == 0, result.stderr


def test_every_workflow_matches_the_github_workflow_schema() -> None:
    result = subprocess.run(
        [tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", *map(str, WORKFLOWS)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("path", WORKFLOWS, ids=ids(WORKFLOWS))
def test_every_action_is_pinned_to_a_full_sha_with_a_version_comment(path: Path) -> None:
    lines = [USES_LINE.match(line) for line in path.read_text(encoding="utf-8").splitlines()]
    uses = [(match.group(1).strip("'\""), match.group(2)) for match in lines if match]
    for ref, rest in uses:
        if ref.startswith("./"):
            continue  # an action or reusable workflow of this repository: pinned by the commit itself
        if ref.startswith("docker://"):
            assert "@sha256:" in ref, f"{path.name}: {ref} is not pinned to a digest"
            continue
        assert PINNED.match(ref), f"{path.name}: `{ref}` is not pinned to a 40-hex commit SHA"
        assert re.search(r"#\s*v\d", rest), f"{path.name}: `{ref}` has no `# vX.Y.Z` comment"


@pytest.mark.parametrize("path", WORKFLOWS, ids=ids(WORKFLOWS))
def test_top_level_permissions_grant_no_write(path: Path) -> None:
    workflow = load(path)
    assert "permissions" in workflow, f"{path.name}: no top-level `permissions` (use `permissions: {{}}`)"
    permissions = workflow["permissions"]
    if isinstance(permissions, str):
        assert permissions in {"read-all", "none"} or permissions == "", (
            f"{path.name}: permissions: {permissions}"
        )
    else:
        writes = {scope: level for scope, level in (permissions or {}).items() if level == "write"}
        assert writes == {}, f"{path.name}: top-level permissions grant write: {writes}"


@pytest.mark.parametrize("path", WORKFLOWS, ids=ids(WORKFLOWS))
def test_every_job_has_a_timeout_and_its_own_permissions(path: Path) -> None:
    for job_id, job in load(path).get("jobs", {}).items():
        if "uses" in job:
            continue  # a reusable-workflow call cannot set a timeout: the called workflow's jobs carry theirs
        assert "timeout-minutes" in job, f"{path.name}: job `{job_id}` has no timeout-minutes"
        assert "permissions" in job, f"{path.name}: job `{job_id}` does not declare its permissions"


@pytest.mark.parametrize("path", WORKFLOWS, ids=ids(WORKFLOWS))
def test_checkout_never_persists_credentials(path: Path) -> None:
    for job_id, index, step in steps(load(path)):
        if str(step.get("uses", "")).startswith("actions/checkout@"):
            assert (step.get("with") or {}).get("persist-credentials") is False, (
                f"{path.name}: job `{job_id}` step {index}: checkout without `persist-credentials: false`"
            )


@pytest.mark.parametrize("path", WORKFLOWS, ids=ids(WORKFLOWS))
def test_expressions_reach_scripts_only_through_env(path: Path) -> None:
    for job_id, index, step in steps(load(path)):
        assert "${{" not in str(step.get("run", "")), (
            f"{path.name}: job `{job_id}` step {index}: `${{{{ }}}}` inside `run:`; pass it through `env:`"
        )


@pytest.mark.parametrize("path", WORKFLOWS, ids=ids(WORKFLOWS))
def test_no_pull_request_target_and_pull_request_runs_are_cancelled_when_superseded(path: Path) -> None:
    workflow = load(path)
    on = triggers(workflow)
    assert "pull_request_target" not in on, f"{path.name}: pull_request_target runs with secrets on fork code"
    if "pull_request" in on:
        concurrency = workflow.get("concurrency") or {}
        assert concurrency.get("cancel-in-progress"), f"{path.name}: no concurrency with cancel-in-progress"
