"""What was predicted and labelled: the prediction log over a window, read in chunks, and the logged feature
records of a chunk as columns."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import numpy as np
import orjson
import pandas as pd
import sqlalchemy as sa

from mlcore.errors import PipelineError
from mlcore.predlog_schema import feedback, predictions

CHUNK_COLUMNS = ["prediction_id", "created_at", "features", "probability", "label", "received_at"]


@contextmanager
def log_errors(engine: sa.Engine, what: str = "") -> Iterator[None]:
    """A database error as one PipelineError naming the log (without its password)."""
    try:
        yield
    except sa.exc.SQLAlchemyError as exc:
        raise PipelineError(
            f"prediction log {engine.url.render_as_string(hide_password=True)}: {what}"
            f"{str(exc.orig if hasattr(exc, 'orig') else exc).splitlines()[0]}"
        ) from exc


def window_bounds(engine: sa.Engine, start: datetime, end: datetime) -> tuple[datetime, datetime]:
    if engine.dialect.name == "sqlite":  # SQLite stores naive UTC timestamps
        return start.astimezone(UTC).replace(tzinfo=None), end.astimezone(UTC).replace(tzinfo=None)
    return start, end


def read_window(
    url: str, start: datetime, end: datetime, version: str, chunk_rows: int
) -> tuple[dict[str, int], Iterator[pd.DataFrame]]:
    """Predictions by other model versions with created_at in [start, end) (counted in the database), and the
    predictions of `version` there as frames of at most `chunk_rows` rows (CHUNK_COLUMNS; label and received_at
    NaN/NaT when no feedback arrived; features as the logged JSON text), streamed from the database."""
    engine = sa.create_engine(url)
    start, end = window_bounds(engine, start, end)
    in_window = (predictions.c.created_at >= start, predictions.c.created_at < end)
    others = (
        sa.select(predictions.c.model_version, sa.func.count())
        .where(*in_window, predictions.c.model_version != version)
        .group_by(predictions.c.model_version)
        .order_by(sa.func.count().desc(), predictions.c.model_version)
    )
    try:
        with log_errors(engine), engine.connect() as conn:
            counts = {str(v): int(n) for v, n in conn.execute(others)}
    except PipelineError:
        engine.dispose()
        raise
    query = (
        sa.select(
            predictions.c.prediction_id,
            predictions.c.created_at,
            sa.cast(predictions.c.features, sa.Text),
            predictions.c.probability,
            feedback.c.label,
            feedback.c.received_at,
        )
        .select_from(predictions.outerjoin(feedback, predictions.c.prediction_id == feedback.c.prediction_id))
        .where(*in_window, predictions.c.model_version == version)
    )
    return counts, _chunks(engine, query, chunk_rows)


def _chunks(engine: sa.Engine, query: sa.Select, chunk_rows: int) -> Iterator[pd.DataFrame]:
    # stream_results: a server-side cursor on PostgreSQL, so the client holds one chunk, not the window
    try:
        with log_errors(engine), engine.connect() as conn:
            result = conn.execution_options(stream_results=True, yield_per=chunk_rows).execute(query)
            for rows in result.partitions():
                frame = pd.DataFrame(rows, columns=CHUNK_COLUMNS)
                for column in ("created_at", "received_at"):
                    frame[column] = pd.to_datetime(frame[column], utc=True)
                yield frame
    finally:
        engine.dispose()


def _record(raw: Any) -> Any:
    if isinstance(raw, str | bytes):
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            return None
    return raw


def features_table(raw: pd.Series, names: list[str]) -> tuple[pd.DataFrame, np.ndarray]:
    """The logged records as a frame of the model's features (object columns: each value as logged), and a mask
    of the rows that could be read (a JSON object with every feature)."""
    records = [_record(r) for r in raw]
    valid = np.fromiter(
        (isinstance(r, dict) and all(name in r for name in names) for r in records), bool, len(records)
    )
    records = [r if isinstance(r, dict) else {} for r in records]
    columns = {
        name: pd.Series([r.get(name) for r in records], index=raw.index, dtype=object) for name in names
    }
    return pd.DataFrame(columns, index=raw.index), valid
