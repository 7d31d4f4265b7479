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
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb

from dphub import failpoints
from dphub.datastore.interfaces import ROW_ID, Answer, Dialect, Field, StatementBuilder
from dphub.datastore.interfaces import quote_identifier as q
from dphub.errors import InvalidQuery, QueryTimeout, TableNotFound

SAFE_TABLE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
MAX_ATTACHED = 64
"""Table files one process keeps attached (open) between queries."""


@dataclass
class _Attached:
    alias: str
    identity: tuple[int, int, int]
    users: int = 0


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
        self._attached: OrderedDict[str, _Attached] = OrderedDict()
        self._retired: list[_Attached] = []
        self._serial = 0

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
        for stale in self.root.glob(f".{table}.*.tmp*"):  # left by a worker that died loading it
            stale.unlink(missing_ok=True)
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
        failpoints.hit("datastore.loading")
        try:
            os.replace(temporary, final)
        finally:
            temporary.unlink(missing_ok=True)
            Path(f"{temporary}.wal").unlink(missing_ok=True)

    def drop(self, table: str) -> None:
        self.path(table).unlink(missing_ok=True)
        with self._lock:
            self._forget(table)

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

    def _forget(self, table: str) -> None:
        """Stop using the attached copy of ``table``; detached once no query holds it."""
        attached = self._attached.pop(table, None)
        if attached is not None:
            self._retired.append(attached)
        self._detach_idle()

    def _detach_idle(self) -> None:
        engine = self._engine
        for attached in [a for a in self._retired if a.users == 0]:
            self._retired.remove(attached)
            if engine is not None:
                engine.execute(f"DETACH DATABASE IF EXISTS {attached.alias}")

    def _acquire(self, table: str) -> _Attached:
        """The table's file attached read-only, held for one query.

        A file is attached once and kept (tables do not change once loaded); a file replaced or
        removed since is noticed by its identity and attached afresh, and the least recently used
        files are let go beyond ``MAX_ATTACHED``, so a long-running process holds few files open.
        """
        path = self.path(table)
        try:
            stat = path.stat()
        except FileNotFoundError:
            with self._lock:
                self._forget(table)
            raise TableNotFound("This table is not in the datastore (any more).") from None
        identity = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        with self._lock:
            engine = self._query_engine()
            attached = self._attached.get(table)
            if attached is not None and attached.identity != identity:
                self._forget(table)
                attached = None
            if attached is None:
                self._serial += 1
                attached = _Attached(f"ds{self._serial}_{table}", identity)
                try:
                    engine.execute(f"ATTACH {_sql_path(path)} AS {attached.alias} (READ_ONLY)")
                except duckdb.IOException:
                    raise TableNotFound("This table is not in the datastore (any more).") from None
                self._attached[table] = attached
                while len(self._attached) > MAX_ATTACHED:
                    oldest = next(iter(self._attached))
                    self._forget(oldest)
            else:
                self._attached.move_to_end(table)
            attached.users += 1
            return attached

    def _release(self, held: Sequence[_Attached]) -> None:
        with self._lock:
            for attached in held:
                attached.users -= 1
            self._detach_idle()

    def query(
        self, tables: Sequence[str], build: StatementBuilder, *, max_rows: int | None = None
    ) -> Answer:
        cap = self.max_rows if max_rows is None else min(max_rows, self.max_rows)
        held: list[_Attached] = []
        try:
            refs = {}
            for table in dict.fromkeys(tables):
                attached = self._acquire(table)
                held.append(attached)
                refs[table] = f"{attached.alias}.data"
            sql, params = build(refs)
            with self._lock:
                cursor = self._query_engine().cursor()
            try:
                return self._run(cursor, sql, list(params), cap)
            finally:
                cursor.close()
        finally:
            self._release(held)

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
