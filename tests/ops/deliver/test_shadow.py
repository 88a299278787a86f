"""A challenger in the shadow (deploy/k8s/shadow, ops.deliver.shadow, pins, gitops) in throw-away repositories with a
real registry: what the overlays render with it (staging's Deployment, production's Rollout), that they pass the
Kubernetes and CRD schemas, how it is turned on and off, production entering as shadow first, and the swap that
needs monitoring's live evidence (a verdict made by ops.monitor.shadow itself), refused naming what is missing."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from mlcore.errors import PipelineError
from ops.deliver import gitops, pins, shadow
from ops.deliver.settings import DeliveryParams
from ops.monitor.shadow import ShadowRule, compare
from tests.support.gitrepo import fake_gh, git
from tests.support.paths import REPO_ROOT

OVERLAY = "deploy/k8s/overlays/{}/kustomization.yaml"
VALIDATOR = REPO_ROOT / "tools" / "crd-schemas" / "validate.mjs"
SERVING, CHALLENGER = "m-serving", "m-challenger"  # the model versions the staging bumps record
RULE = ShadowRule(min_labelled=200, resamples=200)


def render(repo: Path, env: str) -> list[dict[str, Any]]:
    out = subprocess.run(
        ["kubectl", "kustomize", str(repo / "deploy/k8s/overlays" / env)], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


def pod_spec(docs: list[dict[str, Any]]) -> dict[str, Any]:
    [deployment] = [d for d in docs if d["kind"] == "Deployment"]
    return deployment["spec"]["template"]["spec"]


def set_params(repo: Path, **delivery: str) -> None:
    params = repo / "params.yaml"
    lines = "".join(f"  {key}: {value}\n" for key, value in delivery.items())
    params.write_text(params.read_text(encoding="utf-8") + f"delivery:\n{lines}", encoding="utf-8")


def staged(repo: Path, reference: str, model_version: str) -> None:
    """A staging bump of `reference` recording its model version, as the deploy workflow's gitops job does."""
    gitops.bump(repo, "staging", reference)
    marks = {gitops.MODEL_VERSION: model_version}
    gitops.publish(
        repo, gitops.pending_change(repo, "staging"), DeliveryParams(mode="pull"), "commit", marks=marks
    )


def verdict(shadow_better: bool, labelled: int, serving: str = SERVING) -> dict[str, Any]:
    """monitoring/verdict.json's shape: the live comparison ops.monitor.shadow makes of `labelled` requests."""
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, labelled)
    sharp, blurred = np.clip(y * 0.6 + rng.random(labelled) * 0.4, 0, 1), rng.random(labelled)
    pairs = pd.DataFrame(
        {
            "prediction_id": [f"p{i}" for i in range(labelled)],
            "serving_version": serving,
            "serving_probability": blurred if shadow_better else sharp,
            "shadow_version": CHALLENGER,
            "shadow_probability": sharp if shadow_better else blurred,
            "label": y.astype(float),
        }
    )
    return {"model_version": serving, "shadow": compare(pairs, 0.5, RULE)}


@pytest.fixture
def shadowed(repo: Path, images: dict[str, str]) -> Path:
    """Production serves image `one` (model SERVING) and runs `two` (model CHALLENGER) in the shadow, as a
    pull-mode promotion with `production_entry: shadow` declares it."""
    set_params(repo, mode="pull", production_entry="shadow")
    git(repo, "commit", "-qam", "pull mode, shadow first")
    staged(repo, images["one"], SERVING)
    gitops.write_pin(repo, "production", *images["one"].split("@"))
    git(repo, "commit", "-qam", "promote(production): one")
    staged(repo, images["two"], CHALLENGER)
    assert gitops.main(["promote"]) == 0
    git(repo, "commit", "-qam", "shadow(production): two")
    return repo


# --- the component, rendered ----------------------------------------------------------------------------------


