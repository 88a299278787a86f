"""The shadow model: a second model (SHADOW_MODEL_DIR) that scores every request the serving model scores, off the
request path, and logs its answers (mlcore.predlog_schema's shadow_predictions, under the serving row's
prediction id), never returning them. docs/serving.md, "Shadow model".

- Loading (`load_shadow`): the same verification as the serving model (`app.model.load_service`), then the feature
  schema must be the serving model's (`schema_difference` names each difference). A refused shadow leaves the
  service serving: one error line in the log, status "refused" and the reason in /metadata, `shadow_loaded` 0 in
  /metrics, and `python -m ops.deliver.smoke` fails.
- Scoring: `submit(ids, columns)` (app.api.predict_records, once the serving rows are queued: every route) queues
  the request's validated columns and returns. A thread per worker scores all that is queued in one call every
  LOG_FLUSH_INTERVAL seconds (its own threshold) and writes the rows in one insert. At most LOG_MAX_BACKLOG records
  wait; beyond that a request's shadow rows are dropped. A shadow that raises drops that round's rows; a failing
  insert is retried next round. Each drop is counted (`shadow_errors_total{reason}`) and logged, never seen by the
  client, and never holds up the serving rows (their own queue and writer: app/predlog.py).
- `close()` (gunicorn's worker_exit, atexit) scores and writes what is queued, retrying the insert for up to its
  timeout; what is still unwritten then is logged as dropped. A hard kill loses the rows of the last round.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Sequence
from datetime import UTC, datetime
from itertools import chain
from typing import Any

import numpy as np
import sqlalchemy as sa

from app.model import ModelService, load_service, not_ready
from app.predlog import Flusher, _Inserter
from app.schema import Feature
from mlcore.predlog_schema import shadow_predictions

log = logging.getLogger(__name__)
COMPARED = ("type", "nullable", "min", "max", "allowed")  # app.schema.Feature's fields besides the name


def schema_difference(serving: list[Feature], shadow: list[Feature]) -> str:
    """How the shadow's feature schema differs from the serving model's, one clause each; "" when it is the same."""
    theirs = {f.name: f for f in shadow}
    ours = {f.name for f in serving}
    parts = []
    for feature in serving:
        other = theirs.get(feature.name)
        for attr in COMPARED if other is not None else ():
            mine, its = getattr(feature, attr), getattr(other, attr)
            if mine == its:
                continue
            if attr == "type":
                parts.append(f"feature {feature.name!r} is {its}, serving model's is {mine}")
            else:
                parts.append(f"feature {feature.name!r} has {attr} {its!r}, serving model's {mine!r}")
    missing = [f.name for f in serving if f.name not in theirs]
    extra = [f.name for f in shadow if f.name not in ours]
    parts += [
        f"{kind}: {', '.join(names)}" for kind, names in (("missing", missing), ("extra", extra)) if names
    ]
    if not parts and [f.name for f in serving] != [f.name for f in shadow]:
        parts.append(
            f"features in the order {', '.join(theirs)}, serving model's {', '.join(f.name for f in serving)}"
        )
    return "; ".join(parts)


def load_shadow(model_dir: str, serving: ModelService, use_fastpath: bool = True) -> ModelService | None:
    """The shadow model in `model_dir` (None when it is empty: no shadow), refused (not ready, with the reason) when
    it fails the serving model's checks or its feature schema differs."""
    if not model_dir:
        return None
    log_as = f"shadow model {model_dir} refused"
    if not serving.ready:
        return not_ready("the serving model is not loaded, so there is nothing to shadow", log_as=log_as)
    shadow = load_service(model_dir, use_fastpath=use_fastpath, log_as=log_as)
    if not shadow.ready:
        return shadow
    assert serving.validator is not None and shadow.validator is not None
    difference = schema_difference(serving.validator.features, shadow.validator.features)
    if difference:
        return not_ready(
            f"its feature schema is not the serving model's: {difference}", shadow.metadata, log_as
        )
    return shadow


