"""The PR report: a throw-away git repo with a base commit and a PR commit whose pipeline outputs differ."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from ops.report import build, gate, plots, render
from pipeline.evaluate import apply_gate
from tests.support.paths import TEST_PARAMS

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
GIT_ENV = {
    "GIT_AUTHOR_NAME": "test",
    "GIT_AUTHOR_EMAIL": "test@example.invalid",
    "GIT_COMMITTER_NAME": "test",
    "GIT_COMMITTER_EMAIL": "test@example.invalid",
}

BASE_METRICS = {
    "roc_auc": 0.80,
    "pr_auc": 0.55,
    "f1": 0.50,
    "precision": 0.45,
    "recall": 0.60,
    "log_loss": 0.45,
    "accuracy": 0.78,
    "brier": 0.15,
    "n_test": 1000,
    "positive_rate": 0.2,
    "threshold": 0.5,
}
FLOORS = {"roc_auc": 0.70, "pr_auc": 0.35, "f1": 0.35, "recall": 0.40}


def git(repo: Path, *args: str) -> str:
    env = {**os.environ, **GIT_ENV}
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True, env=env
    ).stdout


def gate_json(metrics: dict, floors: dict) -> dict:
    """metrics/gate.json as `evaluate` writes it."""
    return apply_gate(metrics, floors)


def write_outputs(repo: Path, metrics: dict, params: dict, *, snapshot: str, rows: int, shape: float) -> None:
    """Write what the pipeline commits: params.yaml, metrics/*.json, plots/evaluate/*.json, the Optuna PNG."""

    def dump(path: str, obj) -> None:
        (repo / path).parent.mkdir(parents=True, exist_ok=True)
        (repo / path).write_text(json.dumps(obj, indent=2) + "\n")

    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    dump("metrics/evaluate.json", metrics)
    dump("metrics/gate.json", gate_json(metrics, params["evaluate"]["gate"]))
    dump(
        "metrics/data.json",
        {
            "rows": rows,
            "window_start": "2024-06-01",
            "window_end": "2025-12-01",
            "cutoff": "2025-11-30",
            "snapshot_sha256": snapshot,
            "positive_rate": 0.2,
        },
    )
    dump(
        "metrics/tune.json",
        {
            "metric": "roc_auc",
            "best_value": metrics["roc_auc"],
            "best_trial": 3,
            "n_trials_complete": 5,
            "n_trials_pruned": 1,
            "study_name": "churn",
        },
    )
    grid = [i / 10 for i in range(11)]
    dump("plots/evaluate/roc.json", [{"fpr": x, "tpr": x**shape, "threshold": 1 - x} for x in grid])
    dump(
        "plots/evaluate/precision_recall.json", [{"recall": x, "precision": 1 - 0.5 * x**shape} for x in grid]
    )
    confusion = [
        {"actual": a, "predicted": p}
        for a, p, n in ((0, 0, 70), (0, 1, 10), (1, 0, 8), (1, 1, 12))
        for _ in range(n)
    ]
    dump("plots/evaluate/confusion.json", confusion)
    dump(
        "plots/evaluate/feature_importance.json",
        [{"feature": "tenure_months", "importance": 0.3 * shape}, {"feature": "contract", "importance": 0.2}],
    )
    png = repo / "plots/tune/optimization_history.png"
    png.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plots._figure(2, 2)
    ax.plot([0, 1, 2], [0.7, 0.75, metrics["roc_auc"]])
    fig.savefig(png, format="png")


def base_params() -> dict:
    params = yaml.safe_load(TEST_PARAMS.read_text())
    params["evaluate"]["gate"] = dict(FLOORS)
    params["report"] = {
        "max_regression": {"roc_auc": 0.01, "pr_auc": 0.02, "f1": 0.03},
    }
    return params


def make_repo(tmp_path: Path, pr_metrics: dict, pr_params: dict | None = None) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    params = base_params()
    write_outputs(repo, BASE_METRICS, params, snapshot="a" * 64, rows=20000, shape=0.5)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "base")
    write_outputs(repo, pr_metrics, pr_params or params, snapshot="b" * 64, rows=21000, shape=0.3)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "pr")
    return repo


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str


def run_cli(repo: Path, out: Path, *extra: str, base: str = "HEAD~1") -> Run:
    """The CLI in-process (matplotlib is imported once per test session, not once per test)."""
    stdout, stderr = io.StringIO(), io.StringIO()
    argv = ["--base", base, "--root", str(repo), "--out", str(out), *extra]
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = build.main(argv)
    return Run(code, stdout.getvalue(), stderr.getvalue())


def run_process(repo: Path, out: Path, base: str = "HEAD~1") -> subprocess.CompletedProcess:
    """The CLI as CI runs it: `python -m ops.report`, judged by its exit status."""
    argv = [sys.executable, "-m", "ops.report", "--base", base, "--root", str(repo), "--out", str(out)]
    return subprocess.run(argv, capture_output=True, text=True, check=False, cwd=repo)


def table_row(markdown: str, metric: str) -> list[str]:
    for line in markdown.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells and cells[0] == metric and len(cells) == 5:
            return cells
    raise AssertionError(f"no metrics row for {metric}")


def test_better_model_passes_with_table_deltas_params_diff_and_valid_images(tmp_path: Path) -> None:
    pr_metrics = {**BASE_METRICS, "roc_auc": 0.83, "pr_auc": 0.56, "f1": 0.495, "log_loss": 0.40}
    pr_params = base_params()
    pr_params["tune"]["n_trials"] = 40
    pr_params["model"]["defaults"]["learning_rate"] = 0.05
    repo = make_repo(tmp_path, pr_metrics, pr_params)
    out = tmp_path / "report"

    result = run_cli(repo, out)

    assert result.returncode == 0, result.stderr
    assert "gate passed" in result.stdout
    markdown = (out / "report.md").read_text()
    first_line = markdown.splitlines()[0]
    assert first_line == "## ✅ Quality gate passed"
    assert "**roc_auc** 0.8 → **0.83** (+0.03)" in markdown
    assert table_row(markdown, "roc_auc") == ["roc_auc", "0.8", "0.83", "+0.03", "better ▲"]
    assert table_row(markdown, "f1") == ["f1", "0.5", "0.495", "-0.005", "worse ▼"]
    # lower is better: a smaller log loss is an improvement
    assert table_row(markdown, "log_loss") == ["log_loss", "0.45", "0.4", "-0.05", "better ▲"]
    assert table_row(markdown, "recall") == ["recall", "0.6", "0.6", "0", "same"]
    assert "| `tune.n_trials` | 15 | 40 |" in markdown
    assert "| `model.defaults.learning_rate` | 0.1 | 0.05 |" in markdown
    assert "| rows | 20,000 | 21,000 |" in markdown
    assert "| snapshot_sha256 | `aaaaaaaaaaaa` | `bbbbbbbbbbbb` |" in markdown
    assert re.search(
        r"\| regression \| f1 \| pass \| f1 [\d.]+ vs [\d.]+: worse by 0.005 \(<= tolerance 0.03\) \|",
        markdown,
    )

    referenced = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", markdown)
    assert sorted(referenced) == sorted(
        [
            "roc.png",
            "precision_recall.png",
            "confusion.png",
            "feature_importance.png",
            "optimization_history.png",
        ]
    )
    for name in referenced:
        data = (out / name).read_bytes()
        assert data.startswith(PNG_SIGNATURE), name
        assert len(data) > 1000, name
    assert json.loads((out / "verdict.json").read_text())["passed"] is True


def test_floor_failure_exits_non_zero_and_names_the_rule(tmp_path: Path) -> None:
    pr_metrics = {**BASE_METRICS, "recall": 0.30}  # below the 0.40 floor; nothing regresses beyond tolerance
    repo = make_repo(tmp_path, pr_metrics)
    out = tmp_path / "report"

    result = run_process(repo, out)

    assert result.returncode == build.EXIT_GATE_FAILED
    assert "gate failed: floor rule: recall 0.3 < floor 0.4" in result.stderr
    markdown = (out / "report.md").read_text()
    assert markdown.startswith("## ❌ Quality gate failed\n\n**Failed:** recall 0.3 < floor 0.4\n")
    assert "| floor | recall | **FAIL** | recall 0.3 < floor 0.4 |" in markdown


def test_regression_beyond_tolerance_fails_although_floors_pass(tmp_path: Path) -> None:
    pr_metrics = {**BASE_METRICS, "roc_auc": 0.78, "pr_auc": 0.54}  # -0.02 > 0.01 tolerance; -0.01 <= 0.02
    repo = make_repo(tmp_path, pr_metrics)
    out = tmp_path / "report"

    result = run_cli(repo, out)

    assert result.returncode == build.EXIT_GATE_FAILED
    assert re.search(
        r"gate failed: regression rule: roc_auc [\d.]+ vs [\d.]+: worse by 0.02 \(> tolerance 0.01\)",
        result.stderr,
    )
    assert "pr_auc" not in result.stderr
    verdict = json.loads((out / "verdict.json").read_text())
    assert verdict["passed"] is False
    assert [c["detail"] for c in verdict["checks"] if not c["passed"]] == verdict["failed"]
    assert [c["param"] for c in verdict["checks"] if not c["passed"]] == ["report.max_regression.roc_auc"]
    assert verdict["failed"][0].endswith(": worse by 0.02 (> tolerance 0.01)")


def test_a_pr_cannot_loosen_the_tolerance_that_judges_it(tmp_path: Path) -> None:
    pr_params = base_params()
    pr_params["report"]["max_regression"]["roc_auc"] = 0.5
    repo = make_repo(tmp_path, {**BASE_METRICS, "roc_auc": 0.78}, pr_params)

    result = run_cli(repo, tmp_path / "report")

    assert result.returncode == build.EXIT_GATE_FAILED
    markdown = (tmp_path / "report" / "report.md").read_text()
    assert "| `report.max_regression.roc_auc` | 0.01 | 0.5 |" in markdown
    assert "the base revision's apply to it" in markdown


def test_base_without_metrics_is_said_plainly_and_only_floors_judge(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "README.md").write_text("before the pipeline ran\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "base")
    write_outputs(repo, BASE_METRICS, base_params(), snapshot="c" * 64, rows=100, shape=0.5)

    result = run_cli(repo, tmp_path / "report", base="HEAD")  # the PR: the uncommitted working tree

    assert result.returncode == 0, result.stderr
    markdown = (tmp_path / "report" / "report.md").read_text()
    assert "has no committed `metrics/evaluate.json`: the base column is empty" in markdown
    assert "regressions against it are not checked" in markdown
    assert table_row(markdown, "roc_auc") == ["roc_auc", "—", "0.8", "—", ""]
    assert "**roc_auc** **0.8**; base `HEAD" in markdown


def test_comment_variant_points_images_at_the_given_url(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, dict(BASE_METRICS))
    url = "https://github.com/o/r/raw/report-assets/pr-7/abc"
    result = run_cli(repo, tmp_path / "report", "--image-url", url + "/")
    assert result.returncode == 0, result.stderr
    comment = (tmp_path / "report" / "comment.md").read_text()
    assert f"![ROC: base vs PR]({url}/roc.png)" in comment
    assert "](roc.png)" in (tmp_path / "report" / "report.md").read_text()


@pytest.mark.parametrize(
    ("base", "message"),
    [("no-such-branch", "--base no-such-branch: not a commit"), ("HEAD~5", "--base HEAD~5: not a commit")],
)
def test_unknown_base_revision_is_a_clear_error(tmp_path: Path, base: str, message: str) -> None:
    repo = make_repo(tmp_path, dict(BASE_METRICS))
    result = run_cli(repo, tmp_path / "r", base=base)
    assert result.returncode == 2
    assert message in result.stderr


def test_missing_pr_metrics_tell_the_user_to_run_the_pipeline(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, dict(BASE_METRICS))
    (repo / "metrics/evaluate.json").unlink()
    result = run_cli(repo, tmp_path / "report")
    assert result.returncode == 2
    assert "metrics/evaluate.json: not found in the working tree: run the pipeline first" in result.stderr


def test_params_diff_lists_added_removed_and_changed_keys() -> None:
    diff = render.params_diff({"a": {"x": 1, "y": 2}, "gone": 1}, {"a": {"x": 1, "y": 3}, "new": {"k": "v"}})
    assert diff == [("a.y", 2, 3), ("gone", 1, None), ("new.k", None, "v")]


def test_a_pr_cannot_lower_the_floor_that_judges_it(tmp_path: Path) -> None:
    pr_params = base_params()
    pr_params["evaluate"]["gate"]["recall"] = 0.2  # evaluate, run with the PR's params, passes recall 0.3
    repo = make_repo(tmp_path, {**BASE_METRICS, "recall": 0.3}, pr_params)

    result = run_cli(repo, tmp_path / "report")

    assert result.returncode == build.EXIT_GATE_FAILED
    assert "recall 0.3 < the base's floor 0.4 (this PR lowers it to 0.2" in result.stderr
    markdown = (tmp_path / "report" / "report.md").read_text()
    assert "| floor | recall | pass | recall 0.3 >= floor 0.2 |" in markdown
    assert "| `evaluate.gate.recall` | 0.4 | 0.2 |" in markdown


def test_a_floor_removed_by_the_pr_still_applies() -> None:
    pr_gate = gate_json({"roc_auc": 0.8}, {"roc_auc": 0.7})  # the PR's gate dropped the recall floor
    rules = gate.floor_checks(
        pr_gate, base_floors={"roc_auc": 0.7, "recall": 0.4}, pr_metrics={"roc_auc": 0.8, "recall": 0.3}
    )
    assert [(rule.metric, rule.passed) for rule in rules] == [("roc_auc", True), ("recall", False)]
    assert (
        rules[1].detail
        == "recall 0.3 < the base's floor 0.4 (this PR removes it; merge a gate change on its own)"
    )


def test_retrain_pr_is_judged_against_the_champion_on_its_own_test_window(tmp_path: Path) -> None:
    # After drift the challenger scores lower than the base's numbers from an older window, but it beats the
    # production model on the new window: the retrain job recorded that in lineage/, and the gate uses it.
    pr_metrics = {**BASE_METRICS, "roc_auc": 0.74, "pr_auc": 0.50, "f1": 0.45}
    repo = make_repo(tmp_path, pr_metrics)
    assert (
        run_cli(repo, tmp_path / "without").returncode == 1
    )  # against the base's older window: a regression

    champion = {**BASE_METRICS, "roc_auc": 0.55, "pr_auc": 0.30, "f1": 0.36}
    record = {
        "model_version": "abc",
        "data": {"snapshot_sha256": "b" * 64},
        "metrics": {"champion_on_test_window": champion},
    }
    (repo / "lineage").mkdir()
    (repo / "lineage/abc.json").write_text(json.dumps(record))
    result = run_cli(repo, tmp_path / "with")
    assert result.returncode == 0, result.stderr
    markdown = (tmp_path / "with/report.md").read_text()
    assert "production model scored on this pull request's test window (lineage/abc.json)" in markdown
    assert "roc_auc 0.74 vs 0.55: not worse (tolerance 0.01)" in markdown

    record["data"]["snapshot_sha256"] = "c" * 64  # a record about other data is no yardstick
    (repo / "lineage/abc.json").write_text(json.dumps(record))
    assert run_cli(repo, tmp_path / "other").returncode == 1
