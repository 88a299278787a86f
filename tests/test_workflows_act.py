"""The workflows' own logic, run job by job by a real Actions runner (act, host mode; tests/support/act_runner.py).

What runs is the workflow as written: triggers, `if:` conditions, expressions, step and job outputs, env, and the
make targets and scripts the steps call. The third-party actions, `gh`, `cml` and `kubectl` are stand-ins
(tests/act/README.md) that record what the job asked of them; the tests assert on those calls.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from demo.generate import generate_month, write_month
from demo.load_warehouse import load_files
from pipeline.config import load_params
from tests.ops.test_monitor import SEED, create_log, replay, served_metadata
from tests.support.act_runner import REPOSITORY, ActRun, make_repository, run_job
from tests.support.paths import REPO_ROOT
from tests.support.repo import project_params, tiny_params, write_params

pytestmark = pytest.mark.slow

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
HEAD = "ab" * 20
CI_RUN_ID = 41
# the repository variables that name the DVC remote's OIDC roles (docs/ci-and-reports.md, "Credentials")
READ_ROLE, WRITE_ROLE = "arn:aws:iam::123456789012:role/dvc-read", "arn:aws:iam::123456789012:role/dvc-write"
ROLES = {"DVC_READ_ROLE_ARN": READ_ROLE, "DVC_WRITE_ROLE_ARN": WRITE_ROLE, "AWS_REGION": "eu-west-1"}


def assert_succeeded(run: ActRun) -> None:
    failed = [line for line in run.log.splitlines() if "❌" in line or "error:" in line.lower()]
    assert run.returncode == 0, "\n".join([*failed[:20], "...", run.log[-3000:]])


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


# deploy.yaml in pull mode (GitOps): a real registry on loopback holds the digests; git is the record.


def pull_mode(repo: Path) -> None:
    params = repo / "params.yaml"
    text = params.read_text(encoding="utf-8")
    assert "\n  mode: push\n" in text
    params.write_text(text.replace("\n  mode: push\n", "\n  mode: pull\n"), encoding="utf-8")


def staging_declares(reference: str) -> Callable[[Path], None]:
    """A commit on main in which the staging overlay declares `reference` (staging ran it)."""

    def prepare(repo: Path) -> None:
        from ops.deliver.gitops import write_pin

        name, digest = reference.split("@")
        write_pin(repo, "staging", name, digest)

    return prepare


@pytest.fixture(scope="module")
def registry_images(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    from tests.support.registry import image_registry, push_image

    with image_registry(tmp_path_factory.mktemp("registry")) as address:
        yield {tag: f"{address}/owner/repo@{push_image(address, 'owner/repo', tag)}" for tag in ("a", "b")}


def dispatch_gitops(tmp_path: Path, environment: str, image: str, **kwargs: Any) -> ActRun:
    event = {"inputs": {"environment": environment, "image": image, "model_version": ""}}
    return run_job(
        "deploy.yaml",
        "gitops",
        "workflow_dispatch",
        event,
        tmp_path,
        skipped=("image",),
        base=pull_mode,
        **kwargs,
    )


def overlay_at(origin: Path, branch: str, env: str) -> str:
    return subprocess.run(
        ["git", "--git-dir", str(origin), "show", f"{branch}:deploy/k8s/overlays/{env}/kustomization.yaml"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def test_pull_mode_commits_the_digest_to_staging_and_never_touches_a_cluster(
    tmp_path: Path, registry_images: dict[str, str]
) -> None:
    run = dispatch_gitops(tmp_path, "staging", registry_images["a"])
    assert_succeeded(run)
    assert run.kubectl == []
    assert "refs/heads/staging" in run.refs()
    digest = registry_images["a"].split("@")[1]
    assert f"digest: {digest}" in overlay_at(run.origin, "staging", "staging")
    assert [argv for argv in run.of("gh") if argv[:2] == ["pr", "create"]] == []  # staging_bump: commit


def test_pull_mode_refuses_a_digest_the_registry_does_not_hold(
    tmp_path: Path, registry_images: dict[str, str]
) -> None:
    missing = registry_images["a"].split("@")[0] + "@sha256:" + "0" * 64
    run = dispatch_gitops(tmp_path, "staging", missing)
    assert run.returncode != 0
    assert "the registry has no such manifest" in run.log
    assert "refs/heads/staging" not in run.refs()


def test_pull_mode_a_push_of_overlays_only_builds_nothing_and_a_code_push_bumps(
    tmp_path: Path, registry_images: dict[str, str]
) -> None:
    """The plan job on a push event (github.event.before .. the pushed commit), as a revert of a bump is pushed."""

    def push_event(repo: Path) -> dict[str, Any]:
        before = subprocess.run(
            ["git", "rev-parse", "HEAD~1"], cwd=repo, capture_output=True, text=True, check=True
        ).stdout.strip()
        return {"ref": "refs/heads/staging", "before": before}

    overlays_only = tmp_path / "overlays"
    repo, origin = make_repository(
        overlays_only, overlays_only / "home", staging_declares(registry_images["a"]), pull_mode
    )
    run = run_job("deploy.yaml", "plan", "push", push_event(repo), overlays_only, repo=(repo, origin))
    assert_succeeded(run)
    assert "staging: skip (only deploy/k8s/overlays/ changed" in run.log

    code = tmp_path / "code"
    repo, origin = make_repository(
        code, code / "home", lambda r: (r / "app" / "NOTE").write_text("x\n"), pull_mode
    )
    run = run_job("deploy.yaml", "plan", "push", push_event(repo), code, repo=(repo, origin))
    assert_succeeded(run)
    assert "staging: bump (pull mode: pin the digest)" in run.log


def test_pull_mode_promotes_only_what_staging_ran_as_a_pull_request(
    tmp_path: Path, registry_images: dict[str, str]
) -> None:
    ran, never = registry_images["a"], registry_images["b"]
    run = dispatch_gitops(tmp_path / "never", "production", never, prepare=staging_declares(ran))
    assert run.returncode != 0
    assert "staging never ran it" in run.log
    assert not [ref for ref in run.refs() if ref.startswith("refs/heads/deploy/")]

    run = dispatch_gitops(tmp_path / "ran", "production", ran, prepare=staging_declares(ran))
    assert_succeeded(run)
    [create] = [argv for argv in run.of("gh") if argv[:2] == ["pr", "create"]]
    branch = create[create.index("--head") + 1]
    assert create[create.index("--base") + 1] == "main" and branch.startswith("deploy/production-")
    assert f"digest: {ran.split('@')[1]}" in overlay_at(run.origin, branch, "production")


# ------------------------------------------------------------------------------------------------- ci.yaml


def tiny_pipeline(repo: Path) -> None:
    """The test project's params (never the fork's) for a pipeline of seconds (3 trials, small trees, 8 months of
    300 rows) and its data.dvc."""
    params = project_params()
    params["data"].update(months=8, rows_per_month=300)
    params["tune"].update(n_trials=3)
    params["tune"]["search_space"]["max_iter"] = {"type": "int", "low": 10, "high": 30, "step": 10}
    params["model"]["defaults"]["max_iter"] = 30
    params["evaluate"]["importance_repeats"] = 2
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    bin_dir = Path(sys.executable).parent
    subprocess.run([sys.executable, "-m", "demo.generate", "--params", "params.yaml"], cwd=repo, check=True)
    subprocess.run([str(bin_dir / "dvc"), "add", "-q", "data"], cwd=repo, check=True)


def better_base(repo: Path) -> None:
    """The base the pull request is compared with: the test project's params and a model far better than the tiny
    one (its committed metrics), whatever project this repository has become."""
    write_params(repo, project_params())
    metrics = json.loads((repo / "metrics/evaluate.json").read_text())
    metrics.update(roc_auc=0.99, pr_auc=0.95, f1=0.95, recall=0.95)
    (repo / "metrics/evaluate.json").write_text(json.dumps(metrics))


def test_ci_pipeline_job_on_a_pull_request_uploads_the_report_that_pr_comment_posts(tmp_path: Path) -> None:
    event = {"pull_request": {"number": 7, "head": {"sha": HEAD}}}
    ci = run_job(
        "ci.yaml", "pipeline", "pull_request", event, tmp_path / "ci", prepare=tiny_pipeline, base=better_base
    )
    # The tiny model is worse than the base's: the gate fails the job (a red required check) ...
    assert ci.returncode != 0
    assert "Failure - Main Report and gate (make report)" in ci.log
    assert "Success - Main Pipeline (make run)" in ci.log
    # ... and the report is uploaded all the same, so the reviewer sees why.
    [run_dir] = ci.artifacts.iterdir()
    report = run_dir / "pr-report"
    verdict = json.loads((report / "verdict.json").read_text())
    assert verdict["pull_request"] == 7
    assert verdict["passed"] is False
    assert any(
        c["metric"] == "roc_auc" and c["kind"] == "regression" and not c["passed"] for c in verdict["checks"]
    )
    comment_md = (report / "comment.md").read_text()
    assert f"https://github.com/{REPOSITORY}/raw/report-assets/pr-7/{HEAD}/roc.png" in comment_md
    assert (report / "roc.png").read_bytes().startswith(PNG[:8])

    ci_run = {**workflow_run_event("failure")["workflow_run"], "id": int(run_dir.name)}
    posted = run_job(
        "pr-comment.yaml",
        "comment",
        "workflow_run",
        {"workflow_run": ci_run},
        tmp_path / "comment",
        env={"ACT_GH_PR_HEAD": HEAD},
        artifacts=ci.artifacts,
    )
    assert_succeeded(posted)
    assert [call["markdown"] for call in posted.calls if call["tool"] == "cml"] == [comment_md]
    images = subprocess.run(
        ["git", "--git-dir", str(posted.origin), "ls-tree", "-r", "--name-only", "report-assets"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert f"pr-7/{HEAD}/roc.png" in images


def own_data_without_remote(repo: Path) -> None:
    """A fork after adopting its own data: data.dvc records data no cache or remote here holds, and params.yaml
    has no data.regenerate (a pull request's CI job, which holds no credential for the remote)."""
    tiny_pipeline(repo)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    del params["data"]
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def test_ci_pipeline_job_without_access_to_the_data_skips_the_pipeline_with_a_warning(tmp_path: Path) -> None:
    event = {"pull_request": {"number": 8, "head": {"sha": HEAD}}}
    ci = run_job(
        "ci.yaml", "pipeline", "pull_request", event, tmp_path / "ci", prepare=own_data_without_remote
    )
    assert_succeeded(ci)  # not a red check on every pull request of a fork with its own data ...
    assert "Success - Main Data (make data-or-skip)" in ci.log
    assert "The pipeline did not run" in ci.log  # ... but a warning saying why, and what runs instead
    assert "Main Pipeline (make run)" not in ci.log  # skipped: act does not even start the step
    assert not any(ci.artifacts.rglob("verdict.json"))


# --------------------------------------------------------------------------------------------- monitor.yaml


def served_model(repo: Path) -> None:
    """A model/ that `dvc pull model` fetches from a local DVC remote: its dvc.lock entry names it.

    Monitoring reads only model/metadata.json; the one written here is test_monitor's (the demo generator's churn
    model and its reference statistics), so its prediction log can be replayed without a training run.
    """
    metadata = served_metadata()
    scratch, remote = repo.parent / "dvc-scratch", repo.parent / "dvc-remote"
    (scratch / "model").mkdir(parents=True)
    (scratch / "model" / "metadata.json").write_text(json.dumps(metadata))
    dvc = str(Path(sys.executable).parent / "dvc")
    for cmd in (
        ["git", "init", "-q"],
        [dvc, "init", "-q"],
        [dvc, "add", "-q", "model"],
        [dvc, "remote", "add", "-d", "local", str(remote)],
        [dvc, "push", "-q"],
    ):
        subprocess.run(cmd, cwd=scratch, check=True, capture_output=True)
    [out] = yaml.safe_load((scratch / "model.dvc").read_text())["outs"]
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    [entry] = [o for o in lock["stages"]["train"]["outs"] if o["path"] == "model"]
    entry.update({key: out[key] for key in ("md5", "size", "nfiles", "hash") if key in out})
    (repo / "dvc.lock").write_text(yaml.safe_dump(lock, sort_keys=False))
    subprocess.run(
        [dvc, "remote", "add", "-d", "local", str(remote)], cwd=repo, check=True, capture_output=True
    )


def test_monitor_breach_fails_the_job_and_dispatches_retrain_with_the_reason(tmp_path: Path) -> None:
    log = f"sqlite:///{tmp_path / 'predictions.db'}"
    drifted = generate_month("2025-06", 1200, SEED, covariate_drift=1.0, concept_drift=1.0)
    replay(create_log(log), drifted, end=datetime.now(UTC))
    run = run_job(
        "monitor.yaml",
        "retrain",
        "workflow_dispatch",
        {},
        tmp_path,
        secrets={"PREDICTION_LOG_URL": log},
        prepare=served_model,
        # the test project's monitor section (one breach triggers), never the fork's (its trigger_persistence)
        base=lambda repo: write_params(repo, project_params()),
    )
    assert "Success - Main Get the production model (make monitor-model)" in run.log
    assert "Failure - Main Monitor (make monitor)" in run.log  # exit 3: a red run is the alarm
    assert run.returncode != 0
    [dispatch] = run.of("gh")
    assert dispatch[:5] == ["workflow", "run", "retrain.yaml", "--ref", "main"]
    assert dispatch[5] == "-f" and dispatch[6].startswith("reason=") and "drift" in dispatch[6]
    [report] = [p for p in run.artifacts.glob("*/monitoring-report/verdict.json")]
    assert json.loads(report.read_text())["status"] == "breach"


def test_monitor_without_a_prediction_log_is_green_and_dispatches_nothing(tmp_path: Path) -> None:
    run = run_job("monitor.yaml", "retrain", "workflow_dispatch", {}, tmp_path, variables=ROLES)
    assert_succeeded(run)
    # act ran the local set-up action (read from the job's checked-out workspace) and the steps inside it
    assert "Success - Main ./.github/actions/setup" in run.log
    assert "Success - Main Install (make venv)" in run.log
    assert "Monitoring skipped" in run.log
    assert run.calls == []  # nor a role assumed for a model it does not need


# --------------------------------------------------------------------------------------------- retrain.yaml


def champion_and_drifted_warehouse(repo: Path) -> None:
    """test_retrain's tiny champion on main (data and model in a local DVC remote), and a warehouse holding its
    months plus two drifted ones: the newest data the retrain job extracts (WAREHOUSE_URL)."""
    write_params(repo, tiny_params())
    dvc = [sys.executable, "-m", "dvc"]
    path = f"{Path(sys.executable).parent}:{os.environ['PATH']}"  # dvc.yaml's stages call `python -m pipeline...`
    # Not the outer CI job's GITHUB_OUTPUT and the like, nor a developer's own storage settings.
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("GITHUB_", "OPTUNA_", "WAREHOUSE_", "RETRAIN_"))
    }
    run = {"cwd": repo, "check": True, "capture_output": True, "env": {**env, "PATH": path}}
    subprocess.run([sys.executable, "-m", "demo.generate", "--params", "params.yaml"], **run)
    subprocess.run([*dvc, "add", "-q", "data"], **run)
    subprocess.run([*dvc, "repro", "-q"], **run)
    subprocess.run([*dvc, "remote", "add", "-d", "local", str(repo.parent / "dvc-remote")], **run)
    subprocess.run([*dvc, "push", "-q"], **run)
    for month in ("2025-06", "2025-07"):
        frame = generate_month(month, 1500, SEED, covariate_drift=1.0, concept_drift=1.0)
        write_month(frame, repo / "data" / "events" / f"{month}.parquet")
    files = sorted((repo / "data" / "events").glob("*.parquet"))
    load_files(f"sqlite:///{repo.parent / 'warehouse.db'}", "events", files)


