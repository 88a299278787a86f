"""ops.project: params.yaml `project.name` is the one home of the project's name; renaming is one edit plus
`make project`, and every name the manifests, alerts, dashboard, image and study carry follows."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from mlcore.errors import PipelineError
from ops import project
from ops.deliver import deploy, image
from pipeline.config import load_params
from tests.support.paths import REPO_ROOT, TEST_PARAMS
from tests.support.project import rename_params, renamed_copy

ENVIRONMENTS = ("staging", "production")


def kustomize(path: Path) -> list[dict]:
    out = subprocess.run(
        ["kubectl", "kustomize", str(path)], capture_output=True, text=True, check=True
    ).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


@pytest.fixture(scope="module")
def acme(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return renamed_copy(tmp_path_factory.mktemp("acme"), "acme-risk", "Acme risk API")


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_every_kubernetes_name_follows_a_rename(acme: Path, env: str):
    docs = kustomize(acme / "deploy" / "k8s" / "overlays" / env)
    by_kind = {d["kind"]: d for d in docs}
    assert {d["metadata"]["namespace"] for d in docs} == {f"acme-risk-{env}"}
    for kind in ("Deployment", "Service", "PodDisruptionBudget", "HorizontalPodAutoscaler", "NetworkPolicy"):
        assert by_kind[kind]["metadata"]["name"] == "acme-risk-api", kind
    assert by_kind["ConfigMap"]["metadata"]["name"].startswith("acme-risk-api-config-")
    assert by_kind["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]["name"] == "acme-risk-api"
    selector = {"app.kubernetes.io/name": "acme-risk-api"}
    assert by_kind["Service"]["spec"]["selector"].items() >= selector.items()
    assert by_kind["Deployment"]["spec"]["selector"]["matchLabels"].items() >= selector.items()
    assert by_kind["NetworkPolicy"]["spec"]["podSelector"]["matchLabels"].items() >= selector.items()
    assert by_kind["Deployment"]["metadata"]["labels"]["app.kubernetes.io/instance"] == f"acme-risk-api-{env}"
    api = deploy.api_container(docs)
    assert {e["valueFrom"]["secretKeyRef"]["name"] for e in api["env"] if "valueFrom" in e} == {
        "acme-risk-api-secrets"
    }
    # what deploy rolls out, port-forwards and undoes is what was rendered
    assert (deploy.namespace(docs), deploy.deployment_name(docs), deploy.service_name(docs)) == (
        f"acme-risk-{env}",
        "acme-risk-api",
        "acme-risk-api",
    )
    assert "churn" not in deploy.to_yaml(docs)


def test_the_tune_job_follows_a_rename(acme: Path):
    docs = kustomize(acme / "deploy" / "k8s" / "tune-job")
    job = next(d for d in docs if d["kind"] == "Job")
    assert job["metadata"]["name"] == "acme-risk-tune-workers"
    assert job["metadata"]["labels"]["app.kubernetes.io/name"] == "acme-risk-tune"
    source = next(d for d in docs if d["kind"] == "ConfigMap")["metadata"]["name"]
    assert source.startswith("acme-risk-tune-source-") and source in json.dumps(job)
    assert "churn" not in deploy.to_yaml(docs)


def test_pull_modes_argo_cd_and_flux_objects_follow_a_rename(acme: Path):
    gitops = acme / "deploy" / "gitops"
    argocd = kustomize(gitops / "argocd")
    appset = next(d for d in argocd if d["kind"] == "ApplicationSet")
    appproject = next(d for d in argocd if d["kind"] == "AppProject")
    assert appproject["metadata"]["name"] == appset["spec"]["template"]["spec"]["project"] == "acme-risk"
    assert appset["metadata"]["name"] == "acme-risk-api"
    assert [(e["name"], e["namespace"]) for e in appset["spec"]["generators"][0]["list"]["elements"]] == [
        (f"acme-risk-api-{env}", f"acme-risk-{env}") for env in ENVIRONMENTS
    ]
    assert {d["namespace"] for d in appproject["spec"]["destinations"]} == {
        f"acme-risk-{e}" for e in ENVIRONMENTS
    }
    for env in ENVIRONMENTS:
        synced = kustomize(gitops / "argocd" / env)
        assert {d["metadata"]["namespace"] for d in synced} == {f"acme-risk-{env}"}
        job = next(d for d in synced if d["kind"] == "Job")
        assert job["metadata"]["name"] == "acme-risk-api-smoke-test"
        (smoke,) = job["spec"]["template"]["spec"]["containers"]
        assert {"name": "SERVICE", "value": "acme-risk-api"} in smoke["env"]
    flux = kustomize(gitops / "flux")
    assert {d["metadata"]["name"] for d in flux} == {f"acme-risk-{env}" for env in ENVIRONMENTS}
    assert {d["spec"].get("targetNamespace") for d in flux if d["kind"] == "Kustomization"} == {
        f"acme-risk-{env}" for env in ENVIRONMENTS
    }
    old = load_params(TEST_PARAMS).project.name
    assert not [p for p in gitops.rglob("*.yaml") if re.search(rf"\b{old}-", p.read_text())]


def test_alerts_and_dashboard_follow_a_rename(acme: Path):
    alerts = yaml.safe_load((acme / "deploy/monitoring/alerts.yaml").read_text())
    assert [g["name"] for g in alerts["groups"]] == ["acme-risk-api"]
    names = [rule["alert"] for g in alerts["groups"] for rule in g["rules"]]
    assert names and all(n.startswith("AcmeRiskApi") for n in names) and "AcmeRiskApiHighErrorRate" in names
    dashboard = json.loads((acme / "deploy/monitoring/dashboard.json").read_text())
    assert (dashboard["title"], dashboard["uid"], dashboard["tags"][0]) == (
        "Acme risk API",
        "acme-risk-api",
        "acme-risk",
    )
    assert "AcmeRiskApiModelNotReady" in json.dumps(dashboard)
    for path in ("alerts.yaml", "alerts.test.yaml", "dashboard.json"):
        assert "churn" not in (acme / "deploy/monitoring" / path).read_text().lower(), path


def test_the_alert_rules_unit_tests_follow_a_rename(acme: Path):
    """promtool's tests name the alerts literally: `make project` renames them with the rules, so they still pass."""
    result = subprocess.run(
        ["promtool", "test", "rules", str(acme / "deploy/monitoring/alerts.test.yaml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "AcmeRiskApiHighErrorRate" in (acme / "deploy/monitoring/alerts.test.yaml").read_text()


def test_the_image_and_the_study_follow_a_rename(acme: Path):
    params = load_params(acme / "params.yaml")
    assert image.default_tag(params.project) == "localhost/acme-risk-api:dev"
    args = image.build_args("rev", "v1", params.project)
    assert "IMAGE_TITLE=acme-risk-api" in args
    assert f"IMAGE_DESCRIPTION={params.project.description}" in args


def test_a_second_write_changes_nothing(acme: Path):
    assert project.write(load_params(acme / "params.yaml").project, acme) == []


def test_check_names_the_files_a_rename_left_behind(tmp_path: Path, capsys):
    shutil.copy(TEST_PARAMS, tmp_path / "params.yaml")
    shutil.copytree(REPO_ROOT / "deploy", tmp_path / "deploy")
    rename_params(tmp_path / "params.yaml", "acme", "Acme API")  # the edit, without `make project`
    code = project.main(["check", "--params", str(tmp_path / "params.yaml"), "--root", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 1
    assert "deploy/k8s/project/kustomization.yaml" in err and "deploy/monitoring/alerts.yaml" in err
    assert "run `make project`" in err


def test_a_file_whose_named_line_was_removed_gets_one_clear_error(tmp_path: Path, capsys):
    shutil.copy(TEST_PARAMS, tmp_path / "params.yaml")
    shutil.copytree(REPO_ROOT / "deploy", tmp_path / "deploy")
    overlay = tmp_path / "deploy/k8s/overlays/staging/kustomization.yaml"
    overlay.write_text(
        "\n".join(line for line in overlay.read_text().splitlines() if "namespace:" not in line)
    )
    assert project.main(["write", "--params", str(tmp_path / "params.yaml"), "--root", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "overlays/staging/kustomization.yaml: no line matches" in err and "namespace" in err


@pytest.mark.parametrize("bad", ["Churn", "churn_api", "-churn", "churn-", "a" * 40, ""])
def test_a_name_that_is_not_a_dns_label_is_refused(tmp_path: Path, bad: str):
    params = tmp_path / "params.yaml"
    shutil.copy(TEST_PARAMS, params)
    text = params.read_text().replace("project:\n  name: ", f"project:\n  name: '{bad}'  # ", 1)
    params.write_text(text)
    with pytest.raises(PipelineError, match=r"project\.name: String should match pattern"):
        load_params(params)
