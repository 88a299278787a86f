"""Continuous training: retrain on the latest data; the challenger replaces the champion only if it wins.

`python -m ops.retrain` (or `make retrain [CUTOFF=YYYY-MM-DD]`):
1. materialises the champion, the model the `promotion.champion_rev` branch (default `main`) tracks in its
   dvc.lock: the workspace model/ when it is that model, else `dvc get` from the DVC cache or remote, else
   (demo data, no remote) reproduced from that revision's pipeline;
2. records the newest data (`dvc add` when data/ changed), sets `extract.cutoff` when a cutoff is given, and
   re-runs `extract` (forced, so a changed warehouse is re-queried);
3. skips when the snapshot is the one the champion was trained on, or one a promoted challenger already
   proposed (its lineage record names the same data hash): no duplicate proposals, no retrain loops;
4. otherwise reproduces the pipeline (`dvc repro`) and scores champion and challenger on the same newest test
   window; `judge` applies the `promotion` rule of params.yaml;
5. writes the decision (`retrain/decision.json`, promote | reject | skip, with reasons), a report
   (`retrain/report.md`: the decision, then the PR report of ops.report against the champion's revision)
   and the challenger's lineage record (`lineage/<model_version>.json`). Every decision exits 0.

`python -m ops.retrain push` sends a promoted challenger's data and model to the default DVC remote.
`python -m ops.retrain propose` turns a "promote" into a pull request: a branch named from the data hash
(`retrain/<hash>`), a commit of data.dvc, dvc.lock, params.yaml, metrics, plots and the lineage record,
`git push`, and `gh pr create` to `promotion.base_branch`. An existing branch or pull request from that branch
means the data was already proposed: nothing is proposed twice.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from mlcore.errors import PipelineError, cli_entrypoint
from mlcore.io import read_json, write_json
from mlcore.metrics import HIGHER_IS_BETTER
from ops.repo import MODEL_OUT, MODEL_STAGE, git_show, model_md5, reproduce
from pipeline.extract import parse_cutoff

Decision = Literal["promote", "reject", "skip"]


class PromotionRule(BaseModel):
    """params.yaml `promotion`: when a challenger may replace the champion."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    champion_rev: str = "main"
    primary_metric: str = "roc_auc"
    min_improvement: float = 0.0
    floors: dict[str, float] = Field(default_factory=dict)
    max_regression: dict[str, float] = Field(default_factory=dict)
    base_branch: str = "staging"
    branch_prefix: str = "retrain/"

    @model_validator(mode="after")
    def _known_metrics(self) -> PromotionRule:
        for key, names in (
            ("primary_metric", [self.primary_metric]),
            ("floors", self.floors),
            ("max_regression", self.max_regression),
        ):
            for name in names:
                if name not in HIGHER_IS_BETTER:
                    raise ValueError(f"{key}: unknown metric '{name}' (one of {sorted(HIGHER_IS_BETTER)})")
        return self


def load_rule(params_path: str | Path) -> PromotionRule:
    from pipeline.config import load_params

    raw = load_params(params_path).section("promotion")
    try:
        return PromotionRule.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(p) for p in first["loc"])
        raise PipelineError(f"{params_path}: promotion{'.' + key if key else ''}: {first['msg']}") from exc


# --- the pure core ---------------------------------------------------------------------------------


def _better_by(metric: str, new: float, old: float) -> float:
    """How much better `new` is than `old` (positive = better), whatever the metric's direction."""
    return new - old if HIGHER_IS_BETTER[metric] else old - new