class Shadow(Flusher):
    """The shadow's queue and its scoring thread (one per worker process, started by the first `submit`)."""

    thread_name = "shadow-model"

    def __init__(
        self,
        service: ModelService | None,
        engine: sa.Engine,
        metrics: Any,
        flush_interval: float,
        max_backlog: int,
    ):
        self.service, self.engine, self.metrics = service, engine, metrics
        self.flush_interval, self.max_backlog = flush_interval, max_backlog
        self.active = service is not None and service.ready
        self._inserter = _Inserter(engine.dialect, shadow_predictions)
        self._queue: deque[tuple[Sequence[str], list[Sequence[Any]]]] = deque()
        self._pending: list[dict[str, Any]] = []  # scored rows an insert has not taken yet
        self._backlog = 0  # records submitted and neither written nor dropped
        self._count = threading.Lock()  # guards _backlog (request threads and the scorer)
        self._lock = threading.Lock()  # one scorer at a time: the thread, or close()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._closed = False
        self.written = 0
        self._full = 0  # records dropped for a full queue since the scorer last said so

    @property
    def status(self) -> str:
        return "none" if self.service is None else "loaded" if self.service.ready else "refused"

    def describe(self) -> dict[str, Any]:
        """The shadow's entry in /metadata `models`."""
        out: dict[str, Any] = {"status": self.status}
        if self.service is not None:
            out["model_version"] = self.service.metadata.get("model_version")
        if self.status == "refused":
            out["reason"] = self.service.reason
        return out

    def publish(self) -> None:
        self.metrics.shadow_loaded.set(1 if self.active else 0)
        if self.active:
            self.metrics.shadow_info.labels(model_version=self.service.model_version).set(1)

    # -- hot path ---------------------------------------------------------------------------------------------
    def submit(self, ids: Sequence[str], columns: list[Sequence[Any]]) -> None:
        """Queue one request's validated columns for the shadow (its rows take the serving rows' ids); never
        raises, never waits: a full queue drops them, counted."""
        if not self.active:
            return
        if self._pid != os.getpid():
            self._start()
        with self._count:
            room = self._backlog + len(ids) <= self.max_backlog
            if room:
                self._backlog += len(ids)
                self._queue.append((ids, columns))
        if not room:
            self._dropped("queue_full", len(ids))
            self._full += len(ids)  # logged by the scorer, once a round (not a line per request under load)

    @property
    def backlog(self) -> int:
        return self._backlog

    # -- scorer -----------------------------------------------------------------------------------------------
    def flush(self) -> int:
        """Score everything queued and write it with the rows a failed insert left; returns the rows written."""
        with self._lock:
            batches = [self._queue.popleft() for _ in range(len(self._queue))]
            if batches:
                self._pending += self._score(batches)
            written = self._write()
        full, self._full = self._full, 0
        if full:
            log.error("shadow model: queue full (LOG_MAX_BACKLOG), %d records not scored by the shadow", full)
        self.metrics.shadow_backlog.set(self._backlog)
        return written

    def _score(self, batches: list[tuple[Sequence[str], list[Sequence[Any]]]]) -> list[dict[str, Any]]:
        """One predict call for all the queued requests (the fast path's per-call cost is paid once)."""
        ids = [i for batch_ids, _ in batches for i in batch_ids]
        columns = [
            list(chain.from_iterable(cols[j] for _, cols in batches)) for j in range(len(batches[0][1]))
        ]
        service = self.service
        try:
            probabilities = np.asarray(service.predict_proba(columns), dtype=float)
            if probabilities.shape != (len(ids),):
                raise ValueError(f"{probabilities.shape} probabilities for {len(ids)} records")
        except Exception as exc:  # the shadow must never take the worker down: count, log, go on
            log.error(
                "shadow model %s failed on %d records, not logged (%s: %s)",
                service.model_version,
                len(ids),
                type(exc).__name__,
                exc,
            )
            self._dropped("predict", len(ids))
            return []
        predicted = (probabilities >= service.threshold).astype(np.int64)
        created_at = datetime.now(UTC)
        version = service.model_version
        return [
            {
                "prediction_id": i,
                "model_version": version,
                "created_at": created_at,
                "probability": p,
                "prediction": c,
            }
            for i, p, c in zip(ids, probabilities.tolist(), predicted.tolist(), strict=True)
        ]

    def _write(self) -> int:
        rows, self._pending = self._pending, []
        if not rows:
            return 0
        try:
            with self.engine.begin() as conn:
                self._inserter.insert(conn, rows)
        except sa.exc.IntegrityError as exc:  # already logged (never happens with fresh ids): drop, counted
            log.error("shadow model: dropping %d rows the log refused (%s)", len(rows), exc.orig)
            self._dropped("write", len(rows))
            return 0
        except Exception as exc:  # a database outage: retry next round (the rows stay in the backlog)
            self._pending = rows
            log.error("shadow model: writing %d rows failed (%s); will retry", len(rows), exc)
            return 0
        with self._count:
            self._backlog -= len(rows)
        self.written += len(rows)
        self.metrics.shadow_written.inc(len(rows))
        return len(rows)

    def _dropped(self, reason: str, n: int) -> None:
        if reason != "queue_full":
            with self._count:
                self._backlog -= n
        self.metrics.shadow_errors.labels(reason=reason).inc(n)

    def close(self, timeout: float = 10.0) -> None:
        """Stop the thread, then score and write what is queued (retrying a failing insert up to `timeout` s)."""
        self._closed = True
        self._wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        deadline = time.monotonic() + timeout
        while self._backlog and time.monotonic() < deadline:
            if not self.flush() and self._backlog:
                time.sleep(0.2)
        if self._backlog:
            log.error(
                "shadow model: %d shadow predictions could not be written before shutdown", self._backlog
            )
