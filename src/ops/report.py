"""The pull-request report: what a change did to the model compared with its base, and the gate verdict.

`python -m ops.report --base REV --out report/` compares the pipeline outputs in the working tree
(the PR) with the ones committed at REV (the base: metrics/*.json and plots/evaluate/*.json are in git, see
docs/contracts.md) and writes report/report.md with PNG images beside it, referenced relatively.

The gate has two kinds of rules and fails the command (exit status 1) when any rule fails:
- the absolute floors of params.yaml `evaluate.gate`, as recorded by `evaluate` in metrics/gate.json (where a
  PR lowers a floor, the base's floor applies too);
- no metric of `report.max_regression` may get worse than the base by more than its tolerance. The tolerances
  come from the base revision's params.yaml when it has them, so a pull request cannot loosen the rule that
  judges it (a change to them shows in the params diff and applies from the next pull request on).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mlcore.errors import PipelineError, cli_entrypoint
from mlcore.io import atomic_write, write_json
from ops.repo import Reader, git_reader, resolve_revision, worktree_reader

EXIT_GATE_FAILED = 1

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

# Metrics shown in the table, in this order; others found in metrics/evaluate.json follow.
METRIC_ORDER = ("roc_auc", "pr_auc", "f1", "precision", "recall", "accuracy", "log_loss", "brier")
# Descriptive numbers: shown, never judged as better or worse.
CONTEXT_KEYS = ("n_test", "positive_rate", "threshold")
DATA_KEYS = ("snapshot_sha256", "rows", "window_start", "window_end", "cutoff", "positive_rate")


class ReportParams(BaseModel):
    """params.yaml `report:`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_regression: dict[str, float] = Field(default_factory=dict)
    lower_is_better: list[str] = Field(default_factory=lambda: ["log_loss", "brier"])


# --------------------------------------------------------------------------------------------------- reading


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


def report_params(params: Mapping[str, Any] | None, source: str) -> ReportParams | None:
    if not params or "report" not in params:
        return None
    try:
        return ReportParams.model_validate(params["report"] or {})
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(part) for part in first["loc"])
        raise PipelineError(f"{source}: report.{key}: {first['msg']}") from exc


# ------------------------------------------------------------------------------------------------------ gate


@dataclass(frozen=True)
class Rule:
    name: str  # "floor" | "regression"
    metric: str
    passed: bool
    detail: str


@dataclass(frozen=True)
class Verdict:
    passed: bool
    rules: list[Rule]
    notes: list[str] = field(default_factory=list)

    @property
    def failed(self) -> list[Rule]:
        return [rule for rule in self.rules if not rule.passed]


def _number(value: Any) -> int | float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        return None
    return value


def floor_rules(
    gate: Mapping[str, Any] | None,
    base_floors: Mapping[str, Any] | None = None,
    pr_metrics: Mapping[str, Any] | None = None,
) -> list[Rule]:
    """The floors as `evaluate` recorded them; where the PR lowered a floor, the base's floor also applies."""
    if gate is None:
        raise PipelineError(f"{GATE}: not found in the working tree: run the pipeline first (`make run`)")
    rules = []
    for entry in gate.get("rules", []):
        try:
            metric, floor, value, passed = entry["metric"], entry["floor"], entry["value"], entry["passed"]
        except (KeyError, TypeError) as exc:
            raise PipelineError(f"{GATE}: each rule needs metric, floor, value and passed") from exc
        relation = ">=" if passed else "<"
        rules.append(
            Rule("floor", metric, bool(passed), f"{metric} {_fmt(value)} {relation} floor {_fmt(floor)}")
        )
        base_floor = _number((base_floors or {}).get(metric))
        if base_floor is not None and _number(floor) is not None and base_floor > _number(floor):
            ok = _number(value) is not None and value >= base_floor
            detail = (
                f"{metric} {_fmt(value)} {'>=' if ok else '<'} the base's floor {_fmt(base_floor)} "
                f"(this PR lowers it to {_fmt(floor)}; merge a gate change on its own)"
            )
            rules.append(Rule("floor", metric, ok, detail))
    recorded = {rule.metric for rule in rules}
    for metric, base_floor in (base_floors or {}).items():
        if metric not in recorded and _number(base_floor) is not None:
            value = _number((pr_metrics or {}).get(metric))
            ok = value is not None and value >= base_floor
            detail = (
                f"{metric} {_fmt(value)} {'>=' if ok else '<'} the base's floor {_fmt(base_floor)} "
                "(this PR removes it; merge a gate change on its own)"
            )
            rules.append(Rule("floor", metric, ok, detail))
    if not rules and gate.get("passed") is False:
        rules.append(Rule("floor", "-", False, f"{GATE} says the gate failed: {gate.get('failed')}"))
    return rules