def judge(
    champion: dict[str, float] | None, challenger: dict[str, float], rule: PromotionRule
) -> tuple[Decision, list[str], list[dict[str, Any]]]:
    """Apply the promotion rule to metrics of both models on the same test window.

    Returns (decision, reasons, checks). Reasons say why in one line each: the failed checks for a reject,
    the improvement for a promote. Without a champion only the floors apply.
    """
    checks: list[dict[str, Any]] = []
    for metric, floor in rule.floors.items():
        value = challenger[metric]
        op = ">=" if HIGHER_IS_BETTER[metric] else "<="
        ok = value >= floor if HIGHER_IS_BETTER[metric] else value <= floor
        checks.append(
            {
                "kind": "floor",
                "metric": metric,
                "challenger": value,
                "champion": None,
                "rule": f"{metric} {op} {floor}",
                "passed": bool(ok),
                "reason": f"{metric} {value:.4f} breaks the floor {metric} {op} {floor}",
            }
        )
    if champion is not None:
        p = rule.primary_metric
        gain = _better_by(p, challenger[p], champion[p])
        checks.append(
            {
                "kind": "primary",
                "metric": p,
                "challenger": challenger[p],
                "champion": champion[p],
                "rule": f"{p} better than the champion by >= {rule.min_improvement}",
                "passed": bool(gain >= rule.min_improvement),
                "reason": f"{p} {challenger[p]:.4f} vs champion {champion[p]:.4f}: improvement "
                f"{gain:+.4f} is below promotion.min_improvement {rule.min_improvement}",
            }
        )
        for metric, allowed in rule.max_regression.items():
            loss = -_better_by(metric, challenger[metric], champion[metric])
            checks.append(
                {
                    "kind": "guard",
                    "metric": metric,
                    "challenger": challenger[metric],
                    "champion": champion[metric],
                    "rule": f"{metric} worse by <= {allowed}",
                    "passed": bool(loss <= allowed),
                    "reason": f"{metric} {challenger[metric]:.4f} vs champion {champion[metric]:.4f}: "
                    f"worse by {loss:.4f}, more than promotion.max_regression.{metric} "
                    f"{allowed}",
                }
            )
    for check in checks:  # a reason explains a failure; a passed check needs none
        if check["passed"]:
            check["reason"] = None
    failed = [c["reason"] for c in checks if not c["passed"]]
    if failed:
        return "reject", failed, checks
    if champion is None:
        return "promote", ["no champion to compare with; the challenger passes every floor"], checks
    p = rule.primary_metric
    return (
        "promote",
        [
            f"{p} {challenger[p]:.4f} beats the champion's {champion[p]:.4f} by "
            f"{_better_by(p, challenger[p], champion[p]):+.4f} (>= {rule.min_improvement}) "
            f"and every floor and guard holds"
        ],
        checks,
    )


def duplicate_reason(data_hash: str, champion_meta: dict[str, Any] | None, lineage_dir: Path) -> str | None:
    """Why retraining on `data_hash` would repeat work already done, or None when the data is new."""
    if champion_meta and (champion_meta.get("data") or {}).get("snapshot_sha256") == data_hash:
        return (
            f"the champion {champion_meta.get('model_version')} was trained on this very snapshot "
            f"({data_hash[:12]}): no new data"
        )
    from ops.lineage import find_records

    for path, record in find_records(lineage_dir, data_hash=data_hash, decision="promote"):
        return (
            f"model {record.get('model_version')} was already proposed for this snapshot "
            f"({data_hash[:12]}, {lineage_dir.name}/{path.name})"
        )
    return None


def branch_name(rule: PromotionRule, data_hash: str) -> str:
    return f"{rule.branch_prefix}{data_hash[:12]}"


# --- talking to git and dvc ------------------------------------------------------------------------


def _env() -> dict[str, str]:
    # Stage commands call `python` and `dvc`: make them the interpreter this runs under (the venv).
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def _run(
    cmd: list[str], root: Path, check: bool = True, capture: bool = False
) -> subprocess.CompletedProcess:
    print("+ " + " ".join(cmd), file=sys.stderr, flush=True)
    result = subprocess.run(cmd, cwd=root, env=_env(), text=True, capture_output=capture)
    if check and result.returncode != 0:
        detail = f": {result.stderr.strip().splitlines()[-1]}" if capture and result.stderr.strip() else ""
        raise PipelineError(f"`{' '.join(cmd)}` failed with exit status {result.returncode}{detail}")
    return result


def _dvc(*args: str) -> list[str]:
    return [sys.executable, "-m", "dvc", *args]


def resolve_champion(root: Path, rev: str, dest: Path) -> tuple[Path | None, str]:
    """Copy the model that `rev` tracks into `dest`; returns (dir or None, where it came from)."""
    from pipeline.data import dir_md5

    if dest.exists():
        shutil.rmtree(dest)
    wanted = model_md5(git_show(root, rev, "dvc.lock"))
    workspace = root / MODEL_OUT
    if wanted is None:
        if (workspace / "metadata.json").exists():
            shutil.copytree(workspace, dest)
            return dest, f"workspace {MODEL_OUT}/ ({rev} tracks no model)"
        return None, f"none ({rev} tracks no model and there is no {MODEL_OUT}/)"
    if (workspace / "metadata.json").exists() and dir_md5(workspace) == wanted:
        shutil.copytree(workspace, dest)
        return dest, f"{rev} ({wanted}, the workspace {MODEL_OUT}/)"
    got = _run(_dvc("get", ".", MODEL_OUT, "--rev", rev, "-o", str(dest)), root, check=False, capture=True)
    if got.returncode == 0 and (dest / "metadata.json").exists():
        return dest, f"{rev} ({wanted}, via dvc get)"
    # Stored nowhere reachable (no DVC remote, a cold cache): when the workspace is `rev`, reproduce it. Every
    # stage output is a function of its inputs, so this is the recorded model, and `reproduce` verifies it.
    # Not with a live warehouse: its newer rows would leak into the "champion".
    if _workspace_is(root, rev) and not os.environ.get("WAREHOUSE_URL"):
        reproduce(root, rev, wanted)
        shutil.copytree(workspace, dest)
        return dest, f"{rev} ({wanted}), reproduced with `dvc repro {MODEL_STAGE}` and verified"
    reason = (got.stderr.strip().splitlines() or ["unknown error"])[-1]
    raise PipelineError(
        f"champion: cannot get the model {rev} tracks ({wanted}) from the DVC cache or "
        f"remote: {reason} (configure a DVC remote, or pass --champion DIR to name one)"
    )


