"""Model lineage: which data, params and code produced a model, what was decided about it, and where it runs.

Three places, all in git, so a fork can answer "which data and code produced the model serving in production
right now?" with `make lineage ENV=production` (`python -m ops.lineage show --env production`):

- `model/metadata.json` (served at `/metadata`) carries the data (snapshot hash, window), params, the hash of
  the stage code and the metrics of the model: only facts that are the same on every run, so the model/ hash
  in dvc.lock can be reproduced;
- `lineage/<model_version>.json`: one record per model that `make retrain` trained: the above, the facts of
  the run that are not reproducible (the git commit, uncommitted changes under src/, the data.dvc version of
  the raw data), the metrics of champion and challenger on the same window and the decision with its reasons;
- a deployment (push mode) is an annotated git tag `deploy/<environment>/<UTC time>` on the deployed commit, whose message
  is JSON {environment, model_version, image_digest, deployed_at}: `python -m ops.lineage deployed ...`
  creates it (the deploy workflow runs it and pushes the tag). In pull mode (params.yaml delivery.mode) the
  overlay is the record: its digest, the bump commit that first declared it in staging and that commit's
  `Image-Built-From` and `Model-Version` trailers (ops.deliver.history.declared_build).

`show` follows the newest deployment tag of the environment to its commit and reads the model's lineage record
there; a model without a record (trained by a plain `dvc repro` in a pull request) is described from that
commit's dvc.lock and committed metrics, which name the same data, params and code.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from mlcore.artifact import load_metadata
from mlcore.errors import PipelineError, cli_entrypoint
from mlcore.io import write_json
from ops.repo import git_show, model_md5, run

try:  # pull-mode deployments are declared in the overlays (the deliver feature; optional)
    from ops.deliver.history import declared_build
except ModuleNotFoundError:  # src/ops/deliver deleted
    declared_build = None

TAG_PREFIX = "deploy"
_ENV_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def _git(root: Path, *args: str, check: bool = True) -> str:
    result = run(["git", *args], root, check=False, capture=True, echo=False)
    if check and result.returncode != 0:
        raise PipelineError(f"git {' '.join(args)}: {result.stderr.strip() or 'failed'}")
    return result.stdout if result.returncode == 0 else ""


# --- at record time -------------------------------------------------------------------------------


def run_facts(
    root: str | Path = ".", data_dvc: str = "data.dvc", code_dirs: tuple[str, ...] = ("src",)
) -> dict[str, Any]:
    """What a record adds to metadata.json: the commit that ran, whether the code under `code_dirs` had
    uncommitted changes, and the raw data's DVC version. Kept out of model/, where they would change its hash."""
    root = Path(root)
    data_md5 = None
    if (root / data_dvc).exists():
        outs = (yaml.safe_load((root / data_dvc).read_text(encoding="utf-8")) or {}).get("outs") or [{}]
        data_md5 = outs[0].get("md5")
    status = run(
        ["git", "status", "--porcelain", "--", *code_dirs], root, check=False, capture=True, echo=False
    )
    return {
        "revision": _git(root, "rev-parse", "--verify", "HEAD", check=False).strip() or None,
        "code_dirty": bool(status.stdout.strip()) if status.returncode == 0 else None,
        "data_dvc_md5": data_md5,
    }


# --- records ---------------------------------------------------------------------------------------


def build_record(
    metadata: dict[str, Any], decision: dict[str, Any] | None, facts: dict[str, Any]
) -> dict[str, Any]:
    """One model's lineage record from its metadata.json, the retrain decision about it and `run_facts`."""
    record = {
        "model_version": metadata["model_version"],
        "data": {**metadata.get("data", {}), "data_dvc_md5": facts.get("data_dvc_md5")},
        "params": metadata.get("params"),
        "code": {
            "revision": facts.get("revision"),
            "dirty": facts.get("code_dirty"),
            "sha256": (metadata.get("code") or {}).get("sha256"),
        },
        "metrics": {"validation_at_training": metadata.get("metrics")},
    }
    if decision:
        challenger = decision.get("challenger") or {}
        record["model_md5"] = challenger.get("model_md5")
        record["metrics"]["test_window"] = challenger.get("metrics")
        record["metrics"]["champion_on_test_window"] = (decision.get("champion") or {}).get("metrics")
        record["decision"] = {
            "decision": decision["decision"],
            "reasons": decision["reasons"],
            "decided_at": decision.get("decided_at"),
            "champion_model_version": (decision.get("champion") or {}).get("model_version"),
            "branch": decision.get("branch"),
        }
    return record


