"""The retraining trigger: is this breach new (not already triggered within the cool-down), recording it, and
running the trigger command."""

from __future__ import annotations

import json
import os
import subprocess
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from mlcore.errors import PipelineError
from mlcore.io import write_json


def breach_key(verdict: dict[str, Any]) -> str:
    """What makes two breaches 'the same': the model version and the kinds of threshold crossed."""
    return f"{verdict['model_version']}:{'+'.join(sorted({r['code'] for r in verdict['reasons']}))}"


def load_state(path: Path) -> dict[str, Any]:
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {"triggers": []}
    except json.JSONDecodeError as exc:
        raise PipelineError(
            f"{path}: monitoring state is not valid JSON ({exc.msg}); delete it to reset"
        ) from exc
    return state if isinstance(state, dict) and isinstance(state.get("triggers"), list) else {"triggers": []}


def decide_trigger(
    verdict: dict[str, Any], state: dict[str, Any], cooldown_hours: float, now: datetime
) -> dict[str, Any]:
    """`trigger` (a new breach), `already_triggered` (same breach of the same model within the cool-down) or
    `none` (no breach)."""
    if verdict["status"] != "breach":
        return {"action": "none"}
    key = breach_key(verdict)
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