def regression_rules(
    base: Mapping[str, Any] | None, pr: Mapping[str, Any], policy: ReportParams
) -> tuple[list[Rule], list[str]]:
    if not policy.max_regression:
        return [], [
            "no `report.max_regression` tolerances in params.yaml: "
            "regressions against the base are not checked"
        ]
    if base is None:
        return [], [f"the base revision has no committed {EVALUATE}: regressions against it are not checked"]
    rules, notes = [], []
    for metric, tolerance in policy.max_regression.items():
        old, new = _number(base.get(metric)), _number(pr.get(metric))
        if old is None or new is None:
            notes.append(f"{metric}: missing on one side, regression not checked")
            continue
        worse_by = (new - old) if metric in policy.lower_is_better else (old - new)
        passed = worse_by <= tolerance + 1e-12
        if worse_by > 0:
            relation = "<=" if passed else ">"
            detail = f"{metric} worse than base by {_fmt(worse_by)} ({relation} tolerance {_fmt(tolerance)})"
        else:
            detail = f"{metric} not worse than base ({_fmt(old)} -> {_fmt(new)}; tolerance {_fmt(tolerance)})"
        rules.append(Rule("regression", metric, passed, detail))
    return rules, notes


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


def judge(
    base: Outputs,
    pr: Outputs,
    pr_policy: ReportParams | None,
    base_policy: ReportParams | None,
    same_window_base: tuple[dict[str, Any] | None, str | None] = (None, None),
) -> Verdict:
    if pr.evaluate is None:
        raise PipelineError(f"{EVALUATE}: not found in the working tree: run the pipeline first (`make run`)")
    notes = []
    policy = base_policy or pr_policy or ReportParams()
    if base_policy is not None and pr_policy is not None and pr_policy != base_policy:
        notes.append(
            "this pull request changes `report:` tolerances: "
            "the base revision's apply to it, the new ones to later pull requests"
        )
    base_floors = ((base.params or {}).get("evaluate") or {}).get("gate")
    rules = floor_rules(pr.gate, base_floors if isinstance(base_floors, dict) else None, pr.evaluate)
    champion, source = same_window_base
    if champion is not None:
        notes.append(
            f"the training data changed: regressions are checked against the production model scored on this "
            f"pull request's test window ({source}), not against the base's older window"
        )
    more_rules, more_notes = regression_rules(
        champion if champion is not None else base.evaluate, pr.evaluate, policy
    )
    rules += more_rules
    notes += more_notes
    return Verdict(passed=all(rule.passed for rule in rules), rules=rules, notes=notes)


# ---------------------------------------------------------------------------------------------- comparisons


def _fmt(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.4f}".rstrip("0").rstrip(".") if abs(value) < 1e6 else f"{value:.4g}"
    return str(value)


@dataclass(frozen=True)
class MetricRow:
    metric: str
    base: int | float | None
    pr: int | float | None
    delta: int | float | None
    change: str  # "better" | "worse" | "same" | "" (not comparable or not judged)


