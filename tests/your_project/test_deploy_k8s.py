"""YOUR deploy/: the Kubernetes overlays render, validate offline against the API schemas, and match what the
app serves."""

from __future__ import annotations

import runpy
import subprocess
import sys
from pathlib import Path

import pytest

from app.auth import AuthConfigError, load_tokens
from ops.deliver import deploy
from pipeline.config import load_params
from tests.support.paths import REPO_ROOT

OVERLAYS = REPO_ROOT / "deploy" / "k8s" / "overlays"
ENVIRONMENTS = ["staging", "production"]
DIGEST = "ghcr.io/acme/model@sha256:" + "ab" * 32
# The repository's overlays carry its project name (ops.project writes it; tests/ops/test_project.py renames it).
NAME = load_params(REPO_ROOT / "params.yaml").project.name  # YOUR project's params.yaml


@pytest.fixture(scope="module", params=ENVIRONMENTS)
def rendered(request) -> tuple[str, list[dict]]:
    return request.param, deploy.set_image(deploy.render(request.param, OVERLAYS), DIGEST)


def pod_spec(docs: list[dict]) -> dict:
    return deploy.find(docs, "Deployment")["spec"]["template"]["spec"]


def validate_strictly(manifest: Path) -> subprocess.CompletedProcess[str]:
    validate = Path(sys.executable).parent / "kubernetes-validate"
    return subprocess.run(
        [str(validate), "--strict", "--quiet", str(manifest)], capture_output=True, text=True
    )


def env_value(container: dict, name: str) -> str:
    return next(e["value"] for e in container["env"] if e["name"] == name and "value" in e)


def test_overlays_validate_strictly_against_the_kubernetes_schemas(rendered, tmp_path: Path):
    env, docs = rendered
    # Argo Rollouts' kinds (the production canary, deploy/k8s/canary) are validated against their CRD schemas by
    # tests/ops/deliver/test_gitops_manifests.py; kubernetes-validate knows the built-in kinds.
    crds = sorted(d["kind"] for d in docs if d["apiVersion"].startswith("argoproj.io/"))
    assert set(crds) <= {"Rollout", "AnalysisTemplate"}
    docs = [d for d in docs if not d["apiVersion"].startswith("argoproj.io/")]
    manifest = tmp_path / f"{env}.yaml"
    manifest.write_text(deploy.to_yaml(docs))
    proc = validate_strictly(manifest)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    kinds = sorted(d["kind"] for d in docs)
    assert kinds == [
        "ConfigMap",
        "Deployment",
        "HorizontalPodAutoscaler",
        "NetworkPolicy",
        "PodDisruptionBudget",
        "Service",
    ]


def test_strict_validation_rejects_an_unknown_field(tmp_path: Path):
    docs = deploy.set_image(deploy.render("staging", OVERLAYS), DIGEST)
    deploy.api_container(docs)["readinessProbe"]["httpGett"] = {"path": "/ready"}
    manifest = tmp_path / "typo.yaml"
    manifest.write_text(deploy.to_yaml(docs))
    proc = validate_strictly(manifest)
    assert proc.returncode != 0 and "httpGett" in proc.stdout + proc.stderr


def test_every_resource_lands_in_the_environments_namespace(rendered):
    env, docs = rendered
    assert {d["metadata"]["namespace"] for d in docs} == {f"{NAME}-{env}"}


