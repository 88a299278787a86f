"""ops.deliver.deploy against a fake kubectl that records its calls (rendering still uses the real kustomize).

The overlays are a copy renamed to the project `acme` (tests/support/project.py): the names deploy uses are the
ones the overlay renders, whatever the project is called."""

from __future__ import annotations

import base64
import json
import shutil
import sys
from pathlib import Path

import pytest

from ops.deliver import deploy
from tests.support.paths import REPO_ROOT
from tests.support.project import renamed_copy

IMAGE = "ghcr.io/acme/acme@sha256:" + "cd" * 32


@pytest.fixture(scope="module")
def overlays(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return renamed_copy(tmp_path_factory.mktemp("acme"), "acme") / "deploy" / "k8s" / "overlays"


FAKE_KUBECTL = """#!{python}
import json, os, sys
args = sys.argv[1:]
stdin = sys.stdin.read() if args[:3] == ["apply", "-f", "-"] else ""
with open(os.environ["FAKE_KUBECTL_LOG"], "a") as fh:
    fh.write(json.dumps({{"args": args, "stdin": stdin}}) + "\\n")
if args[0] == "kustomize":
    os.execv({real!r}, ["kubectl", *args])
if args[0] == "port-forward":
    if os.environ.get("FAKE_PORT_FORWARD") == "fail":
        sys.exit("error: unable to forward port because pod is not running. Current status=Pending")
    port = int(args[-1].split(":")[0])
    os.execv(sys.executable, [sys.executable, {stub!r}, str(port)])
if args[:2] == ["rollout", "status"]:
    print("deployment rollout status: " + os.environ.get("FAKE_ROLLOUT", "ok"))
    sys.exit(0 if os.environ.get("FAKE_ROLLOUT", "ok") == "ok" else 1)
if args[:1] == ["api-resources"]:
    print(os.environ.get("FAKE_API_RESOURCES", "rollouts.argoproj.io\\nanalysistemplates.argoproj.io"))
    sys.exit(0)
if args[:1] == ["get"]:
    # FAKE_GET_<KIND>: a JSON file holding the list of answers; each call takes the first, the last repeats
    path = os.environ.get("FAKE_GET_" + args[1].split("/")[0].upper())
    if not path:
        sys.exit("Error from server (NotFound): " + args[1] + " not found")
    answers = json.load(open(path))
    print(json.dumps(answers[0]))
    if len(answers) > 1:
        json.dump(answers[1:], open(path, "w"))
    sys.exit(0)
sys.exit(0)
"""


@pytest.fixture
def kubectl_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    fake = tmp_path / "kubectl"
    stub = REPO_ROOT / "tests/support/fake_service.py"
    fake.write_text(FAKE_KUBECTL.format(python=sys.executable, real=shutil.which("kubectl"), stub=str(stub)))
    fake.chmod(0o755)
    log = tmp_path / "calls.jsonl"
    monkeypatch.setenv("KUBECTL", str(fake))
    monkeypatch.setenv("FAKE_KUBECTL_LOG", str(log))
    return log


def calls(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines()]


def commands(log: Path) -> list[str]:
    return [" ".join(c["args"][:2]) for c in calls(log)]


def test_apply_sends_the_digest_pinned_overlay_and_waits_for_the_rollout(overlays: Path, kubectl_log: Path):
    # staging: a plain rolling update (production's canary waits on its Rollout: test_rollout.py)
    assert deploy.apply("staging", IMAGE, timeout_s=120, root=overlays) == "acme-staging"
    assert commands(kubectl_log) == [f"kustomize {overlays / 'staging'}", "apply -f", "rollout status"]
    applied = calls(kubectl_log)[1]["stdin"]
    assert f"image: {IMAGE}" in applied and "namespace: acme-staging" in applied
    status = calls(kubectl_log)[2]["args"]
    assert status == ["rollout", "status", "deployment/acme-api", "-n", "acme-staging", "--timeout=120s"]


def test_a_failed_rollout_is_undone_and_reported(
    overlays: Path, kubectl_log: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("FAKE_ROLLOUT", "timed out")
    with pytest.raises(deploy.PipelineError, match=r"did not become ready.*rolled back to the previous"):
        deploy.apply("staging", IMAGE, root=overlays)
    assert commands(kubectl_log)[1:] == ["apply -f", "rollout status", "rollout undo", "rollout status"]
    assert calls(kubectl_log)[3]["args"] == ["rollout", "undo", "deployment/acme-api", "-n", "acme-staging"]


def test_cli_exits_non_zero_when_the_rollout_fails(overlays: Path, kubectl_log: Path, monkeypatch, capsys):
    monkeypatch.setenv("FAKE_ROLLOUT", "timed out")
    code = deploy.main(["apply", "staging", "--image", IMAGE, "--overlays", str(overlays)])
    assert code == 2
    assert "rolled back" in capsys.readouterr().err


def test_manual_rollback_undoes_the_last_rollout(overlays: Path, kubectl_log: Path, capsys):
    assert deploy.main(["rollback", "production", "--overlays", str(overlays)]) == 0
    assert commands(kubectl_log)[1:] == ["rollout undo", "rollout status"]
    assert "acme-production: rolled back" in capsys.readouterr().out


def test_an_unknown_environment_names_the_known_ones(overlays: Path):
    with pytest.raises(deploy.PipelineError, match="environments: production, staging"):
        deploy.render("prod", overlays)


def test_preflight_without_a_credential_skips_with_a_notice(tmp_path: Path, monkeypatch, capsys):
    outputs = tmp_path / "github_output"
    monkeypatch.setenv("KUBECONFIG_CONTENT", "")
    monkeypatch.setenv("GITHUB_OUTPUT", str(outputs))
    assert deploy.main(["preflight", "production", "--kubeconfig-out", str(tmp_path / "kubeconfig")]) == 0
    assert outputs.read_text() == "enabled=false\n"
    assert "::notice title=Deploy to production skipped::no KUBECONFIG secret" in capsys.readouterr().out
    assert not (tmp_path / "kubeconfig").exists()


@pytest.mark.parametrize("encode", [str, lambda text: base64.b64encode(text.encode()).decode()])
def test_preflight_writes_the_kubeconfig_privately(tmp_path: Path, monkeypatch, encode):
    kubeconfig = "apiVersion: v1\nkind: Config\nclusters: []\n"
    outputs = tmp_path / "github_output"
    monkeypatch.setenv("KUBECONFIG_CONTENT", encode(kubeconfig))
    monkeypatch.setenv("GITHUB_OUTPUT", str(outputs))
    dest = tmp_path / "kube" / "config"
    assert deploy.main(["preflight", "staging", "--kubeconfig-out", str(dest)]) == 0
    assert outputs.read_text() == "enabled=true\n"
    assert dest.read_text() == kubeconfig
    assert dest.stat().st_mode & 0o777 == 0o600


def test_preflight_rejects_a_credential_that_is_not_a_kubeconfig(tmp_path: Path, monkeypatch, capsys):
    monkeypatch.setenv("KUBECONFIG_CONTENT", "not a kubeconfig!")
    assert deploy.main(["preflight", "staging", "--kubeconfig-out", str(tmp_path / "k")]) == 2
    assert "KUBECONFIG secret: neither a kubeconfig YAML nor base64" in capsys.readouterr().err


def test_smoke_without_a_url_goes_through_a_port_forward_to_the_service(
    overlays: Path, kubectl_log: Path, capsys
):
    args = ["smoke", "production", "--overlays", str(overlays), "--model-version", "feedc0ffee00"]
    assert deploy.main(args) == 0
    forward = next(c["args"] for c in calls(kubectl_log) if c["args"][0] == "port-forward")
    assert forward[:6] == [
        "port-forward",
        "--address",
        "127.0.0.1",
        "-n",
        "acme-production",
        "service/acme-api",
    ]
    assert forward[6].endswith(":80")
    out = capsys.readouterr().out
    assert "ok   the served model is the expected one" in out and "FAIL" not in out


def test_a_failing_port_forward_is_reported(
    overlays: Path, kubectl_log: Path, monkeypatch: pytest.MonkeyPatch, capsys
):
    monkeypatch.setenv("FAKE_PORT_FORWARD", "fail")
    assert deploy.main(["smoke", "staging", "--overlays", str(overlays)]) == 2
    assert "pod is not running" in capsys.readouterr().err