def metric_rows(
    base: Mapping[str, Any] | None, pr: Mapping[str, Any], lower_is_better: Sequence[str]
) -> list[MetricRow]:
    base = base or {}
    judged = [m for m in METRIC_ORDER if m in pr or m in base]
    others = sorted(k for k in {*pr, *base} if k not in judged and k not in CONTEXT_KEYS)
    rows = []
    for metric in [*judged, *others, *[k for k in CONTEXT_KEYS if k in pr or k in base]]:
        old, new = _number(base.get(metric)), _number(pr.get(metric))
        delta = None if old is None or new is None else new - old
        change = ""
        if delta is not None and metric not in CONTEXT_KEYS:
            if abs(delta) < 5e-5:
                change = "same"
            else:
                better = delta < 0 if metric in lower_is_better else delta > 0
                change = "better" if better else "worse"
        rows.append(MetricRow(metric, old, new, delta, change))
    return rows


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(tree, dict):
        flat: dict[str, Any] = {}
        for key, value in tree.items():
            flat.update(flatten(value, f"{prefix}{key}."))
        return flat
    return {prefix.rstrip("."): tree}


def params_diff(base: Mapping[str, Any] | None, pr: Mapping[str, Any] | None) -> list[tuple[str, Any, Any]]:
    """(key, base value, PR value) for each dotted params.yaml key that differs; None = absent there."""
    old, new = flatten(dict(base or {})), flatten(dict(pr or {}))
    return [(key, old.get(key), new.get(key)) for key in sorted({*old, *new}) if old.get(key) != new.get(key)]


# -------------------------------------------------------------------------------------------------- images


def _figure(width: float = 5.5, height: float = 4.2):
    # Figure without pyplot: no global state, no GUI backend, the Agg canvas renders the PNG.
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    return fig, fig.subplots()


def _save(fig, path: Path) -> Path:
    return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", metadata={"Software": None}))


def _xy(
    points: list[dict[str, Any]] | None, x: str, y: str, path: str, label: str
) -> tuple[list, list] | None:
    if not points:
        return None
    try:
        return [float(p[x]) for p in points], [float(p[y]) for p in points]
    except (KeyError, TypeError, ValueError) as exc:
        raise PipelineError(f"{path} ({label}): every point needs numeric '{x}' and '{y}'") from exc


def plot_curves(
    base: Outputs, pr: Outputs, attr: str, path: str, x: str, y: str, title: str, out: Path
) -> Path | None:
    curves = [(side, _xy(getattr(side, attr), x, y, path, side.label)) for side in (base, pr)]
    if all(points is None for _, points in curves):
        return None
    fig, ax = _figure()
    styles = {base.label: {"color": "#7f7f7f", "linestyle": "--"}, pr.label: {"color": "#1f77b4"}}
    for side, points in curves:
        if points is not None:
            ax.plot(*points, label=side.label, linewidth=2, **styles[side.label])
    if attr == "roc":
        ax.plot([0, 1], [0, 1], color="#cccccc", linewidth=1, label="chance")
    ax.set(xlabel=x, ylabel=y, title=title, xlim=(0, 1), ylim=(0, 1.02))
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right" if attr == "roc" else "lower left")
    return _save(fig, out)


def confusion_counts(
    rows: list[dict[str, Any]] | None, label: str
) -> tuple[list[str], list[list[int]]] | None:
    if not rows:
        return None
    try:
        pairs = [(str(row["actual"]), str(row["predicted"])) for row in rows]
    except (KeyError, TypeError) as exc:
        raise PipelineError(f"{CONFUSION} ({label}): every row needs 'actual' and 'predicted'") from exc
    classes = sorted({c for pair in pairs for c in pair})
    index = {c: i for i, c in enumerate(classes)}
    counts = [[0] * len(classes) for _ in classes]
    for actual, predicted in pairs:
        counts[index[actual]][index[predicted]] += 1
    return classes, counts


