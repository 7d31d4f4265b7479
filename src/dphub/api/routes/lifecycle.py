"""A package's life cycle: soft delete, undelete, and purge (for good, with its unshared blobs)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from dphub.api.deps import HubDep, MaybePrincipal
from dphub.api.responses import JSON
from dphub.auth.permissions import Action, needs
from dphub.lifecycle import delete, purge
from dphub.metastore.db import transaction

router = APIRouter(prefix="/api/package", tags=["lifecycle"])


@router.delete(
    "/{owner}/{name}",
    summary="Delete a package: hidden from every read at once, until undeleted or purged",
    openapi_extra=needs(Action.PACKAGE_MANAGE),
)
async def delete_package(owner: str, name: str, hub: HubDep, principal: MaybePrincipal) -> JSON:
    def work() -> dict[str, Any]:
        with transaction(hub.sessions) as db:
            return delete.delete_package(db, principal, owner, name)

    return JSON(await run_in_threadpool(work))


@router.post(
    "/{owner}/{name}/undelete",
    summary="Bring a deleted package back as it was",
    openapi_extra=needs(Action.PACKAGE_MANAGE),
)
async def undelete_package(owner: str, name: str, hub: HubDep, principal: MaybePrincipal) -> JSON:
    def work() -> dict[str, Any]:
        with transaction(hub.sessions) as db:
            return delete.undelete_package(db, principal, owner, name)

    return JSON(await run_in_threadpool(work))


@router.delete(
    "/{owner}/{name}/purge",
    summary="Remove a package (deleted or not) for good: metadata, tables and unshared blobs",
    openapi_extra=needs(Action.PACKAGE_MANAGE),
)
async def purge_package(owner: str, name: str, hub: HubDep, principal: MaybePrincipal) -> JSON:
    answer = await run_in_threadpool(
        purge.purge_package,
        hub.sessions,
        principal=principal,
        bitstore=hub.bitstore,
        datastore=hub.datastore,
        owner=owner,
        name=name,
        grace=timedelta(hours=hub.settings.gc_grace_hours),
        job_timeout=hub.settings.job_timeout,
    )
    return JSON(answer)
