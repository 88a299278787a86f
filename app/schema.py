"""Request validation derived from the feature schema saved with the model (metadata.json `features`).

One policy for every record, documented in docs/serving.md and the OpenAPI spec:
- every feature is required, except nullable ones, which may be omitted or null (both mean "missing");
- `int` features take JSON integers (or numbers with no fractional part), `float` features take any finite number,
  `category` features take one of the allowed strings; booleans are not numbers;
- `min`/`max` bounds are inclusive;
- unknown fields are rejected (a misspelt feature name must not silently become a missing value).

The validator is compiled once per model into plain closures: it runs on every request, so it avoids per-field
dispatch on the spec dicts. A batch is checked column by column (`columns`: type sets, numpy range checks); when
any check fails the batch is re-checked record by record, so the error is always the first one a record-by-record
pass finds (same record index, same field, same message).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

FEATURE_TYPES = ("int", "float", "category")
NUMBER_TYPES = frozenset({int, float})
NONE_TYPE = type(None)
# below this many records a batch is validated record by record (the column checks' fixed cost is higher)
COLUMNS_MIN_RECORDS = 8


class RecordError(ValueError):
    """One invalid field of one record; becomes a 422 JSON error naming the field."""

    def __init__(self, code: str, message: str, field: str | None = None, index: int | None = None):
        super().__init__(message)
        self.code, self.message, self.field, self.index = code, message, field, index

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.field is not None:
            out["field"] = self.field
        if self.index is not None:
            out["index"] = self.index
        return out


@dataclass(frozen=True)
class Feature:
    name: str
    type: str
    nullable: bool = False
    min: float | None = None
    max: float | None = None
    allowed: tuple[str, ...] | None = None


@dataclass(frozen=True)
class ServedMetadata:
    """The part of metadata.json the service acts on, typed and checked (`parse_metadata`)."""

    features: list[Feature]
    threshold: float
    trained_with: str  # the scikit-learn version the model was trained with
    example: dict[str, Any] | None
    title: str | None = None  # params.yaml `project`, for the API docs; None in a model trained before it
    description: str | None = None


def parse_metadata(raw: dict[str, Any]) -> ServedMetadata:
    """metadata.json -> ServedMetadata; raises ValueError naming the first bad field and what it must be."""
    threshold = raw.get("threshold")
    if not _is_number(threshold) or not 0 < threshold < 1:
        raise ValueError(
            f"metadata.json: 'threshold' must be a number strictly between 0 and 1, not {threshold!r}"
        )
    libraries = raw.get("libraries")
    if not isinstance(libraries, dict) or not isinstance(libraries.get("scikit-learn"), str):
        raise ValueError("metadata.json: 'libraries' must record the 'scikit-learn' version as a string")
    example = raw.get("example")
    if example is not None and not isinstance(example, dict):
        raise ValueError("metadata.json: 'example' must be a record (a JSON object) or null")
    project = raw.get("project", {})
    if not isinstance(project, dict) or not all(
        isinstance(project.get(key, ""), str) for key in ("title", "description")
    ):
        raise ValueError(
            "metadata.json: 'project' must be an object whose 'title' and 'description' are strings"
        )
    return ServedMetadata(
        parse_features(raw.get("features")),
        float(threshold),
        libraries["scikit-learn"],
        example,
        project.get("title") or None,
        project.get("description") or None,
    )


def _is_number(value: Any) -> bool:
    # bool is a subclass of int in Python, but `true` is not a number in JSON
    return value.__class__ is not bool and isinstance(value, int | float) and math.isfinite(value)


def parse_features(raw: Any) -> list[Feature]:
    """metadata.json `features` -> Feature list; raises ValueError naming the bad entry and field."""
    if not isinstance(raw, list) or not raw:
        raise ValueError("metadata.json: 'features' must be a non-empty list")
    out: list[Feature] = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not item["name"]:
            raise ValueError(f"metadata.json: features[{i}] needs a 'name' (a non-empty string)")
        where = f"metadata.json: features[{i}] ({item['name']})"
        if item["name"] in {f.name for f in out}:
            raise ValueError(f"{where}: the name appears twice")
        ftype = item.get("type")
        if ftype not in FEATURE_TYPES:
            raise ValueError(f"{where}: type must be one of {FEATURE_TYPES}")
        nullable = item.get("nullable", False)
        if nullable.__class__ is not bool:
            raise ValueError(f"{where}: 'nullable' must be true or false, not {nullable!r}")
        lo, hi, allowed = item.get("min"), item.get("max"), item.get("allowed")
        if ftype == "category":
            if lo is not None or hi is not None:
                raise ValueError(f"{where}: a category takes no 'min'/'max'")
            if (
                not isinstance(allowed, list)
                or not allowed
                or not all(a.__class__ is str for a in allowed)
                or len(set(allowed)) != len(allowed)
            ):
                raise ValueError(f"{where}: a category needs 'allowed', a list of distinct strings")
        else:
            for key, bound in (("min", lo), ("max", hi)):
                if bound is not None and not _is_number(bound):
                    raise ValueError(f"{where}: '{key}' must be a finite number or null, not {bound!r}")
            if lo is not None and hi is not None and lo > hi:
                raise ValueError(f"{where}: 'min' {lo} is above 'max' {hi}")
            if allowed is not None:
                raise ValueError(f"{where}: only a category takes 'allowed'")
        out.append(
            Feature(
                name=item["name"],
                type=ftype,
                nullable=nullable,
                min=lo,
                max=hi,
                allowed=tuple(allowed) if allowed else None,
            )
        )
    return out


def _number_check(feature: Feature) -> Callable[[Any], float]:
    name, lo, hi, is_int = feature.name, feature.min, feature.max, feature.type == "int"
    kind = "an integer" if is_int else "a number"

    def check(value: Any) -> float:
        # bool is a subclass of int in Python, but `true` is not a number in JSON
        if value.__class__ is bool or not isinstance(value, int | float):
            raise RecordError("invalid_type", f"'{name}' must be {kind}", name)
        if not math.isfinite(value):
            raise RecordError("invalid_type", f"'{name}' must be a finite number", name)
        if is_int and value.__class__ is float and not value.is_integer():
            raise RecordError("invalid_type", f"'{name}' must be an integer", name)
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise RecordError("out_of_range", f"'{name}' must be between {lo} and {hi}", name)
        return float(value)

    return check


def _category_check(feature: Feature) -> Callable[[Any], str]:
    name, allowed = feature.name, frozenset(feature.allowed or ())
    listed = ", ".join(feature.allowed or ())

    def check(value: Any) -> str:
        if value.__class__ is not str:
            raise RecordError("invalid_type", f"'{name}' must be a string", name)
        if value not in allowed:
            raise RecordError("invalid_category", f"'{name}' must be one of: {listed}", name)
        return value

    return check


class RecordValidator:
    """Validates JSON records and returns them as rows of clean values in model input order."""

    def __init__(self, features: list[Feature]):
        self.features = features
        self.names = [f.name for f in features]
        self._known = frozenset(self.names)
        self._checks = [
            (f.name, f.nullable, _category_check(f) if f.type == "category" else _number_check(f))
            for f in features
        ]

    def validate(self, record: Any, index: int | None = None) -> list[Any]:
        """One record -> its values in feature order (None = missing); raises RecordError."""
        try:
            if not isinstance(record, dict):
                raise RecordError("invalid_record", "each record must be a JSON object of features")
            row = []
            for name, nullable, check in self._checks:
                value = record.get(name)
                if value is None:
                    if not nullable:
                        code = "missing_field" if name not in record else "null_value"
                        raise RecordError(code, f"'{name}' is required and may not be null", name)
                    row.append(None)
                else:
                    row.append(check(value))
            if len(record) > len(row) or not self._known.issuperset(record):
                unknown = sorted(k for k in record if k not in self._known)
                if unknown:
                    raise RecordError("unknown_field", f"unknown field '{unknown[0]}'", str(unknown[0]))
            return row
        except RecordError as exc:
            exc.index = index
            raise

    def columns(self, records: Sequence[Any]) -> list[Sequence[Any]]:
        """A batch of records -> one sequence per feature in schema order (numbers as float arrays with NaN for
        missing, categories as lists with None for missing); raises the RecordError `validate` would raise for
        the first invalid record, with its index."""
        if len(records) < COLUMNS_MIN_RECORDS:
            return self._columns_by_record(records)
        known = self._known
        for record in records:
            if record.__class__ is not dict or not known.issuperset(record):
                return self._columns_by_record(records)
        out: list[Sequence[Any]] = []
        for feature, (name, nullable, _check) in zip(self.features, self._checks, strict=True):
            col = [record.get(name) for record in records]
            checked = self._column(feature, nullable, col)
            if checked is None:
                return self._columns_by_record(records)
            out.append(checked)
        return out

    def _columns_by_record(self, records: Sequence[Any]) -> list[Sequence[Any]]:
        rows = [self.validate(record, i) for i, record in enumerate(records)]
        out: list[Sequence[Any]] = []
        for j, feature in enumerate(self.features):
            values = [row[j] for row in rows]
            out.append(values if feature.type == "category" else np.array(values, dtype=float))
        return out

    @staticmethod
    def _column(feature: Feature, nullable: bool, col: list[Any]) -> Sequence[Any] | None:
        """The checked column, or None when some value fails (the caller then finds which, record by record)."""
        types = set(map(type, col))
        has_none = NONE_TYPE in types
        if has_none:
            if not nullable:
                return None
            types.discard(NONE_TYPE)
        if feature.type == "category":
            if types - {str}:
                return None
            values = set(col)
            values.discard(None)
            return col if values.issubset(feature.allowed or ()) else None
        if not types <= NUMBER_TYPES:  # bool is its own type, so `true` fails here as in `validate`
            return None
        try:
            arr = np.array(col, dtype=float)  # None -> NaN
        except OverflowError:  # an integer beyond float range
            return None
        present = ~np.fromiter((v is None for v in col), dtype=bool, count=len(col)) if has_none else None
        values = arr if present is None else arr[present]
        if not np.isfinite(values).all():
            return None
        if feature.type == "int" and float in types and not (values == np.floor(values)).all():
            return None
        if feature.min is not None and (values < feature.min).any():
            return None
        if feature.max is not None and (values > feature.max).any():
            return None
        return arr

    def json_schema(self, example: dict[str, Any] | None = None) -> dict[str, Any]:
        """The record schema (OpenAPI 3.0 schema object) matching `validate` exactly."""
        properties: dict[str, Any] = {}
        for f in self.features:
            if f.type == "category":
                prop: dict[str, Any] = {"type": "string", "enum": list(f.allowed or ())}
            else:
                prop = {"type": "integer" if f.type == "int" else "number"}
                if f.min is not None:
                    prop["minimum"] = f.min
                if f.max is not None:
                    prop["maximum"] = f.max
            if f.nullable:
                prop["nullable"] = True
            properties[f.name] = prop
        schema: dict[str, Any] = {
            "type": "object",
            "properties": properties,
            "required": [f.name for f in self.features if not f.nullable],
            "additionalProperties": False,
        }
        if example:
            schema["example"] = example
        return schema
