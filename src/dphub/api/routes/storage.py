"""Storage accounting: what a publisher stores, public and private apart, and its quota."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from dphub.api.body import read_json
from dphub.api.deps import HubDep, MaybePrincipal
from dphub.api.responses import JSON
from dphub.auth.permissions import Action, needs
from dphub.errors import InvalidRequest
from dphub.lifecycle import quotas
from dphub.metastore.db import transaction

router = APIRouter(prefix="/api/storage", tags=["storage"])

MAX_BODY = 16 * 1024


@router.get(
    "/{owner}",
    summary="A publisher's stored bytes and packages, public and private, and its quota",
    openapi_extra=needs(Action.PUBLISHER_MEMBERS),
)
async def show_storage(owner: str, hub: HubDep, principal: MaybePrincipal) -> JSON:
    def work() -> dict[str, Any]:
        with hub.sessions() as db:
            return quotas.storage(db, principal, owner)

    return JSON(await run_in_threadpool(work), headers={"Cache-Control": "no-store"})


@router.put(
    "/{owner}/quota",
    summary='Set a publisher\'s limits: {"max_public_bytes"?, "max_private_bytes"?,'
    ' "max_packages"?} (null: no limit)',
    openapi_extra=needs(Action.SITE_ADMIN),
)
async def set_quota(owner: str, request: Request, hub: HubDep, principal: MaybePrincipal) -> JSON:
    body = await read_json(request, MAX_BODY)
    if not isinstance(body, dict):
        raise InvalidRequest('Send a JSON object such as {"max_public_bytes": 1000000000}.')

    def work() -> dict[str, Any]:
        with transaction(hub.sessions) as db:
            return quotas.set_quota(db, principal, owner, body)

    return JSON(await run_in_threadpool(work))
