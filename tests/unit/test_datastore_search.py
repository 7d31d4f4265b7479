"""datastore_search: filters, text search, sort and paging, checked as SQL and run on real backends."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, time
from typing import Any

import duckdb
import psycopg
import pytest
from sqlalchemy.engine import make_url

from dphub.datastore.search import (
    MAX_LIMIT,
    Column,
    SearchQuery,
    build_search,
    parse_fields,
    parse_filters,
    parse_q,
    parse_sort,
)
from dphub.errors import InvalidQuery

COLUMNS = [
    Column("year", "integer"),
    Column("city", "string"),
    Column("rain", "number"),
    Column("wet", "boolean"),
    Column("day", "date"),
    Column("seen", "datetime"),
    Column("at", "time"),
]
ROWS: list[tuple[Any, ...]] = [
    (1, 2019, "Oslo", 10.5, True, date(2019, 1, 5), datetime(2019, 1, 5, 8), time(8)),
    (2, 2019, "Rome", 4.0, False, date(2019, 2, 1), datetime(2019, 2, 1, 9), time(9)),
    (3, 2020, "Oslo", 7.5, True, date(2020, 3, 1), datetime(2020, 3, 1, 10), time(10)),
    (4, 2020, "Lisbon", None, None, None, None, None),
    (5, 2021, "São Paulo", 12.0, True, date(2021, 4, 1), datetime(2021, 4, 1, 11), time(11)),
    (6, 2021, "100% Town_x", 3.0, False, date(2021, 5, 1), datetime(2021, 5, 1, 12), time(12)),
]
DUCK_DDL = (
    "CREATE TABLE t0.data (_id BIGINT, year BIGINT, city VARCHAR, rain DOUBLE, wet BOOLEAN,"
    ' day DATE, seen TIMESTAMP, "at" TIME)'
)


@pytest.fixture
def duck() -> Iterator[duckdb.DuckDBPyConnection]:
    con = duckdb.connect(":memory:")
    con.execute("ATTACH ':memory:' AS t0")
    con.execute(DUCK_DDL)
    con.executemany("INSERT INTO t0.data VALUES (?, ?, ?, ?, ?, ?, ?, ?)", ROWS)
    yield con
    con.close()


def search(**kwargs: Any) -> SearchQuery:
    options: dict[str, Any] = {"table": "t0.data", "columns": COLUMNS, "dialect": "duckdb"}
    options.update(kwargs)
    return build_search(**options)


def run(con: duckdb.DuckDBPyConnection, **kwargs: Any) -> tuple[list[tuple[Any, ...]], int]:
    query = search(**kwargs)
    rows = con.execute(query.sql, query.params).fetchall()
    [(total,)] = con.execute(query.count_sql, query.count_params).fetchall()
    return rows, int(total)


def ids(con: duckdb.DuckDBPyConnection, **kwargs: Any) -> list[int]:
    fields = [Column("_id", "integer")]
    rows, _ = run(con, fields=fields, **kwargs)
    return [row[0] for row in rows]


# -- parsing the request --------------------------------------------------------------------------


def test_parse_filters() -> None:
    assert parse_filters(None) == {}
    assert parse_filters("  ") == {}
    assert parse_filters('{"year": 2020, "city": ["Oslo", null]}') == {
        "year": 2020,
        "city": ["Oslo", None],
    }
    with pytest.raises(InvalidQuery, match="not valid JSON"):
        parse_filters('{"year": ')
    with pytest.raises(InvalidQuery, match="must be a JSON object"):
        parse_filters("[1, 2]")
    with pytest.raises(InvalidQuery, match="NaN"):
        parse_filters('{"rain": NaN}')


def test_parse_sort() -> None:
    assert parse_sort(None, COLUMNS) == []
    assert parse_sort("year, city desc", COLUMNS) == [("year", False), ("city", True)]
    assert parse_sort(" rain DESC ,  _id asc ", COLUMNS) == [("rain", True), ("_id", False)]
    assert parse_sort('"city" desc, city', COLUMNS) == [("city", True)]
    spaced = [Column("first name", "string"), Column("desc", "string")]
    assert parse_sort("first name desc, desc", spaced) == [("first name", True), ("desc", False)]
    with pytest.raises(InvalidQuery, match="'nope' is not a column of this table; it has year"):
        parse_sort("nope", COLUMNS)
    with pytest.raises(InvalidQuery, match="is not a column"):
        parse_sort("year sideways", COLUMNS)
    with pytest.raises(InvalidQuery, match="is not a column"):
        parse_sort("_id", COLUMNS, row_id=None)


def test_parse_fields() -> None:
    assert parse_fields(None, COLUMNS) == COLUMNS
    assert parse_fields("city, year", COLUMNS) == [COLUMNS[1], COLUMNS[0]]
    assert parse_fields('["rain", "city", "rain"]', COLUMNS) == [COLUMNS[2], COLUMNS[1]]
    assert parse_fields("_id,year", COLUMNS) == [Column("_id", "integer"), COLUMNS[0]]
    with pytest.raises(InvalidQuery, match="fields: 'town' is not a column"):
        parse_fields("year,town", COLUMNS)
    with pytest.raises(InvalidQuery, match="must list column names"):
        parse_fields("[1, 2]", COLUMNS)


def test_parse_q() -> None:
    assert parse_q(None) is None
    assert parse_q(" ") is None
    assert parse_q("oslo") == "oslo"
    assert parse_q('{"city": "os"}') == {"city": "os"}
    assert parse_q("{not json") == "{not json"


# -- the SQL and its parameters -------------------------------------------------------------------


def test_sql_and_params_for_duckdb() -> None:
    query = search(
        q="os",
        filters={"year": [2019, "2020"], "rain": {"gte": "4", "lt": 11}, "wet": None},
        fields=[COLUMNS[1], COLUMNS[0]],
        sort=[("year", True)],
        limit=10,
        offset=20,
    )
    where = (
        ' WHERE "year" IN (?, ?) AND "rain" >= ? AND "rain" < ? AND "wet" IS NULL AND ('
        + " OR ".join(f"CAST(\"{c.name}\" AS TEXT) ILIKE ? ESCAPE '\\'" for c in COLUMNS)
        + ")"
    )
    assert query.sql == (
        f'SELECT "city", "year" FROM t0.data{where} ORDER BY "year" DESC NULLS LAST, "_id" ASC'
        " LIMIT ? OFFSET ?"
    )
    assert query.count_sql == f"SELECT count(*) FROM t0.data{where}"
    assert query.count_params == [2019, 2020, 4.0, 11, *(["%os%"] * len(COLUMNS))]
    assert query.params == [*query.count_params, 10, 20]
    assert query.fields == [COLUMNS[1], COLUMNS[0]]


def test_sql_and_params_for_postgres() -> None:
    columns = [Column("100% sure", "boolean"), Column('say "hi"', "string")]
    query = build_search(
        table='"dphub_datastore"."r1_0"',
        columns=columns,
        dialect="postgres",
        filters={"100% sure": "true"},
        q="50%",
    )
    assert query.sql == (
        'SELECT "100%% sure", "say ""hi""" FROM "dphub_datastore"."r1_0"'
        ' WHERE "100%% sure" = %s AND (CAST("100%% sure" AS TEXT) ILIKE %s ESCAPE \'\\\''
        ' OR CAST("say ""hi""" AS TEXT) ILIKE %s ESCAPE \'\\\')'
        ' ORDER BY "_id" ASC LIMIT %s OFFSET %s'
    )
    assert query.params == [True, "%50\\%%", "%50\\%%", 100, 0]
    # without parameters psycopg sends the text as it is: no %% then
    bare = build_search(table="t", columns=columns, dialect="postgres")
    assert bare.count_sql == "SELECT count(*) FROM t"
    assert bare.count_params == []
    assert bare.sql.startswith('SELECT "100%% sure"')