def write_record(lineage_dir: Path, record: dict[str, Any]) -> Path:
    return write_json(Path(lineage_dir) / f"{record['model_version']}.json", record)


def find_records(
    lineage_dir: Path, data_hash: str | None = None, decision: str | None = None
) -> Iterator[tuple[Path, dict[str, Any]]]:
    """Records in `lineage_dir`, optionally only those for one data snapshot and/or one decision."""
    for path in sorted(Path(lineage_dir).glob("*.json")):
        record = json.loads(path.read_text(encoding="utf-8"))
        if data_hash and (record.get("data") or {}).get("snapshot_sha256") != data_hash:
            continue
        if decision and (record.get("decision") or {}).get("decision") != decision:
            continue
        yield path, record


# --- deployments as git tags -----------------------------------------------------------------------


def record_deployment(
    root: Path,
    environment: str,
    image_digest: str,
    model_version: str,
    rev: str = "HEAD",
    now: datetime | None = None,
) -> str:
    """Tag `rev` as deployed to `environment`; returns the tag name (push it with `git push origin TAG`)."""
    if not _ENV_NAME.match(environment):
        raise PipelineError(f"--env '{environment}': use letters, digits, '-', '_' or '.'")
    commit = _git(root, "rev-parse", "--verify", f"{rev}^{{commit}}").strip()
    moment = (now or datetime.now(UTC)).replace(microsecond=0)
    tag = f"{TAG_PREFIX}/{environment}/{moment.strftime('%Y%m%dT%H%M%SZ')}-{commit[:7]}"
    message = json.dumps(
        {
            "environment": environment,
            "model_version": model_version,
            "image_digest": image_digest,
            "deployed_at": moment.isoformat(),
        },
        sort_keys=True,
    )
    _git(root, "tag", "-a", tag, "-m", message, commit)
    return tag


def deployments(root: Path, environment: str) -> list[dict[str, Any]]:
    """Deployments to `environment`, newest first (tag names sort by time)."""
    out = _git(
        root,
        "for-each-ref",
        "--sort=-refname",
        "--format=%(refname:strip=2)%00%(*objectname)%00%(contents)%01",
        f"refs/tags/{TAG_PREFIX}/{environment}/",
    )
    found = []
    for entry in filter(None, (e.strip("\n") for e in out.split("\x01"))):
        tag, commit, message = entry.split("\x00", 2)
        try:
            info = json.loads(message.strip())
        except json.JSONDecodeError:
            continue  # not a tag this module wrote
        found.append({"tag": tag, "commit": commit, **info})
    return found


# --- describing a model ----------------------------------------------------------------------------


def describe_commit(
    root: Path, rev: str, model_version: str | None = None, lineage_dir: str = "lineage"
) -> dict[str, Any]:
    """The lineage of the model that commit `rev` tracks, from what is committed there."""
    commit = _git(root, "rev-parse", "--verify", f"{rev}^{{commit}}").strip()
    lock_text = git_show(root, commit, "dvc.lock")
    md5 = model_md5(lock_text)
    names = _git(root, "ls-tree", "--name-only", commit, f"{lineage_dir}/", check=False).split()
    for name in names:
        record = json.loads(git_show(root, commit, name) or "{}")
        if (model_version and record.get("model_version") == model_version) or (
            md5 and record.get("model_md5") == md5
        ):
            return {"commit": commit, "source": name, **record}
    # No record: the same facts from the committed pipeline outputs.
    lock = yaml.safe_load(lock_text or "") or {}
    stages = lock.get("stages") or {}
    data_md5 = next(
        (d.get("md5") for d in (stages.get("extract") or {}).get("deps", []) if d.get("path") == "data"), None
    )
    train_params = ((stages.get("train") or {}).get("params") or {}).get("params.yaml", {})
    return {
        "commit": commit,
        "source": f"{commit[:12]}:dvc.lock and metrics/ (no lineage record)",
        "model_version": model_version,
        "model_md5": md5,
        "data": {**json.loads(git_show(root, commit, "metrics/data.json") or "{}"), "data_dvc_md5": data_md5},
        "params": {"model": train_params.get("model"), "train": train_params.get("train")},
        "code": {"revision": commit, "dirty": False},
        "metrics": {"test_window": json.loads(git_show(root, commit, "metrics/evaluate.json") or "null")},
        "decision": None,
    }


