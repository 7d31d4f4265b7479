"""The embedded datastore: one DuckDB file per table under ``DATA_DIR/datastore``.

A revision's tables never change once loaded, so each is written once under a temporary name and
renamed into place (a reader sees the whole table or none), and any number of processes may open it
read-only at the same time. Each process queries through one in-memory DuckDB that attaches a table
file read-only the first time it is asked for and keeps it; that database may open files only under
the datastore folder, and its configuration is locked before any statement runs.
"""

from __future__ import annotations

import os
import re
import secrets
import threading
from collections.abc import Sequence
from pathlib import Path

import duckdb

from dphub.datastore.interfaces import ROW_ID, Answer, Dialect, Field, StatementBuilder
from dphub.datastore.interfaces import quote_identifier as q
from dphub.errors import InvalidQuery, QueryTimeout, TableNotFound

SAFE_TABLE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")

DUCKDB_TYPES = {
    "BIGINT": "integer",
    "INTEGER": "integer",
    "SMALLINT": "integer",
    "TINYINT": "integer",
    "HUGEINT": "integer",
    "UBIGINT": "integer",
    "UINTEGER": "integer",
    "DOUBLE": "number",
    "FLOAT": "number",
    "DECIMAL": "number",
    "BOOLEAN": "boolean",
    "DATE": "date",
    "TIMESTAMP": "datetime",
    "TIMESTAMP WITH TIME ZONE": "datetime",
    "TIME": "time",
}


# What a statement can get wrong (a client's mistake, answered 400); anything else is the hub's.
QUERY_ERRORS = (
    duckdb.ParserException,
    duckdb.BinderException,
    duckdb.CatalogException,
    duckdb.ConversionException,
    duckdb.InvalidInputException,
    duckdb.OutOfRangeException,
    duckdb.PermissionException,
    duckdb.NotImplementedException,
)


def schema_type(duckdb_type: object) -> str:
    name = str(duckdb_type).upper()
    return DUCKDB_TYPES.get(name.split("(", 1)[0], "string")


def _sql_path(path: Path) -> str:
    text = str(path)
    if "'" in text:
        raise ValueError(f"datastore paths may not contain quotes: {text!r}")
    return f"'{text}'"


class EmbeddedDatastore:
    dialect: Dialect = "duckdb"

    def __init__(self, root: Path, *, timeout: float, max_rows: int, threads: int = 2) -> None:
        self.root = root
        self.timeout = timeout
        self.max_rows = max_rows
        self.threads = threads
        self._lock = threading.Lock()
        self._engine: duckdb.DuckDBPyConnection | None = None
        self._attached: dict[str, str] = {}

    def path(self, table: str) -> Path:
        if not SAFE_TABLE.fullmatch(table):
            raise ValueError(f"not a datastore table name: {table!r}")
        return self.root / f"{table}.duckdb"

    def load(
        self,
        con: duckdb.DuckDBPyConnection,
        source: str,
        *,
        table: str,
        fields: Sequence[Field],
        csv_path: Path,
    ) -> None:
        final = self.path(table)
        self.root.mkdir(parents=True, exist_ok=True)
        temporary = self.root / f".{table}.{secrets.token_hex(6)}.tmp"
        alias = f"load_{secrets.token_hex(4)}"
        columns = ", ".join(q(f.name) for f in fields)
        con.execute(f"ATTACH {_sql_path(temporary)} AS {alias}")
        try:
            # identifiers only, each quoted; no value enters the text
            statement = f"CREATE TABLE {alias}.data AS SELECT row_number() OVER () AS {ROW_ID}, "
            con.execute(statement + f"{columns} FROM {q(source)}")
        finally:
            con.execute(f"DETACH {alias}")
        try:
            os.replace(temporary, final)
        finally:
            temporary.unlink(missing_ok=True)
            Path(f"{temporary}.wal").unlink(missing_ok=True)

    def drop(self, table: str) -> None:
        with self._lock:
            if table in self._attached and self._engine is not None:
                self._engine.execute(f"DETACH {self._attached.pop(table)}")
        self.path(table).unlink(missing_ok=True)

    def _query_engine(self) -> duckdb.DuckDBPyConnection:
        """The process's query database: in memory, able to open files only under the datastore
        folder, its configuration locked so no statement can widen that."""
        if self._engine is None:
            self.root.mkdir(parents=True, exist_ok=True)
            engine = duckdb.connect(":memory:", config={"threads": self.threads})
            engine.execute("SET allowed_directories = $1", [[f"{self.root}/"]])
            engine.execute("SET enable_external_access = false")
            engine.execute("SET lock_configuration = true")
            self._engine = engine
        return self._engine

    def _reference(self, table: str) -> str:
        """The table attached read-only (once per process: tables never change once loaded)."""
        with self._lock:
            engine = self._query_engine()
            alias = self._attached.get(table)
            if alias is None:
                path = self.path(table)
                if not path.exists():
                    raise TableNotFound("This table is not in the datastore (any more).")
                alias = f"ds_{table}"
                engine.execute(f"ATTACH {_sql_path(path)} AS {alias} (READ_ONLY)")
                self._attached[table] = alias
            return f"{alias}.data"

    def query(
        self, tables: Sequence[str], build: StatementBuilder, *, max_rows: int | None = None
    ) -> Answer:
        cap = self.max_rows if max_rows is None else min(max_rows, self.max_rows)
        refs = {table: self._reference(table) for table in dict.fromkeys(tables)}
        sql, params = build(refs)
        with self._lock:
            cursor = self._query_engine().cursor()
        try:
            return self._run(cursor, sql, list(params), cap)
        finally:
            cursor.close()

    def _run(
        self, con: duckdb.DuckDBPyConnection, sql: str, params: list[object], cap: int
    ) -> Answer:
        timer = threading.Timer(self.timeout, con.interrupt)
        timer.start()
        try:
            cursor = con.execute(sql, params)
            rows = cursor.fetchmany(cap + 1)
        except duckdb.InterruptException:
            raise QueryTimeout(
                f"The query ran longer than {self.timeout:g} s and was stopped; narrow it down."
            ) from None
        except QUERY_ERRORS as exc:
            raise InvalidQuery(_first_line(exc)) from None
        finally:
            timer.cancel()
        description = cursor.description or []
        fields = [Field(str(d[0]), schema_type(d[1])) for d in description]
        return Answer(fields, rows[:cap], truncated=len(rows) > cap)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else "The datastore refused the query."
