"""Every GitHub workflow in .github/workflows, and every local action in .github/actions, keeps the project's rules.

The security rules (docs/ci-and-reports.md, "Security settings of every workflow"): top-level `permissions` grant nothing that writes;
every action is pinned to a full commit SHA with a version comment (in the local actions too); checkout never
persists credentials; every job has a timeout and its own permissions; `${{ }}` values never appear inside a
`run:` script (they reach it through `env:`), in a workflow or a local action; no `pull_request_target`; workflows
that run on pull requests cancel superseded runs. The layout rules: the Python set-up is the one local action,
used right after checkout; the DVC cache key covers every stage's code.

The checkers themselves (actionlint, zizmor, the JSON schemas) run in `make lint`, not here.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.paths import REPO_ROOT

WORKFLOW_DIR = REPO_ROOT / ".github" / "workflows"
WORKFLOWS = sorted([*WORKFLOW_DIR.glob("*.yaml"), *WORKFLOW_DIR.glob("*.yml")])
ACTIONS = sorted((REPO_ROOT / ".github" / "actions").glob("*/action.y*ml"))
SETUP_ACTION = "./.github/actions/setup"
PINNED = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_./-]+@[0-9a-f]{40}$")
USES_LINE = re.compile(r"^\s*(?:-\s*)?uses:\s*(\S+)(.*)$")


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
    """(job id, index, step) of every step of a workflow, or of a composite action (job id `runs`)."""
    jobs = workflow.get("jobs", {})
    if "runs" in workflow:
        jobs = {"runs": workflow["runs"]}
    for job_id, job in jobs.items():
        for index, step in enumerate(job.get("steps", [])):
            yield job_id, index, step


def ids(paths: list[Path]) -> list[str]:
    return [str(path.relative_to(REPO_ROOT / ".github")) for path in paths]


def test_the_ci_and_comment_workflows_and_the_setup_action_exist() -> None:
    assert {"ci.yaml", "pr-comment.yaml"} <= {path.name for path in WORKFLOWS}
    assert REPO_ROOT / SETUP_ACTION / "action.yml" in ACTIONS


@pytest.mark.parametrize("path", WORKFLOWS + ACTIONS, ids=ids(WORKFLOWS + ACTIONS))
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


@pytest.mark.parametrize("path", WORKFLOWS + ACTIONS, ids=ids(WORKFLOWS + ACTIONS))
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


SECRET = re.compile(r"\bsecrets\s*(\.|\[|\))|\bsecrets\s*:\s*inherit")
PULL_REQUEST_TRIGGERS = {
    "pull_request",
    "pull_request_target",
    "pull_request_review",
    "pull_request_review_comment",
}


def secret_uses(node: Any) -> list[str]:
    """Every `secrets.X` / `secrets[...]` / `toJSON(secrets)` / `secrets: inherit` in a workflow fragment."""
    text = yaml.safe_dump(node, sort_keys=False)
    return [line.strip() for line in text.splitlines() if SECRET.search(line)]


def grants_id_token(job: dict[str, Any]) -> bool:
    permissions = job.get("permissions")
    return permissions == "write-all" or (
        isinstance(permissions, dict) and permissions.get("id-token") == "write"
    )


@pytest.mark.parametrize("path", WORKFLOWS, ids=ids(WORKFLOWS))
def test_no_secret_or_cloud_credential_reaches_a_job_that_runs_on_pull_request(path: Path) -> None:
    """A pull request's code (and, in ci.yaml, any pushed branch's) runs in these jobs: it gets no secret, no
    OIDC token (which could be exchanged for a cloud role) and so no write credential for the DVC remote."""
    workflow = load(path)
    if not triggers(workflow) & PULL_REQUEST_TRIGGERS:
        return
    assert secret_uses(workflow.get("env") or {}) == [], f"{path.name}: workflow-level env reads a secret"
    for job_id, job in workflow.get("jobs", {}).items():
        assert secret_uses(job) == [], f"{path.name}: job `{job_id}` runs on pull_request and reads a secret"
        assert not grants_id_token(job), (
            f"{path.name}: job `{job_id}` runs on pull_request with id-token: write"
        )


def test_the_secret_rule_sees_every_form() -> None:
    job = {
        "steps": [
            {"env": {"A": "${{ secrets.A }}", "B": "${{ secrets['B'] }}", "C": "${{ toJSON(secrets) }}"}}
        ]
    }
    assert len(secret_uses(job)) == 3
    assert secret_uses({"uses": "./.github/workflows/x.yaml", "secrets": "inherit"}) != []
    assert secret_uses({"steps": [{"run": "make run", "env": {"X": "${{ vars.X }}"}}]}) == []


@pytest.mark.parametrize("path", WORKFLOWS, ids=ids(WORKFLOWS))
def test_the_dvc_remote_is_reached_with_short_lived_roles_and_written_only_by_retrain(path: Path) -> None:
    """No stored cloud keys: each job that reads (or writes) the DVC remote assumes a role through OIDC. The write
    role is assumed only by retrain.yaml, which runs main's code (schedule, dispatch) in its own environment."""
    text = path.read_text(encoding="utf-8")
    assert "secrets.AWS_" not in text, f"{path.name}: stored AWS keys; assume a role with OIDC instead"
    for job_id, job in load(path).get("jobs", {}).items():
        for step in job.get("steps", []):
            if not str(step.get("uses", "")).startswith("aws-actions/configure-aws-credentials@"):
                continue
            where = f"{path.name}: job `{job_id}` step `{step.get('name')}`"
            role = str(step["with"]["role-to-assume"])
            assert grants_id_token(job), f"{where}: assumes a role without id-token: write"
            assert "aws-access-key-id" not in step["with"], f"{where}: a stored key"
            if "DVC_WRITE_ROLE_ARN" in role:
                assert path.name == "retrain.yaml" and "environment" in job, f"{where}: the write role"
                assert not triggers(load(path)) & ({"push"} | PULL_REQUEST_TRIGGERS)
            else:
                assert role == "${{ vars.DVC_READ_ROLE_ARN }}", f"{where}: unexpected role {role}"


