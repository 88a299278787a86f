"""Push mode with the canary component: `deploy.apply` waits for the Argo Rollouts Rollout (ops.deliver.rollout).

The Rollout's status sequences are what the controller reports (status.phase, stableRS, currentPodHash, abort);
kubectl is the recording fake of test_deploy.py, rendering with the real kustomize.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlcore.errors import PipelineError
from ops.deliver import deploy, rollout
from tests.ops.deliver.test_deploy import IMAGE, calls, commands
from tests.ops.deliver.test_deploy import kubectl_log as kubectl_log  # the recording fake: a fixture
from tests.support.project import renamed_copy


def status(phase: str, stable: str, current: str, abort: bool = False, message: str = "") -> dict:
    return {
        "status": {
            "phase": phase,
            "stableRS": stable,
            "currentPodHash": current,
            "abort": abort,
            "message": message,
        }
    }


class Script:
    """`get()` answers in order (the last repeats); a clock that advances by each sleep."""

    def __init__(self, answers: list[dict]) -> None:
        self.answers, self.now, self.gets = answers, 0.0, 0

    def get(self) -> dict:
        self.gets += 1
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def run_wait(answers: list[dict], before: str = "old", timeout: float = 60, **kwargs) -> tuple[str, Script]:
    script = Script(answers)
    out = rollout.wait(
        script.get, before, timeout, poll_s=5, clock=script.clock, sleep=script.sleep, **kwargs
    )
    return out, script


def test_the_new_revision_is_promoted_only_once_it_is_the_stable_one() -> None:
    out, script = run_wait(
        [
            status("Healthy", "old", "old"),  # the controller has not seen the apply yet: not a success
            status("Progressing", "old", "new"),
            status("Paused", "old", "new"),  # a canary step
            status("Healthy", "new", "new"),
        ]
    )
    assert out == "canary promoted: new is stable" and script.gets == 4


def test_an_aborted_canary_fails_with_argos_message() -> None:
    with pytest.raises(PipelineError, match='canary aborted by its analysis: Metric "prediction-distance"'):
        run_wait(
            [
                status("Progressing", "old", "new"),
                status(
                    "Degraded",
                    "old",
                    "new",
                    abort=True,
                    message='Metric "prediction-distance" assessed Failed',
                ),
            ]
        )


def test_a_canary_that_never_finishes_times_out() -> None:
    with pytest.raises(PipelineError, match=r"not promoted within 60s \(phase Paused: CanaryPauseStep\)"):
        run_wait([status("Paused", "old", "new", message="CanaryPauseStep")])


def test_a_degraded_old_revision_is_not_blamed_on_the_new_one() -> None:
    out, _ = run_wait([status("Degraded", "old", "old"), status("Healthy", "new", "new")])
    assert out.startswith("canary promoted")


def test_a_redeploy_of_the_same_template_has_nothing_to_wait_for() -> None:
    out, script = run_wait([status("Healthy", "old", "old")], same_template=True)
    assert out.startswith("unchanged") and script.gets == 1


def test_the_first_rollout_ever_is_promoted_without_a_stable_hash_before() -> None:
    out, _ = run_wait([{}, status("Healthy", "first", "first")], before="")
    assert out == "canary promoted: first is stable"


# --- deploy.apply with an overlay that renders a Rollout ------------------------------------------------------


@pytest.fixture
def canary_overlays(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The shipped overlays, renamed: production lists the deploy/k8s/canary component, staging does not. The
    cluster answers that the apply changed the Deployment's template (generation 4 -> 5); polls do not sleep."""
    monkeypatch.setattr(rollout.time, "sleep", lambda s: None)
    answers(
        tmp_path,
        monkeypatch,
        "deployment",
        [{"metadata": {"generation": 4}}, {"metadata": {"generation": 5}}],
    )
    return renamed_copy(tmp_path, "acme") / "deploy" / "k8s" / "overlays"


def answers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str, items: list[dict]) -> None:
    path = tmp_path / f"{kind}.json"
    path.write_text(json.dumps(items))
    monkeypatch.setenv(f"FAKE_GET_{kind.upper()}", str(path))


def test_apply_waits_for_the_rollout_to_promote_the_canary(
    canary_overlays: Path,
    kubectl_log: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    answers(
        tmp_path, monkeypatch, "rollout", [status("Healthy", "old", "old"), status("Healthy", "new", "new")]
    )
    assert deploy.apply("production", IMAGE, root=canary_overlays) == "acme-production"
    assert commands(kubectl_log)[1:] == [
        "api-resources --api-group",
        "get rollout/acme-api",
        "get deployment/acme-api",
        "apply -f",
        "get deployment/acme-api",
        "get rollout/acme-api",
    ]
    assert "kind: Rollout" in calls(kubectl_log)[4]["stdin"]


def test_apply_undoes_the_deployment_template_when_the_analysis_aborts(
    canary_overlays: Path,
    kubectl_log: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    answers(
        tmp_path,
        monkeypatch,
        "rollout",
        [
            status("Healthy", "old", "old"),
            status("Degraded", "old", "new", abort=True, message="error-share"),
        ],
    )
    with pytest.raises(PipelineError, match="canary aborted by its analysis: error-share; rolled back"):
        deploy.apply("production", IMAGE, root=canary_overlays)
    assert "rollout undo" in commands(kubectl_log)


def test_a_cluster_without_argo_rollouts_is_refused_before_anything_is_applied(
    canary_overlays: Path,
    kubectl_log: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FAKE_API_RESOURCES", "")
    with pytest.raises(PipelineError, match=r"serves no rollouts\.argoproj\.io API: install Argo Rollouts"):
        deploy.apply("production", IMAGE, root=canary_overlays)
    assert "apply -f" not in commands(kubectl_log)


def test_an_overlay_without_the_canary_waits_on_the_deployment_as_before(
    canary_overlays: Path,
    kubectl_log: Path,
) -> None:
    assert deploy.apply("staging", IMAGE, root=canary_overlays) == "acme-staging"
    assert commands(kubectl_log)[1:] == ["apply -f", "rollout status"]


def test_a_rollout_missing_after_the_apply_fails_at_once_and_is_undone(
    canary_overlays: Path, kubectl_log: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(
        PipelineError, match=r"rollout/acme-api in acme-production: not found after the apply"
    ):
        deploy.apply("production", IMAGE, root=canary_overlays)
    assert "rollout undo" in commands(kubectl_log)
