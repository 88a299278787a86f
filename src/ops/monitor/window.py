"""One pass over a window of the prediction log, chunk by chunk: the state (counts.py) the verdict is computed
from, in memory bounded by a chunk and the `monitor.sample_size` reservoirs, not by the window."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ops.monitor.counts import CategoryCounts, NumericCounts, Reservoir
from ops.monitor.estimate import outside_training_masks
from ops.monitor.log import features_table


@dataclass
class WindowStats:
    """What a window of one model version's predictions holds: traffic counts, per-feature counts, and two
    uniform samples: `scores` of every readable prediction (probability, labelled) for the estimate, and
    `labels` of the labelled ones (created_at, received_at, probability, label) for the live metrics."""

    reference: dict[str, Any]
    names: list[str]
    numeric: dict[str, NumericCounts]
    categorical: dict[str, CategoryCounts]
    prediction: NumericCounts
    scores: Reservoir
    labels: Reservoir
    predictions: int = 0
    invalid: int = 0
    labelled: int = 0
    first: pd.Timestamp | None = None
    last: pd.Timestamp | None = None
    outside_rows: int = 0
    outside: Counter = field(default_factory=Counter)
    other_versions: dict[str, int] = field(default_factory=dict)

    @classmethod
    def for_model(cls, metadata: dict[str, Any], sample_size: int, seed: int) -> WindowStats:
        features, reference = metadata["features"], metadata["reference"]
        return cls(
            reference=reference,
            names=[f["name"] for f in features],
            numeric={
                f["name"]: NumericCounts(reference["numeric"][f["name"]])
                for f in features
                if f["type"] != "category"
            },
            categorical={f["name"]: CategoryCounts() for f in features if f["type"] == "category"},
            prediction=NumericCounts(reference["prediction"]),
            scores=Reservoir(sample_size, seed),
            labels=Reservoir(sample_size, seed),
        )

    def add(self, chunk: pd.DataFrame) -> WindowStats:
        """One chunk of the served version's rows (log.CHUNK_COLUMNS)."""
        live, readable = features_table(chunk["features"], self.names)
        self.invalid += int((~readable).sum())
        chunk, live = chunk[readable], live[readable]
        if not len(chunk):
            return self
        self.predictions += len(chunk)
        times = chunk["created_at"]
        self.first = min(times.min(), self.first) if self.first is not None else times.min()
        self.last = max(times.max(), self.last) if self.last is not None else times.max()
        numbers = {n: pd.to_numeric(live[n], errors="coerce").to_numpy(dtype=float) for n in self.numeric}
        texts = {n: live[n].astype("string") for n in self.categorical}
        for name, values in numbers.items():
            self.numeric[name].add(values)
        for name, text in texts.items():
            self.categorical[name].add(text)
        probability = chunk["probability"].to_numpy(dtype=float)
        self.prediction.add(probability)
        masks = outside_training_masks(numbers, texts, self.reference)
        if masks:
            self.outside_rows += int(np.logical_or.reduce(list(masks.values())).sum())
            self.outside.update({name: int(mask.sum()) for name, mask in masks.items()})
        has_label = chunk["label"].notna().to_numpy()
        ids = chunk["prediction_id"].to_numpy(dtype=object)
        self.scores.add(ids, {"probability": probability, "labelled": has_label})
        self.labelled += int(has_label.sum())
        if has_label.any():
            labelled = chunk[has_label]
            self.labels.add(
                ids[has_label],
                {
                    "created_at": labelled["created_at"].dt.tz_convert(None).to_numpy(),
                    "received_at": labelled["received_at"].dt.tz_convert(None).to_numpy(),
                    "probability": probability[has_label],
                    "label": labelled["label"].to_numpy(dtype=int),
                },
            )
        return self

    def add_all(self, chunks: Iterable[pd.DataFrame]) -> WindowStats:
        for chunk in chunks:
            self.add(chunk)
        return self

    def labelled_frame(self) -> pd.DataFrame:
        """The labelled sample as (created_at, received_at, probability, label), UTC times, oldest first."""
        frame = self.labels.frame(order_by="created_at")
        if not len(frame):
            return pd.DataFrame(
                {
                    "created_at": pd.Series([], dtype="datetime64[ns, UTC]"),
                    "received_at": pd.Series([], dtype="datetime64[ns, UTC]"),
                    "probability": pd.Series([], dtype=float),
                    "label": pd.Series([], dtype=int),
                }
            )
        for column in ("created_at", "received_at"):
            frame[column] = pd.to_datetime(frame[column], utc=True)
        return frame