@pytest.mark.parametrize("path", WORKFLOWS, ids=ids(WORKFLOWS))
def test_python_is_set_up_only_by_the_setup_action_right_after_checkout(path: Path) -> None:
    """One place for the Python version, the uv cache and `make venv`: .github/actions/setup/action.yml."""
    for job_id, job in load(path).get("jobs", {}).items():
        checked_out = False
        for index, step in enumerate(job.get("steps", [])):
            uses = str(step.get("uses", ""))
            where = f"{path.name}: job `{job_id}` step {index}"
            assert not uses.startswith("actions/setup-python@"), f"{where}: use {SETUP_ACTION} instead"
            if uses.startswith("actions/cache"):
                cached = str((step.get("with") or {}).get("path", ""))
                assert "uv-cache" not in cached, f"{where}: the uv cache belongs to {SETUP_ACTION}"
            if uses.startswith("./"):
                # a local action is read from the workspace: without a checkout before it, there is none
                assert checked_out, f"{where}: `{uses}` before actions/checkout"
            checked_out = checked_out or uses.startswith("actions/checkout@")


def dvc_cache_patterns(path: Path) -> list[str]:
    [key] = [
        str(step["with"]["key"])
        for _, _, step in steps(load(path))
        if str(step.get("uses", "")).startswith("actions/cache") and step["with"].get("path") == ".dvc/cache"
    ]
    [arguments] = re.findall(r"hashFiles\(([^)]*)\)", key)
    return re.findall(r"'([^']+)'", arguments)


@pytest.mark.parametrize("name", ["ci.yaml", "retrain.yaml"])
def test_the_dvc_cache_key_covers_the_lock_the_params_and_every_stages_code(name: str) -> None:
    patterns = dvc_cache_patterns(WORKFLOW_DIR / name)
    assert {"dvc.lock", "data.dvc", "params.yaml", "src/pipeline/**", "src/mlcore/**"} <= set(patterns)
    stages = yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"]
    code = {dep for stage in stages.values() for dep in stage.get("deps", []) if str(dep).startswith("src/")}
    uncovered = sorted(dep for dep in code if not any(fnmatch.fnmatch(dep, p) for p in patterns))
    assert uncovered == [], f"{name}: the DVC cache key does not hash stage code {uncovered}"


