"""The benchmark's flight table (3.8 million rows) as columns: loaded once, memory-mapped.

Holding the real ``clean_Flights_2022.csv`` as one Python object per row took 28 s and
2.6 GB in every process. :class:`ColumnarFlights` keeps it as a handful of numpy columns
instead: flight numbers as fixed-width bytes, prices and distances as floats, and the
low-cardinality text columns (times, durations, dates, cities) as integer codes into one
shared list of strings. Rows are stored sorted by (origin, destination, date), so a
``FlightSearch`` is a binary search over one sorted key column and reads a contiguous run of
rows; an index sorted by flight number serves the evaluator. Flights are materialised as
:class:`~.database.Flight` records only when a lookup returns them, in file order.

:func:`load_flights` parses the CSV in bounded memory (pyarrow, 2 MiB blocks; the rows the
official tools keep, see :mod:`.csv_tables`), and for large files saves the columns under
the agentgym cache (``$AGENTGYM_CACHE`` or ``~/.cache/agentgym``, in
``travelplanner/flights-<key>``, where the key hashes the file's path, size and modification
time). The save is written to a temporary folder and renamed into place under a file lock,
so concurrent processes build it once; later loads memory-map the saved columns, which every
process and environment copy on the machine then shares through the page cache.

Example:
    >>> from pathlib import Path
    >>> root = Path(__file__).parents[2] / "tests" / "fixtures" / "travelplanner"
    >>> flights = load_flights(root / "database" / "flights" / "clean_Flights_2022.csv")
    >>> [f.number for f in flights.search("Chicago", "Denver", "2022-03-10")]
    ['F3502691', 'F3502692']
    >>> flights.get("F3502692").price, flights.get("F0000000")
    (199, None)
"""

from __future__ import annotations

import functools
import hashlib
import json
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from agentgym.core.durable import file_lock, staged_directory
from agentgym.envs.travelplanner.csv_tables import stream_batches
from agentgym.envs.travelplanner.database import Flight

__all__ = ["CACHE_MIN_BYTES", "ColumnarFlights", "flight_cache_dir", "load_flights"]

#: Files at least this large are cached on disk (memory-mapped); smaller ones stay in memory.
CACHE_MIN_BYTES = 8 << 20
FORMAT_VERSION = 2
#: CSV bytes parsed at a time: bounds the parser's memory (pyarrow reads a few blocks ahead).
BLOCK_BYTES = 4 << 20
#: CSV column -> stored column, for the columns kept as codes into the string list.
_CODED = {
    "DepTime": "dep_time",
    "ArrTime": "arr_time",
    "ActualElapsedTime": "elapsed",
    "FlightDate": "date",
    "OriginCityName": "origin",
    "DestCityName": "destination",
}
_FLOATS = {"Price": "price", "Distance": "distance"}
REQUIRED_COLUMNS = ("Flight Number", *_FLOATS, *_CODED)
_INDEXES = ("trip_keys", "number_order", "number_sorted")
_COLUMNS = ("number", *_FLOATS.values(), *_CODED.values())


def _plain_number(value: float) -> int | float:
    """``287.0`` -> ``287`` (prices print as the file wrote them), ``12.5`` stays."""
    return int(value) if float(value).is_integer() else float(value)