def plot_confusion(base: Outputs, pr: Outputs, out: Path) -> Path | None:
    sides = [(side, confusion_counts(side.confusion, side.label)) for side in (base, pr)]
    sides = [(side, counts) for side, counts in sides if counts is not None]
    if not sides:
        return None
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.2 * len(sides), 3.8), dpi=100, layout="constrained")
    axes = fig.subplots(1, len(sides), squeeze=False)[0]
    for ax, (side, (classes, counts)) in zip(axes, sides, strict=True):
        peak = max(max(row) for row in counts) or 1
        ax.imshow(counts, cmap="Blues", vmin=0, vmax=peak)
        for i, row in enumerate(counts):
            for j, count in enumerate(row):
                ax.text(
                    j,
                    i,
                    f"{count:,}",
                    ha="center",
                    va="center",
                    color="white" if count > peak / 2 else "black",
                )
        ax.set(
            xticks=range(len(classes)),
            yticks=range(len(classes)),
            xticklabels=classes,
            yticklabels=classes,
            xlabel="predicted",
            ylabel="actual",
            title=side.label,
        )
    return _save(fig, out)


def plot_feature_importance(base: Outputs, pr: Outputs, out: Path, top: int = 15) -> Path | None:
    def as_dict(side: Outputs) -> dict[str, float] | None:
        if not side.feature_importance:
            return None
        try:
            return {str(r["feature"]): float(r["importance"]) for r in side.feature_importance}
        except (KeyError, TypeError, ValueError) as exc:
            raise PipelineError(
                f"{FEATURE_IMPORTANCE} ({side.label}): rows need 'feature' and numeric 'importance'"
            ) from exc

    old, new = as_dict(base), as_dict(pr)
    if new is None and old is None:
        return None
    ranking = new if new is not None else old
    features = sorted(ranking, key=lambda name: ranking[name], reverse=True)[:top][::-1]
    fig, ax = _figure(6.5, 0.35 * len(features) + 1.5)
    positions = list(range(len(features)))
    height = 0.4 if old is not None and new is not None else 0.8
    if old is not None:
        shift = height / 2 if new is not None else 0
        ax.barh(
            [p - shift for p in positions],
            [old.get(f, 0.0) for f in features],
            height,
            color="#bbbbbb",
            label=base.label,
        )
    if new is not None:
        shift = height / 2 if old is not None else 0
        ax.barh(
            [p + shift for p in positions],
            [new.get(f, 0.0) for f in features],
            height,
            color="#1f77b4",
            label=pr.label,
        )
    ax.set(yticks=positions, yticklabels=features, xlabel="importance", title="Feature importance")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(loc="lower right")
    return _save(fig, out)


# ------------------------------------------------------------------------------------------------ markdown


def _cell(value: Any, limit: int = 60) -> str:
    """A table cell: one line, pipes escaped, long values (a SQL query) shortened."""
    text = _fmt(value) if not isinstance(value, str) else value
    text = text.replace("\n", " ").replace("|", "\\|")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _signed(delta: float | None) -> str:
    if delta is None:
        return "—"
    return ("+" if delta > 0 else "") + _fmt(delta)


CHANGE_MARK = {"better": "better ▲", "worse": "worse ▼", "same": "same", "": ""}


