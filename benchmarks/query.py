"""Query benchmark: the same table served by dphub's datastore and by datasette, side by side.

    python benchmarks/query.py [--rows 1000000] [--requests 200] [--skip-datasette]
                               [--workdir DIR] [--keep]

It generates the table of ingest.py (``--rows`` rows, 8 columns), pushes it to a real hub on
loopback (embedded setup: SQLite metastore, DuckDB datastore files, the worker inside ``dphub
serve``) and waits until it is loaded. It builds a SQLite copy of the same rows with Python's
sqlite3 (``id INTEGER PRIMARY KEY``, which is SQLite's rowid, and no other index: dphub's tables
have none either) and serves it with ``datasette serve``. Then it sends, one at a time over one
keep-alive httpx connection per server, ``--requests`` timed requests of each kind to each server
(after a few untimed ones), and checks that both answer the same rows:

- (a) an equality filter matching 5 rows, with the total count;
- (b) the first page of 100 rows, and a page of 100 rows in the middle of the table (rows
  500,001-500,100 of a million), each through the server's own paging: ``offset`` for dphub,
  datasette's ``_next`` token (the last id of the page before);
- (c) a GROUP BY aggregate through each server's SQL endpoint.

Last, in this process, it times what each dphub datastore request does before its query: open an
in-memory DuckDB, ATTACH the table's file read-only, and close it again; and the filter's two
statements that way against the same two on a connection kept open.

datasette is a benchmark-only tool, not a dphub dependency: ``pip install datasette``. Exit code 0
when both servers answered every request correctly, 1 otherwise; a missed target is reported.
This is not a test and never runs with the suite.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import importlib.util
import json
import math
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import httpx

import _hub
import push as bench
from dphub.datastore.embedded import EmbeddedDatastore
from dphub.datastore.search import Column, build_search
from push import MIB, PUBLISHER, BenchmarkFailed

PACKAGE = "query"
RESOURCE_ID = f"{PUBLISHER}/{PACKAGE}/{_hub.RESOURCE}"
DATABASE = "bench"
"""datasette serves bench.sqlite as /bench; the table is ``data``."""
WARMUP = 10
PAGE = 100
AGGREGATE = (
    "SELECT region, count(*) AS n, avg(temperature) AS mean_temperature"
    " FROM {table} GROUP BY region ORDER BY region"
)
FILTER_TARGET = 1.0
PAGE_TARGET = 1.0
AGGREGATE_TARGET = 0.2
"""dphub's p95 at most this many times datasette's."""
LARGE_ROWS = 10_000_000
LARGE_FILTER_TARGET_MS = 50.0
"""With --rows of 10 million or more: dphub's filter p95 under this."""
DATASETTE_TIME_LIMIT_MS = 5000
"""datasette's default 1 s limit stops its GROUP BY over a million rows on a slow machine."""
SQLITE_BATCH = 50_000
SQLITE_TYPES: dict[str, tuple[str, Callable[[str], Any]]] = {
    "integer": ("INTEGER", int),
    "number": ("REAL", float),
    "boolean": ("INTEGER", lambda v: int(v == "true")),
}
"""Column type and converter of the SQLite copy, by Table Schema type; the rest is TEXT."""
BYTES_PER_ROW = 80
SERVER_START_TIMEOUT_S = 60.0


# The SQLite copy and datasette


def build_sqlite(table: _hub.Table, target: Path) -> float:
    """The CSV's rows into ``target`` with sqlite3's executemany; the seconds it took."""
    converters: list[Callable[[str], Any]] = []
    columns = []
    for name, kind in _hub.FIELDS:
        if name == "id":
            columns.append("id INTEGER PRIMARY KEY")
            converters.append(int)
            continue
        sqlite_type, convert = SQLITE_TYPES.get(kind, ("TEXT", str))
        columns.append(f"{name} {sqlite_type}")
        converters.append(convert)
    start = time.perf_counter()
    db = sqlite3.connect(target)
    try:
        db.execute("PRAGMA journal_mode = OFF")
        db.execute("PRAGMA synchronous = OFF")
        db.execute(f"CREATE TABLE data ({', '.join(columns)})")
        marks = ", ".join("?" for _ in columns)
        with table.csv.open(newline="", encoding="utf-8") as source:
            reader = csv.reader(source)
            next(reader)
            batch: list[tuple[Any, ...]] = []
            for row in reader:
                batch.append(tuple(c(v) for c, v in zip(converters, row, strict=True)))
                if len(batch) >= SQLITE_BATCH:
                    db.executemany(f"INSERT INTO data VALUES ({marks})", batch)  # noqa: S608
                    batch.clear()
            db.executemany(f"INSERT INTO data VALUES ({marks})", batch)  # noqa: S608
        db.commit()
    finally:
        db.close()
    return time.perf_counter() - start