# The files that decide what the pipeline produces: unmodified, the workspace reproduces the revision's model.
PIPELINE_INPUTS = ("dvc.lock", "dvc.yaml", "params.yaml", "data.dvc", "src")


def _commit_of(root: Path, rev: str) -> str:
    result = subprocess.run(
        ["git", "rev-parse", "--verify", f"{rev}^{{commit}}"], cwd=root, capture_output=True, text=True
    )
    return result.stdout.strip()


def _workspace_is(root: Path, rev: str) -> bool:
    """Whether HEAD is `rev` and the pipeline's inputs are unmodified."""
    commit = _commit_of(root, rev)
    if not commit or commit != _commit_of(root, "HEAD"):
        return False
    return (
        subprocess.run(["git", "diff", "--quiet", "HEAD", "--", *PIPELINE_INPUTS], cwd=root).returncode == 0
    )


def record_new_data(root: Path, params_path: Path) -> str:
    """data/ as the pipeline will see it: `dvc add` a changed data/, restore a missing one."""
    from pipeline.data import dir_md5, ensure_data

    dvc_file = root / "data.dvc"
    if not dvc_file.exists():
        return "no data.dvc: the warehouse is the source"
    recorded = yaml.safe_load(dvc_file.read_text(encoding="utf-8"))["outs"][0]
    data_dir = root / recorded["path"]
    if not data_dir.exists():
        return ensure_data(
            root,
            params_path.relative_to(root) if params_path.is_absolute() else params_path,
            progress=lambda m: print(m, file=sys.stderr),
        )
    if dir_md5(data_dir) == recorded["md5"]:
        return "unchanged"
    _run(_dvc("add", recorded["path"]), root)
    return "recorded a new data version (dvc add)"


def set_cutoff(params_path: Path, cutoff: str) -> None:
    """Write extract.cutoff into params.yaml, keeping its comments (DVC's own round-trip YAML editor)."""
    from dvc.utils.serialize import modify_yaml

    parse_cutoff(cutoff)
    with modify_yaml(params_path) as data:
        data["extract"]["cutoff"] = cutoff


def _stage_is_current(root: Path, stage: str) -> bool:
    return _run(_dvc("status", "-q", stage), root, check=False, capture=True).returncode == 0


# --- scoring ---------------------------------------------------------------------------------------


def score_on_window(model_dir: Path, test_path: Path, params) -> dict[str, float]:
    import pandas as pd

    from mlcore.artifact import load_model
    from mlcore.metrics import classification_metrics
    from pipeline.modeling import features_frame

    model, _ = load_model(model_dir)
    test = pd.read_parquet(test_path)
    proba = model.predict_proba(features_frame(test, params.schema))[:, 1]
    return classification_metrics(test[params.schema.label], proba, params.evaluate.threshold)


# --- the command -----------------------------------------------------------------------------------


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
    from mlcore.artifact import load_metadata
    from ops.lineage import build_record, run_facts, write_record
    from pipeline.config import load_params

    root = root.resolve()
    params_path, out_dir, lineage_dir = (root / p for p in (params_path, out_dir, lineage_dir))
    rule = load_rule(params_path)
    rev = champion_rev or rule.champion_rev
    if cutoff:
        parse_cutoff(cutoff)  # a typo fails here, before anything is copied or trained
    out_dir.mkdir(parents=True, exist_ok=True)

    # 1. the champion, before the pipeline overwrites model/
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

    # 2. the newest data
    data_state = record_new_data(root, params_path)
    if cutoff:
        set_cutoff(params_path, cutoff)
    _run(_dvc("repro", "--force", "--single-item", "extract"), root)
    params = load_params(params_path)
    data_info = read_json(root / "metrics/data.json")
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
        return _finish(decision, out_dir)

    # 4. the challenger; a failed quality gate still leaves a model to judge
    repro = _run(_dvc("repro"), root, check=False)
    if repro.returncode != 0 and not _stage_is_current(root, MODEL_STAGE):
        raise PipelineError(
            "retrain: `dvc repro` failed before a challenger was trained (see the output above)"
        )
    challenger_meta = load_metadata(root / MODEL_OUT)
    test_path = root / "artifacts/prepared/test.parquet"
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
        test_window={"rows": int(_rows(test_path)), "path": "artifacts/prepared/test.parquet"},
    )

    # 5. the lineage record of the challenger, whatever the verdict
    record = build_record(challenger_meta, decision, run_facts(root))
    path = write_record(lineage_dir, record)
    decision["lineage_record"] = path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path)
    return _finish(decision, out_dir, root)


