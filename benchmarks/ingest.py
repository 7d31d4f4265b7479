"""Ingest benchmark: one table of a million rows pushed and processed end to end, side by side
with loading the same CSV file straight into DuckDB and into PostgreSQL.

    python benchmarks/ingest.py [--datastore embedded|postgres] [--rows 1000000] [--workdir DIR] [--keep]

It generates a CSV of ``--rows`` rows and 8 columns (integers, numbers, a date, strings, a boolean)
with a Table Schema, starts a real hub on loopback with a fresh data dir, and runs ``dphub push``,
which uploads the file and waits while the hub validates it, derives CSV and JSON, writes the
preview and the zip, and loads the datastore. The figures come from the revision's own step
timings and from the CLI run, split where the CLI prints the new revision (upload done).

- ``--datastore embedded``: SQLite metastore and DuckDB files in the data dir; the worker runs
  inside ``dphub serve``.
- ``--datastore postgres``: a throwaway PostgreSQL (tests/services.py) is both the metastore and
  the datastore; ``dphub worker`` runs beside ``dphub serve``.

The references, each run once before and once after the push (the better time counts): DuckDB's
``CREATE TABLE ... AS SELECT * FROM read_csv(...)`` of the same file into a new database file, and
a plain ``COPY ... FROM STDIN`` of the same file through psycopg into a new PostgreSQL table (when
the PostgreSQL server binaries are installed; the postgres run needs them anyway).

Exit code 0 when the hub processed the revision and its datastore holds every row, 1 otherwise.
Timing targets are printed next to the figures; missing one is reported, not a failure. This is
not a test: it takes a minute or two, and never runs with the suite.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import psycopg
from psycopg import sql
from sqlalchemy.engine import make_url

import _hub
import push as bench
from dphub.datastore.postgres import PG_TYPES
from dphub.pipeline.tables import duckdb_type
from push import MIB, PUBLISHER, BenchmarkFailed

PACKAGE = "ingest"
DATASTORES = ("embedded", "postgres")
RATE_TARGET = 200_000
"""Rows per second of the whole processing on the embedded setup, upload excluded."""
LOAD_TARGET = 0.7
"""The datastore's load step at least this share of the reference's speed."""
BYTES_PER_ROW = 80
COPY_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class Best:
    """A reference run twice: before and after the push."""

    before: float
    after: float

    @property
    def seconds(self) -> float:
        return min(self.before, self.after)

    def line(self, rows: int) -> str:
        return (
            f"{self.seconds:6.2f} s {_hub.rate(rows, self.seconds)}"
            f"  (best of 2: {self.before:.2f} s before, {self.after:.2f} s after the push)"
        )


# The references


def duckdb_load(csv: Path, target: Path, rows: int) -> float:
    """``CREATE TABLE AS SELECT * FROM read_csv`` of ``csv`` into a new DuckDB file, typed as the
    hub types the schema's fields; timed until the file is written and closed."""
    columns = {name: duckdb_type({"type": kind}) for name, kind in _hub.FIELDS}
    target.unlink(missing_ok=True)
    start = time.perf_counter()
    con = duckdb.connect(str(target))
    try:
        con.execute(
            "CREATE TABLE data AS SELECT * FROM read_csv($path, header = true, columns = $columns)",
            {"path": str(csv), "columns": columns},
        )
        (count,) = con.execute("SELECT count(*) FROM data").fetchone() or (0,)
    finally:
        con.close()
    seconds = time.perf_counter() - start
    target.unlink(missing_ok=True)
    _check_count("DuckDB's read_csv", count, rows)
    return seconds


