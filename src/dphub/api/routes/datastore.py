"""Datastore query API: search one table with filters, or run one read-only SELECT over several.

Resource ids name tables (``OWNER/NAME/RESOURCE`` for the latest successful revision,
``OWNER/NAME@REV/RESOURCE`` for another); the caller sees only tables of packages it may read.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool

from dphub.api import readers
from dphub.api.body import read_json
from dphub.api.deps import HubDep, MaybePrincipal
from dphub.api.responses import JSON
from dphub.auth.permissions import Action, needs
from dphub.datastore.interfaces import Answer
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

router = APIRouter(prefix="/api/datastore", tags=["datastore"])

DEFAULT_LIMIT = 100
MAX_LIMIT = 32000
RECORD_FORMATS = ("objects", "lists", "csv")


def _records(answer: Answer, records_format: str) -> Any:
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


SAMPLE_ROWS = 100_000


def sample_percent(rows: int) -> float:
    """The share of a table, in percent, that holds about ``SAMPLE_ROWS`` rows."""
    return min(100.0, max(0.01, 100.0 * SAMPLE_ROWS / max(rows, 1)))


def sampled_table(reference: str, percent: float, dialect: str) -> str:
    """A table reference reading only a block sample of the table (no full scan)."""
    if dialect == "postgres":
        return f"{reference} TABLESAMPLE SYSTEM ({percent:.4f})"
    return f"{reference} TABLESAMPLE SYSTEM ({percent:.4f} PERCENT)"


def _check_format(records_format: str) -> None:
    if records_format not in RECORD_FORMATS:
        raise InvalidQuery(
            f"records_format {records_format!r} is not known: use objects, lists or csv."
        )


@router.get(
    "/search",
    summary="Search one datastore table: filters, full text, sort, paging",
    openapi_extra=needs(Action.PACKAGE_READ),
)
async def search(
    request: Request,
    hub: HubDep,
    principal: MaybePrincipal,
    resource_id: str = Query(description="OWNER/NAME/RESOURCE or OWNER/NAME@REVISION/RESOURCE"),
    q: str | None = Query(
        default=None,
        description='Text the row must contain (any column), or {"column": "text", ...}.',
    ),
    filters: str | None = Query(
        default=None,
        description='JSON object: {"col": value}, {"col": [v1, v2]}, {"col": {"gte": 1, "lt": 5}}',
    ),
    fields: str | None = Query(default=None, description="Columns to answer, comma separated."),
    sort: str | None = Query(default=None, description='Order, e.g. "year desc, name".'),
    limit: int = Query(default=DEFAULT_LIMIT, ge=0, le=MAX_LIMIT),
    offset: int = Query(default=0, ge=0),
    include_total: bool = Query(default=True, description="Count the matching rows."),
    total_estimation_threshold: int | None = Query(
        default=None,
        ge=0,
        description="On tables with more rows than this, estimate the total from a sample of"
        " the table instead of counting every match (total_was_estimated then says so).",
    ),
    records_format: str = Query(default="objects", description="objects, lists or csv"),
) -> JSON:
    _check_format(records_format)

    def work() -> dict[str, Any]:
        with hub.sessions() as db:
            table = readers.locate_table(db, principal, resource_id)
        columns = [Column(c["name"], c["type"]) for c in table.columns]
        chosen = parse_fields(fields, columns)
        order = parse_sort(sort, columns)
        where = parse_filters(filters)
        text = parse_q(q)

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
        threshold = total_estimation_threshold
        if include_total and not text and not where:
            total = table.rows  # known since the load: no count needed
        elif include_total and threshold is not None and table.rows > threshold:
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
        elif include_total and len(answer.rows) < limit and (answer.rows or offset == 0):
            total = offset + len(answer.rows)  # the page holds the last match: no count needed
        elif include_total:
            counted = hub.datastore.query(
                [name], lambda refs: (build(refs[name]).count_sql, query.count_params)
            )
            total = int(counted.rows[0][0])
        answer_fields = [{"id": c.name, "type": c.type} for c in query.fields]
        following = None
        if len(answer.rows) == limit and (total is None or offset + limit < total):
            following = str(request.url.include_query_params(offset=offset + limit, limit=limit))
        return {
            "resource_id": resource_id,
            "fields": answer_fields,
            "records": _records(answer, records_format),
            "records_format": records_format,
            "total": total,
            "total_was_estimated": estimated,
            "limit": limit,
            "offset": offset,
            "next": following,
        }

    return JSON(await run_in_threadpool(work))


async def _sql_text(request: Request, sql: str | None) -> str:
    if request.method == "POST":
        body = await read_json(request, limit=256 * 1024)
        sql = body.get("sql") if isinstance(body, dict) else None
    if not isinstance(sql, str) or not sql.strip():
        raise InvalidQuery('Send one SELECT statement as ?sql=... or a JSON body {"sql": "..."}.')
    return sql


@router.api_route(
    "/sql",
    methods=["GET", "POST"],
    summary="Run one read-only SELECT over datastore tables, named by their resource ids",
    openapi_extra=needs(Action.PACKAGE_READ),
)
async def sql_query(
    request: Request,
    hub: HubDep,
    principal: MaybePrincipal,
    sql: str | None = Query(
        default=None, description='e.g. SELECT year, sum(value) FROM "alice/rain/values" GROUP BY 1'
    ),
    records_format: str = Query(default="objects", description="objects, lists or csv"),
) -> JSON:
    _check_format(records_format)
    statement = await _sql_text(request, sql)

    def work() -> dict[str, Any]:
        ids = referenced_tables(statement, dialect=hub.datastore.dialect)
        with hub.sessions() as db:
            tables = {rid: readers.locate_table(db, principal, rid).table_name for rid in ids}

        def build(refs: Mapping[str, str]) -> tuple[str, list[Any]]:
            mapping = {rid: refs[name] for rid, name in tables.items()}
            return rewrite_sql(statement, dialect=hub.datastore.dialect, tables=mapping), []

        answer = hub.datastore.query(list(tables.values()), build)
        return {
            "fields": [{"id": f.name, "type": f.type} for f in answer.fields],
            "records": _records(answer, records_format),
            "records_format": records_format,
            "truncated": answer.truncated,
        }

    return JSON(await run_in_threadpool(work))
