"""What one side of the report's comparison is: the pipeline outputs of a revision (or of the working tree).

The files are the ones the pipeline commits (docs/contracts.md); each is read through a `Reader`
(ops.repo: `git_reader` for the base, `worktree_reader` for the PR), and an absent file is None.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from mlcore.errors import PipelineError
from ops.repo import Reader

# Where the pipeline writes what the report reads (docs/contracts.md).
PARAMS = "params.yaml"
EVALUATE = "metrics/evaluate.json"
GATE = "metrics/gate.json"
DATA = "metrics/data.json"
TUNE = "metrics/tune.json"
ROC = "plots/evaluate/roc.json"
PRECISION_RECALL = "plots/evaluate/precision_recall.json"
CONFUSION = "plots/evaluate/confusion.json"
FEATURE_IMPORTANCE = "plots/evaluate/feature_importance.json"
OPTUNA_HISTORY = "plots/tune/optimization_history.png"


@dataclass(frozen=True)
class Outputs:
    """The pipeline outputs of one side of the comparison; None where a file is absent."""

    label: str
    params: dict[str, Any] | None = None
    evaluate: dict[str, Any] | None = None
    gate: dict[str, Any] | None = None
    data: dict[str, Any] | None = None
    tune: dict[str, Any] | None = None
    roc: list[dict[str, Any]] | None = None
    precision_recall: list[dict[str, Any]] | None = None
    confusion: list[dict[str, Any]] | None = None
    feature_importance: list[dict[str, Any]] | None = None
    optuna_history_png: bytes | None = None


def _parse(path: str, raw: bytes | None, loader: Callable[[bytes], Any], label: str) -> Any:
    if raw is None:
        return None
    try:
        return loader(raw)
    except (ValueError, yaml.YAMLError) as exc:
        raise PipelineError(f"{path} ({label}): cannot be parsed: {str(exc).splitlines()[0]}") from exc


def read_outputs(read: Reader, label: str) -> Outputs:
    def js(path: str) -> Any:
        return _parse(path, read(path), json.loads, label)

    params = _parse(PARAMS, read(PARAMS), yaml.safe_load, label)
    return Outputs(
        label=label,
        params=params if isinstance(params, dict) else None,
        evaluate=js(EVALUATE),
        gate=js(GATE),
        data=js(DATA),
        tune=js(TUNE),
        roc=js(ROC),
        precision_recall=js(PRECISION_RECALL),
        confusion=js(CONFUSION),
        feature_importance=js(FEATURE_IMPORTANCE),
        optuna_history_png=read(OPTUNA_HISTORY),
    )


def champion_on_same_window(
    root: Path, pr: Outputs, base: Outputs
) -> tuple[dict[str, Any] | None, str | None]:
    """When the PR trained on new data (a retrain PR), the base's committed metrics come from an older test
    window and are no fair yardstick. The retrain job scored the production model on the PR's own test window
    and recorded it in lineage/<model_version>.json: use that instead, when it is there."""
    pr_hash = (pr.data or {}).get("snapshot_sha256")
    if not pr_hash or pr_hash == (base.data or {}).get("snapshot_sha256"):
        return None, None
    for path in sorted((root / "lineage").glob("*.json")):
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            continue
        champion = (record.get("metrics") or {}).get("champion_on_test_window")
        if (record.get("data") or {}).get("snapshot_sha256") == pr_hash and isinstance(champion, dict):
            return champion, f"lineage/{path.name}"
    return None, None
