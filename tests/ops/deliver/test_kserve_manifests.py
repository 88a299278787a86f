"""deploy/k8s/kserve: each environment's KServe InferenceService (V2 / Open Inference Protocol) rendered from that
environment's overlay, on a copy renamed to the project `acme` with pinned digests, and validated offline.

No npm package carries KServe's CRD schema (`npm view @kubernetes-models/kserve`: not found), so the CRD check
is derived here from the published CRD (serving.kserve.io_inferenceservices.yaml, v1beta1): `spec.predictor` is
required, a custom predictor is a pod spec whose containers are core Containers (each needs `name`) plus KServe's
scaling fields; the pod-spec part is validated strictly against the Kubernetes schemas (kubernetes-validate)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from ops.deliver import gitops
from tests.support.project import renamed_copy

DIGESTS = {"staging": "sha256:" + "ab" * 32, "production": "sha256:" + "cd" * 32}
IMAGE_NAME = "ghcr.io/acme/acme"
# KServe's own fields of a predictor (ComponentExtensionSpec), beside the pod spec's
PREDICTOR_FIELDS = {
    "minReplicas", "maxReplicas", "scaleMetric", "scaleTarget", "containerConcurrency", "timeout",
    "canaryTrafficPercent", "logger", "batcher", "labels", "annotations", "deploymentStrategy",
}  # fmt: skip
SCALE_METRICS = {"cpu", "memory", "concurrency", "rps"}


@pytest.fixture(scope="module")
def copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = renamed_copy(tmp_path_factory.mktemp("acme"), "acme")
    for env, digest in DIGESTS.items():
        gitops.write_pin(root, env, IMAGE_NAME, digest)
    return root


def render(root: Path, env: str) -> list[dict[str, Any]]:
    out = subprocess.run(
        ["kubectl", "kustomize", str(root / "deploy" / "k8s" / "kserve" / env)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def the(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    [found] = [doc for doc in docs if doc["kind"] == kind]
    return found


def crd_problems(isvc: dict[str, Any]) -> list[str]:
    """What the v1beta1 InferenceService CRD (and KServe's admission rules on names) refuses."""
    problems = []
    if isvc.get("apiVersion") != "serving.kserve.io/v1beta1" or isvc.get("kind") != "InferenceService":
        problems.append("apiVersion/kind: serving.kserve.io/v1beta1 InferenceService")
    name = str(isvc.get("metadata", {}).get("name", ""))
    if not (0 < len(name) <= 63 and name[0].isalpha() and all(c.isalnum() or c == "-" for c in name)):
        problems.append(f"metadata.name {name!r}: a DNS-1035 label")
    predictor = isvc.get("spec", {}).get("predictor")
    if not isinstance(predictor, dict):
        return [*problems, "spec.predictor: required"]
    containers = predictor.get("containers")
    if (
        not isinstance(containers, list)
        or not containers
        or not all(isinstance(c, dict) and c.get("name") for c in containers)
    ):
        problems.append("spec.predictor.containers: a list of containers, each with a name")
    for field in ("minReplicas", "maxReplicas", "scaleTarget"):
        if field in predictor and not (isinstance(predictor[field], int) and predictor[field] >= 0):
            problems.append(f"spec.predictor.{field}: a non-negative integer")
    if predictor.get("scaleMetric", "cpu") not in SCALE_METRICS:
        problems.append(f"spec.predictor.scaleMetric: one of {sorted(SCALE_METRICS)}")
    return problems


@pytest.mark.parametrize("env", sorted(DIGESTS))
def test_the_inferenceservice_comes_from_the_overlay_with_its_digest_names_and_config(
    copy: Path, env: str
) -> None:
    docs = render(copy, env)
    assert sorted(doc["kind"] for doc in docs) == ["ConfigMap", "InferenceService"]  # KServe makes the rest
    isvc, config = the(docs, "InferenceService"), the(docs, "ConfigMap")
    assert isvc["metadata"]["name"] == "acme-api"
    assert isvc["metadata"]["namespace"] == config["metadata"]["namespace"] == f"acme-{env}"
    assert isvc["metadata"]["labels"]["app.kubernetes.io/instance"] == f"acme-api-{env}"
    [container] = isvc["spec"]["predictor"]["containers"]
    assert container["name"] == "kserve-container"
    assert container["image"] == f"{IMAGE_NAME}@{DIGESTS[env]}"
    assert container["envFrom"] == [{"configMapRef": {"name": config["metadata"]["name"]}}]
    secrets = {e["valueFrom"]["secretKeyRef"]["name"] for e in container["env"] if "valueFrom" in e}
    assert secrets == {"acme-api-secrets"}


@pytest.mark.parametrize("env", sorted(DIGESTS))
def test_the_predictor_speaks_v2_on_the_port_the_image_listens_on(copy: Path, env: str) -> None:
    isvc = the(render(copy, env), "InferenceService")
    [container] = isvc["spec"]["predictor"]["containers"]
    env_vars = {e["name"]: e.get("value") for e in container["env"]}
    port = int(env_vars["BIND"].rsplit(":", 1)[1])
    assert [p["containerPort"] for p in container["ports"]] == [port]
    assert container["readinessProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": port}
    assert container["livenessProbe"]["httpGet"] == {"path": "/v2/health/live", "port": port}
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert isvc["spec"]["predictor"]["securityContext"]["runAsNonRoot"] is True


@pytest.mark.parametrize("env", sorted(DIGESTS))
def test_the_inferenceservice_passes_the_crd_rules_and_its_pod_spec_the_kubernetes_schema(
    copy: Path, env: str, tmp_path: Path
) -> None:
    isvc = the(render(copy, env), "InferenceService")
    assert crd_problems(isvc) == []
    pod_spec = {k: v for k, v in isvc["spec"]["predictor"].items() if k not in PREDICTOR_FIELDS}
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "predictor"}, "spec": pod_spec}
    manifest = tmp_path / "pod.yaml"
    manifest.write_text(yaml.safe_dump(pod))
    validate = Path(sys.executable).parent / "kubernetes-validate"
    proc = subprocess.run(
        [str(validate), "--strict", "--quiet", str(manifest)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_crd_rules_refuse_a_missing_predictor_a_nameless_container_and_a_bad_metric() -> None:
    assert crd_problems({"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
                         "metadata": {"name": "acme-api"}, "spec": {}}) == ["spec.predictor: required"]  # fmt: skip
    broken = {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": "1-api"},
        "spec": {"predictor": {"containers": [{"image": "x"}], "scaleMetric": "gpu", "minReplicas": -1}},
    }
    assert len(crd_problems(broken)) == 4
