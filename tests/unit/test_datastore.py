"""The datastore contract, held by both backends (DuckDB files, PostgreSQL): typed rows in file order,
whole-table replacement that readers never see half done, the query timeout and row cap, and the
errors a caller can get."""

from __future__ import annotations

import datetime
import math
import threading
import time
from collections.abc import Iterator, Sequence
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
ROWS: list[tuple[Any, ...]] = [
    (3, 1.5, True, datetime.date(2020, 1, 31), datetime.datetime(2020, 1, 31, 12, 30, 5), "plain"),
    (
        -7,
        -0.25,
        False,
        datetime.date(1999, 12, 31),
        datetime.datetime(1999, 12, 31, 23, 59, 59),
        "",
    ),
    (None, None, None, None, None, None),
    (2**40, 1e300, True, datetime.date(2024, 2, 29), datetime.datetime(2024, 2, 29, 0, 0), "a,b"),
    (
        0,
        3.0,
        False,
        datetime.date(1970, 1, 1),
        datetime.datetime(1970, 1, 1, 0, 0, 0, 250000),
        'say "hi"',
    ),  # noqa: E501
    (
        1,
        2.5,
        True,
        datetime.date(2001, 9, 9),
        datetime.datetime(2001, 9, 9, 1, 46, 40),
        "two\nlines",
    ),  # noqa: E501
    (
        5,
        float("nan"),
        True,
        datetime.date(2010, 5, 6),
        datetime.datetime(2010, 5, 6, 7, 8, 9),
        "tromsø ✓",
    ),  # noqa: E501
    (
        6,
        float("inf"),
        False,
        datetime.date(2011, 6, 7),
        datetime.datetime(2011, 6, 7, 8, 9, 10),
        "%_",
    ),  # noqa: E501
]
DUCK_TYPES = {
    "integer": "BIGINT",
    "number": "DOUBLE",
    "boolean": "BOOLEAN",
    "date": "DATE",
    "datetime": "TIMESTAMP",
    "string": "VARCHAR",
}