def datasette_missing() -> str | None:
    if importlib.util.find_spec("datasette") is None:
        return (
            "datasette is not installed in this Python. It is a tool of this benchmark only, not a"
            f" dphub dependency: {sys.executable} -m pip install datasette"
            " (or run with --skip-datasette)"
        )
    return None


def datasette_version() -> str:
    from importlib import metadata

    return metadata.version("datasette")


@contextlib.contextmanager
def running_datasette(db: Path, log: Path) -> Iterator[str]:
    port = bench.free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "datasette", "serve", str(db)]
    command += ["--host", "127.0.0.1", "--port", str(port)]
    command += ["--setting", "suggest_facets", "off"]
    command += ["--setting", "sql_time_limit_ms", str(DATASETTE_TIME_LIMIT_MS)]
    with log.open("wb") as out:
        server = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while True:
            if server.poll() is not None:
                raise BenchmarkFailed(f"datasette exited with {server.returncode}:\n{_tail(log)}")
            try:
                bench.get_json(f"{url}/-/versions.json")
                break
            except (OSError, ValueError):
                if time.monotonic() > deadline:
                    raise BenchmarkFailed(f"datasette did not answer:\n{_tail(log)}") from None
                time.sleep(0.1)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def _tail(log: Path) -> str:
    try:
        return log.read_text(errors="replace")[-3000:]
    except OSError:
        return "(no log)"


# Timing requests


@dataclass(frozen=True)
class Latency:
    samples: list[float]
    """Seconds of each timed request."""

    def quantile(self, q: float) -> float:
        """Nearest rank: the smallest sample at or above the share ``q`` of all samples."""
        ordered = sorted(self.samples)
        return ordered[max(0, math.ceil(q * len(ordered)) - 1)]

    @property
    def p50(self) -> float:
        return self.quantile(0.5)

    @property
    def p95(self) -> float:
        return self.quantile(0.95)

    def text(self) -> str:
        return f"p50 {self.p50 * 1000:7.1f} ms  p95 {self.p95 * 1000:7.1f} ms"

    def short(self) -> str:
        return f"p50/p95 {self.p50 * 1000:.1f}/{self.p95 * 1000:.1f} ms"


def measure(
    client: httpx.Client, path: str, params: dict[str, str], count: int
) -> tuple[Latency, Any]:
    """``count`` sequential GETs after WARMUP untimed ones; the latencies and the last answer."""
    answer: Any = None
    samples = []
    for index in range(WARMUP + count):
        start = time.perf_counter()
        response = client.get(path, params=params)
        body = response.content
        elapsed = time.perf_counter() - start
        if response.status_code != 200:
            raise BenchmarkFailed(
                f"GET {path} {params} answered {response.status_code}: {body[:500]!r}"
            )
        if index >= WARMUP:
            samples.append(elapsed)
        answer = body
    return Latency(samples), json.loads(answer)


@dataclass(frozen=True)
class Case:
    label: str
    target: float
    dphub: tuple[str, dict[str, str]]
    datasette: tuple[str, dict[str, str]]
    expected_ids: list[int] | None
    """The ids the answer lists, in order (None for the aggregate)."""


