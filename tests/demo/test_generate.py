import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from demo.generate import (
    ARROW_SCHEMA,
    demo_params,
    generate_dataset,
    generate_month,
    main,
    month_range,
    month_records,
    write_month,
)
from mlcore.errors import PipelineError
from pipeline.config import load_params
from tests.support.paths import TEST_PARAMS

SEED = 7


@pytest.fixture(scope="module")
def schema():
    return load_params(TEST_PARAMS).schema


@pytest.fixture(scope="module")
def base_month():
    return generate_month("2024-03", 3000, SEED)


def test_same_inputs_give_identical_frames_and_file_bytes(tmp_path):
    first = generate_month("2024-01", 500, SEED, 0.3, 0.2)
    second = generate_month("2024-01", 500, SEED, 0.3, 0.2)
    pd.testing.assert_frame_equal(first, second)
    write_month(first, tmp_path / "a.parquet")
    write_month(second, tmp_path / "b.parquet")
    assert (tmp_path / "a.parquet").read_bytes() == (tmp_path / "b.parquet").read_bytes()
    assert not generate_month("2024-01", 500, SEED + 1).equals(first)


def test_columns_types_ranges_and_categories_follow_the_schema(base_month, schema):
    frame = base_month
    assert list(frame.columns) == ARROW_SCHEMA.names
    assert set(schema.features) | {schema.id_column, schema.time_column, schema.label} == set(frame.columns)
    for name, spec in schema.features.items():
        column = frame[name]
        assert spec.nullable or not column.isna().any(), name
        values = column.dropna()
        if spec.type == "category":
            assert set(values) <= set(spec.allowed), name
            assert set(values) == set(spec.allowed), f"{name}: every category should occur"
        else:
            kind = "i" if spec.type == "int" else "f"
            assert column.dtype.kind == kind, name
            assert values.min() >= spec.min and values.max() <= spec.max, name
    assert frame["customer_id"].map(type).eq(str).all() and frame["customer_id"].is_unique
    assert str(frame["event_time"].dtype) == "datetime64[us]"
    assert frame["event_time"].min() >= pd.Timestamp("2024-03-01")
    assert frame["event_time"].max() < pd.Timestamp("2024-04-01")
    assert frame["event_time"].dt.day.nunique() == 31  # spread over the whole month
    assert frame["event_time"].is_monotonic_increasing
    assert set(frame["churned"].unique()) == {0, 1}


def test_class_imbalance_and_missing_values_are_realistic(base_month):
    assert 0.15 <= base_month["churned"].mean() <= 0.25
    assert 0.01 <= base_month["total_charges"].isna().mean() <= 0.06
    assert 0.05 <= base_month["avg_session_minutes"].isna().mean() <= 0.12
    # new customers have no total yet
    assert base_month.loc[base_month["tenure_months"] == 0, "total_charges"].isna().all()


def test_covariate_drift_shifts_feature_distributions(base_month):
    drifted = generate_month("2024-03", 3000, SEED, covariate_drift=1.0)

    def share(frame, column, value):
        return (frame[column] == value).mean()

    assert share(drifted, "internet_service", "fiber") > share(base_month, "internet_service", "fiber") + 0.15
    monthly = ("contract", "month-to-month")
    assert share(drifted, *monthly) > share(base_month, *monthly) + 0.1
    assert drifted["monthly_charges"].mean() > base_month["monthly_charges"].mean() * 1.15
    assert drifted["support_tickets"].mean() > base_month["support_tickets"].mean() + 0.3


def _churn_by(frame, column, value):
    return frame.loc[frame[column] == value, "churned"].mean()


def test_concept_drift_changes_only_the_labels_and_how_features_relate_to_them(base_month):
    drifted = generate_month("2024-03", 3000, SEED, concept_drift=1.0)
    pd.testing.assert_frame_equal(drifted.drop(columns="churned"), base_month.drop(columns="churned"))
    # before: paying by electronic check goes with more churn; after: with less
    check, card = ("payment_method", "electronic-check"), ("payment_method", "credit-card")
    assert _churn_by(base_month, *check) > _churn_by(base_month, *card) + 0.05
    assert _churn_by(drifted, *check) < _churn_by(drifted, *card) - 0.05
    # after: region matters (south churns far more than west)
    assert _churn_by(drifted, "region", "south") > 2 * _churn_by(drifted, "region", "west")


