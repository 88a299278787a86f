"""The synthetic example record: valid for the feature contract, built from its bounds and categories only."""

from __future__ import annotations

import pytest

from mlcore.example import example_record


def _feature(name: str, type_: str, **spec) -> dict:
    return {"name": name, "type": type_, "nullable": False, "min": None, "max": None, "allowed": None} | spec


@pytest.mark.parametrize(
    ("feature", "value"),
    [
        (_feature("a", "float", min=0.0, max=10.0), 5.0),
        (_feature("a", "int", min=0, max=5), 2),  # 2.5 rounds to even, inside the bounds
        (_feature("a", "int", min=3), 3),
        (_feature("a", "float", max=-2.5), -2.5),
        (_feature("a", "float"), 0.0),
        (_feature("a", "category", allowed=["x", "y"]), "x"),
        (_feature("a", "float", nullable=True, min=1.0, max=3.0), 2.0),  # a value, not null
    ],
)
def test_each_feature_gets_a_value_from_its_contract(feature, value):
    record = example_record([feature])
    assert record == {"a": value}
    assert type(record["a"]) is type(value)


def test_the_record_keeps_the_contract_order():
    features = [_feature("z", "int", min=0, max=2), _feature("b", "category", allowed=["p"])]
    assert list(example_record(features)) == ["z", "b"]