@pytest.mark.parametrize("env", ["staging", "production"])
def test_the_challenger_runs_beside_the_serving_model_with_the_api_s_security(
    repo: Path, images: dict[str, str], env: str, tmp_path: Path
) -> None:
    gitops.bump(repo, env, images["one"])
    shadow.pin(repo, env, images["two"])
    docs = render(repo, env)
    spec = pod_spec(docs)
    [api] = spec["containers"]
    [init] = spec["initContainers"]
    assert api["image"] == images["one"] and init["image"] == images["two"]
    assert init["securityContext"] == api["securityContext"]  # read-only root, no capabilities
    assert spec["securityContext"]["runAsNonRoot"] is True
    model_dir = {e["name"]: e.get("value") for e in api["env"]}["SHADOW_MODEL_DIR"]
    [mount] = [m for m in api["volumeMounts"] if m["mountPath"] == model_dir]
    assert mount["readOnly"] is True
    [copied_to] = [m["mountPath"] for m in init["volumeMounts"] if m["name"] == mount["name"]]
    assert init["command"][-2:] == ["/srv/model/.", f"{copied_to}/"]  # the image's baked model (Dockerfile)
    [volume] = [v for v in spec["volumes"] if v["name"] == mount["name"]]
    assert "emptyDir" in volume
    if env == "production":  # the canary's Rollout runs the Deployment's pod template, shadow included
        [rollout] = [d for d in docs if d["kind"] == "Rollout"]
        assert rollout["spec"]["workloadRef"]["name"] == "acme-api"

    manifest = tmp_path / "rendered.yaml"
    manifest.write_text(yaml.safe_dump_all(docs))
    strict = subprocess.run(
        [str(Path(sys.executable).parent / "kubernetes-validate"), "--strict", "--quiet", str(manifest)],
        capture_output=True,
        text=True,
    )
    assert strict.returncode == 0, strict.stdout + strict.stderr
    crds = subprocess.run(["node", str(VALIDATOR), str(manifest)], capture_output=True, text=True)
    assert crds.returncode == 0, crds.stderr


def test_off_gives_back_the_overlay_as_it_was(repo: Path, images: dict[str, str]) -> None:
    path = repo / OVERLAY.format("production")
    before = path.read_text(encoding="utf-8")
    change = shadow.pin(repo, "production", images["two"])
    assert change.before is None and change.after.reference == images["two"]
    assert pins.SHADOW_COMPONENT in path.read_text(encoding="utf-8")
    assert shadow.off(repo, "production").after is None
    assert path.read_text(encoding="utf-8") == before  # comments and order kept
    assert pod_spec(render(repo, "production")).get("initContainers") is None


def test_a_challenger_the_registry_lacks_changes_nothing(repo: Path, registry: str) -> None:
    path = repo / OVERLAY.format("staging")
    before = path.read_bytes()
    with pytest.raises(PipelineError, match="no such manifest"):
        shadow.pin(repo, "staging", f"{registry}/acme/api@sha256:{'2' * 64}")
    assert path.read_bytes() == before


@pytest.mark.parametrize("mode", ["push", "pull"])
def test_check_refuses_a_shadow_without_its_challenger_and_the_reverse(
    repo: Path, images: dict[str, str], mode: str
) -> None:
    shadow.pin(repo, "staging", images["two"])
    assert gitops.check(repo, mode) == []
    staging, production = (repo / OVERLAY.format(env) for env in ("staging", "production"))
    digest = images["two"].split("@")[1]
    staging.write_text(staging.read_text().replace(f"    digest: {digest}\n", ""))
    production.write_text(production.read_text().replace("images:\n", "images:\n  - name: challenger\n"))
    assert gitops.check(repo, mode) == [
        f"{OVERLAY.format('production')}: pins a challenger image but does not list ../../shadow; "
        "`make shadow ENV=<env> IMAGE=<name>@sha256:...` pins both; `OFF=1` removes both",
        f"{OVERLAY.format('staging')}: lists ../../shadow but pins no challenger image by digest; "
        "`make shadow ENV=<env> IMAGE=<name>@sha256:...` pins both; `OFF=1` removes both",
    ]


# --- production enters as shadow first --------------------------------------------------------------------------


def test_a_promotion_under_production_entry_shadow_pins_the_challenger_and_keeps_the_serving_image(
    shadowed: Path, images: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = pod_spec(render(shadowed, "production"))
    assert spec["containers"][0]["image"] == images["one"]
    assert spec["initContainers"][0]["image"] == images["two"]
    # what the deploy workflow's gitops job publishes: a pull request titled and branched as a shadow
    git(shadowed, "reset", "-q", "--soft", "HEAD~1")
    log = fake_gh(tmp_path)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    assert gitops.main(["publish", "production"]) == 0
    create = next(c for c in map(json.loads, log.read_text().splitlines()) if c[:2] == ["pr", "create"])
    short = images["two"].split("sha256:")[1][:12]
    assert create[create.index("--head") + 1] == f"deploy/production-shadow-{short}"
    assert create[create.index("--title") + 1].startswith("shadow(production): ")


def test_shadow_first_needs_pull_mode() -> None:
    with pytest.raises(ValueError, match="production_entry: shadow needs mode: pull"):
        DeliveryParams(mode="push", production_entry="shadow")


# --- the swap, gated on live evidence ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("live", "missing"),
    [
        ({"model_version": SERVING, "shadow": {}}, "no shadow verdict"),
        (verdict(shadow_better=True, labelled=60), "only 60 labelled shadow predictions (min 200)"),
        (verdict(shadow_better=False, labelled=400), "does not lie above the margin"),
        (
            verdict(shadow_better=True, labelled=400, serving="m-other"),
            "the verdict judged serving model m-other",
        ),
    ],
)
def test_the_swap_is_refused_naming_what_is_missing(
    shadowed: Path, live: dict[str, Any], missing: str
) -> None:
    path = shadowed / OVERLAY.format("production")
    before = path.read_bytes()
    refused = f"swap of .* \\(model {CHALLENGER}\\) into production refused: .*{re.escape(missing)}"
    with pytest.raises(PipelineError, match=refused):
        shadow.swap(shadowed, "production", live)
    assert path.read_bytes() == before


