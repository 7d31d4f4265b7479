"""The SQL guard: one read-only query over mapped tables gets through, run for real; nothing else does."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import duckdb
import psycopg
import pytest
import sqlglot
from sqlalchemy.engine import make_url
from sqlglot import exp

from dphub.datastore.sqlguard import (
    SAFE_FUNCTION_NAMES,
    SAFE_FUNCTION_NODES,
    Dialect,
    referenced_tables,
    rewrite_sql,
)
from dphub.errors import InvalidQuery

DIALECTS: list[Dialect] = ["duckdb", "postgres"]
RAIN = "alice/rain/values"
CITIES = "bob/cities@3/list"
# Shaped like the embedded backend's references: an attached database per table.
DUCK_TABLES = {RAIN: "t0.data", CITIES: "t1.data"}
PG_TABLES = {RAIN: '"dphub_datastore"."r1_0"', CITIES: '"dphub_datastore"."r2_0"'}

RAIN_ROWS: list[tuple[Any, ...]] = [
    (1, 2019, "north", 10.5),
    (2, 2019, "south", 4.0),
    (3, 2020, "north", 7.5),
]
RAIN_ROWS += [(4, 2020, "south", None), (5, 2021, "north", 12.0)]
CITY_ROWS = [(1, "north", "Oslo"), (2, "south", "Rome"), (3, "west", "Lisbon")]


@pytest.fixture
def duck() -> Iterator[duckdb.DuckDBPyConnection]:
    con = duckdb.connect(":memory:")
    con.execute("ATTACH ':memory:' AS t0")
    con.execute("ATTACH ':memory:' AS t1")
    con.execute(
        "CREATE TABLE t0.data (_id BIGINT, year INTEGER, region VARCHAR, value DOUBLE, "
        "note VARCHAR)"
    )
    con.executemany("INSERT INTO t0.data VALUES (?, ?, ?, ?, 'a%b')", RAIN_ROWS)
    con.execute("CREATE TABLE t1.data (_id BIGINT, region VARCHAR, city VARCHAR)")
    con.executemany("INSERT INTO t1.data VALUES (?, ?, ?)", CITY_ROWS)
    yield con
    con.close()


def run_duck(con: duckdb.DuckDBPyConnection, sql: str) -> list[tuple[Any, ...]]:
    return con.execute(rewrite_sql(sql, dialect="duckdb", tables=DUCK_TABLES)).fetchall()


# -- refused ------------------------------------------------------------------------------------

REFUSED: list[tuple[str, str]] = [
    ("SELECT 1; DROP TABLE x", "Only one SELECT statement is accepted; this has 2."),
    (f'SELECT * FROM "{RAIN}"; DELETE FROM "{RAIN}"', "this has 2"),
    ("SELECT 1 /* ; */ ; DROP TABLE x", "this has 2"),
    ("SELECT 1 -- harmless?\n; DROP TABLE x", "this has 2"),
    ("SELECT 1 /* */; /* */ SELECT 2", "this has 2"),
    ("COPY t TO '/tmp/out.csv'", "not COPY"),
    (f"COPY (SELECT * FROM \"{RAIN}\") TO '/tmp/out.csv'", "not COPY"),
    ("INSERT INTO t VALUES (1)", "not INSERT"),
    ("UPDATE t SET a = 1", "not UPDATE"),
    ("DELETE FROM t", "not DELETE"),
    ("MERGE INTO t USING s ON t.a = s.a WHEN MATCHED THEN DELETE", "not MERGE"),
    ("CREATE TABLE t (a INT)", "not CREATE"),
    (f'CREATE TABLE t AS SELECT * FROM "{RAIN}"', "not CREATE"),
    ("DROP TABLE t", "not DROP"),
    ("ALTER TABLE t ADD COLUMN b INT", "not ALTER"),
    ("TRUNCATE t", "not TRUNCATE"),
    ("SET threads = 1", "not SET"),
    ("PRAGMA version", "not PRAGMA"),
    ("LOAD httpfs", "not LOAD"),
    ("INSTALL httpfs", "not INSTALL"),
    ("CALL pragma_version()", "not CALL"),
    ("BEGIN", "not BEGIN"),
    ("DESCRIBE t", "not DESCRIBE"),
    ("VALUES (1), (2)", "not VALUES"),
    ("WITH x AS (DELETE FROM t RETURNING *) SELECT * FROM x", "contains DELETE"),
    ("WITH x AS (INSERT INTO t VALUES (1) RETURNING *) SELECT * FROM x", "contains INSERT"),
    (f'SELECT * INTO t FROM "{RAIN}"', "SELECT ... INTO is not accepted"),
    (f'SELECT * FROM "{RAIN}" FOR UPDATE', "Locking clauses"),
    (f'SELECT * FROM "{RAIN}" FOR SHARE', "Locking clauses"),
    ("SELECT * FROM read_csv('/etc/passwd')", "table function read_csv"),
    ("SELECT * FROM read_parquet('s3://bucket/x.parquet')", "read_parquet"),
    ("SELECT * FROM read_text('/etc/passwd')", "read_text"),
    ("SELECT * FROM sqlite_scan('x.db', 'users')", "sqlite_scan"),
    ("SELECT * FROM query('SELECT 1')", "query"),
    ("SELECT * FROM duckdb_tables()", "duckdb_tables"),
    ("SELECT read_blob('/etc/passwd')", "function read_blob"),
    ("SELECT pg_read_file('/etc/passwd')", "function pg_read_file"),
    ("SELECT pg_ls_dir('.')", "pg_ls_dir"),
    ("SELECT pg_sleep(10)", "pg_sleep"),
    ("SELECT lo_import('/etc/passwd')", "lo_import"),
    ("SELECT dblink('host=x', 'SELECT 1')", "dblink"),
    ("SELECT set_config('x', 'y', false)", "set_config"),
    ("SELECT current_setting('data_directory')", "current_setting"),
    ("SELECT getenv('HOME')", "getenv"),
    ("SELECT nextval('s')", "nextval"),
    ("SELECT version()", "version"),
    ("SELECT current_user", "current_user"),
    ("SELECT current_database()", "current_database"),
    ("SELECT current_schema()", "current_schema"),
    ("SELECT getvariable('x')", "getvariable"),
    ("SELECT query_to_xml('SELECT 1', true, true, '')", "query_to_xml"),
    ("SELECT \"pg_read_file\"('/etc/passwd')", "pg_read_file"),
    ("SELECT pg_catalog.pg_read_file('/etc/passwd')", "pg_catalog"),
    (f'SELECT upper(region) FROM "{RAIN}" WHERE pg_sleep(1) IS NULL', "pg_sleep"),
    (f"SELECT (SELECT read_text('/etc/passwd')) FROM \"{RAIN}\"", "read_text"),
    ("SELECT * FROM pg_catalog.pg_tables", "System catalogs such as pg_catalog"),
    ('SELECT * FROM "pg_catalog"."pg_tables"', "pg_catalog"),
    ("SELECT * FROM information_schema.tables", "information_schema"),
    ('SELECT * FROM "INFORMATION_SCHEMA"."TABLES"', "INFORMATION_SCHEMA"),
    ("SELECT * FROM pg_settings", "pg_settings"),
    ('SELECT * FROM "pg_authid"', "pg_authid"),
    ("SELECT * FROM sqlite_master", "sqlite_master"),
    ("SELECT * FROM duckdb_settings", "duckdb_settings"),
    ("SELECT information_schema.tables.table_name", "information_schema"),
    ("SELECT * FROM main.t0", "Schema-qualified names such as main.t0"),
    ('SELECT * FROM t0."data"', "Schema-qualified"),
    ("SELECT * FROM 'secrets.csv'", '"secrets.csv" is not one this query may read'),
    ('SELECT * FROM "secrets.parquet"', "secrets.parquet"),
    ('SELECT * FROM "carol/private/data"', "carol/private/data"),
    ("SELECT * FROM t0", '"t0" is not one'),
    # a CTE is visible in later CTEs and the main query, not in earlier CTEs nor outside its query
    ("WITH a AS (SELECT * FROM b), b AS (SELECT 1) SELECT * FROM a", '"b" is not one'),
    ("SELECT * FROM (WITH q AS (SELECT 1) SELECT * FROM q) AS s, q", '"q" is not one'),
    ('WITH "X" AS (SELECT 1) SELECT * FROM "x"', '"x" is not one'),
    ("SELECT $1", "parameters"),
    ("SELECT ?", "parameters"),
    ("", "empty"),
    (" ; ; ", "empty"),
    ("SELECT ((", "could not be parsed"),
    ("SELEKT 1", "could not be parsed"),
]


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize(("sql", "message"), REFUSED)
def test_refused(sql: str, message: str, dialect: Dialect) -> None:
    tables = DUCK_TABLES if dialect == "duckdb" else PG_TABLES
    with pytest.raises(InvalidQuery) as caught:
        rewrite_sql(sql, dialect=dialect, tables=tables)
    assert caught.value.code == "invalid-query"
    assert caught.value.status == 400
    text = caught.value.message
    assert "\n" not in text
    if message.startswith("not ") and text.startswith("The query could not be parsed"):
        return  # a statement one dialect's parser does not even know: refused all the same
    assert message in text


@pytest.mark.parametrize("dialect", DIALECTS)
def test_referenced_tables_runs_the_same_checks(dialect: Dialect) -> None:
    with pytest.raises(InvalidQuery, match="pg_read_file"):
        referenced_tables("SELECT pg_read_file('x')", dialect=dialect)
    with pytest.raises(InvalidQuery, match="this has 2"):
        referenced_tables(f'SELECT * FROM "{RAIN}"; DROP TABLE x', dialect=dialect)


def test_parse_errors_are_one_short_line() -> None:
    with pytest.raises(InvalidQuery) as caught:
        rewrite_sql("SELECT (((1 FROM x", dialect="duckdb", tables={})
    message = caught.value.message
    assert message.startswith("The query could not be parsed")
    assert "\n" not in message
    assert "\x1b" not in message
    assert len(message) < 300


def test_very_long_or_deep_queries_are_refused_cleanly() -> None:
    with pytest.raises(InvalidQuery, match="longer than"):
        rewrite_sql("SELECT " + "1 + " * 50_000 + "1", dialect="duckdb", tables={})
    deep = "SELECT " + "(" * 5000 + "1" + ")" * 5000
    with pytest.raises(InvalidQuery):
        rewrite_sql(deep, dialect="duckdb", tables={})


def test_a_cte_may_not_shadow_a_backend_table() -> None:
    with pytest.raises(InvalidQuery, match="reserved"):
        rewrite_sql(
            f'WITH t9 AS (SELECT 1) SELECT * FROM "{RAIN}"', dialect="duckdb", tables={RAIN: "t9"}
        )


def test_a_backend_reference_is_only_ever_a_table_name() -> None:
    out = rewrite_sql(f'SELECT * FROM "{RAIN}"', dialect="duckdb", tables={RAIN: "x; DROP TABLE y"})
    assert out == 'SELECT * FROM "x; DROP TABLE y" AS "alice/rain/values"'


# -- which tables -------------------------------------------------------------------------------


def test_referenced_tables_lists_resource_ids_once_in_order() -> None:
    sql = f"""
        WITH recent AS (SELECT * FROM "{RAIN}" WHERE year > 2019)
        SELECT c.city, r.value
        FROM recent AS r JOIN "{CITIES}" AS c USING (region)
        WHERE r.value > (SELECT avg(value) FROM "{RAIN}")
    """
    assert referenced_tables(sql) == [RAIN, CITIES]
    assert referenced_tables("SELECT 1") == []
    assert referenced_tables("SELECT * FROM generate_series(1, 3) AS g(x)") == []


def test_a_cte_named_like_a_resource_id_shadows_it() -> None:
    sql = f'WITH "{RAIN}" AS (SELECT 1 AS x) SELECT * FROM "{RAIN}"'
    assert referenced_tables(sql) == []


def test_unknown_names_are_left_for_the_caller_to_resolve() -> None:
    assert referenced_tables('SELECT * FROM "carol/private/data"') == ["carol/private/data"]


# -- accepted, and run on DuckDB ------------------------------------------------------------------


def test_aggregate_by_resource_id(duck: duckdb.DuckDBPyConnection) -> None:
    sql = f'SELECT year, sum(value) AS total FROM "{RAIN}" GROUP BY 1 ORDER BY 1'
    assert run_duck(duck, sql) == [(2019, 14.5), (2020, 7.5), (2021, 12.0)]


def test_the_resource_id_still_qualifies_columns(duck: duckdb.DuckDBPyConnection) -> None:
    sql = f'SELECT "{RAIN}".year FROM "{RAIN}" WHERE "{RAIN}"._id = 1'
    assert run_duck(duck, sql) == [(2019,)]


def test_user_aliases_are_kept(duck: duckdb.DuckDBPyConnection) -> None:
    sql = f"""
        SELECT r.year, c.city FROM "{RAIN}" r JOIN "{CITIES}" AS c ON c.region = r.region
        WHERE r.value IS NOT NULL ORDER BY r._id
    """
    assert run_duck(duck, sql) == [
        (2019, "Oslo"),
        (2019, "Rome"),
        (2020, "Oslo"),
        (2021, "Oslo"),
    ]
    out = rewrite_sql(sql, dialect="duckdb", tables=DUCK_TABLES)
    assert '"t0"."data" AS "r"' in out
    assert '"t1"."data" AS "c"' in out


def test_ctes_set_operations_and_subqueries(duck: duckdb.DuckDBPyConnection) -> None:
    sql = f"""
        WITH north AS (SELECT * FROM "{RAIN}" WHERE region = 'north'),
             big AS (SELECT * FROM north WHERE value > 10)
        SELECT _id FROM big
        UNION
        SELECT _id FROM "{RAIN}" WHERE value = (SELECT min(value) FROM "{RAIN}")
        EXCEPT SELECT 5
        ORDER BY 1
    """
    assert run_duck(duck, sql) == [(1,), (2,)]
    intersect = f'SELECT region FROM "{RAIN}" INTERSECT SELECT region FROM "{CITIES}" ORDER BY 1'
    assert run_duck(duck, intersect) == [("north",), ("south",)]


def test_recursive_cte(duck: duckdb.DuckDBPyConnection) -> None:
    sql = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 4) SELECT sum(i) FROM n"
    assert run_duck(duck, sql) == [(10,)]


def test_window_functions(duck: duckdb.DuckDBPyConnection) -> None:
    sql = f"""
        SELECT _id,
               row_number() OVER (PARTITION BY region ORDER BY year) AS n,
               lag(value) OVER (PARTITION BY region ORDER BY year) AS previous,
               rank() OVER (ORDER BY value DESC NULLS LAST) AS place
        FROM "{RAIN}" ORDER BY _id
    """
    assert run_duck(duck, sql) == [
        (1, 1, None, 2),
        (2, 1, None, 4),
        (3, 2, 10.5, 3),
        (4, 2, 4.0, 5),
        (5, 3, 7.5, 1),
    ]


def test_values_generate_series_and_unnest_inside_a_query(duck: duckdb.DuckDBPyConnection) -> None:
    values = "SELECT sum(x) FROM (VALUES (1), (2), (3)) AS v(x)"
    assert run_duck(duck, values) == [(6,)]
    series = "SELECT count(*) FROM generate_series(1, 10) AS g(x)"
    assert run_duck(duck, series) == [(10,)]
    assert run_duck(duck, "SELECT count(*) FROM range(4)") == [(4,)]
    assert run_duck(duck, "SELECT sum(x) FROM unnest([1, 2, 3]) AS u(x)") == [(6,)]


def test_a_generous_set_of_functions(duck: duckdb.DuckDBPyConnection) -> None:
    sql = f"""
        SELECT
          count(*), count(DISTINCT region), round(avg(value), 2), min(year), max(year),
          round(stddev(value), 3), median(value), quantile_cont(value, 0.5),
          string_agg(DISTINCT region, ',' ORDER BY region), coalesce(max(note), 'x'),
          upper(min(region)), length(max(region)), substr(max(region), 1, 2),
          greatest(1, 2), least(1, 2), nullif(1, 1), abs(-2), floor(2.5), ceil(2.5),
          CAST(max(year) AS VARCHAR), extract(year FROM DATE '2021-03-04'),
          date_trunc('month', DATE '2021-03-04'), strftime(DATE '2021-03-04', '%Y/%m'),
          regexp_replace('a-b', '-', '+'), regexp_matches('abc', 'b'),
          CASE WHEN max(value) > 10 THEN 'wet' ELSE 'dry' END,
          count(*) FILTER (WHERE value > 5)
        FROM "{RAIN}"
    """
    [row] = run_duck(duck, sql)
    assert row[:8] == (5, 2, 8.5, 2019, 2021, 3.536, 9.0, 9.0)
    assert row[8:13] == ("north,south", "a%b", "NORTH", 5, "so")
    assert row[13:20] == (2, 1, None, 2, 2, 3, "2021")
    assert row[20] == 2021
    assert str(row[21]).startswith("2021-03-01")
    assert row[22:] == ("2021/03", "a+b", True, "wet", 3)


def test_percent_signs_survive(duck: duckdb.DuckDBPyConnection) -> None:
    sql = f"SELECT count(*) FROM \"{RAIN}\" WHERE note LIKE 'a%' AND _id % 2 = 1"
    assert run_duck(duck, sql) == [(3,)]


def test_comments_are_dropped(duck: duckdb.DuckDBPyConnection) -> None:
    sql = f'SELECT count(*) /* a comment */ FROM "{RAIN}" -- and */ another; DROP TABLE t0.data'
    out = rewrite_sql(sql, dialect="duckdb", tables=DUCK_TABLES)
    assert "DROP" not in out
    assert "/*" not in out
    assert "--" not in out
    assert duck.execute(out).fetchall() == [(5,)]
    assert duck.execute("SELECT count(*) FROM t0.data").fetchall() == [(5,)]


def test_strings_and_identifiers_with_quotes_stay_values(duck: duckdb.DuckDBPyConnection) -> None:
    sql = f"""SELECT 'it''s; DROP TABLE t0.data --' AS "odd "" name" FROM "{RAIN}" LIMIT 1"""
    assert run_duck(duck, sql) == [("it's; DROP TABLE t0.data --",)]
    assert duck.execute("SELECT count(*) FROM t0.data").fetchall() == [(5,)]


def test_output_is_one_statement_without_semicolon() -> None:
    out = rewrite_sql(f'SELECT 1 FROM "{RAIN}";', dialect="duckdb", tables=DUCK_TABLES)
    assert not out.rstrip().endswith(";")
    assert len([s for s in sqlglot.parse(out, read="duckdb") if s is not None]) == 1


def test_every_listed_function_name_is_allowed_however_sqlglot_reads_it() -> None:
    """A name in the allow-list must pass whether sqlglot models it or leaves it anonymous."""
    for dialect in DIALECTS:
        for name in sorted(SAFE_FUNCTION_NAMES):
            for call in (f"{name}(a, b, c)", f"{name}(a, b)", f"{name}(a)", f"{name}()"):
                try:
                    tree = sqlglot.parse_one(f"SELECT {call} FROM x", read=dialect)
                except sqlglot.errors.ParseError:
                    continue
                for node in tree.find_all(exp.Func):
                    kind = type(node).__name__
                    assert isinstance(node, exp.Anonymous) or kind in SAFE_FUNCTION_NODES, (
                        f"{dialect}: {name} reads as {kind}, which is not allowed"
                    )
                break


# Literals whose quoting differs between dialects: the backend must read the rewritten text exactly
# as it reads the original (a tokenizer that disagreed with the database would be an injection).
TRICKY_LITERALS = [
    r"SELECT E'a\'b'",
    r"SELECT 'a\'",
    r"SELECT 'a\', 'b'",
    r"SELECT E'a\\', 'b'",
    "SELECT $$a'b$$",
    "SELECT $tag$a$$b$tag$",
    "SELECT 'a'\n'b'",
    r"SELECT e'\x41'",
    "SELECT 'it''s'",
    'SELECT 1 AS "a""b"',
    "SELECT 'a' -- '\n, 'b'",
    "SELECT /* /* nested */ */ 1",
]


@pytest.mark.parametrize("sql", TRICKY_LITERALS)
def test_duckdb_reads_literals_as_written(duck: duckdb.DuckDBPyConnection, sql: str) -> None:
    assert run_duck(duck, sql) == duck.execute(sql).fetchall()


# -- PostgreSQL ---------------------------------------------------------------------------------


def test_postgres_text() -> None:
    sql = f"SELECT year, sum(value) FROM \"{RAIN}\" WHERE region LIKE 'n%' GROUP BY 1 -- note"
    out = rewrite_sql(sql, dialect="postgres", tables=PG_TABLES)
    assert out == (
        'SELECT "year", SUM("value") FROM "dphub_datastore"."r1_0" AS "alice/rain/values" '
        "WHERE \"region\" LIKE 'n%' GROUP BY 1"
    )


def test_postgres_keywords_that_read_the_session_become_plain_names() -> None:
    out = rewrite_sql("SELECT user", dialect="postgres", tables={})
    assert out == 'SELECT "user"'


@pytest.fixture
def pg(postgres_url: str) -> Iterator[psycopg.Connection[Any]]:
    url = make_url(postgres_url).set(drivername="postgresql")
    with psycopg.connect(url.render_as_string(hide_password=False), autocommit=True) as con:
        con.execute("CREATE SCHEMA dphub_datastore")
        con.execute(
            "CREATE TABLE dphub_datastore.r1_0 (_id bigint, year integer, region text,"
            " value double precision, note text)"
        )
        with con.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO dphub_datastore.r1_0 VALUES (%s, %s, %s, %s, 'a%%b')", RAIN_ROWS
            )
        con.execute("CREATE TABLE dphub_datastore.r2_0 (_id bigint, region text, city text)")
        with con.cursor() as cursor:
            cursor.executemany("INSERT INTO dphub_datastore.r2_0 VALUES (%s, %s, %s)", CITY_ROWS)
        yield con


def test_postgres_runs_the_rewritten_queries(pg: psycopg.Connection[Any]) -> None:
    def run(sql: str) -> list[tuple[Any, ...]]:
        out = rewrite_sql(sql, dialect="postgres", tables=PG_TABLES)
        with pg.cursor() as cursor:
            cursor.execute(out.encode())  # no parameters: the text goes as it is
            return cursor.fetchall()

    assert run(f'SELECT year, sum(value) FROM "{RAIN}" GROUP BY 1 ORDER BY 1') == [
        (2019, 14.5),
        (2020, 7.5),
        (2021, 12.0),
    ]
    joined = f"""
        WITH r AS (SELECT * FROM "{RAIN}" WHERE value IS NOT NULL)
        SELECT c.city, count(*) FROM r JOIN "{CITIES}" AS c USING (region)
        GROUP BY c.city ORDER BY c.city
    """
    assert run(joined) == [("Oslo", 3), ("Rome", 1)]
    assert run(f"SELECT count(*) FROM \"{RAIN}\" WHERE note LIKE 'a%' AND _id % 2 = 1") == [(3,)]
    assert run(f'SELECT "{RAIN}".year FROM "{RAIN}" WHERE _id = 3') == [(2020,)]
    assert run("SELECT count(*) FROM generate_series(1, 10) AS g(x)") == [(10,)]
    with pytest.raises(psycopg.errors.UndefinedColumn):
        run("SELECT user")  # a column name now, not the session's user name
    for sql in [*TRICKY_LITERALS, r"SELECT U&'d\0061t\+000061'"]:
        assert run(sql) == pg.execute(sql.encode()).fetchall(), sql