class ColumnarFlights:
    """Flights held as numpy columns with sorted indexes (read-only, shareable).

    Args:
        arrays: The columns (:data:`_COLUMNS`) and indexes (:data:`_INDEXES`), in memory or
            memory-mapped.
        strings: The strings the coded columns refer to.
        origins: The cities that have departures (for callers that list them).
    """

    def __init__(
        self, arrays: Mapping[str, np.ndarray], strings: Sequence[str], origins: Sequence[str]
    ) -> None:
        missing = [name for name in (*_COLUMNS, *_INDEXES) if name not in arrays]
        if missing:
            raise ValueError(f"flight columns missing: {missing}")
        self._arrays = dict(arrays)
        self._strings = list(strings)
        self._code = {text: code for code, text in enumerate(self._strings)}
        self.cities = tuple(origins)
        self._base = len(self._strings) + 1
        self.search = functools.lru_cache(maxsize=4096)(self._search)  # type: ignore[method-assign]

    def __len__(self) -> int:
        return len(self._arrays["number"])

    # -- building
    @classmethod
    def from_csv(cls, path: Path) -> ColumnarFlights:
        """Parse ``path`` into in-memory columns (rows with a missing field are dropped).

        The columns are allocated once, for as many rows as the file has lines, and filled
        block by block: appending many small chunks instead leaves the heap fragmented and
        the process twice as large as its data.
        """
        capacity = _line_count(path)
        arrays: dict[str, np.ndarray] = {}
        strings: dict[str, int] = {}
        filled = 0
        for batch in stream_batches(path, block_size=BLOCK_BYTES):
            absent = [name for name in REQUIRED_COLUMNS if name not in batch.schema.names]
            if absent:
                raise ValueError(
                    f"{path} lacks the column(s) {absent}; a TravelPlanner flight table has "
                    f"{', '.join(REQUIRED_COLUMNS)}"
                )
            floats = {name: _floats(batch.column(column)) for column, name in _FLOATS.items()}
            usable = np.isfinite(floats["price"]) & np.isfinite(floats["distance"])
            block = {"number": _fixed_bytes(batch.column("Flight Number"))[usable]}
            block.update({name: values[usable] for name, values in floats.items()})
            for column, name in _CODED.items():
                codes = _codes(batch.column(column), strings)[usable]
                # Two bytes a code while the strings fit (the column widens if they outgrow).
                block[name] = codes.astype(np.uint16) if len(strings) < 2**16 else codes
            for name, values in block.items():
                column = arrays.get(name)
                if column is None:
                    column = arrays[name] = np.zeros(capacity, dtype=values.dtype)
                elif np.result_type(column.dtype, values.dtype) != column.dtype:
                    column = arrays[name] = column.astype(np.result_type(column, values))
                column[filled : filled + len(values)] = values
            filled += int(usable.sum())
        if not arrays:  # a header without rows
            arrays = {
                name: np.zeros(0, dtype="S1" if name == "number" else np.uint16)
                for name in _COLUMNS
            }
        columns = {name: column[:filled] for name, column in arrays.items()}
        del arrays  # _sorted_by_trip replaces the columns one by one: no second full copy
        arrays = _sorted_by_trip(columns, len(strings) + 1)
        names = list(strings)
        origins = sorted({names[int(code)] for code in np.unique(arrays["origin"])})
        return cls(arrays, names, origins)

    # -- saving and loading
    def save(self, directory: Path, source: str) -> None:
        """Write the columns (``.npy``) and strings (``meta.json``) to ``directory``."""
        for name, array in self._arrays.items():
            np.save(directory / f"{name}.npy", np.ascontiguousarray(array))
        meta = {
            "version": FORMAT_VERSION,
            "source": source,
            "rows": len(self),
            "strings": self._strings,
            "origins": list(self.cities),
        }
        (directory / "meta.json").write_text(json.dumps(meta))

    @classmethod
    def load(cls, directory: Path) -> ColumnarFlights:
        """Columns saved by :meth:`save`, memory-mapped read-only."""
        meta = json.loads((directory / "meta.json").read_text())
        # Plain ndarray views of the maps: np.memmap's subclass hooks slow every index.
        arrays = {
            name: np.asarray(np.load(directory / f"{name}.npy", mmap_mode="r"))
            for name in (*_COLUMNS, *_INDEXES)
        }
        return cls(arrays, meta["strings"], meta["origins"])

    # -- lookups
    def _row(self, row: int) -> Flight:
        a, text = self._arrays, self._strings
        return Flight(
            number=a["number"][row].decode("utf-8", "replace"),
            price=_plain_number(a["price"][row]),  # type: ignore[arg-type]
            dep_time=text[a["dep_time"][row]],
            arr_time=text[a["arr_time"][row]],
            elapsed=text[a["elapsed"][row]],
            date=text[a["date"][row]],
            origin=text[a["origin"][row]],
            destination=text[a["destination"][row]],
            distance=float(a["distance"][row]),
        )

    def search(self, origin: str, destination: str, date: str) -> tuple[Flight, ...]:
        """Flights from ``origin`` to ``destination`` on ``date``, in file order."""
        return self._search(origin, destination, date)  # replaced by a cached version

    def _search(self, origin: str, destination: str, date: str) -> tuple[Flight, ...]:
        codes = [self._code.get(text) for text in (origin, destination, date)]
        if None in codes:
            return ()
        o, d, day = codes
        key = (o * self._base + d) * self._base + day  # type: ignore[operator]
        keys = self._arrays["trip_keys"]
        low, high = np.searchsorted(keys, key, "left"), np.searchsorted(keys, key, "right")
        return tuple(self._row(row) for row in range(int(low), int(high)))

    def with_number(self, number: str) -> tuple[Flight, ...]:
        """Every row with exactly this flight number, in file order."""
        try:
            key = np.bytes_(number.encode("utf-8"))
        except (AttributeError, UnicodeEncodeError):
            return ()
        if not key or len(key) > self._arrays["number"].dtype.itemsize:
            return ()
        numbers = self._arrays["number_sorted"]
        low, high = np.searchsorted(numbers, key, "left"), np.searchsorted(numbers, key, "right")
        return tuple(self._row(int(row)) for row in self._arrays["number_order"][low:high])

    def get(self, number: str) -> Flight | None:
        """The first row with this flight number (``None`` if there is none)."""
        rows = self.with_number(number)
        return rows[0] if rows else None