def test_no_row_id_means_no_default_order() -> None:
    query = search(row_id=None)
    assert "ORDER BY" not in query.sql
    assert 'ORDER BY "city" ASC NULLS LAST LIMIT' in search(sort=[("city", False)], row_id=None).sql


# -- run on DuckDB --------------------------------------------------------------------------------


def test_default_is_every_column_in_file_order(duck: duckdb.DuckDBPyConnection) -> None:
    rows, total = run(duck)
    assert total == 6
    assert rows == [row[1:] for row in ROWS]


def test_paging_is_stable(duck: duckdb.DuckDBPyConnection) -> None:
    pages = [ids(duck, sort=[("year", False)], limit=4, offset=o) for o in (0, 4)]
    assert pages == [[1, 2, 3, 4], [5, 6]]
    assert ids(duck, limit=0) == []
    assert ids(duck, offset=100) == []


def test_equality_in_and_null(duck: duckdb.DuckDBPyConnection) -> None:
    assert ids(duck, filters={"city": "Oslo"}) == [1, 3]
    assert ids(duck, filters={"year": "2019"}) == [1, 2]
    assert ids(duck, filters={"year": [2019, 2021]}) == [1, 2, 5, 6]
    assert ids(duck, filters={"rain": None}) == [4]
    assert ids(duck, filters={"wet": [False, None]}) == [2, 4, 6]
    assert ids(duck, filters={"wet": "true"}) == [1, 3, 5]
    assert ids(duck, filters={"city": []}) == []
    assert ids(duck, filters={"_id": {"gt": 4}}) == [5, 6]