@pytest.fixture(params=["embedded", "postgres"])
def make_datastore(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """Builds a datastore of the backend under test; all built in one test share their storage."""
    engines = []
    url = str(request.getfixturevalue("postgres_url")) if request.param == "postgres" else ""

    def make(*, timeout: float = 30, max_rows: int = 32000) -> Datastore:
        if request.param == "embedded":
            return EmbeddedDatastore(tmp_path / "datastore", timeout=timeout, max_rows=max_rows)
        engine = engine_for(url)
        engines.append(engine)
        return PostgresDatastore(engine, timeout=timeout, max_rows=max_rows)

    yield make
    for engine in engines:
        engine.dispose()


@pytest.fixture
def store(make_datastore: Any) -> Datastore:
    return make_datastore()  # type: ignore[no-any-return]


@pytest.fixture
def con() -> Iterator[duckdb.DuckDBPyConnection]:
    con = duckdb.connect(":memory:")
    yield con
    con.close()


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
    """Build a DuckDB table as the pipeline does (from ``rows`` or a SELECT), export its CSV, load."""
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
    store.load(con, source, table=table, fields=fields, csv_path=csv_path)


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

    def build(refs: Any) -> tuple[str, list[Any]]:
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

    def build(refs: Any) -> tuple[str, list[Any]]:
        query = build_search(table=refs[table], columns=columns, dialect=store.dialect)
        return query.count_sql, query.count_params

    return int(store.query([table], build).rows[0][0])


def sql(store: Datastore, statement: str, tables: dict[str, str]) -> Answer:
    """One ``/api/datastore/sql`` statement; ``tables`` maps resource ids to backend tables."""

    def build(refs: Any) -> tuple[str, list[Any]]:
        mapping = {rid: refs[name] for rid, name in tables.items()}
        return rewrite_sql(statement, dialect=store.dialect, tables=mapping), []

    return store.query(list(tables.values()), build)


def same(got: Sequence[Any], expected: Sequence[Any]) -> bool:
    if len(got) != len(expected):
        return False
    for a, b in zip(got, expected, strict=True):
        if isinstance(b, float) and math.isnan(b):
            if not (isinstance(a, float) and math.isnan(a)):
                return False
        elif a != b or type(a) is not type(b):
            return False
    return True


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
    assert [f.type for f in answer.fields][::2] == ["integer", "date"]
    assert answer.rows == [(4, 2**40 + 3 + 1 + 5, datetime.date(2024, 2, 29))]


def test_row_ids_follow_the_file_order_of_a_large_table(
    store: Datastore, con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    rows = 300_000
    fields = [Field("n", "integer"), Field("s", "string")]
    # more than one DuckDB row group, so a parallel scan could reorder rows
    load(
        store,
        con,
        tmp_path,
        "r2_0",
        fields=fields,
        select=f"SELECT i AS n, 'row ' || i AS s FROM range(1, {rows + 1}) t(i)",
    )
    answer = sql(
        store,
        f'SELECT count(*), min(_id), max(_id), sum(CASE WHEN _id = n THEN 1 ELSE 0 END) FROM "{RESOURCE}"',  # noqa: E501
        {RESOURCE: "r2_0"},
    )
    assert answer.rows == [(rows, 1, rows, rows)]
    page = search(store, "r2_0", fields=fields, offset=rows - 2, limit=5)
    assert page.rows == [(rows - 1, rows - 1, f"row {rows - 1}"), (rows, rows, f"row {rows}")]


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
    # other tables are left alone
    assert len(search(store, "r1_1").rows) == 2
    # the same rows loaded twice are the same table, not twice the rows
    load(store, con, tmp_path, "r1_0", fields=fields, rows=[("a", 1.0), ("b", 2.0)])
    assert count(store, "r1_0", fields=fields) == 2


def test_readers_see_the_old_table_or_the_new_one_never_a_part(
    make_datastore: Any, con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    writer: Datastore = make_datastore()
    reader: Datastore = make_datastore()
    fields = [Field("n", "integer"), Field("tag", "string")]
    statement = f'SELECT count(*), min(tag), max(tag), max(_id) FROM "{RESOURCE}"'

    def version(tag: str, rows: int) -> str:
        return f"SELECT i AS n, '{tag}' AS tag FROM range({rows}) t(i)"

    seen: list[Any] = []
    failures: list[BaseException] = []
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            try:
                seen.append(sql(reader, statement, {RESOURCE: "r3_0"}).rows[0])
            except TableNotFound:
                seen.append("missing")
            except BaseException as exc:  # noqa: BLE001 - reported by the main thread
                failures.append(exc)
                return
            time.sleep(0.001)

    def settle(last: object) -> int:
        """Wait until the reader has seen ``last``; the number of answers it gave up to then."""
        deadline = time.monotonic() + 30
        while not (seen and seen[-1] == last) and not failures and time.monotonic() < deadline:
            time.sleep(0.005)
        return len(seen)

    old = (200_000, "old", "old", 200_000)
    new = (300_000, "new", "new", 300_000)
    polling = threading.Thread(target=poll)
    polling.start()
    try:
        before = settle("missing")
        load(writer, con, tmp_path, "r3_0", fields=fields, select=version("old", 200_000))
        between = settle(old)
        load(writer, con, tmp_path, "r3_0", fields=fields, select=version("new", 300_000))
        settle(new)
    finally:
        stop.set()
        polling.join(timeout=60)
    print(f"answers: {before} before, {between - before} during the first load, {len(seen) - between} after")
    assert not failures, failures
    assert set(seen) <= {"missing", old, new}, set(seen) - {"missing", old, new}
    # each stage in order: once a table is visible it stays visible, until replaced
    stages = [s for i, s in enumerate(seen) if i == 0 or seen[i - 1] != s]
    assert stages == ["missing", old, new]


def test_a_dropped_table_is_gone(
    store: Datastore, con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    load(store, con, tmp_path, "r1_0", rows=ROWS)
    load(store, con, tmp_path, "r1_1", rows=ROWS)
    store.drop("r1_0")
    with pytest.raises(TableNotFound):
        search(store, "r1_0")
    assert count(store, "r1_1") == len(ROWS)
    store.drop("r1_0")  # dropping what is not there is no error
    store.drop("r9_9")


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


def test_an_empty_table_loads_and_answers_no_rows(
    store: Datastore, con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    load(store, con, tmp_path, "r1_0", rows=[])
    answer = search(store, "r1_0")
    assert answer.rows == []
    assert answer.fields == [Field("_id", "integer"), *FIELDS]
    assert count(store, "r1_0") == 0


def test_a_query_running_too_long_is_stopped(
    make_datastore: Any, con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    store: Datastore = make_datastore(timeout=1)
    load(store, con, tmp_path, "r1_0", rows=ROWS)
    endless = (
        f'WITH RECURSIVE r(i) AS (SELECT min(n) FROM "{RESOURCE}" UNION ALL SELECT i + 1 FROM r) '
        "SELECT count(*) FROM r"
    )
    began = time.monotonic()
    with pytest.raises(QueryTimeout):
        sql(store, endless, {RESOURCE: "r1_0"})
    assert time.monotonic() - began < 20
    # the datastore answers the next query as usual
    assert count(store, "r1_0") == len(ROWS)


def test_the_row_cap_marks_the_answer_truncated(
    make_datastore: Any, con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    store: Datastore = make_datastore(max_rows=5)
    load(store, con, tmp_path, "r1_0", rows=ROWS)
    everything = f'SELECT n FROM "{RESOURCE}" ORDER BY _id'
    capped = sql(store, everything, {RESOURCE: "r1_0"})
    assert capped.truncated is True
    assert capped.rows == [(3,), (-7,), (None,), (2**40,), (0,)]
    exact = sql(store, f"{everything} LIMIT 5", {RESOURCE: "r1_0"})
    assert (exact.truncated, len(exact.rows)) == (False, 5)
    # a caller's smaller cap wins; a larger one does not lift the datastore's
    assert (len(search(store, "r1_0", limit=3).rows), search(store, "r1_0", limit=3).truncated) == (
        3,
        False,
    )
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
)
def test_a_statement_the_backend_refuses_is_an_invalid_query(
    store: Datastore, con: duckdb.DuckDBPyConnection, tmp_path: Path, statement: str
) -> None:
    load(store, con, tmp_path, "r1_0", rows=ROWS)
    with pytest.raises(InvalidQuery):
        sql(store, statement, {RESOURCE: "r1_0"})
    assert count(store, "r1_0") == len(ROWS)  # and the datastore goes on answering