def test_deploy_decides_the_environment_image_and_model_version_once() -> None:
    """The plan job (ops.deliver.plan) decides the environment and action, the target job the image and
    model version; the jobs after them read their outputs instead of repeating the expressions."""
    workflow = load(WORKFLOW_DIR / "deploy.yaml")
    jobs = workflow["jobs"]
    owner = {
        "inputs.environment": "plan",
        "github.ref_name": "plan",
        "inputs.image": "target",
        "inputs.model_version": "target",
        "needs.image.outputs": "target",
    }
    for expression, job in owner.items():
        assert expression in yaml.safe_dump(jobs[job]), f"{job}: `{expression}`"
        others = yaml.safe_dump({k: v for k, v in jobs.items() if k != job})
        assert expression not in others, f"deploy.yaml: `{expression}` outside the {job} job"
    assert set(jobs["target"]["outputs"]) == {"environment", "image", "model_version"}
    assert set(jobs["plan"]["outputs"]) == {"mode", "environment", "action", "build"}
    for job in ("deploy", "record", "gitops"):
        assert "target" in jobs[job]["needs"]
    # push mode deploys with a cluster credential; pull mode never holds one
    assert "needs.plan.outputs.mode == 'push'" in jobs["deploy"]["if"]
    assert "needs.plan.outputs.mode == 'pull'" in jobs["gitops"]["if"]
    assert "KUBECONFIG" not in yaml.safe_dump(jobs["gitops"])


# ------------------------------------------------ pr-comment.yaml: .github/scripts/pr-report.sh, run for real

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
PR_REPORT = REPO_ROOT / ".github" / "scripts" / "pr-report.sh"
CHECK, PUBLISH = "check", "publish"


def test_pr_comment_runs_its_steps_from_the_script() -> None:
    runs = [str(step.get("run", "")) for _, _, step in steps(load(WORKFLOW_DIR / "pr-comment.yaml"))]
    assert ".github/scripts/pr-report.sh check" in runs
    assert ".github/scripts/pr-report.sh publish" in runs