def test_the_evidence_command_says_what_is_missing_and_exits_0(
    shadowed: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "verdict.json"
    path.write_text(json.dumps(verdict(shadow_better=True, labelled=60)))
    assert shadow.main(["evidence", "production", "--verdict", str(path)]) == 0
    assert "only 60 labelled shadow predictions (min 200)" in capsys.readouterr().out
    path.write_text(json.dumps(verdict(shadow_better=True, labelled=400)))
    assert shadow.main(["evidence", "production", "--verdict", str(path)]) == 0
    assert f"live evidence for model {CHALLENGER}" in capsys.readouterr().out


def test_with_live_evidence_pull_mode_proposes_the_challenger_as_the_serving_image(
    shadowed: Path, images: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = fake_gh(tmp_path)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    path = tmp_path / "verdict.json"
    path.write_text(json.dumps(verdict(shadow_better=True, labelled=400)))
    assert shadow.main(["swap", "production", "--verdict", str(path)]) == 0
    short = images["two"].split("sha256:")[1][:12]
    branch = f"deploy/production-{short}"
    create = next(c for c in map(json.loads, log.read_text().splitlines()) if c[:2] == ["pr", "create"])
    assert create[create.index("--head") + 1] == branch and create[create.index("--base") + 1] == "main"
    proposed = git(shadowed, "show", f"origin/{branch}:{OVERLAY.format('production')}")
    assert pins.read_pin(proposed, "x").reference == images["two"]
    assert pins.read_challenger(proposed, "x") is None and pins.SHADOW_COMPONENT not in proposed
    # merged, the controller renders the challenger as the one model; a revert brings the shadow back
    git(shadowed, "switch", "-q", "staging")
    git(shadowed, "merge", "-q", "--ff-only", branch)
    spec = pod_spec(render(shadowed, "production"))
    assert spec["containers"][0]["image"] == images["two"] and "initContainers" not in spec
    git(shadowed, "revert", "--no-edit", "HEAD")
    assert pod_spec(render(shadowed, "production"))["initContainers"][0]["image"] == images["two"]


def test_with_live_evidence_push_mode_applies_the_swap_and_proposes_it(
    repo: Path,
    images: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    set_params(repo, mode="push")
    shadow.pin(repo, "staging", images["two"])
    git(repo, "commit", "-qam", "shadow(staging): two")
    fake_gh(tmp_path)
    kubectl = tmp_path / "bin" / "kubectl"  # records the apply, renders with the real kubectl
    kubectl.write_text(
        f"#!{sys.executable}\nimport os, sys\nargs = sys.argv[1:]\n"
        f"if args[0] == 'kustomize':\n    os.execv({shutil.which('kubectl')!r}, ['kubectl', *args])\n"
        f"if args[0] == 'apply':\n    open({str(tmp_path / 'applied.yaml')!r}, 'w').write(sys.stdin.read())\n"
    )
    kubectl.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("KUBECTL", str(kubectl))
    path = tmp_path / "verdict.json"
    path.write_text(json.dumps(verdict(shadow_better=True, labelled=400)))
    argv = ["swap", "staging", "--verdict", str(path)]
    assert shadow.main(argv) == 2  # push mode records no model version in git: it must be named
    assert "MODEL_VERSION=<the challenger's model_version>" in capsys.readouterr().err
    assert shadow.main([*argv, "--model-version", CHALLENGER]) == 0
    applied = pod_spec(list(yaml.safe_load_all((tmp_path / "applied.yaml").read_text())))
    assert applied["containers"][0]["image"] == images["two"] and "initContainers" not in applied
    assert git(repo, "ls-remote", "--heads", "origin", "deploy/staging-*").strip()