def cases(table: _hub.Table) -> list[Case]:
    middle = table.rows // 2
    station_row = middle
    station = table.station_of(station_row)
    matching = table.rows_of_station(station_row)
    page_ids = list(range(1, min(PAGE, table.rows) + 1))
    middle_ids = list(range(middle + 1, min(middle + PAGE, table.rows) + 1))
    search = "/api/datastore/search"
    rows_path = f"/{DATABASE}/data.json"
    return [
        Case(
            f"(a) filter, {len(matching)} rows + total",
            FILTER_TARGET,
            (search, {"resource_id": RESOURCE_ID, "filters": json.dumps({"station": station})}),
            (rows_path, {"station": station}),
            matching,
        ),
        Case(
            f"(b) page of {PAGE}, first",
            PAGE_TARGET,
            (search, {"resource_id": RESOURCE_ID, "limit": str(PAGE)}),
            (rows_path, {"_size": str(PAGE)}),
            page_ids,
        ),
        Case(
            f"(b) page of {PAGE}, middle",
            PAGE_TARGET,
            (search, {"resource_id": RESOURCE_ID, "limit": str(PAGE), "offset": str(middle)}),
            (rows_path, {"_size": str(PAGE), "_next": str(middle)}),
            middle_ids,
        ),
        Case(
            "(c) GROUP BY aggregate",
            AGGREGATE_TARGET,
            ("/api/datastore/sql", {"sql": AGGREGATE.format(table=f'"{RESOURCE_ID}"')}),
            (f"/{DATABASE}.json", {"sql": AGGREGATE.format(table="data")}),
            None,
        ),
    ]


def dphub_rows(answer: Any) -> tuple[list[list[Any]], Any]:
    """The records of a dphub answer as lists, and its total (None from the SQL endpoint)."""
    records = answer.get("records")
    names = [f["id"] for f in answer.get("fields", [])]
    rows = [[r.get(n) for n in names] if isinstance(r, dict) else r for r in records]
    return rows, answer.get("total")


def check(case: Case, dphub: Any, datasette: Any | None) -> None:
    """Both servers answered the same rows (and, for the filter, the same total)."""
    ours, total = dphub_rows(dphub)
    if case.expected_ids is not None:
        # dphub does not return its row id; the table's own id column comes first.
        ids = [row[0] for row in ours]
        if ids != case.expected_ids:
            raise BenchmarkFailed(f"{case.label}: dphub answered ids {ids[:8]}...")
        if case.label.startswith("(a)") and total != len(case.expected_ids):
            raise BenchmarkFailed(f"{case.label}: dphub's total is {total}")
    if datasette is None:
        return
    theirs = datasette.get("rows")
    if case.expected_ids is not None:
        ids = [row[0] for row in theirs]
        if ids != case.expected_ids:
            raise BenchmarkFailed(f"{case.label}: datasette answered ids {ids[:8]}...")
        counted = datasette.get("filtered_table_rows_count")
        if case.label.startswith("(a)") and counted != len(case.expected_ids):
            raise BenchmarkFailed(f"{case.label}: datasette's count is {counted}")
        return
    ours_groups = [(row[0], row[1]) for row in ours]
    theirs_groups = [(row[0], row[1]) for row in theirs]
    if ours_groups != theirs_groups:
        raise BenchmarkFailed(
            f"{case.label}: the groups differ: {ours_groups[:3]} vs {theirs_groups[:3]}"
        )


# The per-request cost of the embedded datastore


@dataclass(frozen=True)
class Ways:
    """One workload on the table file, run three ways."""

    fresh: Latency
    """A fresh in-memory DuckDB per statement: connect, ATTACH the file READ_ONLY, the two SETs
    that lock it down, the statement, close."""
    store: Latency
    """Through ``EmbeddedDatastore.query``, as the API runs it (whatever it does per request)."""
    kept: Latency
    """On one connection that attached the file once and stays open."""

    def text(self) -> str:
        return (
            f"fresh DuckDB each {self.fresh.short()} | EmbeddedDatastore.query"
            f" {self.store.short()} | kept-open connection {self.kept.short()}"
        )


@dataclass(frozen=True)
class Breakdown:
    opening: Latency
    """connect + ATTACH + SETs + close alone."""
    search: Ways
    """The filter's page and count statements, as the search builds them."""
    aggregate: Ways