def test_ranges_on_each_type(duck: duckdb.DuckDBPyConnection) -> None:
    assert ids(duck, filters={"rain": {"gte": 4, "lt": 11}}) == [1, 2, 3]
    assert ids(duck, filters={"year": {"gt": 2019, "lte": 2020}}) == [3, 4]
    assert ids(duck, filters={"day": {"gte": "2020-01-01", "lt": "2021-05-01"}}) == [3, 5]
    assert ids(duck, filters={"seen": {"gte": "2021-04-01T11:00:00"}}) == [5, 6]
    assert ids(duck, filters={"seen": {"lt": "2019-02-01T08:30:00Z"}}) == [1]
    assert ids(duck, filters={"at": {"gt": "10:30"}}) == [5, 6]
    assert ids(duck, filters={"day": "2019-02-01"}) == [2]


def test_q_is_a_case_insensitive_substring_of_any_column(
    duck: duckdb.DuckDBPyConnection,
) -> None:
    assert ids(duck, q="oslo") == [1, 3]
    assert ids(duck, q="PAULO") == [5]
    assert ids(duck, q="2020") == [3, 4]  # the year, and a date's text
    assert ids(duck, q="10.5") == [1]
    assert ids(duck, q="  ") == [1, 2, 3, 4, 5, 6]
    assert ids(duck, q={"city": "o", "year": "2019"}) == [1, 2]


def test_q_wildcards_match_themselves(duck: duckdb.DuckDBPyConnection) -> None:
    assert ids(duck, q="%") == [6]
    assert ids(duck, q="_") == [6]
    assert ids(duck, q="o_l") == []
    assert ids(duck, q="100% t") == [6]


def test_sort_both_ways_nulls_last(duck: duckdb.DuckDBPyConnection) -> None:
    assert ids(duck, sort=[("rain", False)]) == [6, 2, 3, 1, 5, 4]
    assert ids(duck, sort=[("rain", True)]) == [5, 1, 3, 2, 6, 4]
    assert ids(duck, sort=[("year", True), ("city", False)]) == [6, 5, 4, 3, 1, 2]
    assert ids(duck, sort=[("_id", True)]) == [6, 5, 4, 3, 2, 1]


def test_counts_ignore_paging(duck: duckdb.DuckDBPyConnection) -> None:
    rows, total = run(duck, filters={"wet": True}, limit=1, offset=1)
    assert total == 3
    assert len(rows) == 1


