import json
from pathlib import Path

from ops.report import build
from ops.report.contract import compare
from tests.ops.test_report import (
    BASE_METRICS,
    FLOORS,
    base_params,
    make_repo,
    run_cli,
    run_process,
    table_row,
)


def _params(label="churned", **features):
    feats = features or {"a": {"type": "int", "min": 0, "max": 100}}
    return {"schema": {"id_column": "id", "time_column": "t", "label": label, "features": feats}}


def test_label_change_is_not_comparable():
    diff = compare(_params(), _params(label="diagnosis"))
    assert not diff.comparable
    assert "label churned -> diagnosis" in diff.reasons


def test_added_feature_is_not_comparable():
    head = _params(a={"type": "int", "min": 0, "max": 100}, b={"type": "float"})
    diff = compare(_params(), head)
    assert not diff.comparable and diff.added == ("b",)
    assert "1 -> 2 features (1 added, 0 removed)" in diff.summary(1, 2)


def test_type_change_is_not_comparable():
    diff = compare(_params(), _params(a={"type": "float", "min": 0, "max": 100}))
    assert not diff.comparable and diff.retyped == ("a (int -> float)",)


def test_range_widening_alone_stays_comparable_but_is_listed():
    diff = compare(_params(), _params(a={"type": "int", "min": 0, "max": 120}))
    assert diff.comparable
    assert diff.changed == ("a (max 100 -> 120)",)


# --- the contract change in the report, through the harness of tests/ops/test_report.py ---

LOW = {**BASE_METRICS, "roc_auc": 0.72, "pr_auc": 0.40, "f1": 0.40}  # far below the base, above its floors


def swapped_params(floors: dict | None = None) -> dict:
    """The base's params with another dataset: label churned -> diagnosis, 11 -> 33 features (30 added, 8 removed)."""
    params = base_params()
    kept = dict(list(params["schema"]["features"].items())[:3])
    params["schema"]["label"] = "diagnosis"
    params["schema"]["features"] = {**kept, **{f"f{i:02d}": {"type": "float"} for i in range(30)}}
    if floors is not None:
        params["evaluate"]["gate"] = floors
    return params


def test_a_data_swap_says_so_first_and_is_judged_by_the_floors_only(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, LOW, swapped_params())
    out = tmp_path / "report"

    result = run_process(repo, out)

    assert result.returncode == 0, result.stderr
    markdown = (out / "report.md").read_text()
    assert markdown.splitlines()[0] == (
        "> **Data contract changed:** label churned -> diagnosis; 11 -> 33 features (30 added, 8 removed). "
        "The base's metrics are not comparable: judged by the floors only."
    )
    assert "| metric | base (not comparable) | PR | Δ | |" in markdown
    assert table_row(markdown, "roc_auc")[1:4] == ["0.8", "0.72", "—"]
    verdict = json.loads((out / "verdict.json").read_text())
    assert verdict["comparable"] is False
    assert verdict["contract_reasons"] == ["label churned -> diagnosis"]
    assert {c["kind"] for c in verdict["checks"]} == {"floor"}
    assert any("not comparable" in note for note in verdict["notes"])


def test_the_same_metrics_fail_when_the_contract_is_unchanged(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, LOW)

    result = run_cli(repo, tmp_path / "report")

    assert result.returncode == build.EXIT_GATE_FAILED
    assert "regression rule: roc_auc" in result.stderr
    assert json.loads((tmp_path / "report" / "verdict.json").read_text())["comparable"] is True
    assert not (tmp_path / "report" / "report.md").read_text().startswith("> **Data contract changed")


def test_a_data_swap_is_judged_by_its_own_floors_not_the_bases(tmp_path: Path) -> None:
    # The head lowers roc_auc's floor for its dataset (0.6 < the base's 0.7) and meets it: passes.
    own = {**FLOORS, "roc_auc": 0.60}
    repo = make_repo(tmp_path, {**LOW, "roc_auc": 0.65}, swapped_params(own))
    assert run_cli(repo, tmp_path / "a").returncode == 0
    # A head below its own floor fails.
    (tmp_path / "b").mkdir()
    repo = make_repo(tmp_path / "b", {**LOW, "roc_auc": 0.55}, swapped_params(own))
    result = run_cli(repo, tmp_path / "b" / "report")
    assert result.returncode == build.EXIT_GATE_FAILED
    assert "floor rule: roc_auc 0.55 < floor 0.6" in result.stderr


def test_thirty_feature_change_is_one_line_per_kind_in_the_params_diff(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, LOW, swapped_params())
    run_cli(repo, tmp_path / "report")
    markdown = (tmp_path / "report" / "report.md").read_text()
    section = markdown.split("### Params diff")[1].split("###")[0]
    lines = [line for line in section.splitlines() if "schema.features" in line]
    assert len(lines) == 2  # added, removed
    assert "<details><summary>`schema.features` added (30)</summary>" in lines[0]
    assert lines[1].startswith("- `schema.features` removed (8): ")
    assert "| `schema.label` | churned | diagnosis |" in section


def test_a_widened_range_stays_comparable_and_is_grouped_too(tmp_path: Path) -> None:
    head = base_params()
    name = next(iter(head["schema"]["features"]))
    head["schema"]["features"][name]["max"] = 999
    repo = make_repo(tmp_path, BASE_METRICS, head)

    assert run_cli(repo, tmp_path / "report").returncode == 0
    markdown = (tmp_path / "report" / "report.md").read_text()
    assert markdown.startswith("## ✅ Quality gate passed")
    assert f"- `schema.features` changed (1): `{name} (max 120 -> 999)`" in markdown
    assert f"schema.features.{name}.max" not in markdown
