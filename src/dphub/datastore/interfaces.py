"""What a datastore backend does: keep one table per tabular resource and revision, answer queries.

The backends know nothing of packages: the metastore maps a resource id (``owner/name/resource``)
to a table name, checks who may read it, and hands the backend only table names.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import duckdb

Dialect = Literal["duckdb", "postgres"]

# Every table has this column first: the row's position in the source file, 1..n, for stable paging.
ROW_ID = "_id"


@dataclass(frozen=True)
class Field:
    """A column of a table or of a query's answer, typed with Table Schema's words."""

    name: str
    type: str


@dataclass(frozen=True)
class Answer:
    fields: list[Field]
    rows: list[tuple[Any, ...]]
    truncated: bool
    """More rows matched than the row cap let through."""


# Builds the statement once the backend knows how each table is reached: table name → SQL reference.
StatementBuilder = Callable[[Mapping[str, str]], tuple[str, Sequence[Any]]]


class Datastore(Protocol):
    dialect: Dialect

    def load(
        self,
        con: duckdb.DuckDBPyConnection,
        source: str,
        *,
        table: str,
        fields: Sequence[Field],
        csv_path: Path,
    ) -> None:
        """Make ``table`` hold the rows of the DuckDB table ``source`` (also exported as the CSV at
        ``csv_path``); replaces a table of that name, and is invisible to readers until complete."""

    def drop(self, table: str) -> None: ...

    def query(
        self, tables: Sequence[str], build: StatementBuilder, *, max_rows: int | None = None
    ) -> Answer:
        """Run one read-only statement over ``tables``, within the query timeout and row cap."""


def table_name(revision_id: int, resource_index: int) -> str:
    """The backend name of a revision's table: only ASCII letters, digits and ``_``."""
    return f"r{int(revision_id)}_{int(resource_index)}"


def quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
