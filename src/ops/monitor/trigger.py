"""The retraining trigger: has this breach persisted (N of the last M judged runs of the model, the latest
included), is it new (not already triggered within the cool-down), recording it, and running the command."""

from __future__ import annotations

import json
import os
import subprocess
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from mlcore.errors import PipelineError
from mlcore.io import write_json

JUDGED = ("healthy", "breach")  # the statuses that are evidence; insufficient_data is neither
KEEP_RUNS = 100


class Persistence(BaseModel):
    """params.yaml `monitor.trigger_persistence`: a breach triggers only when `breaches` of the last `of_last`
    judged runs of the same model (the latest included) breached. 1 of 1: every breach."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    breaches: int = Field(default=1, ge=1)
    of_last: int = Field(default=1, ge=1)

    @model_validator(mode="after")
    def _at_most_of_last(self) -> Persistence:
        if self.breaches > self.of_last:
            raise ValueError(f"breaches ({self.breaches}) cannot exceed of_last ({self.of_last})")
        return self


def breach_key(verdict: dict[str, Any]) -> str:
    """What makes two breaches 'the same': the model version and the kinds of threshold crossed."""
    return f"{verdict['model_version']}:{'+'.join(sorted({r['code'] for r in verdict['reasons']}))}"


def load_state(path: Path) -> dict[str, Any]:
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {"triggers": [], "runs": []}
    except json.JSONDecodeError as exc:
        raise PipelineError(
            f"{path}: monitoring state is not valid JSON ({exc.msg}); delete it to reset"
        ) from exc
    if not isinstance(state, dict) or not isinstance(state.get("triggers"), list):
        return {"triggers": [], "runs": []}
    if not isinstance(state.get("runs"), list):
        state["runs"] = []  # a state file from before trigger persistence
    return state


def persisted(verdict: dict[str, Any], state: dict[str, Any], rule: Persistence) -> int:
    """Breaches among the latest run (`verdict`) and the `of_last - 1` judged runs of its model before it."""
    earlier = [r for r in state["runs"] if r["model_version"] == verdict["model_version"]][
        -(rule.of_last - 1) :
    ]
    earlier = earlier if rule.of_last > 1 else []
    return sum(r["status"] == "breach" for r in earlier) + (verdict["status"] == "breach")


def record_run(state: dict[str, Any], verdict: dict[str, Any], now: datetime) -> bool:
    """Remember a judged run (the evidence persistence counts); False for one that judged nothing."""
    if verdict["status"] not in JUDGED:
        return False
    run = {"at": now.isoformat(), "model_version": verdict["model_version"], "status": verdict["status"]}
    state["runs"] = [*state["runs"][-(KEEP_RUNS - 1) :], run]
    return True


def decide_trigger(
    verdict: dict[str, Any],
    state: dict[str, Any],
    cooldown_hours: float,
    now: datetime,
    rule: Persistence | None = None,
) -> dict[str, Any]:
    """`trigger` (a new breach that persisted), `not_persistent` (a breach in fewer than `rule.breaches` of the
    last `rule.of_last` judged runs: not yet), `already_triggered` (same breach of the same model within the
    cool-down) or `none` (no breach). `state` holds the runs before this one."""
    if verdict["status"] != "breach":
        return {"action": "none"}
    rule = rule or Persistence()
    key = breach_key(verdict)
    count = persisted(verdict, state, rule)
    if count < rule.breaches:
        return {
            "action": "not_persistent",
            "key": key,
            "breaches": count,
            "breaches_needed": rule.breaches,
            "of_last": rule.of_last,
        }
    for entry in reversed(state["triggers"]):
        at = datetime.fromisoformat(entry["at"])
        if entry["key"] == key and now - at < timedelta(hours=cooldown_hours):
            return {"action": "already_triggered", "key": key, "since": entry["at"]}
    return {"action": "trigger", "key": key}


def record_trigger(
    state: dict[str, Any], state_path: Path, key: str, reason: str, command: str, now: datetime
) -> None:
    """Remember a trigger (the last 50 are kept). Recorded before the command runs: a retrain outlasting the
    next monitoring run is not started twice."""
    state["triggers"] = [
        *state["triggers"][-49:],
        {"key": key, "at": now.isoformat(), "reason": reason, "command": command or None},
    ]
    write_json(state_path, state)


def run_trigger(command: str, verdict: dict[str, Any], verdict_path: Path) -> int:
    env = {**os.environ, "MONITOR_REASON": verdict["summary"], "MONITOR_VERDICT": str(verdict_path.resolve())}
    print(f"monitor: breach -> running trigger: {command}", flush=True)
    return subprocess.run(command, shell=True, env=env, check=False).returncode
