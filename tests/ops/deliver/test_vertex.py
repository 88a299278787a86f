"""ops.deliver.vertex against recording stand-ins of gcloud and skopeo (tests/act/bin): the cloud is not reachable
here, so the tests assert the command lines, their order, and the endpoint state the stand-in keeps as Vertex
would (deployed models, traffic split)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlcore.errors import PipelineError
from ops.deliver import vertex
from pipeline.config import load_params
from tests.support.paths import REPO_ROOT

IMAGE = "ghcr.io/owner/repo@sha256:" + "cd" * 32
PARAMS = REPO_ROOT / "params.yaml"
VARIABLES = {
    "GCP_PROJECT_ID": "my-project",
    "GCP_REGION": "europe-west4",
    "GCP_ARTIFACT_REPOSITORY": "serving",
    "VERTEX_ENDPOINT_ID": "4242",
}
PREVIOUS_MODEL = "projects/my-project/locations/europe-west4/models/previous"
WHERE = ["--project=my-project", "--region=europe-west4"]


@pytest.fixture
def cloud(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The stand-ins on GCLOUD/SKOPEO; returns the state file (an endpoint serving one previous deployment)."""
    monkeypatch.setenv("GCLOUD", str(REPO_ROOT / "tests" / "act" / "bin" / "gcloud"))
    monkeypatch.setenv("SKOPEO", str(REPO_ROOT / "tests" / "act" / "bin" / "skopeo"))
    monkeypatch.setenv("ACT_CALLS", str(tmp_path / "calls.jsonl"))
    monkeypatch.setenv("ACT_GCLOUD_STATE", str(tmp_path / "state.json"))
    monkeypatch.delenv("REGISTRY_PASSWORD", raising=False)
    state = tmp_path / "state.json"
    state.write_text(
        json.dumps(
            {
                "models": ["previous"],
                "deployed": [{"id": "1001", "model": PREVIOUS_MODEL}],
                "split": {"1001": 100},
            }
        )
    )
    return state


def calls(tmp_path: Path) -> list[list[str]]:
    lines = (tmp_path / "calls.jsonl").read_text().splitlines()
    return [[json.loads(line)["tool"], *json.loads(line)["argv"]] for line in lines]


def deploy(tmp_path: Path, image: str = IMAGE) -> str:
    return vertex.deploy(
        "staging", image, "feedc0ffee00", VARIABLES, PARAMS, tmp_path / "no-metadata.json", tmp_path
    )


def the_model_id() -> str:
    return f"{load_params(PARAMS).project.name}-staging-{'cd' * 6}"


def test_preflight_skips_with_a_notice_without_any_gcp_variable(capsys: pytest.CaptureFixture[str]) -> None:
    assert vertex.preflight({}, "staging") is False
    assert "::notice title=Vertex AI deploy to staging skipped::" in capsys.readouterr().out


def test_preflight_refuses_a_half_configured_project() -> None:
    with pytest.raises(PipelineError, match="GCP_WORKLOAD_IDENTITY_PROVIDER, GCP_SERVICE_ACCOUNT not set"):
        vertex.preflight(VARIABLES, "staging")
    everything = {
        **VARIABLES,
        "GCP_WORKLOAD_IDENTITY_PROVIDER": "projects/1/x",
        "GCP_SERVICE_ACCOUNT": "sa@x",
    }
    assert vertex.preflight(everything, "staging") is True


def test_traffic_split_gives_the_rest_to_the_previous_deployments_in_proportion() -> None:
    assert vertex.traffic_split({}, "0", 10) == {"0": 100}  # an endpoint that served nothing
    assert vertex.traffic_split({"7": 100}, "0", 10) == {"0": 10, "7": 90}
    assert vertex.traffic_split({"7": 75, "8": 25}, "9", 10) == {"9": 10, "7": 68, "8": 22}
    assert vertex.traffic_split({"7": 100}, "9", 100) == {"9": 100}


def test_traffic_steps_must_rise_to_100() -> None:
    from ops.deliver.settings import VertexParams

    assert VertexParams(traffic_steps=[5, 50, 100]).traffic_steps == [5, 50, 100]
    for steps in ([10, 50], [50, 10, 100], [0, 100]):
        with pytest.raises(ValueError, match="rising percentages"):
            VertexParams(traffic_steps=steps)


def test_a_tag_is_refused_before_any_command(cloud: Path, tmp_path: Path) -> None:
    with pytest.raises(PipelineError, match="must be a digest reference"):
        deploy(tmp_path, "ghcr.io/owner/repo:latest")
    assert not (tmp_path / "calls.jsonl").exists()


