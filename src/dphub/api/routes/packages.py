"""Package read API: show a package, list a publisher's packages, follow revisions."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query
from starlette.concurrency import run_in_threadpool

from dphub.api import readers
from dphub.api.deps import HubDep, MaybePrincipal
from dphub.api.responses import JSON
from dphub.auth.permissions import Action, needs
from dphub.metastore.packages import list_packages, list_revisions
from dphub.names import check_name

router = APIRouter(prefix="/api/package", tags=["packages"])

RevisionQuery = Query(
    default=None,
    description="A revision number, 'latest', 'successful' or a tag; default: the latest successful.",
)


@router.get(
    "/{owner}", summary="List a publisher's packages", openapi_extra=needs(Action.PUBLISHER_READ)
)
async def list_owner(owner: str, hub: HubDep, principal: MaybePrincipal) -> JSON:
    check_name(owner, what="publisher")

    def work() -> list[str]:
        with hub.sessions() as db:
            return [p.name for p in list_packages(db, owner, principal)]

    return JSON({"data": await run_in_threadpool(work)})


@router.get(
    "/{owner}/{name}",
    summary="Show a package (its latest successful revision)",
    openapi_extra=needs(Action.PACKAGE_READ),
)
async def show(
    owner: str,
    name: str,
    hub: HubDep,
    principal: MaybePrincipal,
    revision: str | None = RevisionQuery,
) -> JSON:
    def work() -> dict[str, Any]:
        with hub.sessions() as db:
            located = readers.locate(db, principal, owner, name, revision)
            return readers.package_show(hub.settings.base_url, located)

    return JSON(await run_in_threadpool(work))


@router.get(
    "/{owner}/{name}/revisions",
    summary="List a package's revisions, newest first",
    openapi_extra=needs(Action.PACKAGE_READ),
)
async def revisions(owner: str, name: str, hub: HubDep, principal: MaybePrincipal) -> JSON:
    def work() -> list[dict[str, Any]]:
        with hub.sessions() as db:
            located = readers.locate(db, principal, owner, name, "latest")
            package = located.package
            return [
                readers.revision_status(hub.settings.base_url, package, r)
                for r in list_revisions(db, package)
            ]

    return JSON({"revisions": await run_in_threadpool(work)})


@router.get(
    "/{owner}/{name}/revisions/{ref}",
    summary="A revision's processing status (a number, latest, successful or a tag)",
    openapi_extra=needs(Action.PACKAGE_READ),
)
async def revision_status(
    owner: str, name: str, ref: str, hub: HubDep, principal: MaybePrincipal
) -> JSON:
    def work() -> dict[str, Any]:
        with hub.sessions() as db:
            located = readers.locate(db, principal, owner, name, ref)
            return readers.revision_status(hub.settings.base_url, located.package, located.revision)

    return JSON(await run_in_threadpool(work))