def test_retrain_promotes_on_drifted_data_and_proposes_a_pull_request_to_staging(tmp_path: Path) -> None:
    run = run_job(
        "retrain.yaml",
        "propose",
        "workflow_dispatch",
        {"inputs": {"cutoff": "", "reason": "roc_auc 0.61 < 0.70"}},
        tmp_path,
        secrets={"WAREHOUSE_URL": f"sqlite:///{tmp_path / 'warehouse.db'}"},
        variables=ROLES,
        prepare=champion_and_drifted_warehouse,
    )
    assert_succeeded(run)
    # the read role for training; the write role only once the winner is known, for retrain-push
    assert run.of("configure-aws-credentials") == [
        [READ_ROLE, "eu-west-1", "false"],
        [WRITE_ROLE, "eu-west-1", "true"],
    ]
    [decision_file] = run.artifacts.glob("*/retrain/retrain/decision.json")
    decision = json.loads(decision_file.read_text())
    assert decision["decision"] == "promote", decision["reasons"]
    assert decision["trigger"] == "roc_auc 0.61 < 0.70"
    branch = decision["branch"]
    assert f"refs/heads/{branch}" in run.refs()
    gh = run.of("gh")
    assert gh[0] == ["auth", "setup-git"]
    [create] = [argv for argv in gh if argv[:2] == ["pr", "create"]]
    assert create[2:6] == ["--base", "staging", "--head", branch]


