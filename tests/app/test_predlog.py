"""The prediction log: batched off the request path, drained on close, on SQLite and on a real PostgreSQL."""

from __future__ import annotations

import os
import threading
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from app.predlog import LogFull, PredictionLog
from mlcore.predlog_schema import predictions


def _rows(n: int, prefix: str = "p") -> list[dict]:
    now = datetime.now(UTC)
    return [
        {
            "prediction_id": f"{prefix}{i}",
            "created_at": now,
            "model_version": "abc",
            "features": {"x": i},
            "probability": 0.25,
            "prediction": 0,
        }
        for i in range(n)
    ]


def _count(log: PredictionLog) -> int:
    with log.engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(predictions)).scalar_one()


def test_records_are_written_in_the_background_and_on_close(tmp_path):
    log = PredictionLog(f"sqlite:///{tmp_path}/log.db", flush_interval=60, batch_size=100)
    log.record(_rows(5))
    assert log.backlog == 5  # not written on the request path
    log.close()
    assert (log.backlog, _count(log)) == (0, 5)


def test_a_full_batch_wakes_the_writer(tmp_path):
    log = PredictionLog(f"sqlite:///{tmp_path}/log.db", flush_interval=60, batch_size=10)
    log.record(_rows(25))
    deadline = datetime.now(UTC).timestamp() + 10
    while _count(log) < 20 and datetime.now(UTC).timestamp() < deadline:
        pass
    assert _count(log) >= 20
    log.close()


def test_rows_being_written_keep_their_room_while_the_write_fails(tmp_path):
    """During a database outage the writer takes a batch off the queue, fails and puts it back: requests that
    came meanwhile must not have taken its room (the queue would outgrow max_backlog, outage after outage)."""
    log = PredictionLog(f"sqlite:///{tmp_path}/log.db", flush_interval=0.1, max_backlog=5)
    log._pid = os.getpid()  # no writer thread: this test flushes by hand
    log.record(_rows(5))
    inserting, release = threading.Event(), threading.Event()

    def failing_insert(conn, rows):
        inserting.set()
        release.wait(10)
        raise sa.exc.OperationalError("INSERT", None, Exception("database is down"))

    log._inserter.insert = failing_insert
    writer = threading.Thread(target=log.flush)
    writer.start()
    assert inserting.wait(10)
    with pytest.raises(LogFull):
        log.wait_for_room(1)
    release.set()
    writer.join(10)
    assert log.backlog == 5 and log.errors == 1


def test_every_flush_reports_its_rows_whoever_flushes(tmp_path):
    """The written-rows metric (app/__init__.py) counts rows that /feedback or close() flushed, not only the
    writer thread's: the canary's log-completeness check divides by it."""
    log = PredictionLog(f"sqlite:///{tmp_path}/log.db", flush_interval=60)
    reported: list[int] = []
    log.on_flush = lambda written, backlog: reported.append(written)
    log.record(_rows(3))
    assert log.add_feedback("p1", 1) == "ok"  # a queued prediction: feedback flushes it first
    log.record(_rows(2, prefix="q"))
    log.close()
    assert sum(reported) == 5 == _count(log)


def test_a_database_outage_keeps_rows_queued(tmp_path):
    log = PredictionLog(f"sqlite:///{tmp_path}/log.db", flush_interval=60)
    log.record(_rows(3))
    predictions.drop(log.engine)
    assert log.flush() == 0
    assert log.backlog == 3 and log.errors == 1
    predictions.create(log.engine)
    log.close()
    assert (log.backlog, _count(log)) == (0, 3)


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_a_refused_row_does_not_block_the_others(tmp_path, request, backend):
    """(On PostgreSQL the batch is one COPY: a duplicate id fails it whole, then the rows go one by one.)"""
    postgres_url = request.getfixturevalue("postgres_url") if backend == "postgres" else None
    log = PredictionLog(_log_url(tmp_path, postgres_url, backend, "predlog_refused"), flush_interval=60)
    log.record(_rows(3))
    log.record(_rows(1))  # p0 again: violates the primary key
    assert log.flush() == 3
    assert log.backlog == 0 and log.errors == 1
    assert _count(log) == 3
    log.close()
    log.engine.dispose()


def test_feedback_outcomes(tmp_path):
    log = PredictionLog(f"sqlite:///{tmp_path}/log.db", flush_interval=60)
    log.record(_rows(1))
    assert log.add_feedback("p0", 1) == "ok"  # still queued: flushed first
    assert log.add_feedback("p0", 0) == "duplicate"
    assert log.add_feedback("nope", 1) == "unknown"
    log.close()


