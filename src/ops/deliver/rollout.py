"""Push mode with a canary: wait for an Argo Rollouts `Rollout` to promote or abort the revision just applied.

An overlay that lists the deploy/k8s/canary component renders a Rollout that runs the Deployment's pods
(`workloadRef`): `kubectl rollout status deployment/...` then says nothing about the canary. `wait` reads the
Rollout's status instead, with plain `kubectl get` (no plugin):

- the revision applied is the one whose pod-template hash (`status.currentPodHash`) differs from the stable one
  recorded before the apply; until the controller has seen it, nothing is judged;
- it succeeded when that hash became the stable one (`status.stableRS`) and the phase is `Healthy`;
- it failed when the analysis aborted it (`status.abort`, phase `Degraded`): Argo has already scaled the canary
  away and the stable pods serve; the caller reverts the Deployment template so git, the Deployment and the
  cluster agree again. A timeout fails the same way.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mlcore.errors import PipelineError

CRD = "rollouts.argoproj.io"


@dataclass(frozen=True)
class Status:
    phase: str
    stable: str
    current: str
    aborted: bool
    message: str

    @classmethod
    def of(cls, rollout: dict[str, Any]) -> Status:
        status = rollout.get("status") or {}
        return cls(
            phase=str(status.get("phase", "")),
            stable=str(status.get("stableRS", "")),
            current=str(status.get("currentPodHash", "")),
            aborted=bool(status.get("abort")),
            message=str(status.get("message", "")),
        )


def verdict(status: Status, before: str) -> str:
    """ "promoted", "aborted" or "" (still running, or the controller has not seen the new revision yet)."""
    new_revision = status.current and status.current != before
    if status.aborted or status.phase == "Degraded":
        return "aborted" if new_revision or status.aborted else ""
    if new_revision and status.stable == status.current and status.phase == "Healthy":
        return "promoted"
    return ""


def wait(
    get: Callable[[], dict[str, Any]],
    before: str,
    timeout_s: float,
    poll_s: float = 5.0,
    same_template: bool = False,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> str:
    """Poll `get()` (the Rollout as JSON) until the revision applied after `before` (the stable hash then) is
    promoted; raise with Argo's message when it is aborted or `timeout_s` passes. `same_template`: the apply
    changed no pod template (a re-deploy of the same digest), so there is no new revision to wait for."""
    deadline = clock() + timeout_s
    status = Status.of(get())
    while True:
        if same_template and status.phase == "Healthy":
            return "unchanged: the Rollout is healthy"
        outcome = verdict(status, before)
        if outcome == "promoted":
            return f"canary promoted: {status.current} is stable"
        if outcome == "aborted":
            raise PipelineError(f"canary aborted by its analysis: {status.message or status.phase}")
        if clock() >= deadline:
            raise PipelineError(
                f"canary not promoted within {timeout_s:.0f}s (phase {status.phase or 'unknown'}"
                f"{': ' + status.message if status.message else ''})"
            )
        sleep(poll_s)
        status = Status.of(get())


def parse(text: str, name: str) -> dict[str, Any]:
    try:
        doc = json.loads(text or "{}")
    except json.JSONDecodeError as exc:
        raise PipelineError(f"rollout/{name}: kubectl printed no JSON ({text[:80]!r})") from exc
    return doc if isinstance(doc, dict) else {}
