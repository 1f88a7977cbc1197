"""Loading TravelPlanner's full flight table: time and memory, one process and several.

The benchmark's ``clean_Flights_2022.csv`` (3.8 million rows) is not redistributable and
not available offline, so this script first writes a synthetic file with the same columns
and row count (``--write``; rows like ``0,F3502691,287,06:10,08:41,2 hours 31 minutes,
2022-03-10,Chicago,Denver,888.0``, 0.1% of them with a missing field, as the official tools
drop), next to copies of the test fixture's other tables, then measures, each in a fresh
subprocess:

* ``build``: the first load, which parses the CSV into memory-mapped columns in the cache
  (``$AGENTGYM_CACHE``; the script uses a temporary one): wall time and peak resident
  memory (``ru_maxrss``);
* ``cached``: a later load from the cache: wall time, resident memory after loading and
  after 2,000 flight searches and number lookups, and the proportional share (PSS);
* ``copies``: ``--copies`` environments made with ``gymnasium.make`` on the same data in
  one process (they share the one database);
* ``processes``: ``--processes`` processes loading at once; their summed RSS and summed
  PSS (the memory-mapped columns are shared through the page cache, so PSS, the fair
  share, is what the machine pays).

Times are wall-clock seconds and CPU seconds (user + system, all threads); on a busy machine
only the CPU time is meaningful.

Run: ``.venv/bin/python benchmarks/travelplanner_flights.py [--rows 3800000] [--copies 8]
[--processes 4] [--data /tmp/tp-bench]``. The generated file is written under ``--data``
(default in ``/tmp``) and never committed.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

FIXTURE = Path(__file__).parents[1] / "tests" / "fixtures" / "travelplanner" / "database"
FLIGHTS_FILE = "clean_Flights_2022.csv"
HEADER = (
    ",Flight Number,Price,DepTime,ArrTime,ActualElapsedTime,FlightDate,OriginCityName,"
    "DestCityName,Distance\n"
)


def write_flights_csv(path: Path, rows: int, seed: int = 0, chunk: int = 200_000) -> None:
    """A synthetic flight table in the benchmark's format (unique ``F\\d{7}`` numbers).

    Cities are the generated database's 261 real US city names; each row is a flight on a
    day of March 2022 between two of them, priced and timed by a made-up distance.
    """
    from agentgym.envs.travelplanner.vocabulary import US_STATES

    cities = np.array([city for _, _, names in US_STATES.values() for city in names])
    rng = np.random.default_rng(seed)
    numbers = rng.permutation(10_000_000)[:rows]
    with path.open("w", encoding="utf-8") as handle:
        handle.write(HEADER)
        for start in range(0, rows, chunk):
            n = min(chunk, rows - start)
            origin = rng.integers(len(cities), size=n)
            destination = (origin + rng.integers(1, len(cities), size=n)) % len(cities)
            miles = rng.integers(70, 2800, size=n)
            minutes = (miles / 8 + 30 + rng.integers(0, 40, size=n)).astype(int)
            departure = rng.integers(300, 1380, size=n)
            arrival = (departure + minutes) % 1440
            price = (40 + miles * rng.uniform(0.05, 0.3, size=n)).astype(int)
            day = rng.integers(1, 32, size=n)
            missing = rng.random(n) < 0.001
            lines = []
            for k in range(n):
                lines.append(
                    f"{start + k},F{numbers[start + k]:07d},"
                    f"{'' if missing[k] else price[k]},"
                    f"{departure[k] // 60:02d}:{departure[k] % 60:02d},"
                    f"{arrival[k] // 60:02d}:{arrival[k] % 60:02d},"
                    f"{minutes[k] // 60} hours {minutes[k] % 60} minutes,2022-03-{day[k]:02d},"
                    f"{cities[origin[k]]},{cities[destination[k]]},{miles[k]}.0\n"
                )
            handle.write("".join(lines))


def prepare(data: Path, rows: int) -> Path:
    """A database folder: the fixture's small tables plus a synthetic flight file."""
    database = data / "database"
    flights = database / "flights" / FLIGHTS_FILE
    marker = data / f"rows-{rows}"
    if marker.exists() and flights.exists():
        return database
    if database.exists():
        shutil.rmtree(database)
    shutil.copytree(FIXTURE, database)
    start = time.perf_counter()
    write_flights_csv(flights, rows)
    print(
        f"wrote {rows:,} rows ({flights.stat().st_size / 2**20:.0f} MiB) in "
        f"{time.perf_counter() - start:.1f} s to {flights}"
    )
    marker.write_text("done")
    return database


# ------------------------------------------------------------------ subprocess work --


