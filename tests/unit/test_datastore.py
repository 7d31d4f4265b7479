"""The datastore contract, held by both backends (DuckDB files, PostgreSQL): typed rows in file order,
whole-table replacement that readers never see half done, the query timeout and row cap, and the
errors a caller can get.

Statements are built the way the API builds them (``build_search`` for ``/api/datastore/search``,
``rewrite_sql`` for ``/api/datastore/sql``), and tables the way the pipeline loads them: a DuckDB
table and its CSV export.
"""

from __future__ import annotations

import datetime
import math
import os
import resource
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import duckdb
import pytest

from dphub.datastore import Answer, Datastore, Field
from dphub.datastore.embedded import EmbeddedDatastore
from dphub.datastore.postgres import PostgresDatastore, engine_for
from dphub.datastore.search import Column, build_search
from dphub.datastore.sqlguard import rewrite_sql
from dphub.errors import InvalidQuery, QueryTimeout, TableNotFound
from dphub.pipeline.tables import export_csv

MakeDatastore = Callable[..., Datastore]

RESOURCE = "alice/weather/readings"
"""The resource id statements name; the API maps it to the backend table, as here."""

FIELDS = [
    Field("n", "integer"),
    Field("x", "number"),
    Field("ok", "boolean"),
    Field("day", "date"),
    Field("at", "datetime"),
    Field("s", "string"),
]
Date = datetime.date
Time = datetime.datetime
ROWS: list[tuple[Any, ...]] = [
    (3, 1.5, True, Date(2020, 1, 31), Time(2020, 1, 31, 12, 30, 5), "plain"),
    (-7, -0.25, False, Date(1999, 12, 31), Time(1999, 12, 31, 23, 59, 59), ""),
    (None, None, None, None, None, None),
    (2**40, 1e300, True, Date(2024, 2, 29), Time(2024, 2, 29, 0, 0), "a,b"),
    (0, 3.0, False, Date(1970, 1, 1), Time(1970, 1, 1, 0, 0, 0, 250000), 'say "hi"'),
    (1, 2.5, True, Date(2001, 9, 9), Time(2001, 9, 9, 1, 46, 40), "two\nlines"),
    (5, float("nan"), True, Date(2010, 5, 6), Time(2010, 5, 6, 7, 8, 9), "tromsø ✓"),
    (6, float("inf"), False, Date(2011, 6, 7), Time(2011, 6, 7, 8, 9, 10), "%_"),
]
DUCK_TYPES = {
    "integer": "BIGINT",
    "number": "DOUBLE",
    "boolean": "BOOLEAN",
    "date": "DATE",
    "datetime": "TIMESTAMP",
    "string": "VARCHAR",
}
ENDLESS = (
    f'WITH RECURSIVE r(i) AS (SELECT min(n) FROM "{RESOURCE}" UNION ALL SELECT i + 1 FROM r) '
    "SELECT count(*) FROM r"
)


