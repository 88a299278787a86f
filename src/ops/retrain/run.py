"""The retrain run, step by step (`python -m ops.retrain`, `make retrain`), and the command line.

The steps are those of the package docstring (ops/retrain/__init__.py): champion, newest data, duplicate check,
challenger and judgement, lineage record. Every decision exits 0.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq

from mlcore.artifact import load_metadata, load_model
from mlcore.errors import PipelineError, cli_entrypoint
from mlcore.io import read_json
from mlcore.metrics import classification_metrics
from ops.github import add_summary, set_outputs
from ops.lineage import build_record, run_facts, write_record
from ops.repo import MODEL_OUT, MODEL_STAGE, dvc, model_md5, run, stage_is_current
from ops.retrain import __doc__ as PACKAGE_DOC
from ops.retrain.champion import duplicate_reason, record_new_data, resolve_champion, set_cutoff
from ops.retrain.propose import propose, push_data
from ops.retrain.render import finish
from ops.retrain.rule import PromotionRule, branch_name, judge, load_rule
from pipeline.config import Params, load_params
from pipeline.extract import parse_cutoff
from pipeline.modeling import features_frame

TEST_WINDOW = "artifacts/prepared/test.parquet"


def score_on_window(model_dir: Path, test_path: Path, params: Params) -> dict[str, float]:
    model, _ = load_model(model_dir)
    test = pd.read_parquet(test_path)
    proba = model.predict_proba(features_frame(test, params.schema))[:, 1]
    return classification_metrics(test[params.schema.label], proba, params.evaluate.threshold)


def take_champion(
    root: Path, rev: str, out_dir: Path, champion_dir: Path | None
) -> tuple[Path | None, str, dict[str, Any] | None]:
    """Step 1, before the pipeline overwrites model/: the champion copied to out_dir/champion."""
    if champion_dir is not None:
        champion_path, champion_source = out_dir / "champion", f"{champion_dir} (given)"
        if champion_path.exists():
            shutil.rmtree(champion_path)
        shutil.copytree(champion_dir, champion_path)
    else:
        champion_path, champion_source = resolve_champion(root, rev, out_dir / "champion")
    champion_meta = load_metadata(champion_path) if champion_path else None
    print(
        f"retrain: champion {champion_meta and champion_meta['model_version']} from {champion_source}",
        file=sys.stderr,
    )
    return champion_path, champion_source, champion_meta


def extract_newest(root: Path, params_path: Path, cutoff: str | None) -> tuple[str, dict[str, Any]]:
    """Step 2: the newest data recorded and extracted; returns (what happened to data/, metrics/data.json)."""
    data_state = record_new_data(root, params_path)
    if cutoff:
        set_cutoff(params_path, cutoff)
    run(dvc("repro", "--force", "--single-item", "extract"), root)
    return data_state, read_json(root / "metrics/data.json")


def challenge(
    root: Path, params_path: Path, champion_path: Path | None, rule: PromotionRule, decision: dict[str, Any]
) -> dict[str, Any]:
    """Step 4: train the challenger (a failed quality gate still leaves a model to judge), score both models on
    the same newest test window and judge; fills in `decision` and returns the challenger's metadata."""
    repro = run(dvc("repro"), root, check=False)
    if repro.returncode != 0 and not stage_is_current(root, MODEL_STAGE):
        raise PipelineError(
            "retrain: `dvc repro` failed before a challenger was trained (see the output above)"
        )
    params = load_params(params_path)
    challenger_meta = load_metadata(root / MODEL_OUT)
    test_path = root / TEST_WINDOW
    challenger_metrics = score_on_window(root / MODEL_OUT, test_path, params)
    champion_metrics = score_on_window(champion_path, test_path, params) if champion_path else None
    verdict, reasons, checks = judge(champion_metrics, challenger_metrics, rule)
    if repro.returncode != 0:
        reasons = [*reasons, "the quality gate of params.yaml evaluate.gate failed (metrics/gate.json)"]
        verdict = "reject"
    decision.update(
        decision=verdict,
        reasons=reasons,
        checks=checks,
        champion={**decision["champion"], "metrics": champion_metrics},
        challenger={
            "model_version": challenger_meta["model_version"],
            "metrics": challenger_metrics,
            "model_md5": model_md5((root / "dvc.lock").read_text(encoding="utf-8")),
        },
        test_window={"rows": int(pq.ParquetFile(test_path).metadata.num_rows), "path": TEST_WINDOW},
    )
    return challenger_meta