def _rows(path: Path) -> int:
    import pyarrow.parquet as pq

    return pq.ParquetFile(path).metadata.num_rows


PR_REPORT_DIR = "pr-report"


def pr_report(root: Path, base_rev: str, out: Path) -> str:
    """The pull-request report (ops.report, `make report`) of the workspace against `base_rev`, as markdown
    whose image links are relative to out's parent. This is the seam to the PR report: a fork without it (or
    with another report) changes only this function."""
    import re

    try:
        from ops.report.build import build_report
    except ImportError:
        return ""
    try:
        report = build_report(root, base_rev, out)
    except PipelineError as exc:
        return f"_The pull-request report could not be built: {exc}_\n"
    text = report.markdown.read_text(encoding="utf-8")
    return re.sub(r"\]\(([^()/:]+\.png)\)", rf"]({out.name}/\1)", text)


def _finish(decision: dict[str, Any], out_dir: Path, root: Path | None = None) -> dict[str, Any]:
    from mlcore.io import atomic_write

    write_json(out_dir / "decision.json", decision)
    text = render_report(decision)
    if root is not None and decision.get("challenger"):
        text += (
            f"\n---\n\n### Against {decision['rule']['champion_rev']}'s committed outputs\n\n"
            f"The pull-request report: the challenger's outputs against the metrics `{decision['rule']['champion_rev']}` "
            "committed for the champion on *its own* test window. With new data the windows differ; the "
            "like-for-like comparison is the table above.\n\n"
            + pr_report(root, decision["rule"]["champion_rev"], out_dir / PR_REPORT_DIR)
        )
    atomic_write(out_dir / "report.md", lambda tmp: tmp.write_text(text, encoding="utf-8"))
    return decision


def render_report(decision: dict[str, Any]) -> str:
    """The decision as markdown: verdict and reasons first, then both models side by side on one window."""
    verdict = decision["decision"]
    icon = {"promote": "✅", "reject": "❌", "skip": "⏭️"}[verdict]
    data = decision["data"]
    lines = [
        f"## {icon} Retrain decision: **{verdict}**",
        "",
        f"Trigger: {decision.get('trigger', 'manual')}",
        "",
    ]
    lines += [f"- {reason}" for reason in decision["reasons"]]
    lines += [
        "",
        f"- **Data**: snapshot `{data['snapshot_sha256'][:12]}`, {data['rows']:,} rows, "
        f"{data['window_start']} .. {data['window_end']} (cutoff {data['cutoff']}; {data['state']})",
        f"- **Champion**: `{decision['champion']['model_version']}` from {decision['champion']['source']}",
    ]
    challenger = decision.get("challenger")
    if challenger:
        lines.append(
            f"- **Challenger**: `{challenger['model_version']}`, scored with the champion on the same "
            f"newest test window ({decision['test_window']['rows']:,} rows)"
        )
        lines += ["", "| metric | champion | challenger | delta | check |", "|---|---:|---:|---:|---|"]
        champion = decision["champion"].get("metrics") or {}
        by_metric = {}
        for check in decision["checks"]:
            by_metric.setdefault(check["metric"], []).append(
                ("✅ " if check["passed"] else "❌ ") + check["rule"]
            )
        for metric in HIGHER_IS_BETTER:
            new, old = challenger["metrics"][metric], champion.get(metric)
            delta = f"{new - old:+.4f}" if old is not None else ""
            old_cell = f"{old:.4f}" if old is not None else "n/a"
            lines.append(
                f"| {metric} | {old_cell} | {new:.4f} | {delta} | {'; '.join(by_metric.get(metric, []))} |"
            )
    lines.append("")
    if decision.get("lineage_record"):
        lines.append(f"Lineage record: `{decision['lineage_record']}`.")
    if verdict == "promote":
        lines.append(
            f"Proposed from branch `{decision['branch']}`; merging it deploys through the normal flow."
        )
    return "\n".join(lines) + "\n"