# deploy.yaml's vertex job: gcloud and skopeo are recording stand-ins (tests/act/bin) keeping an endpoint's state.

GCP = {
    "GCP_PROJECT_ID": "my-project",
    "GCP_REGION": "europe-west4",
    "GCP_ARTIFACT_REPOSITORY": "serving",
    "GCP_WORKLOAD_IDENTITY_PROVIDER": "projects/123/locations/global/workloadIdentityPools/github/providers/repo",
    "GCP_SERVICE_ACCOUNT": "deploy-staging@my-project.iam.gserviceaccount.com",
    "VERTEX_ENDPOINT_ID": "4242",
}


def dispatch_vertex(tmp_path: Path, variables: dict[str, str], **env: str) -> ActRun:
    state = tmp_path / "endpoint.json"
    previous = "projects/my-project/locations/europe-west4/models/previous"
    state.write_text(
        json.dumps(
            {"models": ["previous"], "deployed": [{"id": "1001", "model": previous}], "split": {"1001": 100}}
        )
    )
    event = {"inputs": {"environment": "staging", "image": IMAGE, "model_version": "feedc0ffee00"}}
    return run_job(
        "deploy.yaml",
        "vertex",
        "workflow_dispatch",
        event,
        tmp_path,
        variables=variables,
        env={"ACT_GCLOUD_STATE": str(state), **env},
        skipped=("image",),
    )


