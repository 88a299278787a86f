"""Read a Parquet snapshot in bounded chunks, each typed as if the whole file had been read into pandas at once.

Types are those pandas gives a file of plain Arrow types, as `extract` writes it; pandas metadata in the file
(written by `DataFrame.to_parquet`, e.g. to restore an `Int64` dtype) is not applied.

`validate` and `prepare` stream the snapshot through these instead of `pd.read_parquet`, so their memory is
bounded by `extract.chunk_rows`, not by the window. One subtlety keeps the results equal to a whole-file read:
pandas turns an integer column into float64 when it holds nulls, so an integer column with a null *anywhere*
in the file is read as float64 in *every* chunk (found from the row groups' statistics, without a full scan).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from mlcore.errors import PipelineError


def open_snapshot(path: str | Path) -> pq.ParquetFile:
    try:
        # pre_buffer would read ahead whole row groups of every column: more memory, no gain on a local file.
        return pq.ParquetFile(path, pre_buffer=False)
    except (FileNotFoundError, OSError, pa.ArrowInvalid) as exc:
        raise PipelineError(f"{path}: cannot read snapshot ({exc})") from exc


def pandas_schema(snapshot: pq.ParquetFile) -> pa.Schema:
    """The file's Arrow schema with integer columns that hold a null anywhere as float64 (as pandas reads them)."""
    schema = snapshot.schema_arrow
    meta = snapshot.metadata
    for index, field in enumerate(schema):
        if not pa.types.is_integer(field.type):
            continue
        nulls = 0
        for group in range(meta.num_row_groups):
            stats = meta.row_group(group).column(index).statistics
            if stats is not None and stats.has_null_count:
                nulls += stats.null_count
            else:  # a writer that kept no statistics: read this one column of this row group
                nulls += snapshot.read_row_group(group, columns=[field.name]).column(0).null_count
        if nulls:
            schema = schema.set(index, field.with_type(pa.float64()))
    return schema.remove_metadata()


def iter_chunks(
    snapshot: pq.ParquetFile, chunk_rows: int, columns: list[str] | None = None
) -> Iterator[pa.Table]:
    """Tables of at most `chunk_rows` rows, in file order, typed by `pandas_schema` (all columns or `columns`)."""
    schema = pandas_schema(snapshot)
    if columns is not None:
        schema = pa.schema([schema.field(name) for name in columns])
    for batch in snapshot.iter_batches(batch_size=chunk_rows, columns=columns):
        yield pa.Table.from_batches([batch]).cast(schema)
