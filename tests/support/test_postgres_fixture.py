import pytest
import sqlalchemy as sa


@pytest.mark.postgres
def test_postgres_fixture_serves_queries(postgres_url):
    engine = sa.create_engine(postgres_url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE t (x int)"))
        conn.execute(sa.text("INSERT INTO t VALUES (1), (2)"))
        assert conn.execute(sa.text("SELECT sum(x) FROM t")).scalar() == 3
