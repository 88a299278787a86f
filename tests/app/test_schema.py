"""Column-wise batch validation gives exactly the result of record-by-record validation."""

from __future__ import annotations

import numpy as np
import pytest

from app.schema import (
    COLUMNS_MIN_RECORDS,
    Feature,
    RecordError,
    RecordValidator,
    parse_features,
    parse_metadata,
)

FEATURES = [
    Feature("age", "int", min=0, max=120),
    Feature("income", "float", nullable=True, min=0.0),
    Feature("score", "float"),
    Feature("plan", "category", allowed=("basic", "pro")),
    Feature("region", "category", nullable=True, allowed=("east", "west")),
]
VALID = {"age": 30, "income": 1000.5, "score": -2.0, "plan": "pro", "region": "east"}
# values that must be rejected, per feature
BAD = {
    "age": [-1, 121, 2.5, "30", True, None, float("inf")],
    "income": [-0.5, "x", False, float("nan")],
    "score": [None, "1", [1], {"a": 1}, float("-inf")],
    "plan": ["gold", 1, None, True],
    "region": ["north", 3],
}
GOOD = {
    "age": [0, 120, 7.0, 45],
    "income": [None, 0, 12, 3.25],
    "score": [-1e300, 0, 7, 1.5],
    "plan": ["basic", "pro"],
    "region": [None, "west"],
}


def _record(rng: np.random.Generator) -> dict:
    record = {name: values[rng.integers(len(values))] for name, values in GOOD.items()}
    if rng.random() < 0.2:
        record.pop(("income", "region")[rng.integers(2)])  # nullable features may be omitted
    return record


def _row_by_row(validator: RecordValidator, records: list) -> list:
    return [validator.validate(r, i) for i, r in enumerate(records)]


def test_valid_batches_give_the_same_values_column_by_column():
    validator = RecordValidator(FEATURES)
    rng = np.random.default_rng(0)
    records = [_record(rng) for _ in range(200)]
    columns = validator.columns(records)
    rows = _row_by_row(validator, records)
    for j, feature in enumerate(FEATURES):
        expected = [row[j] for row in rows]
        if feature.type == "category":
            assert list(columns[j]) == expected
        else:
            assert columns[j].dtype == float
            np.testing.assert_array_equal(columns[j], np.array(expected, dtype=float))


@pytest.mark.parametrize("seed", range(40))
def test_invalid_batches_raise_the_first_record_by_record_error(seed):
    validator = RecordValidator(FEATURES)
    rng = np.random.default_rng(seed)
    records: list = [_record(rng) for _ in range(int(rng.integers(COLUMNS_MIN_RECORDS, 80)))]
    for _ in range(int(rng.integers(1, 4))):  # one to three bad records anywhere
        i = int(rng.integers(len(records)))
        kind = rng.integers(4)
        if kind == 0:
            name = list(BAD)[rng.integers(len(BAD))]
            records[i] = records[i] | {name: BAD[name][rng.integers(len(BAD[name]))]}
        elif kind == 1:
            records[i] = {k: v for k, v in records[i].items() if k not in ("age", "plan")}
        elif kind == 2:
            records[i] = records[i] | {"colour": "red"}
        else:
            records[i] = ["not", "an", "object"]
    with pytest.raises(RecordError) as expected:
        _row_by_row(validator, records)
    with pytest.raises(RecordError) as got:
        validator.columns(records)
    assert got.value.as_dict() == expected.value.as_dict()


GOOD_METADATA = {
    "threshold": 0.5,
    "libraries": {"scikit-learn": "1.9.1"},
    "example": {"age": 30, "plan": "basic"},
    "features": [
        {"name": "age", "type": "int", "nullable": False, "min": 0, "max": 120, "allowed": None},
        {
            "name": "plan",
            "type": "category",
            "nullable": True,
            "min": None,
            "max": None,
            "allowed": ["basic"],
        },
    ],
}