# --- proposing a promoted challenger ---------------------------------------------------------------

PROPOSAL_PATHS = ("data.dvc", "dvc.lock", "params.yaml", "metrics", "plots", "lineage")


def remote_branch_exists(root: Path, remote: str, branch: str) -> bool:
    result = subprocess.run(
        ["git", "ls-remote", "--exit-code", "--heads", remote, branch],
        cwd=root,
        capture_output=True,
        text=True,
    )
    if result.returncode not in (0, 2):
        raise PipelineError(f"git ls-remote {remote}: {result.stderr.strip() or 'failed'}")
    return result.returncode == 0


def pull_requests_from(root: Path, branch: str) -> list[int]:
    """Numbers of pull requests (open, closed or merged) whose head is `branch` (GitHub CLI)."""
    result = _run(
        ["gh", "pr", "list", "--head", branch, "--state", "all", "--json", "number"], root, capture=True
    )
    return [pr["number"] for pr in json.loads(result.stdout or "[]")]


def push_data(root: Path, decision: dict[str, Any]) -> str:
    """`dvc push` a promoted challenger's data and model to the default DVC remote, if one is configured."""
    if decision["decision"] != "promote":
        return f"nothing to push: the decision is {decision['decision']}"
    remote = _run(_dvc("remote", "default"), root, check=False, capture=True).stdout.strip()
    if not remote:
        return "no default DVC remote configured: the proposal's data and model stay in this cache only"
    _run(_dvc("push"), root)
    return f"pushed data and model to DVC remote '{remote}'"


def propose(
    root: Path,
    decision: dict[str, Any],
    report: Path,
    remote: str = "origin",
    push: bool = True,
    open_pr: bool = True,
) -> str:
    """Commit a promoted challenger on its own branch, push it, open a pull request; returns what happened."""
    if decision["decision"] != "promote":
        return f"nothing to propose: the decision is {decision['decision']}"
    rule = PromotionRule.model_validate(decision["rule"])
    branch = decision["branch"]
    if remote_branch_exists(root, remote, branch):
        return f"already proposed: branch {branch} exists on {remote}; no new pull request"
    if open_pr and (existing := pull_requests_from(root, branch)):
        return f"already proposed: pull request #{existing[0]} came from {branch}; no new pull request"
    _run(["git", "switch", "-c", branch], root)
    paths = [p for p in PROPOSAL_PATHS if (root / p).exists()]
    _run(["git", "add", "--", *paths], root)
    challenger = decision["challenger"]
    title = (
        f"Retrain: model {challenger['model_version']} on data {decision['data']['snapshot_sha256'][:12]} "
        f"({decision['data']['window_start'][:10]} .. {decision['data']['window_end'][:10]})"
    )
    _run(["git", "commit", "-m", title, "-m", "\n".join(decision["reasons"])], root)
    if push:
        print(push_data(root, decision), file=sys.stderr)
    _run(["git", "push", remote, f"HEAD:refs/heads/{branch}"], root)
    if open_pr:
        body = report.with_name("pr-body.md")
        # Images cannot be attached to a PR body; CI posts the full report with images as a comment.
        text = "\n".join(
            line
            for line in report.read_text(encoding="utf-8").splitlines()
            if not line.lstrip().startswith("![")
        )
        body.write_text(text + "\n", encoding="utf-8")
        _run(
            [
                "gh",
                "pr",
                "create",
                "--base",
                rule.base_branch,
                "--head",
                branch,
                "--title",
                title,
                "--body-file",
                str(body),
            ],
            root,
        )
        return f"proposed: pull request from {branch} to {rule.base_branch}"
    return f"proposed: pushed {branch} to {remote} (no pull request opened)"


# --- CLI -------------------------------------------------------------------------------------------


def _github_outputs(decision: dict[str, Any], report: Path, output: str | None, summary: str | None) -> None:
    """In GitHub Actions: the decision as step outputs, the report as the job summary."""
    if output:
        with open(output, "a", encoding="utf-8") as fh:
            fh.write(f"decision={decision['decision']}\nbranch={decision['branch']}\n")
    if summary:
        with open(summary, "a", encoding="utf-8") as fh:
            fh.write(report.read_text(encoding="utf-8"))


@cli_entrypoint
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.retrain", description=__doc__.splitlines()[0])
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
    args = parser.parse_args(argv)
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
    _github_outputs(
        decision,
        args.out / "report.md",
        os.environ.get("GITHUB_OUTPUT"),
        os.environ.get("GITHUB_STEP_SUMMARY"),
    )
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
