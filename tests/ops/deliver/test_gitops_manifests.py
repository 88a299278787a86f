"""Pull mode's manifests (deploy/gitops): every Argo CD, Argo Rollouts and Flux object under deploy/ passes its
CRD schema (tools/crd-schemas, offline), a broken one is refused naming the field, and what the controllers
sync is the overlays that exist, from the branches that deploy them, with the smoke test wired to the api."""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from ops.deliver import deploy, gitops, image
from tests.support.paths import REPO_ROOT

DEPLOY = REPO_ROOT / "deploy"
ARGOCD = DEPLOY / "gitops" / "argocd"
FLUX = DEPLOY / "gitops" / "flux"
VALIDATOR = REPO_ROOT / "tools" / "crd-schemas"
BRANCHES = {"staging": "staging", "production": "main"}
# apiVersion groups whose objects only a controller's CRD describes: each must be known to the validator
CRD_GROUP = re.compile(r"^(argoproj\.io|[a-z.]+\.toolkit\.fluxcd\.io)/")


def validate(*files: Path) -> subprocess.CompletedProcess[str]:
    assert (VALIDATOR / "node_modules" / ".installed").exists(), (
        "the CRD schema validator is not installed: `make test` installs it (or run `make crd-schemas`)"
    )
    return subprocess.run(
        ["node", str(VALIDATOR / "validate.mjs"), "--list", *map(str, files)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def kustomize(path: Path) -> str:
    return subprocess.run(
        ["kubectl", "kustomize", str(path)], capture_output=True, text=True, check=True
    ).stdout


def docs_of(text: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


def kustomizations() -> tuple[list[Path], set[Path]]:
    """The directories that render (kind Kustomization, not Component) and every file a kustomization patches
    with (a patch is a partial object: only the rendered result must be whole)."""
    roots, patches = [], set()
    for file in sorted(DEPLOY.rglob("kustomization.yaml")):
        spec = yaml.safe_load(file.read_text())
        if spec.get("kind", "Kustomization") == "Kustomization":
            roots.append(file.parent)
        for patch in [*spec.get("patches", []), *spec.get("patchesStrategicMerge", [])]:
            path = patch.get("path") if isinstance(patch, dict) else patch
            if path:
                patches.add((file.parent / path).resolve())
    return roots, patches


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[Path, Path]:
    """Each kustomization under deploy/ rendered to a file, and each plain manifest under deploy/: the input
    the validator sees, keyed by the file it names in its messages."""
    out = tmp_path_factory.mktemp("rendered")
    roots, patches = kustomizations()
    files: dict[Path, Path] = {}
    for root in roots:
        target = out / (str(root.relative_to(REPO_ROOT)).replace("/", "__") + ".yaml")
        target.write_text(kustomize(root))
        files[target] = root
    for plain in sorted([*DEPLOY.rglob("*.yaml"), *DEPLOY.rglob("*.yml")]):
        if plain.name != "kustomization.yaml" and plain.resolve() not in patches:
            files[plain] = plain
    return files


def test_every_argo_and_flux_object_under_deploy_passes_its_crd_schema(rendered: dict[Path, Path]):
    result = validate(*rendered)
    assert result.returncode == 0, result.stderr
    # `<file>: <apiVersion> <Kind>/<name>: ok`, one line per object validated
    valid = set()
    for line in result.stdout.splitlines()[:-1]:
        file, api_version, name = re.fullmatch(r"(.+): (\S+) (\S+): ok", line).groups()
        valid.add((Path(file), api_version, name))
    # the pull-mode objects themselves, rendered as `kubectl apply -k` sends them
    kinds_of = {
        root: {name.split("/")[0] for file, _, name in valid if rendered[file] == root}
        for root in (ARGOCD, FLUX)
    }
    assert kinds_of == {ARGOCD: {"AppProject", "ApplicationSet"}, FLUX: {"GitRepository", "Kustomization"}}
    # nothing with a CRD's apiVersion was skipped: a kind or version the validator does not know fails here
    for file in rendered:
        for doc in docs_of(file.read_text()):
            if CRD_GROUP.match(str(doc.get("apiVersion", ""))):
                name = f"{doc['kind']}/{doc['metadata']['name']}"
                assert (file, doc["apiVersion"], name) in valid, (
                    f"{file}: {doc['apiVersion']} {name}: no schema"
                )


BROKEN = {
    "an Application whose automated prune is a string": (
        """
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {name: broken-app, namespace: argocd}
spec:
  project: default
  source: {repoURL: "https://github.com/your-org/your-repo", path: deploy/gitops/argocd/staging}
  destination: {server: "https://kubernetes.default.svc", namespace: default}
  syncPolicy: {automated: {prune: "yes", selfHeal: true}}
""",
        "Application/broken-app: spec.syncPolicy.automated.prune: must be boolean",
    ),
    "an ApplicationSet whose template retries 'often'": (
        """
apiVersion: argoproj.io/v1alpha1
kind: ApplicationSet
metadata: {name: broken-set}
spec:
  generators: [{list: {elements: [{env: staging}]}}]
  template:
    metadata: {name: "{{env}}"}
    spec:
      project: default
      source: {repoURL: "https://github.com/your-org/your-repo", path: p}
      destination: {server: "https://kubernetes.default.svc", namespace: default}
      syncPolicy: {retry: {limit: often}}
""",
        "ApplicationSet/broken-set: spec.template.spec.syncPolicy.retry.limit: must be integer",
    ),
    "a Rollout whose canary step sets a weight of 'fifty'": (
        """
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {name: broken-rollout}
spec:
  selector: {matchLabels: {app: api}}
  template:
    metadata: {labels: {app: api}}
    spec: {containers: [{name: api, image: api}]}
  strategy: {canary: {steps: [{setWeight: 20}, {pause: {duration: 1m}}, {setWeight: fifty}]}}
""",
        "Rollout/broken-rollout: spec.strategy.canary.steps[2].setWeight: must be integer",
    ),
    "a Flux Kustomization without an interval": (
        """
apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata: {name: broken-sync, namespace: flux-system}
spec: {sourceRef: {kind: GitRepository, name: repo}, path: ./deploy/k8s/overlays/staging, prune: true}
""",
        "Kustomization/broken-sync: spec: must have required property interval",
    ),
}


@pytest.mark.parametrize("case", BROKEN)
def test_a_broken_object_is_refused_naming_the_file_object_and_field(tmp_path: Path, case: str):
    text, expected = BROKEN[case]
    file = tmp_path / "broken.yaml"
    file.write_text(text)
    result = validate(file)
    assert result.returncode == 1
    assert f"{file}: {expected}" in result.stderr.splitlines(), result.stderr


def application_set() -> dict[str, Any]:
    return next(d for d in docs_of(kustomize(ARGOCD)) if d["kind"] == "ApplicationSet")


def app_project() -> dict[str, Any]:
    return next(d for d in docs_of(kustomize(ARGOCD)) if d["kind"] == "AppProject")


def applications() -> dict[str, dict[str, Any]]:
    """The Applications the list generator makes: its template with each element's values put in."""
    appset = application_set()
    template = json.dumps(appset["spec"]["template"])
    out = {}
    for element in appset["spec"]["generators"][0]["list"]["elements"]:
        text = re.sub(r"\{\{\s*\.(\w+)\s*\}\}", lambda m, e=element: str(e[m.group(1)]), template)
        out[element["env"]] = json.loads(text)
    return out


def test_argo_cd_syncs_each_overlay_from_its_branch_into_its_namespace():
    apps = applications()
    assert set(apps) == set(BRANCHES)
    project = app_project()
    for env, app in apps.items():
        source, destination = app["spec"]["source"], app["spec"]["destination"]
        assert source["targetRevision"] == BRANCHES[env]
        assert source["repoURL"] in project["spec"]["sourceRepos"]
        synced = REPO_ROOT / source["path"]
        kustomization = yaml.safe_load((synced / "kustomization.yaml").read_text())
        assert (synced / kustomization["resources"][0]).resolve() == (
            DEPLOY / "k8s" / "overlays" / env
        ).resolve()
        overlay = deploy.render(env)
        assert destination["namespace"] == deploy.namespace(overlay)
        assert {"server": destination["server"], "namespace": destination["namespace"]} in project["spec"][
            "destinations"
        ]
        assert app["spec"]["project"] == project["metadata"]["name"]
        policy = app["spec"]["syncPolicy"]
        assert policy["automated"] == {"prune": True, "selfHeal": True}
        assert "CreateNamespace=false" in policy["syncOptions"]
        assert policy["retry"]["limit"] > 0 and policy["retry"]["backoff"]["factor"] > 1


@pytest.mark.parametrize("env", BRANCHES)
def test_argo_cd_syncs_the_overlay_unchanged_plus_the_smoke_test(env: str):
    synced = docs_of(kustomize(ARGOCD / env))
    overlay = deploy.render(env)
    # every object of the overlay, as it renders alone, and only the smoke test's two objects besides
    assert all(d in synced for d in overlay)
    smoke_test = f"{deploy.deployment_name(overlay)}-smoke-test"
    added = sorted((d["kind"], d["metadata"]["name"]) for d in synced if d not in overlay)
    assert added == [("Job", smoke_test), ("NetworkPolicy", smoke_test)]
    # everything synced is a kind the AppProject allows, and nothing is cluster-scoped
    project = app_project()["spec"]
    allowed = {(k["group"], k["kind"]) for k in project["namespaceResourceWhitelist"]}
    kinds = {(d["apiVersion"].rpartition("/")[0], d["kind"]) for d in synced}
    assert kinds <= allowed
    assert project["clusterResourceWhitelist"] == []
    assert {d["metadata"]["namespace"] for d in synced} == {deploy.namespace(overlay)}


@pytest.mark.parametrize("env", BRANCHES)
def test_the_post_sync_smoke_test_runs_the_apis_image_against_its_service_locked_down(env: str):
    synced = docs_of(kustomize(ARGOCD / env))
    (job,) = [d for d in synced if d["kind"] == "Job"]
    overlay = deploy.render(env)
    api = deploy.api_container(overlay)
    annotations = job["metadata"]["annotations"]
    assert annotations["argocd.argoproj.io/hook"] == "PostSync"
    assert set(annotations["argocd.argoproj.io/hook-delete-policy"].split(",")) == {
        "BeforeHookCreation",
        "HookSucceeded",
    }
    assert job["metadata"]["name"] == f"{deploy.deployment_name(overlay)}-smoke-test"
    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env_vars = {e["name"]: e for e in container["env"]}
    assert container["image"] == api["image"]
    assert env_vars["SERVICE"]["value"] == deploy.service_name(overlay)
    assert (
        container["command"][-2:] == ["-m", "ops.deliver.smoke"]
        and container["args"][0] == "http://$(SERVICE)"
    )
    api_secret = {e["valueFrom"]["secretKeyRef"]["name"] for e in api["env"] if "valueFrom" in e}
    assert {env_vars["SMOKE_TOKEN"]["valueFrom"]["secretKeyRef"]["name"]} == api_secret
    # non-root, read-only root, no API token, bounded in resources and time
    assert pod["automountServiceAccountToken"] is False and pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert {"cpu", "memory"} <= container["resources"]["limits"].keys()
    assert job["spec"]["backoffLimit"] >= 0 and job["spec"]["activeDeadlineSeconds"] > 0
    assert pod["restartPolicy"] == "Never"
    # a NetworkPolicy admits the Job's pods to the api pods, on the http port
    labels = job["spec"]["template"]["metadata"]["labels"]
    api_labels = deploy.find(overlay, "Deployment")["spec"]["template"]["metadata"]["labels"]
    admitted = [
        rule
        for policy in synced
        if policy["kind"] == "NetworkPolicy"
        and policy["spec"]["podSelector"]["matchLabels"].items() <= api_labels.items()
        for rule in policy["spec"]["ingress"]
        if any(
            set(peer) == {"podSelector"} and peer["podSelector"]["matchLabels"].items() <= labels.items()
            for peer in rule["from"]
        )
    ]
    assert admitted and all(rule["ports"] == [{"port": "http", "protocol": "TCP"}] for rule in admitted)


def test_the_smoke_test_follows_a_digest_bump_of_the_overlay(tmp_path: Path):
    """Pull mode commits a digest into the overlay's `images:` entry: the hook then tests that digest."""
    shutil.copytree(DEPLOY, tmp_path / "deploy")
    digest = "sha256:" + "ab" * 32
    gitops.write_pin(tmp_path, "staging", "ghcr.io/your-org/your-repo", digest)  # what a bump writes
    synced = docs_of(kustomize(tmp_path / "deploy/gitops/argocd/staging"))
    (job,) = [d for d in synced if d["kind"] == "Job"]
    image_ref = job["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image_ref == f"ghcr.io/your-org/your-repo@{digest}"
    assert deploy.api_container(synced)["image"] == image_ref


@pytest.mark.parametrize("env", BRANCHES)
def test_flux_applies_the_same_overlay_from_its_branch_and_waits_for_health(env: str):
    docs = docs_of(kustomize(FLUX))
    overlay = deploy.render(env)
    sync = next(
        d
        for d in docs
        if d["kind"] == "Kustomization" and d["spec"]["path"] == f"./deploy/k8s/overlays/{env}"
    )
    assert (REPO_ROOT / sync["spec"]["path"] / "kustomization.yaml").is_file()
    spec = sync["spec"]
    assert spec["targetNamespace"] == deploy.namespace(overlay)
    assert spec["prune"] is True and spec["wait"] is True and spec["timeout"] and spec["interval"]
    source = next(
        d for d in docs if d["kind"] == "GitRepository" and d["metadata"]["name"] == spec["sourceRef"]["name"]
    )
    assert spec["sourceRef"]["kind"] == "GitRepository"
    assert source["spec"]["ref"] == {"branch": BRANCHES[env]}
    assert source["spec"]["url"] in app_project()["spec"]["sourceRepos"]  # the same repository as Argo CD


def test_the_image_carries_the_smoke_test_and_nothing_it_imports_beyond_mlcore():
    """The hook runs `python -m ops.deliver.smoke` in the serving image, which holds only SMOKE_PATHS of ops/."""
    for rel in image.SMOKE_PATHS:
        assert rel in image.CONTEXT_PATHS
        tree = ast.parse((REPO_ROOT / rel).read_text())
        imported = {
            name
            for node in ast.walk(tree)
            for name in (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
        }
        outside = {
            name
            for name in imported
            if name.split(".")[0] not in sys.stdlib_module_names | {"__future__", "mlcore"}
        }
        assert outside == set(), rel
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    for rel in image.SMOKE_PATHS:
        assert f"COPY {rel} /srv/{rel.removeprefix('src/')}" in dockerfile


def test_the_validators_lock_file_pins_exact_versions_and_names_no_download_address():
    npmrc = (VALIDATOR / ".npmrc").read_text()
    assert "omit-lockfile-registry-resolved=true" in npmrc.splitlines()
    assert "registry" not in npmrc.replace("omit-lockfile-registry-resolved", "")
    package = json.loads((VALIDATOR / "package.json").read_text())
    assert all(re.fullmatch(r"\d+\.\d+\.\d+", v) for v in package["dependencies"].values())
    lock = json.loads((VALIDATOR / "package-lock.json").read_text())
    packages = lock["packages"]
    assert not [name for name, entry in packages.items() if "resolved" in entry]
    for name, version in package["dependencies"].items():
        assert packages[f"node_modules/{name}"]["version"] == version
    # the only addresses left are the maintainers' funding pages, never where a package is downloaded from
    for name, entry in packages.items():
        without_funding = {k: v for k, v in entry.items() if k != "funding"}
        assert "http" not in json.dumps(without_funding), name