def _memory_mb() -> dict[str, float]:
    """Resident (RSS), proportional (PSS) and peak resident memory of this process, MB."""
    values = {}
    for line in Path("/proc/self/smaps_rollup").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in ("Rss", "Pss"):
            values[name.lower()] = int(rest.split()[0]) / 1024
    values["peak_rss"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return values


def _lookups(db, count: int = 2000) -> None:
    rng = np.random.default_rng(1)
    cities = list(db.flights.cities) if hasattr(db.flights, "cities") else ["Chicago"]
    for _ in range(count):
        a, b = (cities[int(i)] for i in rng.integers(len(cities), size=2))
        for flight in db.search_flights(a, b, f"2022-03-{int(rng.integers(1, 32)):02d}"):
            db.flight(flight.number)


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def work(task: str, database: str, copies: int) -> dict:
    """One measurement, run in a fresh process (see the module docstring)."""
    before = _memory_mb()
    start, cpu = time.perf_counter(), _cpu_s()
    from agentgym.envs.travelplanner.loaders import load_database

    db = load_database(database)
    result: dict = {
        "load_s": time.perf_counter() - start,
        "load_cpu_s": _cpu_s() - cpu,
        "rows": len(db.flights),
    }
    result["after_load"] = _memory_mb()
    result["baseline"] = before
    if task == "cached":
        start = time.perf_counter()
        _lookups(db)
        result["lookups_s"] = time.perf_counter() - start
        result["after_lookups"] = _memory_mb()
    if task == "copies":
        import gymnasium as gym

        import agentgym  # noqa: F401  (registers the environments)

        envs = []
        for i in range(copies):
            env = gym.make(
                "agentgym/TravelPlanner-v0",
                data_dir=database,
                queries_file=str(FIXTURE.parent / "validation.csv"),
                split="validation",
                mode="sole-planning" if i % 2 else "two-stage",
            )
            env.reset(options={"task_index": i % 2})
            envs.append(env)
        _lookups(db)
        result["after_copies"] = _memory_mb()
    return result


def _run(task: str, database: Path, cache: Path, copies: int = 0) -> subprocess.Popen:
    env = {**os.environ, "AGENTGYM_CACHE": str(cache)}
    command = [sys.executable, __file__, "--work", task, "--database", str(database)]
    command += ["--copies", str(copies)]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True)


def _result(process: subprocess.Popen) -> dict:
    output, _ = process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"measurement subprocess failed ({process.returncode})")
    return json.loads(output.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=3_800_000)
    parser.add_argument("--copies", type=int, default=8)
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "tp-bench")
    parser.add_argument("--write", action="store_true", help="only write the synthetic file")
    parser.add_argument("--work", help=argparse.SUPPRESS)
    parser.add_argument("--database", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.work:
        print(json.dumps(work(args.work, args.database, args.copies)))
        return
    database = prepare(args.data, args.rows)
    if args.write:
        return
    with tempfile.TemporaryDirectory(prefix="tp-cache-") as cache_text:
        cache = Path(cache_text)
        build = _result(_run("build", database, cache))
        print(
            f"build (first load, into the cache): {build['load_s']:.1f} s "
            f"({build['load_cpu_s']:.1f} s CPU), peak RSS {build['after_load']['peak_rss']:.0f} "
            f"MB, {build['rows']:,} rows kept"
        )
        cached = _result(_run("cached", database, cache))
        grown = cached["after_lookups"]["rss"] - cached["baseline"]["rss"]
        print(
            f"cached load: {cached['load_s']:.2f} s ({cached['load_cpu_s']:.2f} s CPU); RSS "
            f"{cached['after_load']['rss']:.0f} MB "
            f"after loading, {cached['after_lookups']['rss']:.0f} MB after 2,000 searches "
            f"({cached['lookups_s']:.2f} s; +{grown:.0f} MB over the bare interpreter)"
        )
        copies = _result(_run("copies", database, cache, args.copies))
        print(
            f"{args.copies} environment copies in one process: RSS "
            f"{copies['after_copies']['rss']:.0f} MB, PSS {copies['after_copies']['pss']:.0f} MB"
        )
        running = [_run("cached", database, cache) for _ in range(args.processes)]
        results = [_result(process) for process in running]
        rss = sum(r["after_lookups"]["rss"] for r in results)
        pss = sum(r["after_lookups"]["pss"] for r in results)
        slowest = max(r["load_s"] for r in results)
        print(
            f"{args.processes} processes at once: summed RSS {rss:.0f} MB, summed PSS "
            f"{pss:.0f} MB, slowest load {slowest:.2f} s"
        )


if __name__ == "__main__":
    main()
