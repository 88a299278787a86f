"""Bulk histogram observation gives exactly the exposition of one observe() per value."""

from __future__ import annotations

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from app.observability import PROBABILITY_BUCKETS, observe_many


def _histogram() -> tuple[CollectorRegistry, Histogram]:
    registry = CollectorRegistry()
    return registry, Histogram("p", "probability", buckets=PROBABILITY_BUCKETS, registry=registry)


def _samples(registry: CollectorRegistry) -> list[str]:
    return [
        line for line in generate_latest(registry).decode().splitlines() if not line.startswith("p_created")
    ]


@pytest.mark.parametrize("seed", range(5))
def test_observe_many_equals_observe_per_value(seed):
    rng = np.random.default_rng(seed)
    values = np.concatenate(
        [rng.random(500), np.array(PROBABILITY_BUCKETS[:-1]), [0.0, 1.0]]
    )  # edges included
    one_by_one, bulk = _histogram(), _histogram()
    for value in values:
        one_by_one[1].observe(float(value))
    observe_many(bulk[1], values[:100])
    observe_many(bulk[1], values[100:])
    got, expected = _samples(bulk[0]), _samples(one_by_one[0])
    sums = [float(line.split()[1]) for line in got + expected if line.startswith("p_sum ")]
    assert sums[0] == pytest.approx(sums[1], rel=1e-12)  # summed in another order: last-bit differences
    assert [line for line in got if not line.startswith("p_sum ")] == [
        line for line in expected if not line.startswith("p_sum ")
    ]
    assert 'p_bucket{le="+Inf"} ' + f"{len(values)}.0" in _samples(bulk[0])


def test_observe_many_falls_back_when_the_internals_change():
    _, histogram = _histogram()
    reference = _histogram()
    del histogram._buckets  # a future prometheus_client without the attribute
    histogram.observe = lambda v, _h=reference[1]: _h.observe(v)
    observe_many(histogram, np.linspace(0.0, 1.0, 20))  # more than the per-value path's 8
    assert "p_count 20.0" in _samples(reference[0])
