"""The prediction log's tables, written once: the service writes them (app/predlog.py), monitoring reads them
(ops.monitor.log). Documented in docs/contracts.md.

    predictions(prediction_id PK, created_at, model_version, features JSON, probability, prediction)
    feedback(prediction_id PK, label, received_at, client)
    shadow_predictions(prediction_id + model_version PK, created_at, probability, prediction)

A shadow model (a challenger scoring the same requests without answering them) logs its output under the serving
row's prediction id, so one label judges both; its features are the serving row's.

`create_or_upgrade(engine)` is how a writer creates them: missing tables are created, and a table from an older
release gets the nullable columns added since (`ADD COLUMN`, no rewrite on SQLite or PostgreSQL; old rows read as
NULL). Readers select the columns they need, so an old log still reads.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

predictions = sa.Table(
    "predictions",
    metadata,
    sa.Column("prediction_id", sa.String(36), primary_key=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, index=True),
    sa.Column("model_version", sa.String(64), nullable=False, index=True),
    sa.Column("features", sa.JSON, nullable=False),
    sa.Column("probability", sa.Float, nullable=False),
    sa.Column("prediction", sa.Integer, nullable=False),
)

feedback = sa.Table(
    "feedback",
    metadata,
    sa.Column("prediction_id", sa.String(36), primary_key=True),
    sa.Column("label", sa.Integer, nullable=False),
    sa.Column("received_at", sa.DateTime(timezone=True), nullable=False, index=True),
    # the name of the token that sent the label (app/auth.py); NULL: unauthenticated, or written before 2026-12
    sa.Column("client", sa.String(64), nullable=True),
)

shadow_predictions = sa.Table(
    "shadow_predictions",
    metadata,
    sa.Column("prediction_id", sa.String(36), primary_key=True),
    sa.Column("model_version", sa.String(64), primary_key=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, index=True),
    sa.Column("probability", sa.Float, nullable=False),
    sa.Column("prediction", sa.Integer, nullable=False),
)

# Columns added after a table's first release: nullable, so adding one to an existing table needs no default.
ADDED_COLUMNS = {"feedback": ("client",)}


def create_or_upgrade(engine: sa.Engine) -> None:
    """Create the missing tables and add the ADDED_COLUMNS an existing table lacks. Safe to race (several workers
    starting at once): a column another process added in the meantime is not an error."""
    metadata.create_all(engine)
    for table_name, names in ADDED_COLUMNS.items():
        table = metadata.tables[table_name]
        for name in names:
            if _has_column(engine, table_name, name):
                continue
            column = table.c[name]
            ddl = f"ALTER TABLE {table_name} ADD COLUMN {name} {column.type.compile(dialect=engine.dialect)}"
            try:
                with engine.begin() as conn:
                    conn.exec_driver_sql(ddl)
            except sa.exc.DBAPIError:
                if not _has_column(engine, table_name, name):
                    raise


def _has_column(engine: sa.Engine, table_name: str, name: str) -> bool:
    return name in {c["name"] for c in sa.inspect(engine).get_columns(table_name)}