@pytest.mark.postgres
def test_postgres_log(postgres_url):
    admin = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text("DROP DATABASE IF EXISTS serve_predlog"))
        conn.execute(sa.text("CREATE DATABASE serve_predlog"))
    admin.dispose()
    url = postgres_url.rsplit("/", 1)[0] + "/serve_predlog"
    log = PredictionLog(url, flush_interval=0.05, batch_size=50)
    log.record(_rows(120))
    assert log.add_feedback("p7", 1) == "ok"
    log.close()
    with log.engine.connect() as conn:
        stored = (
            conn.execute(sa.select(predictions).where(predictions.c.prediction_id == "p7")).mappings().one()
        )
        labels = conn.execute(sa.text("SELECT prediction_id, label FROM feedback")).all()
    assert _count(log) == 120
    assert stored["features"] == {"x": 7} and stored["created_at"].tzinfo is not None
    assert [tuple(r) for r in labels] == [("p7", 1)]
    log.engine.dispose()


def test_feedback_for_a_prediction_in_a_batch_being_written_waits_for_its_commit(tmp_path):
    # The writer pops a batch and then inserts it; feedback arriving in between must not answer 'unknown'.
    import threading
    import time

    log = PredictionLog(f"sqlite:///{tmp_path}/log.db", flush_interval=60, batch_size=100)
    log._queue.extend(_rows(1))
    popped = threading.Event()

    def slow_writer():
        with log._lock:
            batch = [log._queue.popleft()]
            popped.set()
            time.sleep(0.5)
            with log.engine.begin() as conn:
                conn.execute(predictions.insert(), batch)

    writer = threading.Thread(target=slow_writer)
    writer.start()
    popped.wait(5)
    assert log.add_feedback("p0", 1) == "ok"
    writer.join()
    log.close()


def _stored(engine: sa.Engine) -> list[dict]:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(predictions).order_by(predictions.c.prediction_id)).mappings().all()
    return [dict(row) for row in rows]


def _log_url(tmp_path, postgres_url, backend: str, name: str) -> str:
    if backend == "sqlite":
        return f"sqlite:///{tmp_path}/{name}.db"
    admin = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name}"))
        conn.execute(sa.text(f"CREATE DATABASE {name}"))
    admin.dispose()
    return postgres_url.rsplit("/", 1)[0] + f"/{name}"


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_the_batched_writer_stores_what_sqlalchemy_insert_stores(tmp_path, request, backend):
    """The log writes batches as plain executemany parameters (COPY on PostgreSQL); the rows must read back exactly
    as rows written by SQLAlchemy's own insert (types, time zone, JSON, missing values), since the monitoring jobs
    read them."""
    postgres_url = request.getfixturevalue("postgres_url") if backend == "postgres" else None
    first, second = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC), datetime.now(UTC)
    rows = [
        row
        | {
            "created_at": first if i < 3 else second,
            "features": {"x": i, "c": 'a\tb\nc\\d "e" é', "n": None, "f": 0.1 * i},
        }
        for i, row in enumerate(_rows(6))
    ]
    log = PredictionLog(_log_url(tmp_path, postgres_url, backend, "predlog_fast"), flush_interval=60)
    log.record(rows)
    log.close()
    reference = sa.create_engine(_log_url(tmp_path, postgres_url, backend, "predlog_reference"))
    predictions.metadata.create_all(reference)
    with reference.begin() as conn:
        conn.execute(predictions.insert(), rows)
    got, expected = _stored(log.engine), _stored(reference)
    assert len(got) == 6 and got == expected
    assert {row["created_at"].replace(tzinfo=UTC) for row in got} == {first, second}
    log.engine.dispose()
    reference.dispose()


def test_a_full_queue_waits_for_the_writer_then_refuses_and_queues_nothing(tmp_path):
    log = PredictionLog(f"sqlite:///{tmp_path}/log.db", flush_interval=0.05, batch_size=1000, max_backlog=10)
    log.record(_rows(8, "a"))
    log.record(_rows(8, "b"))  # no room: waits until the writer has written the first 8
    log.flush()
    assert _count(log) == 16
    predictions.drop(log.engine)  # the database fails: the writer cannot make room
    log.record(_rows(8, "c"))
    with pytest.raises(LogFull, match="8 predictions are waiting"):
        log.record(_rows(3, "d"))
    assert log.backlog == 8  # all or nothing: no row of the refused request is queued
    log.record(_rows(2, "e"))
    predictions.create(log.engine)
    log.close()
    assert (log.backlog, _count(log)) == (0, 10)