def render_markdown(
    *,
    verdict: Verdict,
    base: Outputs,
    pr: Outputs,
    base_ref: str,
    rows: list[MetricRow],
    diff: list[tuple[str, Any, Any]],
    images: Mapping[str, str],
    headline: str,
) -> str:
    lines: list[str] = []
    if verdict.passed:
        lines.append("## ✅ Quality gate passed")
    else:
        reasons = "; ".join(rule.detail for rule in verdict.failed)
        lines.append("## ❌ Quality gate failed")
        lines += ["", f"**Failed:** {reasons}"]
    head = next((row for row in rows if row.metric == headline), None)
    if head is not None and head.base is not None:
        lines += [
            "",
            f"**{headline}** {_fmt(head.base)} → **{_fmt(head.pr)}** ({_signed(head.delta)}) "
            f"against base `{base_ref}`.",
        ]
    elif head is not None:
        lines += [
            "",
            f"**{headline}** **{_fmt(head.pr)}**; base `{base_ref}` has no metrics to compare with.",
        ]
    lines += ["", "| rule | metric | result | detail |", "|---|---|---|---|"]
    lines += [
        f"| {rule.name} | {rule.metric} | {'pass' if rule.passed else '**FAIL**'} "
        f"| {_cell(rule.detail, limit=200)} |"
        for rule in verdict.rules
    ]
    if verdict.notes:
        lines += ["", *[f"- note: {note}" for note in verdict.notes]]

    lines += ["", "### Metrics (test window)", ""]
    if base.evaluate is None:
        lines += [f"> Base `{base_ref}` has no committed `{EVALUATE}`: the base column is empty.", ""]
    lines += ["| metric | base | PR | Δ | |", "|---|---:|---:|---:|---|"]
    lines += [
        f"| {row.metric} | {_fmt(row.base)} | {_fmt(row.pr)} | {_signed(row.delta)} "
        f"| {CHANGE_MARK[row.change]} |"
        for row in rows
    ]

    lines += ["", "### Params diff", ""]
    if base.params is None:
        lines.append(f"> Base `{base_ref}` has no `{PARAMS}`.")
    elif not diff:
        lines.append("No change to params.yaml.")
    else:
        lines += ["| key | base | PR |", "|---|---|---|"]
        lines += [f"| `{key}` | {_cell(old)} | {_cell(new)} |" for key, old, new in diff]

    lines += ["", "### Data version", ""]
    if pr.data is None and base.data is None:
        lines.append(f"> `{DATA}` is absent on both sides.")
    else:
        lines += ["| | base | PR |", "|---|---|---|"]
        for key in DATA_KEYS:
            old, new = (base.data or {}).get(key), (pr.data or {}).get(key)
            if key == "snapshot_sha256":
                old, new = (f"`{v[:12]}`" if isinstance(v, str) else v for v in (old, new))
            lines.append(f"| {key} | {_cell(old)} | {_cell(new)} |")

    lines += ["", "### Curves", ""]
    for key, title in (("roc", "ROC"), ("precision_recall", "Precision-recall")):
        if key in images:
            lines += [f"![{title}: base vs PR]({images[key]})", ""]
    if "confusion" in images:
        lines += ["", "### Confusion matrix", "", f"![Confusion matrix]({images['confusion']})"]
    if "feature_importance" in images:
        lines += ["", "### Feature importance", "", f"![Feature importance]({images['feature_importance']})"]
    lines += ["", "### Hyperparameter search (Optuna)", ""]
    if pr.tune:
        tune = pr.tune
        lines.append(
            f"Best {tune.get('metric', '?')} {_fmt(tune.get('best_value'))} "
            f"at trial {_fmt(tune.get('best_trial'))}; "
            f"{_fmt(tune.get('n_trials_complete'))} trials complete, "
            f"{_fmt(tune.get('n_trials_pruned'))} pruned."
        )
    if "optuna_history" in images:
        lines += ["", f"![Optuna optimisation history]({images['optuna_history']})"]
    elif not pr.tune:
        lines.append(f"> No `{OPTUNA_HISTORY}` in the working tree.")
    lines += [
        "",
        f"<sub>Base: `{base_ref}`. Generated by `make report` (src/ops/report.py).</sub>",
        "",
    ]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------- build


@dataclass(frozen=True)
class Report:
    verdict: Verdict
    markdown: Path
    images: dict[str, Path]