def test_deploy_copies_by_digest_uploads_rolls_out_in_steps_and_retires_the_previous(
    cloud: Path, tmp_path: Path
) -> None:
    model = the_model_id()
    ar = "europe-west4-docker.pkg.dev/my-project/serving/repo"
    assert deploy(tmp_path) == "1002"
    recorded = calls(tmp_path)
    assert recorded[:4] == [
        ["gcloud", "auth", "print-access-token"],
        ["skopeo", "login", recorded[1][2], "--password-stdin", "--username=oauth2accesstoken", "europe-west4-docker.pkg.dev"],
        ["skopeo", "copy", "--all", "--preserve-digests", "--retry-times=3", recorded[1][2],
         f"docker://{IMAGE}", f"docker://{ar}:staging-{'cd' * 6}"],
        ["gcloud", "ai", "models", "describe", model, *WHERE, "--format=json"],
    ]  # fmt: skip
    assert recorded[4] == [
        "gcloud", "ai", "models", "upload", *WHERE, f"--model-id={model}", f"--display-name={model}",
        f"--container-image-uri={ar}@sha256:{'cd' * 32}", "--container-ports=8080",
        "--container-health-route=/v1/health", "--container-predict-route=/v1/predict",
        "--labels=environment=staging,model-version=feedc0ffee00",
    ]  # fmt: skip
    assert [call[:4] for call in recorded[5:]] == [
        ["gcloud", "ai", "endpoints", "describe"],
        ["gcloud", "ai", "endpoints", "deploy-model"],
        ["gcloud", "ai", "endpoints", "describe"],
        ["gcloud", "ai", "endpoints", "predict"],
        ["gcloud", "ai", "endpoints", "update"],
        ["gcloud", "ai", "endpoints", "predict"],
        ["gcloud", "ai", "endpoints", "undeploy-model"],
    ]
    assert recorded[6][-1] == "--traffic-split=0=10,1001=90"
    assert "--machine-type=n1-standard-2" in recorded[6]
    assert recorded[9][-1] == "--traffic-split=1002=100"
    assert recorded[11] == [
        "gcloud",
        "ai",
        "endpoints",
        "undeploy-model",
        "4242",
        *WHERE,
        "--deployed-model-id=1001",
    ]
    state = json.loads(cloud.read_text())
    assert state["split"] == {"1002": 100}
    assert [d["id"] for d in state["deployed"]] == ["1002"]


def test_the_smoke_request_is_the_example_record_params_gives_without_model_metadata(
    cloud: Path, tmp_path: Path
) -> None:
    deploy(tmp_path)
    [request] = json.loads((tmp_path / "vertex-smoke-request.json").read_text())["instances"]
    assert sorted(request) == sorted(load_params(PARAMS).schema.features)


def test_an_endpoint_that_served_nothing_gets_all_the_traffic_at_once(cloud: Path, tmp_path: Path) -> None:
    cloud.write_text(json.dumps({"models": [], "deployed": [], "split": {}}))
    deploy(tmp_path)
    recorded = calls(tmp_path)
    assert [call[3] for call in recorded if call[:3] == ["gcloud", "ai", "endpoints"]] == [
        "describe", "deploy-model", "describe", "predict",
    ]  # fmt: skip
    [deployed] = [call for call in recorded if "deploy-model" in call]
    assert deployed[-1] == "--traffic-split=0=100"


def test_a_failed_smoke_test_undeploys_the_new_version_and_restores_the_traffic(
    cloud: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ACT_GCLOUD_PREDICT", "fail")
    with pytest.raises(PipelineError, match=r"smoke test at 10% .*500.*undeployed it: the traffic is back"):
        deploy(tmp_path)
    assert calls(tmp_path)[-1] == [
        "gcloud", "ai", "endpoints", "undeploy-model", "4242", *WHERE, "--deployed-model-id=1002",
        "--traffic-split=1001=100",
    ]  # fmt: skip
    state = json.loads(cloud.read_text())
    assert state["split"] == {"1001": 100}
    assert [d["id"] for d in state["deployed"]] == ["1001"]


def test_a_rerun_of_the_same_digest_uploads_nothing(cloud: Path, tmp_path: Path) -> None:
    deploy(tmp_path)
    (tmp_path / "calls.jsonl").unlink()
    assert deploy(tmp_path) == "1002"
    recorded = calls(tmp_path)
    assert not [call for call in recorded if call[2:4] == ["models", "upload"]]
    assert not [call for call in recorded if "deploy-model" in call]
    assert json.loads(cloud.read_text())["split"] == {"1002": 100}


def test_the_cli_skips_green_without_variables(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in (*vertex.TARGET_VARIABLES, *vertex.AUTH_VARIABLES):
        monkeypatch.delenv(name, raising=False)
    out = tmp_path / "out"
    monkeypatch.setenv("GITHUB_OUTPUT", str(out))
    assert vertex.main(["preflight", "production"]) == 0
    assert out.read_text() == "enabled=false\n"


def test_earlier_deployments_without_traffic_are_retired_too(cloud: Path, tmp_path: Path) -> None:
    state = json.loads(cloud.read_text())
    state["deployed"].append({"id": "1000", "model": PREVIOUS_MODEL + "-older"})  # left at 0 %
    cloud.write_text(json.dumps(state))
    assert deploy(tmp_path) == "1002"
    undeployed = [call[-1] for call in calls(tmp_path) if "undeploy-model" in call]
    assert undeployed == ["--deployed-model-id=1001", "--deployed-model-id=1000"]
    assert [d["id"] for d in json.loads(cloud.read_text())["deployed"]] == ["1002"]


def test_a_rerun_that_fails_its_smoke_test_leaves_the_only_deployment_serving(
    cloud: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    deploy(tmp_path)
    monkeypatch.setenv("ACT_GCLOUD_PREDICT", "fail")
    with pytest.raises(PipelineError, match="it served alone before: left deployed"):
        deploy(tmp_path)
    assert json.loads(cloud.read_text())["split"] == {"1002": 100}