def test_rollout_never_drops_capacity_and_pods_drain_gracefully(rendered):
    _, docs = rendered
    deployment = deploy.find(docs, "Deployment")
    assert deployment["spec"]["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
    }
    assert "replicas" not in deployment["spec"], "the HorizontalPodAutoscaler owns the replica count"
    spec = pod_spec(docs)
    api = deploy.api_container(docs)
    pre_stop = api["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    graceful = int(env_value(api, "GRACEFUL_TIMEOUT"))
    assert spec["terminationGracePeriodSeconds"] > int(pre_stop[1]) + graceful


def test_pods_run_locked_down(rendered):
    _, docs = rendered
    spec = pod_spec(docs)
    api = deploy.api_container(docs)
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] != 0
    assert api["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    tmp = next(m for m in api["volumeMounts"] if m["mountPath"] == "/tmp")
    assert "emptyDir" in next(v for v in spec["volumes"] if v["name"] == tmp["name"])
    for kind in ("requests", "limits"):
        assert set(api["resources"][kind]) == {"cpu", "memory"}


def test_the_image_is_the_pinned_digest(rendered):
    _, docs = rendered
    assert deploy.api_container(docs)["image"] == DIGEST


@pytest.mark.parametrize("image", ["ghcr.io/acme/model:latest", "ghcr.io/acme/model@sha256:abc", ""])
def test_deploying_anything_but_a_digest_is_refused(image):
    docs = deploy.render("staging", OVERLAYS)
    with pytest.raises(deploy.PipelineError, match="digest"):
        deploy.set_image(docs, image)


def test_service_pdb_and_autoscaler_select_the_pods(rendered):
    env, docs = rendered
    pod_labels = deploy.find(docs, "Deployment")["spec"]["template"]["metadata"]["labels"]
    service = deploy.find(docs, "Service")
    pdb = deploy.find(docs, "PodDisruptionBudget")
    for selector in (service["spec"]["selector"], pdb["spec"]["selector"]["matchLabels"]):
        assert selector.items() <= pod_labels.items()
    hpa = deploy.find(docs, "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"]["name"] == deploy.deployment_name(docs)
    assert hpa["spec"]["minReplicas"] >= (2 if env == "production" else 1)
    port_names = {p["name"] for p in deploy.api_container(docs)["ports"]}
    assert service["spec"]["ports"][0]["targetPort"] in port_names


def test_the_configmap_and_secret_references_resolve(rendered):
    env, docs = rendered
    api = deploy.api_container(docs)
    configmap = next(d for d in docs if d["kind"] == "ConfigMap")
    assert api["envFrom"] == [{"configMapRef": {"name": configmap["metadata"]["name"]}}]
    # one gunicorn worker per CPU of the limit: each worker holds a copy of the model in memory
    cpu_limit = api["resources"]["limits"]["cpu"]
    cpus = int(cpu_limit[:-1]) / 1000 if cpu_limit.endswith("m") else float(cpu_limit)
    assert int(configmap["data"]["WEB_CONCURRENCY"]) == max(1, int(cpus))
    secret_ref = next(e for e in api["env"] if e["name"] == "PREDICTION_LOG_URL")["valueFrom"]["secretKeyRef"]
    assert secret_ref["name"] == f"{NAME}-api-secrets"
    # production must not silently fall back to a pod-local SQLite file
    assert secret_ref["optional"] is (env == "staging")


def container_environment(docs: list[dict]) -> dict[str, str]:
    """The environment the api container gets from its ConfigMap and plain `env` values."""
    api = deploy.api_container(docs)
    configmap = next(d for d in docs if d["kind"] == "ConfigMap")
    return {**configmap["data"], **{e["name"]: e["value"] for e in api["env"] if "value" in e}}


def test_gunicorn_listens_on_the_container_port_and_drains_within_the_grace_period(
    rendered, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
):
    _, docs = rendered
    for key in ("BIND", "PORT", "GRACEFUL_TIMEOUT", "WEB_CONCURRENCY"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    for key, value in container_environment(docs).items():
        monkeypatch.setenv(key, value)
    conf = runpy.run_path(str(REPO_ROOT / "app" / "gunicorn.conf.py"))
    api = deploy.api_container(docs)
    http_port = next(p["containerPort"] for p in api["ports"] if p["name"] == "http")
    host, port = conf["bind"].rsplit(":", 1)
    assert (host, int(port)) == ("0.0.0.0", http_port)
    pre_stop = int(api["lifecycle"]["preStop"]["exec"]["command"][1])
    assert pod_spec(docs)["terminationGracePeriodSeconds"] > pre_stop + conf["graceful_timeout"]
    assert conf["workers"] == int(container_environment(docs)["WEB_CONCURRENCY"])


def test_probes_and_scrape_path_are_routes_the_app_serves(rendered, app):
    _, docs = rendered
    get_routes = {rule.rule for rule in app.url_map.iter_rules() if "GET" in rule.methods}
    api = deploy.api_container(docs)
    assert api["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert api["livenessProbe"]["httpGet"]["path"] == "/health"
    probes = {api[p]["httpGet"]["path"] for p in ("readinessProbe", "livenessProbe", "startupProbe")}
    template = deploy.find(docs, "Deployment")["spec"]["template"]
    annotations = template["metadata"]["annotations"]
    assert probes | {annotations["prometheus.io/path"]} <= get_routes
    assert int(annotations["prometheus.io/port"]) == api["ports"][0]["containerPort"]
    client = app.test_client()
    for path in probes:
        assert client.get(path).status_code == 200, path


def test_only_the_ingress_controller_and_the_scraper_reach_the_pods_and_only_on_the_http_port(rendered):
    _, docs = rendered
    policy = deploy.find(docs, "NetworkPolicy")["spec"]
    pod_labels = deploy.find(docs, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert policy["podSelector"]["matchLabels"].items() <= pod_labels.items()
    assert policy["policyTypes"] == ["Ingress"]
    [rule] = policy["ingress"]
    assert rule["ports"] == [{"port": "http", "protocol": "TCP"}]
    assert "http" in {p["name"] for p in deploy.api_container(docs)["ports"]}
    peers = rule["from"]
    namespaces = [peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"] for peer in peers]
    assert namespaces == ["ingress-nginx", "monitoring"]
    for peer in peers:
        # each peer names one namespace and pods in it; an empty selector would admit every pod (or namespace)
        assert set(peer) == {"namespaceSelector", "podSelector"} and peer["podSelector"]["matchLabels"]
        # kustomize's selector labels must not leak into a peer: then no ingress or scraper pod would match
        assert not peer["podSelector"]["matchLabels"].items() & pod_labels.items()


def test_feedback_requires_a_token_from_the_secret_in_every_overlay(rendered):
    _, docs = rendered
    api = deploy.api_container(docs)
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in api["env"] if "valueFrom" in e}
    assert refs["FEEDBACK_TOKENS"] == {
        "name": f"{NAME}-api-secrets",
        "key": "FEEDBACK_TOKENS",
        "optional": False,
    }
    assert refs["PREDICT_TOKENS"]["optional"] is True
    settings = container_environment(docs)
    assert settings["AUTH_REQUIRED"] == "feedback"
    # what the app does with these settings when the Secret's FEEDBACK_TOKENS is empty: refuse to start
    with pytest.raises(AuthConfigError, match="FEEDBACK_TOKENS holds no token"):
        load_tokens({**settings, "FEEDBACK_TOKENS": ""})
