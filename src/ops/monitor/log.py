"""What was predicted and labelled: the prediction log over a window, and the logged feature records as a frame."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import sqlalchemy as sa

from mlcore.errors import PipelineError
from mlcore.predlog_schema import feedback, predictions

LOG_COLUMNS = [
    "prediction_id",
    "created_at",
    "model_version",
    "features",
    "probability",
    "prediction",
    "label",
    "received_at",
]


def read_log(url: str, start: datetime, end: datetime) -> pd.DataFrame:
    """Predictions with created_at in [start, end), each with its feedback label (NaN when none arrived)."""
    engine = sa.create_engine(url)
    if engine.dialect.name == "sqlite":  # SQLite stores naive UTC timestamps
        start, end = start.astimezone(UTC).replace(tzinfo=None), end.astimezone(UTC).replace(tzinfo=None)
    query = (
        sa.select(*predictions.c, feedback.c.label, feedback.c.received_at)
        .select_from(predictions.outerjoin(feedback, predictions.c.prediction_id == feedback.c.prediction_id))
        .where(predictions.c.created_at >= start, predictions.c.created_at < end)
        .order_by(predictions.c.created_at)
    )
    try:
        with engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
    except sa.exc.SQLAlchemyError as exc:
        raise PipelineError(
            f"prediction log {engine.url.render_as_string(hide_password=True)}: "
            f"{str(exc.orig if hasattr(exc, 'orig') else exc).splitlines()[0]}"
        ) from exc
    finally:
        engine.dispose()
    frame = pd.DataFrame(rows, columns=LOG_COLUMNS)
    for column in ("created_at", "received_at"):
        frame[column] = pd.to_datetime(frame[column], utc=True)
    return frame


def features_table(log: pd.DataFrame, names: list[str]) -> tuple[pd.DataFrame, np.ndarray]:
    """The logged records as a frame of the model's features, and a mask of the rows that could be read."""
    records, valid = [], []
    for raw in log["features"]:
        record = json.loads(raw) if isinstance(raw, str | bytes) else raw
        ok = isinstance(record, dict) and all(name in record for name in names)
        valid.append(ok)
        records.append({name: record.get(name) for name in names} if isinstance(record, dict) else {})
    return pd.DataFrame.from_records(records, columns=names), np.asarray(valid, dtype=bool)