# -- refused --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("filters", "message"),
    [
        ({"year": "abc"}, "filters: 'abc' is not an integer for column year"),
        ({"year": 1.5}, "not an integer"),
        ({"year": True}, "not an integer"),
        ({"year": 2**70}, "not an integer in range"),
        ({"rain": "wet"}, "not a number"),
        ({"rain": "Infinity"}, "not a finite number"),
        ({"wet": "maybe"}, "not a boolean"),
        ({"day": "2020-13-01"}, "not a date"),
        ({"seen": "yesterday"}, "not a datetime"),
        ({"at": "25:00"}, "not a time"),
        ({"at": "10:00+02:00"}, "without a UTC offset"),
        ({"year": {"between": 1}}, "'between' is not an operator for column year"),
        ({"year": {}}, "give gt, gte, lt or lte"),
        ({"year": {"gt": None}}, "not null"),
        ({"year": [[1]]}, "not a single value"),
        ({"city": {"gt": {"a": 1}}}, "not a single value"),
        ({"city": "a\x00b"}, "NUL"),
        ({"town": 1}, "filters: 'town' is not a column of this table"),
        ({"year": list(range(1001))}, "at most 1000 values"),
    ],
)
def test_refused_filters(filters: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidQuery, match=message.replace("(", r"\(").replace(")", r"\)")):
        search(filters=filters)


@pytest.mark.parametrize(("limit", "offset"), [(-1, 0), (MAX_LIMIT + 1, 0), (10, -1), (True, 0)])
def test_refused_paging(limit: Any, offset: Any) -> None:
    with pytest.raises(InvalidQuery, match=r"limit|offset"):
        search(limit=limit, offset=offset)


def test_refused_fields_sort_and_q() -> None:
    with pytest.raises(InvalidQuery, match="is not a column"):
        search(fields=[Column("secret", "string")])
    with pytest.raises(InvalidQuery, match="is not a column"):
        search(sort=[("secret", False)])
    with pytest.raises(InvalidQuery, match="q: 'secret' is not a column"):
        search(q={"secret": "x"})
    with pytest.raises(InvalidQuery, match="NUL"):
        search(q="a\x00")


# -- injection attempts ---------------------------------------------------------------------------

INJECTIONS: list[dict[str, Any]] = [
    {"sort": "year; DROP TABLE t0.data"},
    {"sort": 'year" desc; DROP TABLE t0.data; --'},
    {"fields": 'year" FROM t0.data; DROP TABLE t0.data; --'},
    {"fields": "year,(SELECT 1)"},
    {"filters": '{"year\\" = 1 OR 1=1 --": 1}'},
    {"filters": '{"year": "1 OR 1=1"}'},
    {"filters": '{"year": {"gt) OR (1=1": 1}}'},
]


@pytest.mark.parametrize("attempt", INJECTIONS)
def test_injections_in_names_are_refused(
    duck: duckdb.DuckDBPyConnection, attempt: dict[str, str]
) -> None:
    with pytest.raises(InvalidQuery):
        search(
            fields=parse_fields(attempt.get("fields"), COLUMNS),
            sort=parse_sort(attempt.get("sort"), COLUMNS),
            filters=parse_filters(attempt.get("filters")),
        )
    assert duck.execute("SELECT count(*) FROM t0.data").fetchall() == [(6,)]


def test_injections_in_values_are_only_values(duck: duckdb.DuckDBPyConnection) -> None:
    hostile = "Oslo'; DROP TABLE t0.data; --"
    assert ids(duck, filters={"city": hostile}) == []
    assert ids(duck, filters={"city": [hostile, "Rome"]}) == [2]
    assert ids(duck, q=hostile) == []
    assert ids(duck, q="' OR 1=1 --") == []
    assert duck.execute("SELECT count(*) FROM t0.data").fetchall() == [(6,)]


