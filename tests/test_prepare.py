import pandas as pd
import pytest

from pipeline.errors import PipelineError
from pipeline.prepare import main, split_by_time
from tests.conftest import REPO_ROOT
from tests.factories import default_params, make_snapshot, params_with


def test_windows_are_ordered_in_time_with_no_overlap():
    params = default_params()
    splits = split_by_time(make_snapshot(2000, days=360), params.schema, params.prepare)
    t = {k: pd.to_datetime(v["event_time"]) for k, v in splits.items()}
    assert t["train"].max() < t["valid"].min()
    assert t["valid"].max() < t["test"].min()
    newest = max(s.max() for s in t.values())
    assert (newest - t["test"].min()).days < params.prepare.test_days
    assert sum(len(v) for v in splits.values()) == 2000


def test_split_keeps_only_contract_columns():
    params = default_params()
    df = make_snapshot(1000).assign(leaky_future_column=1)
    splits = split_by_time(df, params.schema, params.prepare)
    assert list(splits["train"].columns) == [
        "customer_id",
        "event_time",
        *params.schema.feature_names,
        "churned",
    ]


def test_empty_window_is_a_clear_error():
    params = params_with({"prepare.test_days": 400})  # the test window swallows all data: train is empty
    with pytest.raises(PipelineError, match=r"the train window has 0 rows .*prepare.valid_days/test_days"):
        split_by_time(make_snapshot(1000, days=360), params.schema, params.prepare)


def test_cli_refuses_a_failed_validation(tmp_path, capsys):
    snapshot = tmp_path / "snapshot.parquet"
    make_snapshot(800).to_parquet(snapshot, index=False)
    (tmp_path / "validation.json").write_text('{"passed": false}')
    status = main(
        [
            "--params",
            str(REPO_ROOT / "params.yaml"),
            "--snapshot",
            str(snapshot),
            "--validation",
            str(tmp_path / "validation.json"),
            "--out",
            str(tmp_path / "prepared"),
        ]
    )
    assert status == 2
    assert "did not pass validation" in capsys.readouterr().err
    assert not (tmp_path / "prepared").exists()
