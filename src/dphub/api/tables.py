"""Datastore queries as the API answers them: a search of one table, a read-only SELECT over several.

dphub's own datastore routes and the CKAN-compatible actions both call these, so a resource id, a
filter or a SQL statement means the same, with the same permission checks, on either.
Resource ids name tables (``OWNER/NAME/RESOURCE`` for the latest successful revision,
``OWNER/NAME@REV/RESOURCE`` for another); the caller sees only tables of packages it may read.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dphub.api import readers
from dphub.auth.principal import Principal
from dphub.datastore.interfaces import Answer, Field
from dphub.datastore.search import (
    Column,
    SearchQuery,
    build_search,
    parse_fields,
    parse_filters,
    parse_q,
    parse_sort,
)
from dphub.datastore.sqlguard import referenced_tables, rewrite_sql
from dphub.errors import InvalidQuery
from dphub.hub import Hub

DEFAULT_LIMIT = 100
MAX_LIMIT = 32000
RECORD_FORMATS = ("objects", "lists", "csv")
SAMPLE_ROWS = 100_000


@dataclass(frozen=True)
class TableSearch:
    """One page of one table: the request parameters as text, as the query string carries them."""

    resource_id: str
    q: str | None = None
    filters: str | None = None
    fields: str | None = None
    sort: str | None = None
    limit: int = DEFAULT_LIMIT
    offset: int = 0
    include_total: bool = True
    total_estimation_threshold: int | None = None


@dataclass(frozen=True)
class TablePage:
    fields: list[Field]
    answer: Answer
    total: int | None
    """``None`` when the total was not asked for."""
    estimated: bool
    """The total was estimated from a sample of the table, not counted."""


def check_format(records_format: str) -> None:
    if records_format not in RECORD_FORMATS:
        raise InvalidQuery(
            f"records_format {records_format!r} is not known: use objects, lists or csv."
        )


def records(answer: Answer, records_format: str) -> Any:
    """The rows as ``objects`` (one dict per row), ``lists`` or ``csv`` text."""
    names = [f.name for f in answer.fields]
    if records_format == "lists":
        return [list(row) for row in answer.rows]
    if records_format == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        for row in answer.rows:
            writer.writerow(["" if v is None else _csv_value(v) for v in row])
        return out.getvalue()
    return [dict(zip(names, row, strict=True)) for row in answer.rows]


def _csv_value(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    isoformat = getattr(value, "isoformat", None)
    return isoformat() if callable(isoformat) else value


def sample_percent(rows: int) -> float:
    """The share of a table, in percent, that holds about ``SAMPLE_ROWS`` rows."""
    return min(100.0, max(0.01, 100.0 * SAMPLE_ROWS / max(rows, 1)))


def sampled_table(reference: str, percent: float, dialect: str) -> str:
    """A table reference reading only a block sample of the table (no full scan)."""
    if dialect == "postgres":
        return f"{reference} TABLESAMPLE SYSTEM ({percent:.4f})"
    return f"{reference} TABLESAMPLE SYSTEM ({percent:.4f} PERCENT)"


def search_table(hub: Hub, principal: Principal | None, search: TableSearch) -> TablePage:
    """One page of the rows of the table ``search.resource_id`` names, and their total.

    The total costs nothing without filters (the row count is known since the load) or when the
    page holds the last match; otherwise it is counted, or estimated from a sample on tables larger
    than ``total_estimation_threshold``.
    """
    with hub.sessions() as db:
        table = readers.locate_table(db, principal, search.resource_id)
    columns = [Column(c["name"], c["type"]) for c in table.columns]
    chosen = parse_fields(search.fields, columns)
    order = parse_sort(search.sort, columns)
    where = parse_filters(search.filters)
    text = parse_q(search.q)
    limit, offset = search.limit, search.offset

    def build(ref: str) -> SearchQuery:
        return build_search(
            table=ref,
            columns=columns,
            dialect=hub.datastore.dialect,
            q=text,
            filters=where,
            fields=chosen,
            sort=order,
            limit=limit,
            offset=offset,
        )

    name = table.table_name
    query = build(name)  # checks every part of the request before any table is opened
    answer = hub.datastore.query(
        [name], lambda refs: (build(refs[name]).sql, query.params), max_rows=limit
    )
    total: int | None = None
    estimated = False
    threshold = search.total_estimation_threshold
    if search.include_total and not text and not where:
        total = table.rows
    elif search.include_total and threshold is not None and table.rows > threshold:
        share = sample_percent(table.rows)
        sampled = hub.datastore.query(
            [name],
            lambda refs: (
                build(sampled_table(refs[name], share, hub.datastore.dialect)).count_sql,
                query.count_params,
            ),
        )
        total = round(int(sampled.rows[0][0]) * 100 / share)
        estimated = True
    elif search.include_total and len(answer.rows) < limit and (answer.rows or offset == 0):
        total = offset + len(answer.rows)
    elif search.include_total:
        counted = hub.datastore.query(
            [name], lambda refs: (build(refs[name]).count_sql, query.count_params)
        )
        total = int(counted.rows[0][0])
    return TablePage(fields=query.fields, answer=answer, total=total, estimated=estimated)


def run_select(hub: Hub, principal: Principal | None, statement: str) -> Answer:
    """One read-only SELECT whose tables are resource ids in double quotes, each one checked
    for the caller before the statement runs on the backend's own table names."""
    ids = referenced_tables(statement, dialect=hub.datastore.dialect)
    with hub.sessions() as db:
        tables = {rid: readers.locate_table(db, principal, rid).table_name for rid in ids}

    def build(refs: Mapping[str, str]) -> tuple[str, list[Any]]:
        mapping = {rid: refs[name] for rid, name in tables.items()}
        return rewrite_sql(statement, dialect=hub.datastore.dialect, tables=mapping), []

    return hub.datastore.query(list(tables.values()), build)