def build_report(
    root: Path, base_rev: str, out: Path, image_url: str | None = None, pull_request: int | None = None
) -> Report:
    """Compare the working tree at `root` with commit `base_rev`; write out/report.md and PNGs beside it."""
    commit = resolve_revision(root, base_rev, name=f"--base {base_rev}")
    base_ref = f"{base_rev} ({commit[:8]})" if not commit.startswith(base_rev) else commit[:8]
    base = read_outputs(git_reader(root, commit), "base")
    pr = read_outputs(worktree_reader(root), "PR")
    if pr.params is None:
        raise PipelineError(f"{root / PARAMS}: file not found")

    pr_policy = report_params(pr.params, f"{PARAMS} (PR)")
    base_policy = report_params(base.params, f"{PARAMS} (base {base_rev})")
    verdict = judge(base, pr, pr_policy, base_policy, champion_on_same_window(root, pr, base))
    lower_is_better = (base_policy or pr_policy or ReportParams()).lower_is_better

    out.mkdir(parents=True, exist_ok=True)
    images: dict[str, Path] = {}
    made = {
        "roc": plot_curves(base, pr, "roc", ROC, "fpr", "tpr", "ROC curve", out / "roc.png"),
        "precision_recall": plot_curves(
            base,
            pr,
            "precision_recall",
            PRECISION_RECALL,
            "recall",
            "precision",
            "Precision-recall curve",
            out / "precision_recall.png",
        ),
        "confusion": plot_confusion(base, pr, out / "confusion.png"),
        "feature_importance": plot_feature_importance(base, pr, out / "feature_importance.png"),
    }
    images.update({key: path for key, path in made.items() if path is not None})
    if pr.optuna_history_png is not None:
        images["optuna_history"] = atomic_write(
            out / "optimization_history.png", lambda tmp: tmp.write_bytes(pr.optuna_history_png)
        )

    headline = str((pr.params.get("tune") or {}).get("metric", "roc_auc"))
    kwargs = dict(
        verdict=verdict,
        base=base,
        pr=pr,
        base_ref=base_ref,
        rows=metric_rows(base.evaluate, pr.evaluate, lower_is_better),
        diff=params_diff(base.params, pr.params),
        headline=headline,
    )
    text = render_markdown(images={k: p.name for k, p in images.items()}, **kwargs)
    markdown = atomic_write(out / "report.md", lambda tmp: tmp.write_text(text, encoding="utf-8"))
    if image_url:
        # The same report with absolute image links, for the PR comment (.github/workflows/pr-comment.yaml).
        prefix = image_url.rstrip("/")
        comment = render_markdown(images={k: f"{prefix}/{p.name}" for k, p in images.items()}, **kwargs)
        atomic_write(out / "comment.md", lambda tmp: tmp.write_text(comment, encoding="utf-8"))
    write_json(
        out / "verdict.json",
        {
            "passed": verdict.passed,
            "base": commit,
            "failed": [rule.detail for rule in verdict.failed],
            "pull_request": pull_request,
        },
    )
    return Report(verdict=verdict, markdown=markdown, images=images)


@cli_entrypoint
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--base", required=True, help="git revision to compare with (e.g. origin/main, HEAD~1)"
    )
    parser.add_argument(
        "--out", type=Path, default=Path("report"), help="directory for report.md and the PNGs"
    )
    parser.add_argument(
        "--root", type=Path, default=Path("."), help="repository root (the PR's working tree)"
    )
    parser.add_argument(
        "--image-url",
        default=None,
        help="also write comment.md with images at this URL prefix (where pr-comment.yaml publishes them)",
    )
    parser.add_argument("--pr", type=int, default=None, help="pull request number, recorded in verdict.json")
    args = parser.parse_args(argv)
    report = build_report(
        args.root.resolve(), args.base, args.out, image_url=args.image_url, pull_request=args.pr
    )
    print(f"report: {report.markdown} ({len(report.images)} images)")
    if not report.verdict.passed:
        for rule in report.verdict.failed:
            print(f"gate failed: {rule.name} rule: {rule.detail}", file=sys.stderr)
        return EXIT_GATE_FAILED
    print("gate passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
