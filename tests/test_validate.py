import pytest

from pipeline.errors import PipelineError
from pipeline.validate import main, validate_snapshot
from tests.conftest import REPO_ROOT
from tests.factories import default_params, make_snapshot


def test_clean_snapshot_passes():
    report = validate_snapshot(make_snapshot(600), default_params().schema)
    assert report["passed"] is True
    assert report["rows"] == 600
    assert set(report["null_fraction"]) == {"total_charges", "avg_session_minutes"}


def _break(df, how):
    if how == "missing column":
        return df.drop(columns=["support_tickets"])
    if how == "wrong type":
        return df.assign(tenure_months=df["tenure_months"].astype(str))
    if how == "unknown category":
        df.loc[7, "contract"] = "weekly"
    elif how == "out of range":
        df.loc[3, "monthly_charges"] = -5.0
    elif how == "nan label":
        df["churned"] = df["churned"].astype(float)
        df.loc[2, "churned"] = float("nan")
    elif how == "null in non-nullable":
        df["region"] = df["region"].astype(object)
        df.loc[4, "region"] = None
    elif how == "too few rows":
        return df.head(10)
    return df


@pytest.mark.parametrize(
    ("how", "column", "rule"),
    [
        ("missing column", "support_tickets", "column_in_dataframe"),
        ("wrong type", "tenure_months", "type is int"),
        ("unknown category", "contract", "isin"),
        ("out of range", "monthly_charges", "greater_than_or_equal_to(0.0)"),
        ("nan label", "churned", "not_nullable"),
        ("null in non-nullable", "region", "not_nullable"),
        ("too few rows", None, "at least 500 rows"),
    ],
)
def test_each_broken_rule_is_reported(how, column, rule):
    report = validate_snapshot(_break(make_snapshot(600), how), default_params().schema)
    assert report["passed"] is False
    matching = [f for f in report["failures"] if f["column"] == column and rule in f["rule"]]
    assert matching, report["failures"]


def test_cli_fails_with_one_line_and_keeps_previous_report(tmp_path, capsys):
    snapshot, out = tmp_path / "snapshot.parquet", tmp_path / "validation.json"
    out.write_text('{"passed": true, "previous": 1}')
    df = make_snapshot(600)
    df.loc[7, "contract"] = "weekly"
    df.to_parquet(snapshot, index=False)
    status = main(
        ["--params", str(REPO_ROOT / "params.yaml"), "--snapshot", str(snapshot), "--out", str(out)]
    )
    assert status == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {snapshot}: column 'contract' breaks rule 'isin(")
    assert "weekly" in err and "\n" not in err
    assert out.read_text() == '{"passed": true, "previous": 1}'


def test_cli_writes_report_on_success(tmp_path):
    snapshot, out = tmp_path / "snapshot.parquet", tmp_path / "validation.json"
    make_snapshot(600).to_parquet(snapshot, index=False)
    assert (
        main(["--params", str(REPO_ROOT / "params.yaml"), "--snapshot", str(snapshot), "--out", str(out)])
        == 0
    )
    assert '"passed": true' in out.read_text()


def test_unreadable_snapshot_is_a_clear_error(tmp_path):
    with pytest.raises(PipelineError, match="cannot read snapshot"):
        from pipeline.validate import run_validate

        run_validate(REPO_ROOT / "params.yaml", tmp_path / "absent.parquet", tmp_path / "out.json")
