import sqlalchemy as sa
import yaml

from demo.generate import generate_month, write_month
from demo.load_warehouse import load_files, main
from tests.support.paths import TEST_PARAMS


def _write_events(root, months=("2024-01", "2024-02"), rows=30):
    for month in months:
        write_month(generate_month(month, rows, 3), root / "data" / "events" / f"{month}.parquet")


def test_loads_every_file_into_a_fresh_table_with_nulls_kept(tmp_path):
    _write_events(tmp_path)
    url = f"sqlite:///{tmp_path / 'wh.db'}"
    files = sorted((tmp_path / "data" / "events").glob("*.parquet"))
    assert load_files(url, "events", files) == 60
    assert load_files(url, "events", files) == 60  # replaces, never appends twice
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM events")).scalar() == 60
        nulls = conn.execute(
            sa.text("SELECT count(*) FROM events WHERE avg_session_minutes IS NULL")
        ).scalar()
    engine.dispose()
    assert nulls > 0


def test_cli_needs_a_url(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("WAREHOUSE_URL", raising=False)
    assert main(["--params", str(TEST_PARAMS)]) == 2
    assert "WAREHOUSE_URL: not set" in capsys.readouterr().err


def test_cli_with_no_matching_files_is_a_clear_error(tmp_path, capsys):
    raw = yaml.safe_load(TEST_PARAMS.read_text())
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    assert main(["--params", str(tmp_path / "params.yaml"), "--url", f"sqlite:///{tmp_path / 'x.db'}"]) == 2
    assert "warehouse.files: no files to load" in capsys.readouterr().err
