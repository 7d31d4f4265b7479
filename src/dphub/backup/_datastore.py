"""Datastore tables rebuilt from the derived CSV files a backup holds.

A backup carries no datastore table: each is rebuilt on import from the CSV that processing
derived from the same resource (a blob of the backup, named by the revision's ``csv`` output).
That CSV is the very file the PostgreSQL datastore loaded the table from with COPY, and on DuckDB
every value goes through it and back unchanged (numbers are written with all their digits, times
in ISO 8601, a quoted empty string apart from a missing value), read into the column types the
pipeline gives the resource's fields. So queries answer alike after an import, on either backend,
whichever backend the backup came from, and the backup does not hold the data twice.
"""

from __future__ import annotations

import secrets
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
from sqlalchemy import Connection, and_, select

from dphub.backup._layout import blob_file
from dphub.config import Settings
from dphub.datastore import Datastore, Field
from dphub.datastore.interfaces import quote_identifier
from dphub.errors import BackupInvalid
from dphub.metastore.models import DatastoreTable, RevisionOutput
from dphub.pipeline.tables import duckdb_type

SOURCE = "backup_source"


def rebuild_tables(
    connection: Connection,
    datastore: Datastore,
    settings: Settings,
    backup: Path,
    *,
    built: list[str],
    say: Callable[[str], None] | None = None,
) -> None:
    """Load every table the metastore (as ``connection`` sees it) lists; each name goes into
    ``built`` before its load starts, so a caller that fails can drop what was made."""
    tables = DatastoreTable.__table__
    outputs = RevisionOutput.__table__
    query = (
        select(tables.c.table_name, tables.c.columns, outputs.c.sha256)
        .select_from(tables)
        .outerjoin(
            outputs,
            and_(
                outputs.c.revision_id == tables.c.revision_id,
                outputs.c.resource_index == tables.c.resource_index,
                outputs.c.kind == "csv",
            ),
        )
        .order_by(tables.c.id)
        .execution_options(yield_per=200)
    )
    work = settings.data_dir / "work" / f"import-{secrets.token_hex(6)}"
    work.mkdir(parents=True)
    try:
        con = duckdb.connect(
            str(work / "import.duckdb"),
            config={
                "temp_directory": str(work / "spill"),
                "memory_limit": settings.worker_memory,
                "preserve_insertion_order": True,
            },
        )
        try:
            for name, columns, sha256 in connection.execute(query):
                if sha256 is None:
                    raise BackupInvalid(
                        f"Datastore table {name} has no derived CSV in the backup to rebuild it"
                        " from."
                    )
                fields = _fields(columns)
                csv = backup / blob_file(str(sha256))
                _csv_view(con, csv, fields)
                built.append(str(name))
                datastore.load(con, SOURCE, table=str(name), fields=fields, csv_path=csv)
        finally:
            con.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if say is not None:
        say(f"datastore: {len(built)} tables rebuilt")


def _fields(columns: Any) -> list[Field]:
    return [Field(str(c["name"]), str(c.get("type") or "string")) for c in columns]


def _csv_view(con: duckdb.DuckDBPyConnection, csv: Path, fields: list[Field]) -> None:
    """``SOURCE``: the CSV's rows in file order, each column cast to its field's DuckDB type."""
    names = [f"c{index}" for index in range(len(fields))]
    read_as = ", ".join(f"'{name}': 'VARCHAR'" for name in names)
    typed = ", ".join(
        f"CAST({name} AS {duckdb_type({'type': field.type})}) AS {quote_identifier(field.name)}"
        for name, field in zip(names, fields, strict=True)
    )
    path = str(csv).replace("'", "''")
    # identifiers quoted, types from a fixed list, the path a quoted literal (a view takes no
    # parameters); an unquoted empty cell is NULL, a quoted one the empty string
    con.execute(
        f"CREATE OR REPLACE VIEW {SOURCE} AS SELECT {typed} FROM read_csv('{path}', header = true,"  # noqa: S608
        f" delim = ',', quote = '\"', escape = '\"', auto_detect = false,"
        f" allow_quoted_nulls = false, columns = {{{read_as}}})"
    )
