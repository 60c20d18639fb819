"""Arrow IPC (feather) and Parquet tables, read batch by batch (freqtrade's data files).

pyarrow is imported here only, when such a file is read. Timestamp columns become integer
nanoseconds; the other cells become Python values.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .datafile import DataFileError

BATCH_ROWS = 65_536


def _pyarrow(path: Path) -> Any:
    try:
        import pyarrow
        import pyarrow.ipc
        import pyarrow.parquet
    except ImportError:
        raise DataFileError(path, None, "reading feather/parquet files needs pyarrow: pip install pyarrow") from None
    return pyarrow


def arrow_columns(path: Path, container: str) -> list[str]:
    pa = _pyarrow(path)
    try:
        if container == "parquet":
            return list(pa.parquet.ParquetFile(path).schema_arrow.names)
        with pa.memory_map(str(path)) as source:
            return list(pa.ipc.open_file(source).schema.names)
    except (pa.ArrowException, OSError) as err:
        raise DataFileError(path, None, f"not a readable {container} file: {err}") from None


def _batches(pa: Any, path: Path, container: str) -> Iterator[Any]:
    if container == "parquet":
        yield from pa.parquet.ParquetFile(path).iter_batches(batch_size=BATCH_ROWS)
        return
    with pa.memory_map(str(path)) as source:
        reader = pa.ipc.open_file(source)
        for i in range(reader.num_record_batches):
            yield reader.get_batch(i)


_NS_PER_UNIT = {"s": 10**9, "ms": 10**6, "us": 10**3, "ns": 1}


def _column(pa: Any, col: Any) -> list[Any]:
    if pa.types.is_timestamp(col.type):
        scale = _NS_PER_UNIT[col.type.unit]
        return [None if v is None else v * scale for v in col.cast(pa.int64()).to_pylist()]
    values: list[Any] = col.to_pylist()
    return values


def arrow_rows(path: Path, container: str) -> Iterator[tuple[Any, ...]]:
    """Every row as a tuple of cells, in file order, one batch in memory at a time."""
    pa = _pyarrow(path)
    try:
        for batch in _batches(pa, path, container):
            columns = [_column(pa, batch.column(i)) for i in range(batch.num_columns)]
            yield from zip(*columns, strict=True)
    except (pa.ArrowException, OSError) as err:
        raise DataFileError(path, None, f"not a readable {container} file: {err}") from None
