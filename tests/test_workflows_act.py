"""The workflows' own logic, run job by job by a real Actions runner (act, host mode; tests/act_runner.py).

What runs is the workflow as written: triggers, `if:` conditions, expressions, step and job outputs, env, and the
make targets and scripts the steps call. The third-party actions, `gh`, `cml` and `kubectl` are stand-ins
(tests/act/README.md) that record what the job asked of them; the tests assert on those calls.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.act_runner import REPOSITORY, ActRun, run_job

pytestmark = pytest.mark.slow

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
HEAD = "ab" * 20
CI_RUN_ID = 41


def assert_succeeded(run: ActRun) -> None:
    assert run.returncode == 0, run.log[-4000:]


# ------------------------------------------------------------------------------------------- pr-comment.yaml


def workflow_run_event(conclusion: str = "success") -> dict:
    return {
        "workflow_run": {
            "id": CI_RUN_ID,
            "event": "pull_request",
            "conclusion": conclusion,
            "head_sha": HEAD,
            "head_branch": "feature",
            "head_repository": {"full_name": REPOSITORY},
        }
    }


def pr_report(artifacts: Path, pull_request: int = 7) -> Path:
    """The `pr-report` artifact of CI run CI_RUN_ID, as ci.yaml's pipeline job uploads it."""
    out = artifacts / str(CI_RUN_ID) / "pr-report"
    out.mkdir(parents=True)
    (out / "verdict.json").write_text(json.dumps({"passed": True, "pull_request": pull_request}))
    (out / "comment.md").write_text("## ✅ Quality gate passed\n![roc](roc.png)\n")
    (out / "roc.png").write_bytes(PNG)
    return out


def comment(tmp_path: Path, **kwargs) -> ActRun:
    return run_job(
        "pr-comment.yaml",
        "comment",
        "workflow_run",
        kwargs.pop("event", workflow_run_event()),
        tmp_path,
        env={"ACT_GH_PR_HEAD": HEAD},
        artifacts=tmp_path / "artifacts",
        **kwargs,
    )


def test_pr_comment_posts_the_report_with_arguments_cml_accepts(tmp_path: Path) -> None:
    pr_report(tmp_path / "artifacts")
    run = comment(tmp_path)
    assert_succeeded(run)
    assert run.of("gh") == [["api", f"repos/{REPOSITORY}/pulls/7", "--jq", ".head.sha"]]
    [cml] = [call for call in run.calls if call["tool"] == "cml"]
    *options, markdown_file = cml["argv"]
    assert options == [
        "comment",
        "update",
        "--no-publish",
        "--driver=github",
        f"--repo=https://github.com/{REPOSITORY}",
        "--target=pr/7",
    ]
    assert markdown_file.endswith("/pr-report/comment.md")
    assert cml["markdown"] == "## ✅ Quality gate passed\n![roc](roc.png)\n"
    assert "refs/heads/report-assets" in run.refs()


def test_pr_comment_rerun_on_the_same_head_posts_again_and_commits_nothing(tmp_path: Path) -> None:
    pr_report(tmp_path / "artifacts")
    first = comment(tmp_path)
    assert_succeeded(first)
    repo = (tmp_path / "repo", first.origin)
    rerun = comment(tmp_path, repo=repo)  # "Re-run jobs", or a second CI run on the same head
    assert_succeeded(rerun)
    assert "already on report-assets" in rerun.log
    assert len(rerun.of("cml")) == 1


def test_pr_comment_posts_nothing_when_ci_left_no_report(tmp_path: Path) -> None:
    run = comment(tmp_path, event=workflow_run_event("failure"))  # no artifact: the pipeline broke first
    assert_succeeded(run)
    assert run.calls == []
    assert "refs/heads/report-assets" not in run.refs()


# ---------------------------------------------------------------------------------------------- deploy.yaml

IMAGE = "ghcr.io/owner/repo@sha256:" + "cd" * 32
KUBECONFIG = "apiVersion: v1\nkind: Config\nclusters: []\n"


def dispatch_deploy(tmp_path: Path, secrets: dict[str, str]) -> ActRun:
    event = {"inputs": {"environment": "staging", "image": IMAGE, "model_version": "feedc0ffee00"}}
    return run_job(
        "deploy.yaml", "record", "workflow_dispatch", event, tmp_path, secrets=secrets, skipped=("image",)
    )


def deploy_tags(run: ActRun) -> list[str]:
    return [ref for ref in run.refs() if ref.startswith("refs/tags/deploy/")]


def test_deploy_without_a_cluster_credential_is_green_and_records_no_deployment(tmp_path: Path) -> None:
    run = dispatch_deploy(tmp_path, secrets={})
    assert_succeeded(run)
    assert "Deploy to staging skipped" in run.log
    assert run.kubectl == []
    assert deploy_tags(run) == []


def test_deploy_with_a_cluster_credential_rolls_out_smoke_tests_and_tags_the_deployment(
    tmp_path: Path,
) -> None:
    run = dispatch_deploy(tmp_path, secrets={"KUBECONFIG": KUBECONFIG})
    assert_succeeded(run)
    commands = [" ".join(call["args"][:2]) for call in run.kubectl]
    assert commands[:3] == ["kustomize " + commands[0].split(" ", 1)[1], "apply -f", "rollout status"]
    assert "port-forward --address" in commands  # the smoke test reached the service through the cluster
    assert f"image: {IMAGE}" in run.kubectl[1]["stdin"]
    [tag] = deploy_tags(run)
    assert tag.startswith("refs/tags/deploy/staging/")
