"""Compare the base's and the head's data contract (params.yaml ``schema``).

Pure: takes two params mappings, returns a small value. Comparable means the
same label, id column, time column and the same feature names and types;
widening a range, a category list or nullability keeps it comparable but is
listed in ``changes``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

_KEYS = ("label", "id_column", "time_column")


@dataclass(frozen=True)
class ContractDiff:
    comparable: bool
    reasons: tuple[str, ...] = ()  # why not comparable
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    retyped: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()  # range/category/nullable edits, e.g. "x (max 100 -> 120)"
    source: tuple[str, ...] = field(default=())  # extract.query / warehouse.table edits

    def summary(self, base_count: int, head_count: int) -> str:
        parts = list(self.reasons)
        if self.added or self.removed:
            parts.append(
                f"{base_count} -> {head_count} features "
                f"({len(self.added)} added, {len(self.removed)} removed)"
            )
        return "; ".join(parts)


def _schema(params: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return (params or {}).get("schema") or {}


def _features(params: Mapping[str, Any] | None) -> Mapping[str, Mapping[str, Any]]:
    return _schema(params).get("features") or {}


def _attr_changes(name: str, old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    edits = []
    for key in sorted(set(old) | set(new)):
        if key == "type" or old.get(key) == new.get(key):
            continue
        edits.append(f"{key} {old.get(key)} -> {new.get(key)}")
    return [f"{name} ({', '.join(edits)})"] if edits else []


def compare(base: Mapping[str, Any] | None, head: Mapping[str, Any] | None) -> ContractDiff:
    b, h = _schema(base), _schema(head)
    reasons = [
        f"{key.replace('_', ' ')} {b.get(key)} -> {h.get(key)}" for key in _KEYS if b.get(key) != h.get(key)
    ]
    bf, hf = _features(base), _features(head)
    added = tuple(sorted(set(hf) - set(bf)))
    removed = tuple(sorted(set(bf) - set(hf)))
    common = sorted(set(bf) & set(hf))
    retyped = tuple(
        f"{n} ({bf[n].get('type')} -> {hf[n].get('type')})"
        for n in common
        if bf[n].get("type") != hf[n].get("type")
    )
    changed = tuple(c for n in common for c in _attr_changes(n, bf[n], hf[n]))
    source = tuple(
        f"{sec}.{key} changed"
        for sec, key in (("extract", "query"), ("warehouse", "table"))
        if ((base or {}).get(sec) or {}).get(key) != ((head or {}).get(sec) or {}).get(key)
    )
    if retyped:
        reasons.append(f"retyped: {', '.join(retyped)}")
    comparable = not reasons and not added and not removed
    return ContractDiff(comparable, tuple(reasons), added, removed, retyped, changed, source)