def cloud_calls(run: ActRun) -> list[str]:
    """`tool verb...` of each recorded gcloud, skopeo and auth call, in order."""
    found = []
    for call in run.calls:
        words = [word for word in call["argv"] if not word.startswith("--")]
        if call["tool"] in ("gcloud", "skopeo"):
            found.append(" ".join([call["tool"], *words[:4]]))
        elif call["tool"] == "google-auth":
            found.append("google-auth " + " ".join(call["argv"]))
    return found


def test_vertex_without_gcp_variables_is_green_with_a_notice(tmp_path: Path) -> None:
    run = dispatch_vertex(tmp_path, {})
    assert_succeeded(run)
    assert "Vertex AI deploy to staging skipped" in run.log
    assert cloud_calls(run) == []


def test_vertex_authenticates_keylessly_then_copies_uploads_and_rolls_out_in_steps(tmp_path: Path) -> None:
    run = dispatch_vertex(tmp_path, GCP)
    assert_succeeded(run)
    model = f"{load_params(REPO_ROOT / 'params.yaml').project.name}-staging-{'cd' * 6}"
    assert cloud_calls(run) == [
        f"google-auth {GCP['GCP_WORKLOAD_IDENTITY_PROVIDER']} {GCP['GCP_SERVICE_ACCOUNT']}",
        "gcloud auth print-access-token",
        "skopeo login europe-west4-docker.pkg.dev",
        "skopeo login ghcr.io",  # the workflow's token reads the image from ghcr.io
        f"skopeo copy docker://{IMAGE} docker://europe-west4-docker.pkg.dev/my-project/serving/repo:staging-{'cd' * 6}",
        f"gcloud ai models describe {model}",
        "gcloud ai models upload",
        "gcloud ai endpoints describe 4242",
        "gcloud ai endpoints deploy-model 4242",
        "gcloud ai endpoints describe 4242",
        "gcloud ai endpoints predict 4242",
        "gcloud ai endpoints update 4242",
        "gcloud ai endpoints predict 4242",
        "gcloud ai endpoints undeploy-model 4242",
    ]
    assert all(
        call["password"] for call in run.calls if call["tool"] == "skopeo" and call["argv"][0] == "login"
    )
    assert json.loads((tmp_path / "endpoint.json").read_text())["split"] == {"1002": 100}


def test_vertex_failing_smoke_test_undeploys_the_new_version_and_fails_the_job(tmp_path: Path) -> None:
    run = dispatch_vertex(tmp_path, GCP, ACT_GCLOUD_PREDICT="fail")
    assert run.returncode != 0
    assert "undeployed it: the traffic is back on the previous deployment" in run.log
    [*_, last] = run.of("gcloud")
    assert last[:4] == ["ai", "endpoints", "undeploy-model", "4242"]
    assert "--deployed-model-id=1002" in last and last[-1] == "--traffic-split=1001=100"
    assert json.loads((tmp_path / "endpoint.json").read_text())["split"] == {"1001": 100}
