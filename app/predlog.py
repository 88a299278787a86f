"""The prediction log: every prediction and every feedback label, stored through SQLAlchemy.

Tables (mlcore.predlog_schema, documented in docs/contracts.md; the monitoring jobs read them):
    predictions(prediction_id PK, created_at, model_version, features JSON, probability, prediction)
    feedback(prediction_id PK, label, received_at, client)

Predictions are written off the request's hot path: `record()` appends to an in-memory queue and a background
thread inserts them in batches (every `flush_interval` seconds or `batch_size` rows). The queue is bounded
(`max_backlog` rows): when the writer falls behind, `record()` waits for room, then (a slow or unreachable
database) raises `LogFull` and /predict answers 503 with Retry-After instead of a prediction that would not be
logged. The thread shares the worker's CPU, so a batch is one `executemany` of plain tuples (`_Inserter`):
SQLAlchemy's per-row statement machinery cost more than the database did (profiled: ~12 of ~20 ms for 1000 rows on
SQLite); on PostgreSQL it is one COPY (`_Copier`: 4x the rows/s of executemany, docs/benchmarks.md).
`close()` drains the queue; gunicorn's `worker_exit` hook and an atexit hook call it, so a graceful shutdown
(SIGTERM, HUP reload) loses no acknowledged prediction. A hard kill (SIGKILL) can lose the last `flush_interval`
seconds; with SQLite (write-ahead log, synchronous=NORMAL) a power loss can also lose the last commits. Copy a
live SQLite log with `sqlite3 .backup`, not `cp` (recent rows sit in the `-wal` file until a checkpoint).
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from collections import deque
from datetime import UTC, datetime
from typing import Any

import orjson
import sqlalchemy as sa

from mlcore.predlog_schema import create_or_upgrade, feedback, predictions

log = logging.getLogger(__name__)


def _dumps(obj: Any) -> str:
    return orjson.dumps(obj).decode()


def _sqlite_wal(dbapi_connection: Any, _record: Any) -> None:
    """Write-ahead logging: readers (the monitoring job) never block the writers, and a commit appends to the log
    instead of rewriting pages (halves the writer's cost). synchronous=NORMAL keeps every commit safe from a
    process crash; a power loss can lose the last commits, as the module docstring says of a hard kill."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def make_engine(url: str) -> sa.Engine:
    # orjson for the features column: measured 2x faster than the json module for the log writer
    if url.startswith("sqlite"):
        # several gunicorn workers share the file: wait for the lock instead of failing
        engine = sa.create_engine(url, connect_args={"timeout": 30}, json_serializer=_dumps)
        sa.event.listen(engine, "connect", _sqlite_wal)
        return engine
    return sa.create_engine(url, pool_pre_ping=True, json_serializer=_dumps)


def _convert(process: Any, column: list[Any]) -> list[Any]:
    """`process(v)` for each value (None stays None); a value repeated in a row (one request's created_at) is
    converted once."""
    out, last, converted = [], None, None
    for value in column:
        if value is None:
            out.append(None)
            continue
        if value is not last:
            last, converted = value, process(value)
        out.append(converted)
    return out


class _Inserter:
    """INSERT INTO `table` (predictions; app/shadow.py's shadow_predictions) as one executemany for one dialect.

    The statement and each column's bind processor (SQLAlchemy's own type conversion for the dialect: the JSON
    serialiser, SQLite's datetime format, psycopg's JSON wrapper) are looked up once; `created_at` is shared by all
    the rows of a request, so it is converted once per request. The rows written are those `predictions.insert()`
    writes (tested by reading them back through SQLAlchemy).
    """

    def __init__(self, dialect: sa.Dialect, table: sa.Table = predictions):
        compiled = table.insert().compile(dialect=dialect)
        self.sql = str(compiled)
        self.keys = [c.key for c in table.c]
        self.positional = bool(compiled.positional)
        if self.positional and list(compiled.positiontup or ()) != self.keys:
            raise ValueError(f"unexpected parameter order {compiled.positiontup}")
        self.processors = [c.type.dialect_impl(dialect).bind_processor(dialect) for c in table.c]

    def parameters(self, rows: list[dict[str, Any]]) -> list[Any]:
        columns = []
        for key, process in zip(self.keys, self.processors, strict=True):
            column = [row[key] for row in rows]
            if process is not None:
                column = _convert(process, column)
            columns.append(column)
        if self.positional:
            return list(zip(*columns, strict=True))
        return [dict(zip(self.keys, values, strict=True)) for values in zip(*columns, strict=True)]

    def insert(self, conn: sa.Connection, rows: list[dict[str, Any]]) -> None:
        conn.exec_driver_sql(self.sql, self.parameters(rows))


class _Copier:
    """INSERT INTO predictions on PostgreSQL (psycopg 3) as one COPY ... FROM STDIN: the server parses each column
    as text (the features as JSON text), with none of executemany's per-row statement round trips. A refused row
    (a duplicate id) raises SQLAlchemy's IntegrityError, as the executemany path does."""

    def __init__(self, dialect: sa.Dialect):
        self.keys = [c.key for c in predictions.c]
        self.sql = f"COPY {predictions.name} ({', '.join(self.keys)}) FROM STDIN"
        self.integrity_error = dialect.dbapi.IntegrityError

    def insert(self, conn: sa.Connection, rows: list[dict[str, Any]]) -> None:
        raw = conn.connection.driver_connection
        try:
            with raw.cursor() as cursor, cursor.copy(self.sql) as copy:
                for row in rows:
                    copy.write_row(
                        (
                            row["prediction_id"],
                            row["created_at"],
                            row["model_version"],
                            _dumps(row["features"]),
                            row["probability"],
                            row["prediction"],
                        )
                    )
        except self.integrity_error as exc:
            raise sa.exc.IntegrityError(self.sql, None, exc) from exc


def make_inserter(dialect: sa.Dialect) -> _Inserter | _Copier:
    if dialect.name == "postgresql" and dialect.driver == "psycopg":
        return _Copier(dialect)
    return _Inserter(dialect)


class LogFull(Exception):
    """The queue holds `max_backlog` rows: the writer has fallen behind (the API answers 503 with Retry-After)."""


class Flusher:
    """A daemon thread per process calling `flush()` every `flush_interval` seconds (sooner when `_wake` is set)
    until `close()`; `_start()` starts it once in each process (a thread does not survive gunicorn's fork) and
    registers `close` at exit. Subclasses set `_lock`, `_wake`, `_pid`, `_closed`, `_thread`, `flush_interval`."""

    thread_name = "flusher"

    def _start(self) -> None:
        with self._lock:
            if self._pid == os.getpid():
                return
            self._pid, self._closed = os.getpid(), False
            self._after_fork()
            self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
            self._thread.start()
            atexit.register(self.close)

    def _after_fork(self) -> None:
        """What the new process must do before its thread starts."""

    def _run(self) -> None:
        while not self._closed:
            self._wake.wait(self.flush_interval)
            self._wake.clear()
            self.flush()


class PredictionLog(Flusher):
    thread_name = "prediction-log"

    def __init__(
        self, url: str, flush_interval: float = 0.5, batch_size: int = 1000, max_backlog: int = 100_000
    ):
        self.url, self.flush_interval, self.batch_size = url, flush_interval, batch_size
        self.max_backlog = max_backlog
        self.engine = make_engine(url)
        create_or_upgrade(self.engine)
        self._inserter = make_inserter(self.engine.dialect)
        self._queue: deque[dict[str, Any]] = deque()
        self._in_flight = 0  # rows the writer took off the queue and has not committed yet: still the backlog
        self._wake = threading.Event()
        self._room = threading.Condition()  # notified after each batch the writer commits
        self._lock = (
            threading.Lock()
        )  # one writer at a time: the thread, or close()/flush() from another thread
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._closed = False
        self.written = 0
        self.errors = 0
        # called as on_flush(rows_written, backlog) after each flush, whoever flushes: the writer thread, /feedback
        # for a queued prediction, close() (the written-rows metric counts them all)
        self.on_flush: Any = None

    # -- hot path ---------------------------------------------------------------------------------------------
    def wait_for_room(self, n: int) -> None:
        """Return once `n` more rows fit under `max_backlog`: at once while the queue has room, else after waiting
        up to `2 * flush_interval` seconds for the writer (back-pressure: the waiting request threads leave the
        writer the CPU); raises LogFull when there is still no room. /predict asks before it scores a request."""
        if self._pid != os.getpid():
            self._start()  # lazily, in the process that serves (a thread does not survive gunicorn's fork)
        if self.backlog + n > self.max_backlog:
            self._wake.set()
            with self._room:
                self._room.wait_for(
                    lambda: self.backlog + n <= self.max_backlog, timeout=2 * self.flush_interval
                )
            if self.backlog + n > self.max_backlog:
                raise LogFull(
                    f"{self.backlog} predictions are waiting to be written (at most {self.max_backlog})"
                )

    def record(self, rows: list[dict[str, Any]]) -> None:
        """Queue prediction rows (dicts with the `predictions` columns) once they fit (`wait_for_room`); raises
        LogFull queueing nothing: memory stays bounded, and a prediction is answered only once its row is queued."""
        self.wait_for_room(len(rows))
        self._queue.extend(rows)
        if len(self._queue) >= self.batch_size:
            self._wake.set()

    @property
    def backlog(self) -> int:
        return len(self._queue) + self._in_flight

    # -- writer -----------------------------------------------------------------------------------------------
    def _after_fork(self) -> None:
        self.engine.dispose(close=False)  # never reuse connections inherited from a parent process

    def flush(self) -> int:
        """Write everything queued so far; returns the number of rows written. Failed batches stay queued."""
        written = 0
        with self._lock:
            while self._queue:
                # counted in the backlog until committed or requeued: a request must not take the room of rows
                # that a failing write puts back (the queue would outgrow max_backlog during an outage)
                self._in_flight = min(self.batch_size, len(self._queue))
                batch = [self._queue.popleft() for _ in range(self._in_flight)]
                try:
                    with self.engine.begin() as conn:
                        self._inserter.insert(conn, batch)
                except sa.exc.IntegrityError:
                    written += self._insert_one_by_one(batch)
                    self._in_flight = 0
                    continue
                except Exception as exc:  # a database outage must not kill the writer: retry next round
                    self._queue.extendleft(reversed(batch))
                    self._in_flight = 0
                    self.errors += 1
                    log.error("prediction log: writing %d rows failed (%s); will retry", len(batch), exc)
                    break
                self._in_flight = 0
                written += len(batch)
                with self._room:
                    self._room.notify_all()
        self.written += written
        if self.on_flush is not None:
            self.on_flush(written, self.backlog)
        return written

    def _insert_one_by_one(self, batch: list[dict[str, Any]]) -> int:
        """A batch with a row the database refuses (a duplicate id): keep the good rows, report the bad ones."""
        written = 0
        for row in batch:
            try:
                with self.engine.begin() as conn:
                    conn.execute(predictions.insert(), [row])
                written += 1
            except sa.exc.IntegrityError as exc:
                self.errors += 1
                log.error("prediction log: dropping prediction %s (%s)", row["prediction_id"], exc.orig)
        return written

    def close(self, timeout: float = 10.0) -> None:
        """Stop the writer and drain the queue (retrying for up to `timeout` seconds if the database fails)."""
        self._closed = True
        self._wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        deadline = time.monotonic() + timeout
        while self._queue and time.monotonic() < deadline:
            if not self.flush():
                time.sleep(0.2)
        if self._queue:
            log.error("prediction log: %d predictions could not be written before shutdown", len(self._queue))

    # -- feedback (rare; written synchronously so the caller learns about unknown ids) -------------------------
    def add_feedback(self, prediction_id: str, label: int, client: str | None = None) -> str:
        """Store a label with the name of the client that sent it (None: unauthenticated): 'ok', 'unknown' (no
        such prediction) or 'duplicate' (already labelled)."""
        # The writer thread pops a batch before inserting it, holding the lock until the commit: take the lock so
        # a prediction in such an in-flight batch is committed before we look it up (else: a false 'unknown').
        with self._lock:
            queued = any(row["prediction_id"] == prediction_id for row in list(self._queue))
        if queued:
            self.flush()
        with self.engine.begin() as conn:
            known = conn.execute(
                sa.select(predictions.c.prediction_id).where(predictions.c.prediction_id == prediction_id)
            ).first()
            if known is None:
                return "unknown"
            try:
                with conn.begin_nested():
                    conn.execute(
                        feedback.insert().values(
                            prediction_id=prediction_id,
                            label=label,
                            received_at=datetime.now(UTC),
                            client=client,
                        )
                    )
            except sa.exc.IntegrityError:
                return "duplicate"
        return "ok"


def now() -> datetime:
    return datetime.now(UTC)
