"""Reading the benchmark's CSV files the way its tools do (``pd.read_csv(path).dropna()``).

The official tools load every table with pandas and drop each row that has a missing field.
"Missing" is pandas' rule, not ours: a field is missing when it is empty or one of pandas'
default NA strings (``nan``, ``NA``, ``None``, ``null``, ``#N/A``, ...), compared exactly
(``" nan"`` is text). These helpers read with :mod:`pyarrow` (a dependency of ``datasets``)
configured to that rule, so a table has the rows the official tools see, in file order.

Header names follow pandas too: an empty name becomes ``"Unnamed: <position>"`` and a
repeated name gets ``".1"``, ``".2"``, ... Rows with more fields than the header (pandas
raises) and with fewer (pandas fills them with NA, so ``dropna`` drops them) are skipped.

Example:
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "t.csv"
    >>> _ = path.write_text(",Name,City\\n0,Cafe Rosa,Denver\\n1,NA,Denver\\n2, nan,Denver\\n")
    >>> read_rows(path)
    [{'Unnamed: 0': '0', 'Name': 'Cafe Rosa', 'City': 'Denver'}, \
{'Unnamed: 0': '2', 'Name': ' nan', 'City': 'Denver'}]
    >>> len(read_rows(path, drop_missing=False))
    3
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["PANDAS_NA_VALUES", "column_names", "read_rows", "stream_batches"]

#: pandas' default NA strings (``pandas._libs.parsers.STR_NA_VALUES``, pandas >= 2.0, the
#: official requirements pin 2.0.1).
PANDAS_NA_VALUES = (
    "",
    "#N/A",
    "#N/A N/A",
    "#NA",
    "-1.#IND",
    "-1.#QNAN",
    "-NaN",
    "-nan",
    "1.#IND",
    "1.#QNAN",
    "<NA>",
    "N/A",
    "NA",
    "NULL",
    "NaN",
    "None",
    "n/a",
    "nan",
    "null",
)


def column_names(path: Path) -> list[str]:
    """The header of ``path`` with pandas' names for empty and repeated columns."""
    with path.open(newline="", encoding="utf-8-sig") as handle:
        header = next(csv.reader(handle), [])
    names: list[str] = []
    seen: dict[str, int] = {}
    for position, raw in enumerate(header):
        name = raw or f"Unnamed: {position}"
        if name in seen:
            seen[name] += 1
            name = f"{name}.{seen[name]}"
        seen.setdefault(name, 0)
        names.append(name)
    return names


def _reader_options(path: Path, block_size: int, newlines_in_values: bool) -> tuple[Any, ...]:
    import pyarrow as pa
    import pyarrow.csv as pacsv

    names = column_names(path)
    read = pacsv.ReadOptions(column_names=names, skip_rows=1, block_size=block_size)
    parse = pacsv.ParseOptions(
        newlines_in_values=newlines_in_values, invalid_row_handler=lambda row: "skip"
    )
    convert = pacsv.ConvertOptions(
        column_types=dict.fromkeys(names, pa.string()),
        null_values=list(PANDAS_NA_VALUES),
        strings_can_be_null=True,
        quoted_strings_can_be_null=True,
    )
    return read, parse, convert


def _complete(batch: Any) -> Any:
    """``batch`` without the rows that have a missing field (pandas' ``dropna()``)."""
    import pyarrow.compute as pc

    if batch.num_rows == 0 or all(column.null_count == 0 for column in batch.columns):
        return batch
    mask = pc.is_valid(batch.column(0))
    for column in batch.columns[1:]:
        mask = pc.and_(mask, pc.is_valid(column))
    return batch.filter(mask)


def stream_batches(
    path: Path, *, block_size: int = 2 << 20, drop_missing: bool = True
) -> Iterator[Any]:
    """Record batches (``pyarrow``) of string columns, ``block_size`` bytes of file at a time.

    Memory stays bounded by the block size whatever the file's length. Fields with line
    breaks inside quotes are not supported here (the flight table has none); use
    :func:`read_rows` for small tables.
    """
    import pyarrow as pa
    import pyarrow.csv as pacsv

    read, parse, convert = _reader_options(path, block_size, newlines_in_values=False)
    # An explicit file stream: given a path, pyarrow memory-maps the file, and every page
    # it has parsed then counts as this process's resident memory (the whole file, 318 MB
    # for the flights).
    with pa.OSFile(str(path)) as source:
        reader = pacsv.open_csv(
            source, read_options=read, parse_options=parse, convert_options=convert
        )
        for batch in reader:
            yield _complete(batch) if drop_missing else batch


def read_rows(path: Path, *, drop_missing: bool = True) -> list[dict[str, str | None]]:
    """All rows of a (small) table as dicts, in file order; missing fields are ``None``."""
    import pyarrow.csv as pacsv

    # One block for the whole file: a long quoted field (a query file's reference
    # information) must not straddle two blocks.
    block_size = max(1 << 20, path.stat().st_size + 1)
    read, parse, convert = _reader_options(path, block_size, newlines_in_values=True)
    table = pacsv.read_csv(path, read_options=read, parse_options=parse, convert_options=convert)
    if drop_missing:
        table = table.drop_null()
    return table.to_pylist()
