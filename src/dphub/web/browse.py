"""Finding datasets: the home page, search results with facets, and publishers' pages."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from dphub.api.deps import HubDep
from dphub.api.routes.root import describe_hub
from dphub.auth import publishers
from dphub.auth.permissions import Action, can, needs
from dphub.auth.roles import publisher_ref
from dphub.findability.search import SearchRequest, search_packages
from dphub.web.render import page
from dphub.web.session import Viewer

router = APIRouter(tags=["web"], include_in_schema=False)

PER_PAGE = 20
RECENT = 12
MAX_PAGE = 500


def wants_html(request: Request) -> bool:
    """A browser asking for a page (``Accept: text/html``), not a program asking for JSON."""
    accept = request.headers.get("accept", "")
    return "text/html" in accept or "application/xhtml+xml" in accept


@router.get("/", openapi_extra=needs(Action.PUBLIC))
async def home(request: Request, hub: HubDep, viewer: Viewer) -> Response:
    if not wants_html(request):
        return describe_hub(hub)

    def work() -> dict[str, Any]:
        with hub.sessions() as db:
            wanted = SearchRequest(sort="updated", limit=RECENT, facet_limit=0)
            return search_packages(db, viewer, wanted, base_url=hub.settings.base_url)

    found = await run_in_threadpool(work)
    return page(request, "home.html", {"recent": found["items"], "total": found["total_count"]})


@router.get("/search", openapi_extra=needs(Action.PUBLIC))
async def search(
    request: Request,
    hub: HubDep,
    viewer: Viewer,
    q: str | None = Query(default=None, max_length=500),
    owner: list[str] = Query(default=[]),
    license: list[str] = Query(default=[]),
    format: list[str] = Query(default=[]),
    keyword: list[str] = Query(default=[]),
    sort: str | None = Query(default=None, pattern="^(relevance|updated|name)$"),
    page_number: int = Query(default=1, alias="page", ge=1, le=MAX_PAGE),
) -> Response:
    wanted = SearchRequest(
        q=q or None,
        owner=tuple(owner),
        license=tuple(license),
        format=tuple(format),
        keyword=tuple(keyword),
        sort=sort,
        limit=PER_PAGE,
        offset=(page_number - 1) * PER_PAGE,
    )

    def work() -> dict[str, Any]:
        with hub.sessions() as db:
            return search_packages(db, viewer, wanted, base_url=hub.settings.base_url)

    found = await run_in_threadpool(work)
    pages = max(1, -(-found["total_count"] // PER_PAGE))
    chosen = {"owner": owner, "license": license, "format": format, "keyword": keyword}
    return await run_in_threadpool(
        page,
        request,
        "search.html",
        {
            "q": q or "",
            "found": found,
            "page_number": page_number,
            "pages": min(pages, MAX_PAGE),
            "chosen": chosen,
            "sort": sort or "",
        },
    )


@router.get("/{owner}", openapi_extra=needs(Action.PUBLISHER_READ))
async def publisher(
    owner: str,
    request: Request,
    hub: HubDep,
    viewer: Viewer,
    page_number: int = Query(default=1, alias="page", ge=1, le=MAX_PAGE),
) -> Response:
    def work() -> dict[str, Any]:
        with hub.sessions() as db:
            described = publishers.describe_publisher(db, viewer, owner)
            wanted = SearchRequest(
                owner=(owner,),
                sort="updated",
                limit=PER_PAGE,
                offset=(page_number - 1) * PER_PAGE,
                facet_limit=0,
            )
            found = search_packages(db, viewer, wanted, base_url=hub.settings.base_url)
            manages = can(viewer, Action.PUBLISHER_MANAGE, publisher_ref(db, viewer, owner))
            return {"publisher": described, "found": found, "may_manage": manages}

    found = await run_in_threadpool(work)
    pages = max(1, -(-found["found"]["total_count"] // PER_PAGE))
    return page(request, "publisher.html", {**found, "page_number": page_number, "pages": pages})
