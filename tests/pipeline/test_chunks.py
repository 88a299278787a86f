import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mlcore.errors import PipelineError
from pipeline.chunks import iter_chunks, open_snapshot, pandas_schema


def _write(path, statistics=True):
    table = pa.table(
        {
            "never_null": pa.array(range(10), pa.int64()),
            "null_in_last_group": pa.array([*range(9), None], pa.int64()),
            "text": pa.array(list("abcdefghij")),
        }
    )
    pq.write_table(table, path, row_group_size=4, write_statistics=statistics)
    return path


@pytest.mark.parametrize("statistics", [True, False])
def test_an_integer_column_with_a_null_anywhere_is_float_in_every_chunk(tmp_path, statistics):
    snapshot = open_snapshot(_write(tmp_path / "s.parquet", statistics))
    assert pandas_schema(snapshot).field("null_in_last_group").type == pa.float64()
    assert pandas_schema(snapshot).field("never_null").type == pa.int64()
    chunks = [chunk.to_pandas() for chunk in iter_chunks(snapshot, chunk_rows=3)]
    assert max(len(c) for c in chunks) <= 3
    assert all(c["null_in_last_group"].dtype == "float64" for c in chunks)
    # Together the chunks are what pandas reads from the whole file.
    pd.testing.assert_frame_equal(
        pd.concat(chunks, ignore_index=True), pd.read_parquet(tmp_path / "s.parquet")
    )


def test_selected_columns_only(tmp_path):
    snapshot = open_snapshot(_write(tmp_path / "s.parquet"))
    chunk = next(iter_chunks(snapshot, 100, columns=["text"]))
    assert chunk.column_names == ["text"]


def test_a_file_that_is_not_parquet_is_a_clear_error(tmp_path):
    (tmp_path / "s.parquet").write_text("not parquet")
    with pytest.raises(PipelineError, match=r"s\.parquet: cannot read snapshot"):
        open_snapshot(tmp_path / "s.parquet")
