"""The PostgreSQL datastore: tables in their own schema, loaded with COPY, queried read-only.

A load runs in one transaction (drop, create, COPY), so readers see the old table or the whole new
one. Queries run in a READ ONLY transaction with ``statement_timeout``; the statement itself has
already been checked (``sqlguard``) to read only the tables the caller may read.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import psycopg
from psycopg import sql as pgsql
from sqlalchemy import create_engine
from sqlalchemy.engine import Engine, make_url

from dphub import failpoints
from dphub.datastore.interfaces import ROW_ID, Answer, Dialect, Field, StatementBuilder
from dphub.errors import InvalidQuery, QueryTimeout, TableNotFound

SCHEMA = "dphub_datastore"
COPY_CHUNK = 1024 * 1024

PG_TYPES = {
    "integer": "bigint",
    "number": "double precision",
    "boolean": "boolean",
    "date": "date",
    "datetime": "timestamp",
    "time": "time",
    "year": "integer",
}

# type OIDs of the answers' columns → Table Schema types
OID_TYPES = {
    20: "integer",
    21: "integer",
    23: "integer",
    700: "number",
    701: "number",
    1700: "number",
    16: "boolean",
    1082: "date",
    1114: "datetime",
    1184: "datetime",
    1083: "time",
}


def engine_for(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return create_engine(parsed, pool_size=5, max_overflow=10, pool_pre_ping=True)


class PostgresDatastore:
    dialect: Dialect = "postgres"

    def __init__(self, engine: Engine, *, timeout: float, max_rows: int) -> None:
        self.engine = engine
        self.timeout = timeout
        self.max_rows = max_rows

    def _table(self, table: str) -> pgsql.Composed:
        return pgsql.SQL("{}.{}").format(pgsql.Identifier(SCHEMA), pgsql.Identifier(table))

    def load(
        self,
        con: duckdb.DuckDBPyConnection,
        source: str,
        *,
        table: str,
        fields: Sequence[Field],
        csv_path: Path,
    ) -> None:
        columns = [
            pgsql.SQL("{} {}").format(
                pgsql.Identifier(f.name), pgsql.SQL(PG_TYPES.get(f.type, "text"))
            )
            for f in fields
        ]
        names = pgsql.SQL(", ").join(pgsql.Identifier(f.name) for f in fields)
        target = self._table(table)
        raw = self.engine.raw_connection()
        try:
            connection = raw.driver_connection
            assert isinstance(connection, psycopg.Connection)
            with connection.transaction(), connection.cursor() as cursor:
                cursor.execute(
                    pgsql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(pgsql.Identifier(SCHEMA))
                )
                cursor.execute(pgsql.SQL("DROP TABLE IF EXISTS {}").format(target))
                cursor.execute(
                    pgsql.SQL(
                        "CREATE TABLE {} ({} bigint GENERATED ALWAYS AS IDENTITY, {})"
                    ).format(target, pgsql.Identifier(ROW_ID), pgsql.SQL(", ").join(columns))
                )
                copy = pgsql.SQL("COPY {} ({}) FROM STDIN (FORMAT csv, HEADER true)").format(
                    target, names
                )
                with cursor.copy(copy) as sink, csv_path.open("rb") as rows:
                    while chunk := rows.read(COPY_CHUNK):
                        sink.write(chunk)
                        failpoints.hit("datastore.loading")
                # the key is built once after the rows are in: cheaper than keeping it up to date
                cursor.execute(
                    pgsql.SQL("ALTER TABLE {} ADD PRIMARY KEY ({})").format(
                        target, pgsql.Identifier(ROW_ID)
                    )
                )
                cursor.execute(pgsql.SQL("ANALYZE {}").format(target))
        finally:
            raw.close()

    def drop(self, table: str) -> None:
        raw = self.engine.raw_connection()
        try:
            connection = raw.driver_connection
            assert isinstance(connection, psycopg.Connection)
            with connection.transaction():
                connection.execute(pgsql.SQL("DROP TABLE IF EXISTS {}").format(self._table(table)))
        finally:
            raw.close()

    def query(
        self, tables: Sequence[str], build: StatementBuilder, *, max_rows: int | None = None
    ) -> Answer:
        cap = self.max_rows if max_rows is None else min(max_rows, self.max_rows)
        refs = {t: self._table(t).as_string(None) for t in tables}
        statement, params = build(refs)
        raw = self.engine.raw_connection()
        try:
            connection = raw.driver_connection
            assert isinstance(connection, psycopg.Connection)
            with connection.transaction(), connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION READ ONLY")
                cursor.execute(
                    pgsql.SQL("SET LOCAL statement_timeout = {}").format(
                        pgsql.Literal(int(self.timeout * 1000))
                    )
                )
                try:
                    cursor.execute(statement, list(params) or None)
                except psycopg.errors.QueryCanceled:
                    raise QueryTimeout(
                        f"The query ran longer than {self.timeout:g} s and was stopped;"
                        " narrow it down."
                    ) from None
                except psycopg.errors.UndefinedTable:
                    raise TableNotFound("This table is not in the datastore (any more).") from None
                except (
                    psycopg.errors.DataError,
                    psycopg.errors.ProgrammingError,
                ) as exc:
                    raise InvalidQuery(_first_line(exc)) from None
                rows = [_plain_row(row) for row in cursor.fetchmany(cap + 1)]
                description = cursor.description or []
                fields = [Field(d.name, OID_TYPES.get(d.type_code, "string")) for d in description]
        finally:
            raw.close()
        return Answer(fields, rows[:cap], truncated=len(rows) > cap)


def _plain_row(row: tuple[Any, ...]) -> tuple[Any, ...]:
    # numeric answers (avg, sum of bigint, round) as JSON numbers, like DuckDB's doubles
    if not any(isinstance(v, Decimal) for v in row):
        return row
    return tuple(_number(v) if isinstance(v, Decimal) else v for v in row)


def _number(value: Decimal) -> int | float:
    return int(value) if value == value.to_integral_value() and abs(value) < 2**53 else float(value)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else "The datastore refused the query."
