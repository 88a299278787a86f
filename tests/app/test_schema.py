"""Column-wise batch validation gives exactly the result of record-by-record validation."""

from __future__ import annotations

import numpy as np
import pytest

from app.schema import COLUMNS_MIN_RECORDS, Feature, RecordError, RecordValidator

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