@pytest.mark.slow
def test_model_trained_before_concept_drift_degrades_after_it_and_retraining_recovers():
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score
    from threadpoolctl import threadpool_limits

    def xy(frame):
        x = frame.drop(columns=["customer_id", "event_time", "churned"])
        for col in ["contract", "payment_method", "internet_service", "region"]:
            x[col] = pd.Categorical(x[col])
        return x, frame["churned"]

    def fit(frames):
        x, y = xy(pd.concat(frames))
        model = HistGradientBoostingClassifier(categorical_features="from_dtype", max_iter=60, random_state=0)
        with threadpool_limits(1):  # many small fits: threads only add contention
            return model.fit(x, y)

    def auc(model, frame):
        x, y = xy(frame)
        return roc_auc_score(y, model.predict_proba(x)[:, 1])

    before = fit([generate_month(m, 2000, SEED) for m in month_range("2024-01", 4)])
    test_before = generate_month("2024-06", 3000, SEED)
    test_after = generate_month("2024-06", 3000, SEED, concept_drift=1.0)
    after = fit([generate_month(m, 2000, SEED, concept_drift=1.0) for m in month_range("2024-01", 4)])
    assert 0.74 <= auc(before, test_before) <= 0.88  # realistic, not trivially separable
    assert auc(before, test_after) < auc(before, test_before) - 0.15
    assert auc(after, test_after) > auc(before, test_after) + 0.15


def test_appending_a_month_leaves_earlier_months_byte_identical(tmp_path):
    params = demo_params(TEST_PARAMS)
    params = params.model_copy(update={"months": 2, "rows_per_month": 100})
    first = generate_dataset(params, tmp_path / "two")
    longer = generate_dataset(params.model_copy(update={"months": 3}), tmp_path / "three")
    assert [p.name for p in longer] == ["2024-01.parquet", "2024-02.parquet", "2024-03.parquet"]
    for path in first:
        assert path.read_bytes() == (tmp_path / "three" / "events" / path.name).read_bytes()


def _params_file(tmp_path: Path, **data) -> Path:
    import yaml

    raw = yaml.safe_load(TEST_PARAMS.read_text())
    raw["data"].update(data)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_cli_writes_all_months_then_appends_a_drifted_month(tmp_path):
    params = _params_file(tmp_path, months=2, rows_per_month=50)
    assert main(["--params", str(params)]) == 0
    events = tmp_path / "data" / "events"
    before = {p.name: p.read_bytes() for p in events.iterdir()}
    assert sorted(before) == ["2024-01.parquet", "2024-02.parquet"]

    args = ["--params", str(params), "--append-month", "2024-03", "--rows", "80", "--concept-drift", "1"]
    assert main(args) == 0
    appended = pd.read_parquet(events / "2024-03.parquet")
    assert len(appended) == 80
    expected = generate_month("2024-03", 80, demo_params(params).seed, 0.0, 1.0)
    pd.testing.assert_frame_equal(appended, expected)
    assert {p.name: p.read_bytes() for p in events.iterdir() if p.name in before} == before


def test_cli_append_never_rewrites_an_existing_month(tmp_path, capsys):
    params = _params_file(tmp_path, months=1, rows_per_month=40)
    assert main(["--params", str(params)]) == 0
    existing = tmp_path / "data" / "events" / "2024-01.parquet"
    before = existing.read_bytes()
    # the same month again: identical bytes, nothing to do
    assert main(["--params", str(params), "--append-month", "2024-01"]) == 0
    assert "nothing to do" in capsys.readouterr().out
    # other data for a recorded month: refused, file untouched
    assert main(["--params", str(params), "--append-month", "2024-01", "--concept-drift", "1"]) == 2
    assert "already exists with other data" in capsys.readouterr().err
    assert existing.read_bytes() == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--append-month", "2024-13"], "month '2024-13': expected YYYY-MM"),
        (["--append-month", "2024-01", "--rows", "0"], "rows for 2024-01: must be at least 1"),
        (["--rows", "10"], "apply only with --append-month"),
        (["--append-month", "2024-01", "--concept-drift", "-1"], "must be >= 0"),
    ],
)
def test_cli_rejects_bad_arguments_with_one_line(tmp_path, capsys, args, message):
    params = _params_file(tmp_path, months=1, rows_per_month=10)
    assert main(["--params", str(params), "--out", str(tmp_path / "out"), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_month_records_are_json_ready_for_traffic_replay():
    records = month_records("2024-05", 200, SEED)
    assert len(records) == 200
    text = json.dumps(records)  # plain Python values only
    assert '"event_time": "2024-05-' in text
    missing = [r for r in records if r["avg_session_minutes"] is None]
    assert missing and all(isinstance(r["tenure_months"], int) for r in records)
    frame = generate_month("2024-05", 200, SEED)
    assert records[0]["customer_id"] == frame["customer_id"].iloc[0]
    assert np.isclose(records[0]["monthly_charges"], frame["monthly_charges"].iloc[0])


def test_bad_drift_or_size_is_a_pipeline_error():
    with pytest.raises(PipelineError, match="covariate_drift"):
        generate_month("2024-01", 10, SEED, covariate_drift=-0.5)
    with pytest.raises(PipelineError, match="expected YYYY-MM"):
        generate_month("24-01", 10, SEED)
