"""Package search: full text, filters and facets over the packages the caller may see listed."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query
from starlette.concurrency import run_in_threadpool

from dphub.api.deps import HubDep, MaybePrincipal
from dphub.api.responses import JSON
from dphub.auth.permissions import SITE, Action, needs, require
from dphub.findability import SearchRequest, search_packages
from dphub.findability import search as engine
from dphub.findability.query import MAX_QUERY_CHARS

router = APIRouter(prefix="/api/search", tags=["search"])

NO_STORE = {"Cache-Control": "no-store"}
Q_HELP = (
    "Words to look for in titles, names, keywords, descriptions, resource and field names and"
    ' READMEs, all required; "a phrase", prefix*, -excluded, this OR that.'
    f" At most {MAX_QUERY_CHARS} characters."
)


def _values(description: str) -> Any:
    return Query(default=None, description=f"{description} Repeat for any of several.")


@router.get(
    "/package",
    summary="Search the packages you may see listed, with facets",
    openapi_extra=needs(Action.PUBLIC),
)
async def search_package(
    hub: HubDep,
    principal: MaybePrincipal,
    q: str | None = Query(default=None, description=Q_HELP),
    owner: list[str] | None = _values("Only this publisher's packages."),
    license: list[str] | None = _values("Only packages under this license (its name)."),
    format: list[str] | None = _values("Only packages with a resource in this format."),
    keyword: list[str] | None = _values("Only packages with this keyword."),
    findability: list[str] | None = _values(
        "Only your own packages (those you hold a role on) of this findability: published,"
        " unlisted or private. Needs a login."
    ),
    sort: str | None = Query(
        default=None,
        description="relevance (the default with q), updated (newest first; the default"
        " without q) or name.",
    ),
    limit: int = Query(default=engine.DEFAULT_LIMIT, ge=0, le=engine.MAX_LIMIT),
    offset: int = Query(default=0, ge=0, le=engine.MAX_OFFSET),
    facet_limit: int = Query(
        default=engine.DEFAULT_FACET_LIMIT,
        ge=0,
        le=engine.MAX_FACET_LIMIT,
        description="Values listed per facet, the most frequent first; 0 for none.",
    ),
) -> JSON:
    require(principal, Action.PUBLIC, SITE)
    request = SearchRequest(
        q=q,
        owner=tuple(owner or ()),
        license=tuple(license or ()),
        format=tuple(format or ()),
        keyword=tuple(keyword or ()),
        findability=tuple(findability or ()),
        sort=sort,
        limit=limit,
        offset=offset,
        facet_limit=facet_limit,
    )
    engine.check(request, principal)

    def work() -> dict[str, Any]:
        with hub.sessions() as db:
            return search_packages(db, principal, request, base_url=hub.settings.base_url)

    return JSON(await run_in_threadpool(work), headers=NO_STORE)