def test_hostile_column_names_are_quoted(duck: duckdb.DuckDBPyConnection) -> None:
    odd = ['a" FROM t0.data; DROP TABLE t0.data; --', "it's", "100%"]
    duck.execute(
        "CREATE TABLE t0.odd (_id BIGINT, "
        + ", ".join('"' + n.replace('"', '""') + '" VARCHAR' for n in odd)
        + ")"
    )
    duck.execute("INSERT INTO t0.odd VALUES (1, 'x', 'y', 'z'), (2, 'x2', 'y2', 'z2')")
    columns = [Column(n, "string") for n in odd]
    query = build_search(
        table="t0.odd", columns=columns, dialect="duckdb", filters={odd[0]: "x2"}, q="2"
    )
    assert duck.execute(query.sql, query.params).fetchall() == [("x2", "y2", "z2")]
    assert duck.execute("SELECT count(*) FROM t0.data").fetchall() == [(6,)]


# -- run on PostgreSQL ----------------------------------------------------------------------------


@pytest.fixture
def pg(postgres_url: str) -> Iterator[psycopg.Connection[Any]]:
    url = make_url(postgres_url).set(drivername="postgresql")
    with psycopg.connect(url.render_as_string(hide_password=False), autocommit=True) as con:
        con.execute("CREATE SCHEMA dphub_datastore")
        con.execute(
            "CREATE TABLE dphub_datastore.r1_0 (_id bigint, year bigint, city text,"
            ' rain double precision, wet boolean, day date, seen timestamp, "at" time,'
            ' "100% odd" text)'
        )
        with con.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO dphub_datastore.r1_0 VALUES (%s, %s, %s, %s, %s, %s, %s, %s, 'x')",
                ROWS,
            )
        yield con


def test_postgres_runs_the_same_searches(pg: psycopg.Connection[Any]) -> None:
    columns = [*COLUMNS, Column("100% odd", "string")]

    def pg_ids(**kwargs: Any) -> tuple[list[int], int]:
        query = build_search(
            table='"dphub_datastore"."r1_0"',
            columns=columns,
            dialect="postgres",
            fields=[Column("_id", "integer")],
            **kwargs,
        )
        with pg.cursor() as cursor:
            cursor.execute(query.sql.encode(), query.params or None)
            found = [row[0] for row in cursor.fetchall()]
            cursor.execute(query.count_sql.encode(), query.count_params or None)
            count = cursor.fetchone()
        assert count is not None
        return found, int(count[0])

    assert pg_ids() == ([1, 2, 3, 4, 5, 6], 6)
    assert pg_ids(filters={"city": "Oslo"}) == ([1, 3], 2)
    assert pg_ids(filters={"year": [2019, "2021"]}) == ([1, 2, 5, 6], 4)
    assert pg_ids(filters={"wet": [False, None]}) == ([2, 4, 6], 3)
    assert pg_ids(filters={"rain": {"gte": 4, "lt": 11}}) == ([1, 2, 3], 3)
    assert pg_ids(filters={"day": {"gte": "2020-01-01", "lt": "2021-05-01"}}) == ([3, 5], 2)
    assert pg_ids(filters={"seen": {"lt": "2019-02-01T08:30:00Z"}}) == ([1], 1)
    assert pg_ids(filters={"at": {"gt": "10:30"}}) == ([5, 6], 2)
    assert pg_ids(filters={"100% odd": "x"}, limit=2) == ([1, 2], 6)
    assert pg_ids(q="oslo") == ([1, 3], 2)
    assert pg_ids(q="%") == ([6], 1)
    assert pg_ids(q="o_l") == ([], 0)
    assert pg_ids(sort=[("rain", True)]) == ([5, 1, 3, 2, 6, 4], 6)
    assert pg_ids(sort=[("rain", False)], offset=4) == ([5, 4], 6)
    hostile = "Oslo'; DROP TABLE dphub_datastore.r1_0; --"
    assert pg_ids(filters={"city": hostile}, q=hostile) == ([], 0)
    with pg.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM dphub_datastore.r1_0")
        assert cursor.fetchone() == (6,)
