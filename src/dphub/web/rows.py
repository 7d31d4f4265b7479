"""Rows of a datastore table for the pages: a page of the preview, the first rows of a chart."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dphub.datastore.interfaces import Answer
from dphub.datastore.search import Column, build_search
from dphub.hub import Hub
from dphub.metastore.models import DatastoreTable


def table_rows(hub: Hub, table: DatastoreTable, *, limit: int, offset: int = 0) -> Answer:
    """``limit`` rows from ``offset`` in the table's own order, through the datastore's guarded
    query path (its timeout and row cap)."""
    columns = [Column(c["name"], c["type"]) for c in table.columns]
    name = table.table_name

    def statement(refs: Mapping[str, str]) -> tuple[str, list[Any]]:
        query = build_search(
            table=refs[name],
            columns=columns,
            dialect=hub.datastore.dialect,
            limit=limit,
            offset=offset,
        )
        return query.sql, query.params

    return hub.datastore.query([name], statement, max_rows=limit)