def run_step(command: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    base = {"PATH": os.environ["PATH"], "HOME": str(cwd), "GIT_CONFIG_NOSYSTEM": "1"}
    return subprocess.run(
        [str(PR_REPORT), command], env={**base, **env}, cwd=cwd, capture_output=True, text=True, check=False
    )


def report_dir(tmp_path: Path, pull_request: object = 7) -> Path:
    out = tmp_path / "pr-report"
    out.mkdir()
    (out / "verdict.json").write_text(json.dumps({"passed": True, "pull_request": pull_request}))
    (out / "comment.md").write_text("## ✅ Quality gate passed\n")
    (out / "roc.png").write_bytes(PNG)
    return out


def fake_gh(tmp_path: Path, head_sha: str) -> str:
    """A `gh` on PATH that answers `gh api repos/.../pulls/N --jq .head.sha` with head_sha."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    gh = bin_dir / "gh"
    gh.write_text(f"#!/bin/sh\necho {head_sha}\n")
    gh.chmod(0o755)
    return f"{bin_dir}:{os.environ['PATH']}"


@pytest.mark.parametrize(
    ("pull_request", "head_sha", "png", "expected_code", "expected_output"),
    [
        (7, "abc123", PNG, 0, "number=7\n"),
        (7, "moved-on", PNG, 0, ""),  # the PR has a newer head: no comment from this stale run
        ("7; echo pwned", "abc123", PNG, 1, ""),  # the artifact is untrusted data
        (None, "abc123", PNG, 1, ""),
        (7, "abc123", b"<svg/>", 1, ""),  # only PNG images are published
    ],
)
def test_pr_comment_check_step_trusts_the_artifact_only_as_validated_data(
    tmp_path: Path, pull_request, head_sha: str, png: bytes, expected_code: int, expected_output: str
) -> None:
    out = report_dir(tmp_path, pull_request)
    (out / "roc.png").write_bytes(png)
    github_output = tmp_path / "github_output"
    github_output.write_text("")
    env = {
        "PATH": fake_gh(tmp_path, head_sha),
        "REPORT_DIR": str(out),
        "REPOSITORY": "owner/repo",
        "HEAD_SHA": "abc123",
        "GH_TOKEN": "token",
        "GITHUB_OUTPUT": str(github_output),
    }
    result = run_step(CHECK, env, tmp_path)
    assert result.returncode == expected_code, result.stdout + result.stderr
    assert github_output.read_text() == expected_output
    assert "pwned" not in result.stdout


def test_pr_comment_steps_accept_a_report_without_images(tmp_path: Path) -> None:
    out = report_dir(tmp_path)
    (out / "roc.png").unlink()
    github_output = tmp_path / "github_output"
    github_output.write_text("")
    env = {
        "PATH": fake_gh(tmp_path, "abc123"),
        "REPORT_DIR": str(out),
        "REPOSITORY": "owner/repo",
        "HEAD_SHA": "abc123",
        "GH_TOKEN": "token",
        "GITHUB_OUTPUT": str(github_output),
        "RUNNER_TEMP": str(tmp_path),
        "PR_NUMBER": "7",
        "GITHUB_SERVER_URL": "file:///nonexistent",
    }
    checked = run_step(CHECK, env, tmp_path)
    assert checked.returncode == 0, checked.stderr
    assert github_output.read_text() == "number=7\n"
    published = run_step(PUBLISH, env, tmp_path)
    assert published.returncode == 0, published.stderr
    assert "no images to publish" in published.stdout


def test_pr_comment_publish_step_adds_each_runs_images_to_the_report_assets_branch(tmp_path: Path) -> None:
    remote = tmp_path / "server" / "owner" / "repo.git"
    subprocess.run(["git", "init", "-q", "--bare", str(remote)], check=True)
    out = report_dir(tmp_path)
    for pr_number, head_sha in (("7", "abc123"), ("8", "def456")):
        runner_temp = tmp_path / f"runner-{pr_number}"
        runner_temp.mkdir()
        env = {
            "GITHUB_SERVER_URL": f"file://{tmp_path / 'server'}",
            "REPOSITORY": "owner/repo",
            "RUNNER_TEMP": str(runner_temp),
            "REPORT_DIR": str(out),
            "GH_TOKEN": "token",
            "PR_NUMBER": pr_number,
            "HEAD_SHA": head_sha,
        }
        result = run_step(PUBLISH, env, tmp_path)
        assert result.returncode == 0, result.stdout + result.stderr

    assert tree(remote) == ["pr-7/abc123/roc.png", "pr-8/def456/roc.png"]
    url = re.search(r'REPORT_IMAGE_URL="([^"]+)"', (WORKFLOW_DIR / "ci.yaml").read_text()).group(1)
    # ci.yaml links the images exactly where this step puts them
    assert url == "$GITHUB_SERVER_URL/$REPOSITORY/raw/report-assets/pr-$PR_NUMBER/$HEAD_SHA"


def tree(remote: Path) -> list[str]:
    return subprocess.run(
        ["git", "--git-dir", str(remote), "ls-tree", "-r", "--name-only", "report-assets"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()


def test_pr_comment_publish_step_rerun_on_the_same_head_succeeds_without_a_new_commit(tmp_path: Path) -> None:
    remote = tmp_path / "server" / "owner" / "repo.git"
    subprocess.run(["git", "init", "-q", "--bare", str(remote)], check=True)
    out = report_dir(tmp_path)
    env = {
        "GITHUB_SERVER_URL": f"file://{tmp_path / 'server'}",
        "REPOSITORY": "owner/repo",
        "RUNNER_TEMP": str(tmp_path),
        "REPORT_DIR": str(out),
        "GH_TOKEN": "token",
        "PR_NUMBER": "7",
        "HEAD_SHA": "abc123",
    }
    first = run_step(PUBLISH, env, tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    tip = subprocess.run(
        ["git", "--git-dir", str(remote), "rev-parse", "report-assets"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rerun = run_step(PUBLISH, env, tmp_path)  # "Re-run jobs": the same images again
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert "already on report-assets" in rerun.stdout
    assert (
        subprocess.run(
            ["git", "--git-dir", str(remote), "rev-parse", "report-assets"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        == tip
    )
    assert tree(remote) == ["pr-7/abc123/roc.png"]