def _with(**changes):
    meta = {**GOOD_METADATA, "features": [dict(f) for f in GOOD_METADATA["features"]]}
    for key, value in changes.items():
        if key.startswith("age_"):
            meta["features"][0][key[4:]] = value
        elif key.startswith("plan_"):
            meta["features"][1][key[5:]] = value
        else:
            meta[key] = value
    return meta


BAD_METADATA = [
    (_with(threshold="abc"), "'threshold' must be a number strictly between 0 and 1, not 'abc'"),
    (_with(threshold=2), "strictly between 0 and 1, not 2"),
    (_with(threshold=1), "strictly between 0 and 1, not 1"),
    (_with(threshold=float("nan")), "strictly between 0 and 1"),
    (_with(threshold=None), "strictly between 0 and 1, not None"),
    (_with(libraries=None), "'libraries' must record the 'scikit-learn' version"),
    (_with(example=[1]), "'example' must be a record"),
    (_with(features=None), "'features' must be a non-empty list"),
    (_with(age_name=""), "features[0] needs a 'name'"),
    (_with(plan_name="age"), "features[1] (age): the name appears twice"),
    (_with(age_type="date"), "type must be one of"),
    (_with(age_min="0"), "features[0] (age): 'min' must be a finite number or null, not '0'"),
    (_with(age_max=True), "'max' must be a finite number or null, not True"),
    (_with(age_max=float("inf")), "'max' must be a finite number or null"),
    (_with(age_min=10, age_max=5), "'min' 10 is above 'max' 5"),
    (_with(age_nullable="false"), "'nullable' must be true or false, not 'false'"),
    (_with(age_allowed=["x"]), "only a category takes 'allowed'"),
    (_with(plan_allowed=[]), "a category needs 'allowed'"),
    (_with(plan_allowed=["a", "a"]), "a list of distinct strings"),
    (_with(plan_allowed=[1]), "a list of distinct strings"),
    (_with(plan_max=3), "a category takes no 'min'/'max'"),
    (_with(project="Acme"), "'project' must be an object whose 'title' and 'description' are strings"),
    (_with(project={"title": 3}), "'project' must be an object whose 'title' and 'description' are strings"),
]


def test_good_metadata_parses_to_typed_fields():
    served = parse_metadata(GOOD_METADATA)
    assert (served.threshold, served.trained_with, served.example) == (0.5, "1.9.1", GOOD_METADATA["example"])
    assert (served.title, served.description) == (None, None)  # a model trained before `project` existed
    titled = parse_metadata(_with(project={"name": "acme", "title": "Acme API", "description": "Scores."}))
    assert (titled.title, titled.description) == ("Acme API", "Scores.")
    assert served.features == [
        Feature("age", "int", nullable=False, min=0, max=120),
        Feature("plan", "category", nullable=True, allowed=("basic",)),
    ]


@pytest.mark.parametrize(("metadata", "reason"), BAD_METADATA, ids=[r for _, r in BAD_METADATA])
def test_bad_metadata_is_refused_naming_the_field(metadata, reason):
    with pytest.raises(ValueError) as refused:
        parse_metadata(metadata)
    assert reason in str(refused.value)


def test_a_nullable_int_feature_takes_null_or_a_whole_number():
    # as train writes it into metadata.json (a nullable int column of the data contract)
    [tickets] = parse_features([{"name": "tickets", "type": "int", "nullable": True, "min": 0, "max": 100}])
    validator = RecordValidator([tickets])
    assert validator.validate({"tickets": None}) == [None]
    assert validator.validate({}) == [None]
    assert validator.validate({"tickets": 3}) == [3.0]
    with pytest.raises(RecordError, match="'tickets' must be an integer"):
        validator.validate({"tickets": 14.5})
    batch = [{"tickets": None}, {"tickets": 3}] * (COLUMNS_MIN_RECORDS // 2)
    [column] = validator.columns(batch)
    np.testing.assert_array_equal(column, [np.nan, 3.0] * (COLUMNS_MIN_RECORDS // 2))
