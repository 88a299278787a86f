"""The prediction log's tables (mlcore.predlog_schema): a log written by an older release, whose feedback table
has no `client` column, is upgraded in place when a writer starts, keeping its rows."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from mlcore.predlog_schema import create_or_upgrade, feedback

OLD_FEEDBACK = sa.Table(  # the feedback table as released before `client`
    "feedback",
    sa.MetaData(),
    sa.Column("prediction_id", sa.String(36), primary_key=True),
    sa.Column("label", sa.Integer, nullable=False),
    sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
)


def _url(tmp_path, request, backend: str) -> str:
    if backend == "sqlite":
        return f"sqlite:///{tmp_path}/old.db"
    postgres_url = request.getfixturevalue("postgres_url")
    admin = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text("DROP DATABASE IF EXISTS predlog_upgrade"))
        conn.execute(sa.text("CREATE DATABASE predlog_upgrade"))
    admin.dispose()
    return postgres_url.rsplit("/", 1)[0] + "/predlog_upgrade"


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_an_old_feedback_table_gets_the_client_column_and_keeps_its_rows(tmp_path, request, backend):
    url = _url(tmp_path, request, backend)
    engine = sa.create_engine(url)
    OLD_FEEDBACK.metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(
            OLD_FEEDBACK.insert().values(prediction_id="a" * 32, label=1, received_at=datetime.now(UTC))
        )

    create_or_upgrade(engine)  # what the service does at start (app/predlog.py)
    with engine.begin() as conn:
        conn.execute(
            feedback.insert().values(
                prediction_id="b" * 32, label=0, received_at=datetime.now(UTC), client="crm"
            )
        )
    create_or_upgrade(engine)  # a second start (or a racing worker) changes nothing
    with engine.connect() as conn:
        rows = conn.execute(sa.select(feedback.c.prediction_id, feedback.c.label, feedback.c.client)).all()
    engine.dispose()
    assert sorted(tuple(r) for r in rows) == [("a" * 32, 1, None), ("b" * 32, 0, "crm")]