def _floats(column: Any) -> np.ndarray:
    """A string column as floats (``nan`` where a value is not a number)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        return pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        values = []
        for text in column.to_pylist():
            try:
                values.append(float(str(text).replace(",", "")))
            except ValueError:
                values.append(float("nan"))
        return np.array(values, dtype=np.float64)


def _fixed_bytes(column: Any) -> np.ndarray:
    """A string column as a numpy ``S<width>`` array (zero-copy when widths are equal)."""
    count = len(column)
    if count == 0:
        return np.zeros(0, dtype="S1")
    offsets = np.frombuffer(
        column.buffers()[1], dtype=np.int32, count=count + 1, offset=column.offset * 4
    )
    widths = np.diff(offsets)
    if widths[0] > 0 and (widths == widths[0]).all():
        data = np.frombuffer(column.buffers()[2], dtype=np.uint8)[offsets[0] : offsets[-1]]
        return data.view(f"S{int(widths[0])}").copy()
    return np.array([text.encode("utf-8") for text in column.to_pylist()], dtype="S")


def _codes(column: Any, strings: dict[str, int]) -> np.ndarray:
    """A string column as codes into ``strings`` (new strings are appended)."""
    import pyarrow.compute as pc

    encoded = pc.dictionary_encode(column)
    remap = np.array(
        [strings.setdefault(text, len(strings)) for text in encoded.dictionary.to_pylist()],
        dtype=np.int32,
    )
    indices = encoded.indices.to_numpy(zero_copy_only=False)
    return remap[indices] if len(remap) else np.zeros(len(indices), dtype=np.int32)


def _line_count(path: Path) -> int:
    """Line breaks in ``path`` plus one: an upper bound on its data rows."""
    count = 1
    with path.open("rb") as handle:
        while block := handle.read(16 << 20):
            count += block.count(b"\n")
    return count


def _sorted_by_trip(columns: dict[str, np.ndarray], base: int) -> dict[str, np.ndarray]:
    """The columns reordered by (origin, destination, date), with the two lookup indexes.

    Rows of one trip become contiguous (a search reads a few neighbouring pages, not rows
    scattered over the whole file); the sort is stable, so they stay in file order. The
    number index is sorted in *file* order before the reordering and then mapped to the new
    positions, so a number's first entry is still its first row in the file.
    """
    numbers = columns["number"]
    if numbers.dtype.itemsize <= 8:
        # Big-endian integers of the NUL-padded bytes sort like the bytes, twice as fast.
        numbers = numbers.astype("S8").view(">u8")
    by_number = np.argsort(numbers, kind="stable")
    del numbers
    number_sorted = columns["number"][by_number]
    trip = (columns["origin"].astype(np.int64) * base + columns["destination"]) * base
    trip += columns["date"]
    order = np.argsort(trip, kind="stable")
    trip_keys = trip[order]
    del trip
    for name in list(columns):  # in place, so each original is freed once it is copied
        columns[name] = columns[name][order]
    position = np.empty(len(order), dtype=np.int32)
    position[order] = np.arange(len(order), dtype=np.int32)
    del order
    columns.update(
        trip_keys=trip_keys, number_order=position[by_number], number_sorted=number_sorted
    )
    return columns


# ------------------------------------------------------------------------ cache --


def flight_cache_dir(path: Path) -> Path:
    """Where the columns of the flight file ``path`` are cached (keyed by path, size, mtime)."""
    from agentgym.models import cache_dir

    stat = path.stat()
    fingerprint = json.dumps([str(path.resolve()), stat.st_size, stat.st_mtime_ns])
    key = hashlib.sha1(fingerprint.encode()).hexdigest()[:16]
    return cache_dir() / "travelplanner" / f"flights-{key}-v{FORMAT_VERSION}"


def load_flights(path: Path | str, *, cache: bool | None = None) -> ColumnarFlights:
    """The flight table of ``path``: from the disk cache, or parsed (and cached).

    Args:
        path: The benchmark's ``clean_Flights_2022.csv`` (or a file with its columns).
        cache: Keep the parsed columns in the disk cache and memory-map them; ``None``
            (default) caches files of at least :data:`CACHE_MIN_BYTES`. An unwritable cache
            falls back to parsing into memory, with a warning.
    """
    path = Path(path).expanduser()
    if cache is None:
        cache = path.stat().st_size >= CACHE_MIN_BYTES
    if not cache:
        return ColumnarFlights.from_csv(path)
    target = flight_cache_dir(path)
    try:
        if not (target / "done").exists():
            with file_lock(target.with_name(target.name + ".lock")):
                if not (target / "done").exists():
                    return _build_and_save(path, target)
        return ColumnarFlights.load(target)
    except OSError as exc:
        warnings.warn(
            f"TravelPlanner flight cache {target} is not usable ({exc}); parsing {path} into "
            "memory. Set AGENTGYM_CACHE to a writable directory to share it.",
            stacklevel=2,
        )
        return ColumnarFlights.from_csv(path)


def _build_and_save(path: Path, target: Path) -> ColumnarFlights:
    """Parse, write to a temporary folder, rename into place; return the mapped columns."""
    flights = ColumnarFlights.from_csv(path)
    with staged_directory(target) as staging:  # replaces an unfinished earlier attempt
        flights.save(staging, str(path.resolve()))
        (staging / "done").write_text(str(path.resolve()))
    del flights  # map the saved copy instead: the page cache shares it between processes
    return ColumnarFlights.load(target)