def postgres_copy(database_url: str, csv: Path, rows: int) -> float:
    """``COPY table FROM STDIN (FORMAT csv, HEADER true)`` of ``csv`` through psycopg's
    ``cursor.copy`` in 1 MiB writes, into a new table typed as the datastore types the schema's
    fields; timed from CREATE TABLE to COMMIT. The table is dropped after, untimed."""
    libpq = (
        make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)
    )
    table = sql.Identifier("copy_reference")
    columns = sql.SQL(", ").join(
        sql.SQL("{} {}").format(sql.Identifier(name), sql.SQL(PG_TYPES.get(kind, "text")))
        for name, kind in _hub.FIELDS
    )
    with psycopg.connect(libpq, autocommit=True) as connection:
        connection.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(table))
        start = time.perf_counter()
        with connection.transaction(), connection.cursor() as cursor:
            cursor.execute(sql.SQL("CREATE TABLE {} ({})").format(table, columns))
            copy = sql.SQL("COPY {} FROM STDIN (FORMAT csv, HEADER true)").format(table)
            with cursor.copy(copy) as sink, csv.open("rb") as source:
                while chunk := source.read(COPY_CHUNK):
                    sink.write(chunk)
        seconds = time.perf_counter() - start
        found = connection.execute(sql.SQL("SELECT count(*) FROM {}").format(table)).fetchone()
        connection.execute(sql.SQL("DROP TABLE {}").format(table))
    _check_count("PostgreSQL's COPY", found[0] if found else 0, rows)
    return seconds


def _check_count(what: str, count: Any, rows: int) -> None:
    if count != rows:
        raise BenchmarkFailed(f"{what} loaded {count} rows, not {rows}.")


@dataclass
class References:
    csv: Path
    rows: int
    scratch: Path
    postgres_url: str | None
    duckdb_times: list[float]
    copy_times: list[float]

    def run(self, label: str) -> None:
        print(f"reference {label}: DuckDB read_csv ...", file=sys.stderr)
        self.duckdb_times.append(
            duckdb_load(self.csv, self.scratch / "reference.duckdb", self.rows)
        )
        if self.postgres_url is not None:
            print(f"reference {label}: PostgreSQL COPY ...", file=sys.stderr)
            self.copy_times.append(postgres_copy(self.postgres_url, self.csv, self.rows))
        bench.settle()


