"""A synthetic example record built from the feature contract (metadata.json `features`): what the API docs,
/metadata and smoke tests show. Built from the declared bounds and categories only, so no customer's data is
ever published with a model."""

from __future__ import annotations

from typing import Any


def example_record(features: list[dict[str, Any]]) -> dict[str, Any]:
    """One valid record: the middle of each numeric feature's [min, max] (rounded for int features; a bound, or 0,
    when one is missing), the first allowed value of each category feature. Nullable features get a value too."""
    record: dict[str, Any] = {}
    for feature in features:
        if feature["type"] == "category":
            record[feature["name"]] = feature["allowed"][0]
            continue
        lo, hi = feature.get("min"), feature.get("max")
        if lo is not None and hi is not None:
            value = (lo + hi) / 2
        else:
            value = lo if lo is not None else hi if hi is not None else 0
        # (an int feature's rounded midpoint stays within its bounds whenever an integer does)
        record[feature["name"]] = round(value) if feature["type"] == "int" else float(value)
    return record