@pytest.fixture(params=["embedded", "postgres"])
def make_datastore(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[MakeDatastore]:
    """Builds datastores of the backend under test, all on the same storage: each one is what one
    process of the hub holds (an API server, a worker)."""
    made: list[Datastore] = []
    url = str(request.getfixturevalue("postgres_url")) if request.param == "postgres" else ""

    def make(*, timeout: float = 30, max_rows: int = 32000) -> Datastore:
        store: Datastore
        if request.param == "embedded":
            store = EmbeddedDatastore(tmp_path / "datastore", timeout=timeout, max_rows=max_rows)
        else:
            store = PostgresDatastore(engine_for(url), timeout=timeout, max_rows=max_rows)
        made.append(store)
        return store

    yield make
    for store in made:
        close(store)


def close(store: Datastore) -> None:
    if isinstance(store, PostgresDatastore):
        store.engine.dispose()


@pytest.fixture
def store(make_datastore: MakeDatastore) -> Datastore:
    return make_datastore()


@pytest.fixture
def con() -> Iterator[duckdb.DuckDBPyConnection]:
    con = duckdb.connect(":memory:")
    yield con
    con.close()


def prepare(
    con: duckdb.DuckDBPyConnection,
    tmp_path: Path,
    table: str,
    *,
    fields: Sequence[Field] = FIELDS,
    rows: Sequence[tuple[Any, ...]] = (),
    select: str | None = None,
) -> tuple[str, Path]:
    """A DuckDB table as the pipeline makes one (from ``rows`` or a SELECT) and its CSV export."""
    source = f"src_{table}"
    columns = ", ".join(f'"{f.name}" {DUCK_TYPES[f.type]}' for f in fields)
    con.execute(f'DROP TABLE IF EXISTS "{source}"')
    if select is None:
        con.execute(f'CREATE TABLE "{source}" ({columns})')
        if rows:
            marks = ", ".join("?" for _ in fields)
            con.executemany(f'INSERT INTO "{source}" VALUES ({marks})', [list(r) for r in rows])
    else:
        con.execute(f'CREATE TABLE "{source}" AS {select}')
    csv_path = tmp_path / f"{source}.{time.monotonic_ns()}.csv"
    export_csv(con, source, csv_path)
    return source, csv_path


def load(
    store: Datastore,
    con: duckdb.DuckDBPyConnection,
    tmp_path: Path,
    table: str,
    *,
    fields: Sequence[Field] = FIELDS,
    rows: Sequence[tuple[Any, ...]] = (),
    select: str | None = None,
) -> None:
    source, csv_path = prepare(con, tmp_path, table, fields=fields, rows=rows, select=select)
    store.load(con, source, table=table, fields=fields, csv_path=csv_path)
    csv_path.unlink()


def search(
    store: Datastore,
    table: str,
    *,
    fields: Sequence[Field] = FIELDS,
    with_id: bool = True,
    limit: int = 100,
    max_rows: int | None = None,
    **options: Any,
) -> Answer:
    """One page of ``/api/datastore/search``, built the way the route builds it."""
    columns = [Column(f.name, f.type) for f in fields]
    chosen = [Column("_id", "integer"), *columns] if with_id else None

    def build(refs: Mapping[str, str]) -> tuple[str, list[Any]]:
        query = build_search(
            table=refs[table],
            columns=columns,
            dialect=store.dialect,
            fields=chosen,
            limit=limit,
            **options,
        )
        return query.sql, query.params

    return store.query([table], build, max_rows=limit if max_rows is None else max_rows)


def count(store: Datastore, table: str, *, fields: Sequence[Field] = FIELDS) -> int:
    columns = [Column(f.name, f.type) for f in fields]

    def build(refs: Mapping[str, str]) -> tuple[str, list[Any]]:
        query = build_search(table=refs[table], columns=columns, dialect=store.dialect)
        return query.count_sql, query.count_params

    return int(store.query([table], build).rows[0][0])


def sql(store: Datastore, statement: str, tables: Mapping[str, str]) -> Answer:
    """One ``/api/datastore/sql`` statement; ``tables`` maps resource ids to backend tables."""

    def build(refs: Mapping[str, str]) -> tuple[str, list[Any]]:
        mapping = {rid: refs[name] for rid, name in tables.items()}
        return rewrite_sql(statement, dialect=store.dialect, tables=mapping), []

    return store.query(list(tables.values()), build)


def same(got: Sequence[Any], expected: Sequence[Any]) -> bool:
    """Equal values of equal types (NaN equal to NaN)."""
    if len(got) != len(expected):
        return False
    for a, b in zip(got, expected, strict=True):
        if isinstance(b, float) and math.isnan(b):
            if not (isinstance(a, float) and math.isnan(a)):
                return False
        elif a != b or type(a) is not type(b):
            return False
    return True


def tagged(tag: str, rows: int) -> str:
    """A table of ``rows`` rows, every one tagged with ``tag``: a half-loaded one shows by its count."""
    return f"SELECT i AS n, '{tag}' AS tag FROM range({rows}) t(i)"


TAGGED = [Field("n", "integer"), Field("tag", "string")]
SUMMARY = f'SELECT count(*), min(tag), max(tag), max(_id) FROM "{RESOURCE}"'


def summary(store: Datastore, table: str) -> tuple[Any, ...] | str:
    try:
        return sql(store, SUMMARY, {RESOURCE: table}).rows[0]
    except TableNotFound:
        return "missing"


# Loading and reading


def test_rows_come_back_typed_in_file_order(
    store: Datastore, con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    load(store, con, tmp_path, "r1_0", rows=ROWS)
    answer = search(store, "r1_0")
    assert answer.fields == [Field("_id", "integer"), *FIELDS]
    assert answer.truncated is False
    assert [row[0] for row in answer.rows] == list(range(1, len(ROWS) + 1))
    for got, expected in zip(answer.rows, ROWS, strict=True):
        assert same(got[1:], expected), (got, expected)
    assert count(store, "r1_0") == len(ROWS)


def test_filters_and_sort_see_the_typed_columns(
    store: Datastore, con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    load(store, con, tmp_path, "r1_0", rows=ROWS)
    newer = search(
        store,
        "r1_0",
        filters={"day": {"gte": "2001-01-01"}, "ok": True},
        sort=[("at", True)],
    )
    assert [row[1] for row in newer.rows] == [2**40, 3, 5, 1]
    answer = sql(
        store,
        f'SELECT count(*) AS c, sum(n) AS total, max(day) AS last FROM "{RESOURCE}" WHERE ok',
        {RESOURCE: "r1_0"},
    )
    assert [f.name for f in answer.fields] == ["c", "total", "last"]
    assert (answer.fields[0].type, answer.fields[2].type) == ("integer", "date")
    assert answer.rows == [(4, 2**40 + 3 + 1 + 5, datetime.date(2024, 2, 29))]


def test_row_ids_follow_the_file_order_of_a_large_table(
    store: Datastore, con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    rows = 300_000  # more than two DuckDB row groups, so a parallel scan could reorder them
    fields = [Field("n", "integer"), Field("s", "string")]
    select = f"SELECT i AS n, 'row ' || i AS s FROM range(1, {rows + 1}) t(i)"
    load(store, con, tmp_path, "r2_0", fields=fields, select=select)
    in_place = "sum(CASE WHEN _id = n THEN 1 ELSE 0 END)"
    answer = sql(
        store,
        f'SELECT count(*), min(_id), max(_id), {in_place} FROM "{RESOURCE}"',
        {RESOURCE: "r2_0"},
    )
    assert answer.rows == [(rows, 1, rows, rows)]
    page = search(store, "r2_0", fields=fields, offset=rows - 2, limit=5)
    assert page.rows == [(rows - 1, rows - 1, f"row {rows - 1}"), (rows, rows, f"row {rows}")]


def test_an_empty_table_loads_and_answers_no_rows(
    store: Datastore, con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    load(store, con, tmp_path, "r1_0", rows=[])
    answer = search(store, "r1_0")
    assert answer.rows == []
    assert answer.fields == [Field("_id", "integer"), *FIELDS]
    assert count(store, "r1_0") == 0


# Replacing and dropping


def test_loading_again_replaces_the_whole_table(
    store: Datastore, con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    load(store, con, tmp_path, "r1_0", rows=ROWS)
    load(store, con, tmp_path, "r1_1", rows=ROWS[:2])
    fields = [Field("name", "string"), Field("value", "number")]
    load(store, con, tmp_path, "r1_0", fields=fields, rows=[("a", 1.0), ("b", 2.0)])
    answer = search(store, "r1_0", fields=fields)
    assert answer.fields == [Field("_id", "integer"), *fields]
    assert answer.rows == [(1, "a", 1.0), (2, "b", 2.0)]
    with pytest.raises(InvalidQuery):  # the old columns went with the old table
        sql(store, f'SELECT n FROM "{RESOURCE}"', {RESOURCE: "r1_0"})
    assert len(search(store, "r1_1").rows) == 2  # other tables are left alone
    # the same rows loaded twice are the same table, not twice the rows
    load(store, con, tmp_path, "r1_0", fields=fields, rows=[("a", 1.0), ("b", 2.0)])
    assert count(store, "r1_0", fields=fields) == 2


def test_a_reader_of_the_old_table_sees_the_new_one_after_a_reload(
    request: pytest.FixtureRequest,
    make_datastore: MakeDatastore,
    con: duckdb.DuckDBPyConnection,
    tmp_path: Path,
) -> None:
    writer, reader = make_datastore(), make_datastore()
    load(writer, con, tmp_path, "r3_0", fields=TAGGED, select=tagged("old", 10))
    assert summary(reader, "r3_0") == (10, "old", "old", 10)
    load(writer, con, tmp_path, "r3_0", fields=TAGGED, select=tagged("new", 20))
    assert summary(reader, "r3_0") == (20, "new", "new", 20)
    writer.drop("r3_0")
    assert summary(reader, "r3_0") == "missing"


def test_readers_see_the_old_table_or_the_new_one_never_a_part(
    make_datastore: MakeDatastore, con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    """A reader polling (afresh each time, as a newly started process would) while a large table
    is loaded, then reloaded, sees no table, then the whole old one, then the whole new one."""
    writer = make_datastore()
    old_rows, new_rows = 200_000, 300_000
    old = (old_rows, "old", "old", old_rows)
    new = (new_rows, "new", "new", new_rows)
    seen: list[tuple[float, float, Any]] = []
    loads: list[tuple[float, float]] = []
    failures: list[BaseException] = []
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            reader = make_datastore()
            try:
                began = time.monotonic()
                answer = summary(reader, "r3_0")
                seen.append((began, time.monotonic(), answer))
            except BaseException as exc:  # reported by the main thread
                failures.append(exc)
                return
            finally:
                close(reader)
            time.sleep(0.002)

    def settle(last: object) -> None:
        deadline = time.monotonic() + 60
        while not (seen and seen[-1][2] == last) and not failures:
            assert time.monotonic() < deadline, f"the reader never saw {last}"
            time.sleep(0.005)

    def during(start: float, end: float) -> int:
        """Answers to reads that ran while a load ran."""
        return sum(1 for began, ended, _ in seen if began < end and ended > start)

    polling = threading.Thread(target=poll)
    polling.start()
    try:
        settle("missing")
        for tag, rows, answer in (("old", old_rows, old), ("new", new_rows, new)):
            source, csv_path = prepare(
                con, tmp_path, "r3_0", fields=TAGGED, select=tagged(tag, rows)
            )
            began = time.monotonic()
            writer.load(con, source, table="r3_0", fields=TAGGED, csv_path=csv_path)
            loads.append((began, time.monotonic()))
            settle(answer)
    finally:
        stop.set()
        polling.join(timeout=60)
    assert not failures, failures
    answers = [answer for _, _, answer in seen]
    assert set(answers) <= {"missing", old, new}, set(answers) - {"missing", old, new}
    # once a table shows it stays, until the whole new one replaces it
    stages = [a for i, a in enumerate(answers) if i == 0 or answers[i - 1] != a]
    assert stages == ["missing", old, new]
    # the reads did overlap the loads (else this test would prove nothing)
    assert [during(*window) >= 1 for window in loads] == [True, True], loads


def test_a_dropped_table_is_gone(
    store: Datastore, con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    load(store, con, tmp_path, "r1_0", rows=ROWS)
    load(store, con, tmp_path, "r1_1", rows=ROWS)
    assert count(store, "r1_0") == len(ROWS)
    store.drop("r1_0")
    with pytest.raises(TableNotFound):
        search(store, "r1_0")
    assert count(store, "r1_1") == len(ROWS)
    store.drop("r1_0")  # dropping what is not there is no error
    store.drop("r9_9")
    load(store, con, tmp_path, "r1_0", rows=ROWS[:3])  # and the name can be loaded again
    assert count(store, "r1_0") == 3


# What a caller can get wrong, or ask too much of


def test_an_unknown_table_is_not_found(
    store: Datastore, con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    load(store, con, tmp_path, "r1_0", rows=ROWS)
    with pytest.raises(TableNotFound):
        search(store, "r404_0")
    with pytest.raises(TableNotFound):
        sql(store, f'SELECT * FROM "{RESOURCE}"', {RESOURCE: "r404_0"})


def test_a_table_of_an_empty_datastore_is_not_found(store: Datastore) -> None:
    with pytest.raises(TableNotFound):
        search(store, "r1_0")
    with pytest.raises(TableNotFound):
        sql(store, f'SELECT * FROM "{RESOURCE}"', {RESOURCE: "r1_0"})


def test_a_query_running_too_long_is_stopped(
    make_datastore: MakeDatastore, con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    store = make_datastore(timeout=1)
    load(store, con, tmp_path, "r1_0", rows=ROWS)
    began = time.monotonic()
    with pytest.raises(QueryTimeout):
        sql(store, ENDLESS, {RESOURCE: "r1_0"})
    assert time.monotonic() - began < 20
    assert count(store, "r1_0") == len(ROWS)  # the datastore answers the next query as usual


def test_a_stopped_query_leaves_the_others_running(
    make_datastore: MakeDatastore, con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    store = make_datastore(timeout=1)
    load(store, con, tmp_path, "r1_0", rows=ROWS)
    outcomes: list[object] = []

    def endless() -> None:
        try:
            sql(store, ENDLESS, {RESOURCE: "r1_0"})
            outcomes.append("finished")
        except QueryTimeout as exc:
            outcomes.append(exc)

    runner = threading.Thread(target=endless)
    runner.start()
    answers = []
    while runner.is_alive():
        answers.append(count(store, "r1_0"))
        time.sleep(0.01)
    runner.join()
    assert len(outcomes) == 1
    assert isinstance(outcomes[0], QueryTimeout)
    assert answers
    assert set(answers) == {len(ROWS)}


def test_the_row_cap_marks_the_answer_truncated(
    make_datastore: MakeDatastore, con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    store = make_datastore(max_rows=5)
    load(store, con, tmp_path, "r1_0", rows=ROWS)
    everything = f'SELECT n FROM "{RESOURCE}" ORDER BY _id'
    capped = sql(store, everything, {RESOURCE: "r1_0"})
    assert capped.truncated is True
    assert capped.rows == [(3,), (-7,), (None,), (2**40,), (0,)]
    exact = sql(store, f"{everything} LIMIT 5", {RESOURCE: "r1_0"})
    assert (exact.truncated, len(exact.rows)) == (False, 5)
    # a page of the asked size is not truncated; a caller's smaller cap wins, a larger one does
    # not lift the datastore's
    page = search(store, "r1_0", limit=3)
    assert (len(page.rows), page.truncated) == (3, False)
    small = search(store, "r1_0", limit=8, max_rows=3)
    assert (len(small.rows), small.truncated) == (3, True)
    large = search(store, "r1_0", limit=8, max_rows=100)
    assert (len(large.rows), large.truncated) == (5, True)


@pytest.mark.parametrize(
    "statement",
    [
        f'SELECT no_such_column FROM "{RESOURCE}"',
        f"SELECT CAST(s AS INTEGER) FROM \"{RESOURCE}\" WHERE s = 'plain'",
        f'SELECT n FROM "{RESOURCE}" WHERE day > 12',
        f'SELECT upper(n, n, n) FROM "{RESOURCE}"',
    ],
    ids=["unknown-column", "bad-cast", "type-mismatch", "wrong-arguments"],
)
def test_a_statement_the_backend_refuses_is_an_invalid_query(
    store: Datastore, con: duckdb.DuckDBPyConnection, tmp_path: Path, statement: str
) -> None:
    load(store, con, tmp_path, "r1_0", rows=ROWS)
    with pytest.raises(InvalidQuery):
        sql(store, statement, {RESOURCE: "r1_0"})
    assert count(store, "r1_0") == len(ROWS)  # and the datastore goes on answering


def test_a_process_can_read_more_tables_than_it_may_open_files(
    request: pytest.FixtureRequest, store: Datastore, con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    """A long-running API process reads every table of a hub in time: what it holds open must not
    grow with the number of tables it ever read."""
    tables = [f"r{i}_0" for i in range(1, 151)]
    con.execute("CREATE TABLE one AS SELECT 1 AS n")
    csv_path = tmp_path / "one.csv"
    export_csv(con, "one", csv_path)
    for table in tables:
        store.load(con, "one", table=table, fields=[Field("n", "integer")], csv_path=csv_path)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    # room for what this process has open now, plus a hundred: fewer than there are tables
    limit = len(os.listdir("/proc/self/fd")) + 100
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(limit, hard), hard))
    try:
        for table in tables:
            assert count(store, table, fields=[Field("n", "integer")]) == 1
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