# The run


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--datastore",
        choices=DATASTORES,
        default="embedded",
        help="embedded: SQLite metastore + DuckDB files (default);"
        " postgres: a throwaway PostgreSQL as metastore and datastore, and a `dphub worker`",
    )
    parser.add_argument(
        "--rows", type=int, default=1_000_000, help="rows of the table (default 1000000)"
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="where to put the table and the hub's data dir (default: the temp dir)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args(argv)
    if args.rows < 10:
        parser.error("--rows must be at least 10")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    # The CSV, its blob, the derived CSV and JSON (about twice as large), the zip, the datastore
    # table, the processing's DuckDB spill and the references' copies, plus some room.
    needed = 12 * args.rows * BYTES_PER_ROW + 256 * MIB
    return bench.in_workdir(args, prefix="dphub-ingest-bench-", needed=needed, run=run)


def run(args: argparse.Namespace, work: Path) -> None:
    home = work / "home"
    home.mkdir()
    env = bench.isolated_env(home)
    progress = sys.stderr
    quiet = _hub.Quiet()
    services = bench.test_services()
    no_postgres = _hub.postgres_missing(services)
    if args.datastore == "postgres" and no_postgres:
        raise BenchmarkFailed(f"--datastore postgres needs PostgreSQL: {no_postgres}")

    print(f"generating {args.rows:,} rows ...", file=progress)
    table = _hub.write_table(
        work / "package", rows=args.rows, package=PACKAGE, title="dphub ingest benchmark"
    )
    csv_bytes = table.csv.stat().st_size
    bench.settle()

    with contextlib.ExitStack() as stack:
        hub_env = dict(env)
        postgres = None
        if not no_postgres:
            print("starting PostgreSQL ...", file=progress)
            postgres = services.start_postgres()
            stack.callback(postgres.stop)
            stack.callback(lambda: quiet.add(_hub.postmaster_cpu(postgres)))
        if args.datastore == "postgres":
            assert postgres is not None
            hub_env["DPHUB_DATABASE_URL"] = postgres.create_database()
        refs = References(
            table.csv,
            table.rows,
            work,
            postgres.create_database() if postgres is not None else None,
            [],
            [],
        )
        refs.run("1/2")

        data_dir = work / "hub"
        url = stack.enter_context(bench.running_hub(data_dir, hub_env, work / "server.log"))
        bench.create_publisher(data_dir, hub_env, url)
        if args.datastore == "postgres":
            stack.enter_context(_hub.running_worker(data_dir, hub_env, work / "worker.log"))

        print("dphub push (upload, then the hub's processing) ...", file=progress)
        pushed = _hub.timed_push([*bench.dphub_command(), "push", str(table.csv.parent)], env)
        done = _hub.processing(url, PACKAGE, pushed.revision)
        total = _hub.datastore_total(url, f"{PUBLISHER}/{PACKAGE}/{_hub.RESOURCE}")
        bench.settle()
        refs.run("2/2")

    print(bench.machine_line(work))
    print(quiet.line())
    report(args, table.rows, csv_bytes, pushed, done, refs, no_postgres, total)
    if total != args.rows:
        raise BenchmarkFailed(f"The datastore search answers total {total}, not {args.rows:,}.")


def report(
    args: argparse.Namespace,
    rows: int,
    csv_bytes: int,
    pushed: _hub.PushTiming,
    done: _hub.Processing,
    refs: References,
    no_postgres: str | None,
    total: Any,
) -> None:
    if args.datastore == "postgres":
        setup = "PostgreSQL (throwaway, on loopback) as metastore and datastore; `dphub worker` beside `dphub serve`"
    else:
        setup = "SQLite metastore, DuckDB files in the data dir; the worker inside `dphub serve`"
    print(f"setup:                  {setup}")
    print(
        f"data:                   {rows:,} rows x {len(_hub.FIELDS)} columns,"
        f" {csv_bytes / MIB:.1f} MiB of CSV with a Table Schema"
    )
    print(f"steps:                  {done.steps_line()}")
    embedded = args.datastore == "embedded"
    steps_rate = rows / done.step_seconds
    print(
        f"processing, steps:      {done.step_seconds:6.2f} s {_hub.rate(rows, done.step_seconds)}"
        f"  (the revision's steps added up)"
    )
    after = pushed.after_upload
    target = f"  (target >= {RATE_TARGET:,} rows/s) {_hub.verdict(rows / after >= RATE_TARGET)}"
    print(
        f"processing, end to end: {after:6.2f} s {_hub.rate(rows, after)}"
        f"  (`dphub push` after the upload){target if embedded else ''}"
    )
    print(
        f"dphub push, all of it:  {pushed.seconds:6.2f} s {_hub.rate(rows, pushed.seconds)}"
        f"  (upload and finalize {pushed.upload:.2f} s, then {after:.2f} s waiting)"
    )
    print(
        f"where the wait goes:    queued {done.queued:.2f} s, steps {done.step_seconds:.2f} s,"
        f" finishing {done.finishing:.2f} s; the CLI saw the end"
        f" {pushed.ended_at - done.modified:.2f} s later"
    )
    duck = Best(*refs.duckdb_times)
    print(f"reference DuckDB:       {duck.line(rows)}  read_csv into a table file")
    copy: Best | None = None
    if refs.copy_times:
        copy = Best(*refs.copy_times)
        print(f"reference PostgreSQL:   {copy.line(rows)}  COPY FROM STDIN")
    else:
        print(f"reference PostgreSQL:   skipped: {no_postgres}")
    load = done.steps.get("load")
    reference, name = (copy, "COPY") if not embedded else (duck, "DuckDB read_csv")
    if load and reference is not None:
        ratio = reference.seconds / load
        print(
            f"load step / reference:  {load:.2f} s vs {name} {reference.seconds:.2f} s:"
            f" {ratio:.2f}x its speed  (target >= {LOAD_TARGET}x)"
            f" {_hub.verdict(ratio >= LOAD_TARGET)}"
        )
    if embedded:
        print(
            f"processing / DuckDB:    the steps take"
            f" {done.step_seconds / duck.seconds:.1f}x the reference's time"
            f" ({steps_rate:,.0f} vs {rows / duck.seconds:,.0f} rows/s)"
        )
    shown = f"{total:,}" if isinstance(total, int) else repr(total)
    print(
        f"datastore search total: {shown}  {'OK' if total == rows else f'WRONG, expected {rows:,}'}"
    )


if __name__ == "__main__":
    sys.exit(main())