def run_retrain(
    root: Path,
    params_path: Path,
    out_dir: Path,
    lineage_dir: Path,
    cutoff: str | None = None,
    champion_dir: Path | None = None,
    champion_rev: str | None = None,
    reason: str | None = None,
) -> dict[str, Any]:
    root = root.resolve()
    params_path, out_dir, lineage_dir = (root / p for p in (params_path, out_dir, lineage_dir))
    rule = load_rule(params_path)
    if cutoff:
        parse_cutoff(cutoff)  # a typo fails here, before anything is copied or trained
    out_dir.mkdir(parents=True, exist_ok=True)
    champion_path, champion_source, champion_meta = take_champion(
        root, champion_rev or rule.champion_rev, out_dir, champion_dir
    )
    data_state, data_info = extract_newest(root, params_path, cutoff)
    data_hash = data_info["snapshot_sha256"]
    decision: dict[str, Any] = {
        "decided_at": datetime.now(UTC).replace(microsecond=0).isoformat(),
        "trigger": reason or "manual",
        "data": {**data_info, "state": data_state},
        "champion": {
            "source": champion_source,
            "model_version": champion_meta and champion_meta["model_version"],
            "data_sha256": champion_meta and champion_meta["data"].get("snapshot_sha256"),
        },
        "rule": rule.model_dump(),
        "branch": branch_name(rule, data_hash),
    }
    # 3. nothing new: stop before training
    duplicate = duplicate_reason(data_hash, champion_meta, lineage_dir)
    if duplicate:
        decision.update(decision="skip", reasons=[duplicate], checks=[], challenger=None)
        return finish(decision, out_dir)
    challenger_meta = challenge(root, params_path, champion_path, rule, decision)
    # 5. the lineage record of the challenger, whatever the verdict
    path = write_record(lineage_dir, build_record(challenger_meta, decision, run_facts(root)))
    decision["lineage_record"] = path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path)
    return finish(decision, out_dir, root)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m ops.retrain", description=PACKAGE_DOC.splitlines()[0])
    parser.add_argument(
        "command",
        nargs="?",
        choices=["run", "push", "propose"],
        default="run",
        help="run: retrain and decide; push: dvc push a promoted challenger; propose: open its PR",
    )
    parser.add_argument("--params", default="params.yaml", type=Path)
    parser.add_argument(
        "--out",
        default=os.environ.get("RETRAIN_OUT", "retrain"),
        type=Path,
        help="where decision.json, report.md and the champion copy go (env RETRAIN_OUT)",
    )
    parser.add_argument("--lineage-dir", default="lineage", type=Path)
    parser.add_argument(
        "--cutoff",
        default=os.environ.get("CUTOFF") or None,
        help="YYYY-MM-DD or 'latest'; written to params.yaml extract.cutoff (env CUTOFF)",
    )
    parser.add_argument(
        "--champion",
        default=os.environ.get("RETRAIN_CHAMPION") or None,
        type=Path,
        help="a model directory to use as the champion (env RETRAIN_CHAMPION)",
    )
    parser.add_argument(
        "--champion-rev",
        default=os.environ.get("RETRAIN_CHAMPION_REV") or None,
        help="git revision whose dvc.lock names the champion (default: promotion.champion_rev)",
    )
    parser.add_argument(
        "--reason",
        default=os.environ.get("RETRAIN_REASON") or os.environ.get("MONITOR_REASON"),
        help="why this retrain runs, recorded in the decision (env RETRAIN_REASON, MONITOR_REASON)",
    )
    parser.add_argument("--remote", default="origin", help="propose: the git remote to push the branch to")
    parser.add_argument("--no-pr", action="store_true", help="propose: push the branch, open no pull request")
    parser.add_argument("--no-dvc-push", action="store_true", help="propose: skip `dvc push`")
    return parser


@cli_entrypoint
def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    root = Path.cwd()
    if args.command == "push":
        print(push_data(root, read_json(args.out / "decision.json")))
        return 0
    if args.command == "propose":
        print(
            propose(
                root,
                read_json(args.out / "decision.json"),
                args.out / "report.md",
                args.remote,
                push=not args.no_dvc_push,
                open_pr=not args.no_pr,
            )
        )
        return 0
    decision = run_retrain(
        root,
        args.params,
        args.out,
        args.lineage_dir,
        args.cutoff,
        args.champion,
        args.champion_rev,
        args.reason,
    )
    # In GitHub Actions: the decision as step outputs, the report as the job summary.
    set_outputs({"decision": decision["decision"], "branch": decision["branch"]})
    add_summary((args.out / "report.md").read_text(encoding="utf-8"))
    print(f"decision: {decision['decision']}: " + "; ".join(decision["reasons"]))
    print(f"retrain: wrote {args.out / 'decision.json'} and {args.out / 'report.md'}")
    if decision["decision"] == "reject":
        print(
            "retrain: the workspace holds the rejected challenger; to go back to the champion: "
            "`git checkout -- dvc.lock data.dvc params.yaml metrics plots && dvc checkout`"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
