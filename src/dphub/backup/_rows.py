"""Metastore rows as JSON Lines and back, for every table the schema has.

The tables come from the models' metadata, which the migrations and a test keep equal to the
schema; a table added later is therefore backed up without anyone having to list it here. Values
are what the columns' own types give and take: timestamps travel as ISO 8601 with their offset,
JSON documents as JSON, so a row read from SQLite goes into PostgreSQL as it is, and back.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from typing import Any, NoReturn

import orjson
from sqlalchemy import ColumnElement, Connection, Table, select
from sqlalchemy.types import TypeDecorator

from dphub.metastore.models import Base

BATCH = 1000

KEPT: dict[str, Callable[[Table], ColumnElement[bool]]] = {
    "multipart_uploads": lambda table: table.c.completed_at.is_not(None),
}
"""Tables whose rows are backed up only when they hold no state the backup does not carry. An
unfinished multipart upload names parts that live in the store alone: a restored hub would offer to
resume it in a store that never had it, so it is left out, and the push starts afresh."""


def tables() -> list[Table]:
    """Every table of the metastore, each after the tables it refers to."""
    return list(Base.metadata.sorted_tables)


def stream_rows(connection: Connection, table: Table) -> Iterator[bytes]:
    """The table's rows as JSON Lines, in primary-key order, fetched a batch at a time."""
    names = [column.name for column in table.columns]
    query = select(table).order_by(*table.primary_key.columns).execution_options(yield_per=BATCH)
    if table.name in KEPT:
        query = query.where(KEPT[table.name](table))
    for row in connection.execute(query):
        yield orjson.dumps(dict(zip(names, row, strict=True)), default=_refuse) + b"\n"


def _refuse(value: object) -> NoReturn:
    raise TypeError(f"a metastore value of type {type(value).__name__} has no JSON form here")


def row_decoder(table: Table) -> Callable[[Mapping[str, Any]], dict[str, Any]]:
    """Turn one line's JSON object back into the values the table's columns take.

    Raises ``ValueError`` when the object's keys are not exactly the table's columns.
    """
    columns = {column.name: _decoder(column.type) for column in table.columns}

    def decode(found: Mapping[str, Any]) -> dict[str, Any]:
        if found.keys() != columns.keys():
            missing = sorted(columns.keys() - found.keys())
            unknown = sorted(found.keys() - columns.keys())
            raise ValueError(f"columns missing: {missing or 'none'}; unknown: {unknown or 'none'}")
        decoded = dict(found)
        for name, convert in columns.items():
            if convert is not None and decoded[name] is not None:
                decoded[name] = convert(decoded[name])
        return decoded

    return decode


def _decoder(column_type: Any) -> Callable[[Any], Any] | None:
    if isinstance(column_type, TypeDecorator):
        column_type = column_type.impl  # its own python_type is only ``object``
    try:
        python_type = column_type.python_type
    except NotImplementedError:
        return None
    if python_type is datetime:
        return datetime.fromisoformat
    return None