def breakdown(table_file: Path, table: _hub.Table, count: int) -> Breakdown:
    """Time, in this process, the datastore's part of a request and what opening the file costs."""
    store = EmbeddedDatastore(table_file.parent, timeout=30.0, max_rows=32000)
    name = table_file.stem
    columns = [Column(n, t) for n, t in _hub.FIELDS]
    station = table.station_of(table.rows // 2)

    def search(ref: str) -> list[tuple[str, list[Any]]]:
        built = build_search(
            table=ref, columns=columns, dialect="duckdb", filters={"station": station}, limit=PAGE
        )
        return [(built.sql, built.params), (built.count_sql, built.count_params)]

    def aggregate(ref: str) -> list[tuple[str, list[Any]]]:
        return [(AGGREGATE.format(table=ref), [])]

    def opened() -> duckdb.DuckDBPyConnection:
        con = duckdb.connect(":memory:", config={"threads": store.threads})
        con.execute(f"ATTACH '{table_file}' AS t0 (READ_ONLY)")
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")
        return con

    kept = opened()

    def ways(statements: Callable[[str], list[tuple[str, list[Any]]]]) -> Ways:
        def fresh() -> None:
            for sql, params in statements("t0.data"):
                con = opened()
                try:
                    con.execute(sql, params).fetchall()
                finally:
                    con.close()

        def nth(index: int) -> Callable[[Mapping[str, str]], tuple[str, list[Any]]]:
            return lambda refs: statements(refs[name])[index]

        builders = [nth(index) for index in range(len(statements("t")))]

        def through_store() -> None:
            for build in builders:
                store.query([name], build)

        def on_kept() -> None:
            for sql, params in statements("t0.data"):
                kept.execute(sql, params).fetchall()

        return Ways(_timed(fresh, count), _timed(through_store, count), _timed(on_kept, count))

    try:
        return Breakdown(_timed(lambda: opened().close(), count), ways(search), ways(aggregate))
    finally:
        kept.close()


def _timed(work: Callable[[], None], count: int) -> Latency:
    samples = []
    for index in range(WARMUP + count):
        start = time.perf_counter()
        work()
        if index >= WARMUP:
            samples.append(time.perf_counter() - start)
    return Latency(samples)


# The run


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--rows", type=int, default=1_000_000, help="rows of the table (default 1000000)"
    )
    parser.add_argument(
        "--requests", type=int, default=200, help="timed requests of each kind (default 200)"
    )
    parser.add_argument(
        "--skip-datasette",
        action="store_true",
        help="measure dphub alone (datasette scans the whole table twice per filter request:"
        " at 10 million rows that takes minutes per figure)",
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="where to put the table, the hub and the SQLite copy (default: the temp dir)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args(argv)
    if args.rows < 2 * PAGE:
        parser.error(f"--rows must be at least {2 * PAGE}")
    if args.requests < 1:
        parser.error("--requests must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if not args.skip_datasette and (missing := datasette_missing()):
        print(f"FAIL: {missing}", file=sys.stderr)
        return 1
    # The CSV and the hub's copies of it (see ingest.py), and the SQLite copy.
    needed = 14 * args.rows * BYTES_PER_ROW + 256 * MIB
    return bench.in_workdir(args, prefix="dphub-query-bench-", needed=needed, run=run)


def run(args: argparse.Namespace, work: Path) -> None:
    home = work / "home"
    home.mkdir()
    env = bench.isolated_env(home)
    progress = sys.stderr
    quiet = _hub.Quiet()

    print(f"generating {args.rows:,} rows ...", file=progress)
    table = _hub.write_table(
        work / "package", rows=args.rows, package=PACKAGE, title="dphub query benchmark"
    )
    csv_bytes = table.csv.stat().st_size
    sqlite_db = work / f"{DATABASE}.sqlite"
    sqlite_seconds = 0.0
    if not args.skip_datasette:
        print("building the SQLite copy ...", file=progress)
        sqlite_seconds = build_sqlite(table, sqlite_db)
    bench.settle()

    results: list[tuple[Case, Latency, Latency | None]] = []
    with contextlib.ExitStack() as stack:
        data_dir = work / "hub"
        url = stack.enter_context(bench.running_hub(data_dir, env, work / "server.log"))
        bench.create_publisher(data_dir, env, url)
        print("dphub push (upload, then the hub's processing) ...", file=progress)
        pushed = _hub.timed_push([*bench.dphub_command(), "push", str(table.csv.parent)], env)
        done = _hub.processing(url, PACKAGE, pushed.revision)
        table_files = sorted((data_dir / "datastore").glob("*.duckdb"))
        if len(table_files) != 1:
            raise BenchmarkFailed(f"Expected one datastore table file, found {table_files}")

        other: str | None = None
        if not args.skip_datasette:
            other = stack.enter_context(running_datasette(sqlite_db, work / "datasette.log"))
        ours_client = stack.enter_context(httpx.Client(base_url=url, timeout=60))
        theirs_client = (
            stack.enter_context(httpx.Client(base_url=other, timeout=60)) if other else None
        )
        for case in cases(table):
            print(f"{case.label} ...", file=progress)
            ours, our_answer = measure(ours_client, *case.dphub, args.requests)
            theirs: Latency | None = None
            their_answer = None
            if theirs_client is not None:
                theirs, their_answer = measure(theirs_client, *case.datasette, args.requests)
            check(case, our_answer, their_answer)
            results.append((case, ours, theirs))
        floor_ours, _ = measure(ours_client, "/api/auth/check", {}, args.requests)
        floor_theirs = (
            measure(theirs_client, "/-/versions.json", {}, args.requests)[0]
            if theirs_client is not None
            else None
        )
        print("in-process breakdown of a datastore request ...", file=progress)
        parts = breakdown(table_files[0], table, args.requests)

    print(bench.machine_line(work))
    print(quiet.line())
    print(
        f"data:                   {table.rows:,} rows x {len(_hub.FIELDS)} columns,"
        f" {csv_bytes / MIB:.1f} MiB of CSV"
    )
    print(
        f"dphub:                  embedded datastore (DuckDB file {_size(table_files[0])});"
        f" pushed and processed in {pushed.seconds:.1f} s (steps {done.step_seconds:.1f} s)"
    )
    if not args.skip_datasette:
        print(
            f"datasette:              {datasette_version()}, SQLite {sqlite3.sqlite_version}"
            f" ({_size(sqlite_db)}, built in {sqlite_seconds:.1f} s with executemany;"
            f" id INTEGER PRIMARY KEY, no other index); suggest_facets off,"
            f" sql_time_limit_ms {DATASETTE_TIME_LIMIT_MS}"
        )
    else:
        print("datasette:              skipped (--skip-datasette)")
    print(
        f"requests:               {args.requests} timed of each kind per server, one at a time,"
        f" after {WARMUP} untimed; httpx {httpx.__version__}, one keep-alive connection each"
    )
    for case, ours, theirs in results:
        line = f"{case.label + ':':31} dphub {ours.text()}"
        if theirs is not None:
            ratio = ours.p95 / theirs.p95
            line += (
                f" | datasette {theirs.text()} | p95 ratio {ratio:5.2f}x"
                f" (target <= {case.target:g}x) {_hub.verdict(ratio <= case.target)}"
            )
        print(line)
    if table.rows >= LARGE_ROWS:
        p95_ms = results[0][1].p95 * 1000
        print(
            f"filter at {table.rows:,} rows: dphub p95 {p95_ms:.1f} ms"
            f" (target < {LARGE_FILTER_TARGET_MS:g} ms) {_hub.verdict(p95_ms < LARGE_FILTER_TARGET_MS)}"
        )
    floor = f"empty request:                  dphub {floor_ours.text()}  (GET /api/auth/check)"
    if floor_theirs is not None:
        floor += f" | datasette {floor_theirs.text()}  (GET /-/versions.json)"
    print(floor)
    print(
        f"opening the table file:         {parts.opening.text()}  (in-process: a fresh in-memory"
        " DuckDB, ATTACH READ_ONLY, 2 SETs, close)"
    )
    print(f"filter's page + count, in-proc: {parts.search.text()}")
    print(f"aggregate, in-process:          {parts.aggregate.text()}")
    agreed = "dphub and datasette" if not args.skip_datasette else "dphub"
    print(f"answers: {agreed} gave the expected rows, totals and groups: OK")


def _size(path: Path) -> str:
    return f"{path.stat().st_size / MIB:.0f} MiB"


if __name__ == "__main__":
    sys.exit(main())
