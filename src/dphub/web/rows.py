"""Rows of a datastore table for the pages: a page of the preview, the first rows of a chart."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dphub.datastore.interfaces import ROW_ID, Answer
from dphub.datastore.search import Column, build_search
from dphub.hub import Hub
from dphub.metastore.models import DatastoreTable


def table_rows(
    hub: Hub,
    table: DatastoreTable,
    *,
    limit: int,
    offset: int = 0,
    columns: list[str] | None = None,
    ordered: bool = True,
) -> Answer:
    """``limit`` rows from ``offset``, through the datastore's guarded query path (its timeout
    and row cap): in row order when ``ordered`` (pages that follow each other), else in whatever
    order the backend reads first (no sort of a large table); every column, or ``columns``."""
    every = [Column(c["name"], c["type"]) for c in table.columns]
    chosen = [c for c in every if c.name in columns] if columns else None
    name = table.table_name

    def statement(refs: Mapping[str, str]) -> tuple[str, list[Any]]:
        query = build_search(
            table=refs[name],
            columns=every,
            dialect=hub.datastore.dialect,
            fields=chosen or None,
            limit=limit,
            offset=offset,
            row_id=ROW_ID if ordered else None,
        )
        return query.sql, query.params

    return hub.datastore.query([name], statement, max_rows=limit)