def describe_workspace(root: Path, model_dir: str = "model", lineage_dir: str = "lineage") -> dict[str, Any]:
    """The lineage of the model in the working tree (model/metadata.json plus its record, if any)."""
    metadata = load_metadata(root / model_dir)
    record_path = root / lineage_dir / f"{metadata['model_version']}.json"
    if record_path.exists():
        return {
            "source": record_path.relative_to(root).as_posix(),
            **json.loads(record_path.read_text(encoding="utf-8")),
        }
    facts = run_facts(root)
    return {"source": f"{model_dir}/metadata.json", **build_record(metadata, None, facts), "decision": None}


def query(root: Path, environment: str | None = None, rev: str | None = None) -> dict[str, Any]:
    if environment:
        found = deployments(root, environment)
        declared = declared_build(root, environment) if declared_build and not found else None
        if declared:
            return {
                "deployment": declared,
                **describe_commit(root, declared["commit"], declared["model_version"] or None),
            }
        if not found:
            raise PipelineError(
                f"no deployment to '{environment}' recorded (no git tag "
                f"{TAG_PREFIX}/{environment}/*; run `git fetch --tags` or deploy first)"
            )
        latest = found[0]
        return {"deployment": latest, **describe_commit(root, latest["commit"], latest.get("model_version"))}
    if rev:
        return describe_commit(root, rev)
    return describe_workspace(root)


def render(info: dict[str, Any]) -> str:
    lines = []
    dep = info.get("deployment")
    if dep and "tag" in dep:
        lines.append(
            f"{dep['environment']}: model {dep.get('model_version')} since {dep.get('deployed_at')}, "
            f"image {dep.get('image_digest')} (tag {dep['tag']})"
        )
    elif dep:  # pull mode: the overlay declares it
        lines.append(
            f"{dep['environment']}: model {dep.get('model_version') or info.get('model_version')}, "
            f"image {dep['image_digest']} (declared by {dep['declared_in'][:12]}, built from {dep['commit'][:12]})"
        )
    else:
        lines.append(f"model {info.get('model_version')}")
    data = info.get("data") or {}
    code = info.get("code") or {}
    params = info.get("params") or {}
    lines += [
        f"  source    {info.get('source')}",
        f"  data      snapshot {str(data.get('snapshot_sha256'))[:12]}: {data.get('rows')} rows, "
        f"{data.get('window_start')} .. {data.get('window_end')} (cutoff {data.get('cutoff')}); "
        f"data.dvc md5 {data.get('data_dvc_md5')}",
        f"  code      revision {code.get('revision')}{' (uncommitted changes)' if code.get('dirty') else ''}",
        f"  params    {json.dumps(params, sort_keys=True)}",
    ]
    test = (info.get("metrics") or {}).get("test_window") or {}
    if test:
        lines.append(
            "  metrics   "
            + "  ".join(
                f"{k} {test[k]:.4f}"
                for k in ("roc_auc", "pr_auc", "f1", "recall")
                if isinstance(test.get(k), int | float)
            )
        )
    decision = info.get("decision")
    if decision:
        lines.append(f"  decision  {decision['decision']}: {'; '.join(decision['reasons'])}")
    return "\n".join(lines)


@cli_entrypoint
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.lineage", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    show = sub.add_parser("show", help="which data, params and code produced a model")
    show.add_argument("--env", help="the model deployed to this environment now (newest deploy tag)")
    show.add_argument("--rev", help="the model a git revision tracks (default: the workspace model/)")
    show.add_argument("--json", action="store_true", help="print JSON")
    dep = sub.add_parser("deployed", help="record a deployment as an annotated git tag")
    dep.add_argument("--env", required=True)
    dep.add_argument("--image-digest", required=True)
    dep.add_argument("--model-version", required=True)
    dep.add_argument("--rev", default="HEAD")
    args = parser.parse_args(argv)
    root = Path.cwd()
    if args.command == "deployed":
        print(record_deployment(root, args.env, args.image_digest, args.model_version, args.rev))
        return 0
    info = query(root, args.env, args.rev)
    print(json.dumps(info, indent=2, sort_keys=True) if args.json else render(info))
    return 0


if __name__ == "__main__":
    sys.exit(main())
