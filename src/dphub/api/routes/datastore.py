"""Datastore query API: search one table with filters, or run one read-only SELECT over several.

Resource ids name tables (``OWNER/NAME/RESOURCE`` for the latest successful revision,
``OWNER/NAME@REV/RESOURCE`` for another); the caller sees only tables of packages it may read.
The queries themselves are :mod:`dphub.api.tables`'.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool

from dphub.api import tables
from dphub.api.body import read_json
from dphub.api.deps import HubDep, MaybePrincipal
from dphub.api.responses import JSON
from dphub.auth.permissions import Action, needs
from dphub.errors import InvalidQuery

router = APIRouter(prefix="/api/datastore", tags=["datastore"])
SQL_BODY = {
    "description": "The statement, when a POST sends it (a GET sends ?sql=)",
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "properties": {"sql": {"type": "string"}},
                "required": ["sql"],
            }
        }
    },
}


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
    limit: int = Query(default=tables.DEFAULT_LIMIT, ge=0, le=tables.MAX_LIMIT),
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
    tables.check_format(records_format)
    wanted = tables.TableSearch(
        resource_id=resource_id,
        q=q,
        filters=filters,
        fields=fields,
        sort=sort,
        limit=limit,
        offset=offset,
        include_total=include_total,
        total_estimation_threshold=total_estimation_threshold,
    )
    page = await run_in_threadpool(tables.search_table, hub, principal, wanted)
    following = None
    if len(page.answer.rows) == limit and (page.total is None or offset + limit < page.total):
        following = str(request.url.include_query_params(offset=offset + limit, limit=limit))
    return JSON(
        {
            "resource_id": resource_id,
            "fields": [{"id": c.name, "type": c.type} for c in page.fields],
            "records": tables.records(page.answer, records_format),
            "records_format": records_format,
            "total": page.total,
            "total_was_estimated": page.estimated,
            "limit": limit,
            "offset": offset,
            "next": following,
        }
    )


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
    openapi_extra=needs(Action.PACKAGE_READ, requestBody=SQL_BODY),
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
    tables.check_format(records_format)
    statement = await _sql_text(request, sql)
    answer = await run_in_threadpool(tables.run_select, hub, principal, statement)
    result: dict[str, Any] = {
        "fields": [{"id": f.name, "type": f.type} for f in answer.fields],
        "records": tables.records(answer, records_format),
        "records_format": records_format,
        "truncated": answer.truncated,
    }
    return JSON(result)
