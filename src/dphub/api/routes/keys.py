"""A user's API keys: create one (shown once), list them, revoke one."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from dphub.api.body import read_json
from dphub.api.deps import CurrentPrincipal, HubDep, client_ip
from dphub.api.responses import JSON
from dphub.auth import apikeys
from dphub.auth.permissions import AccountRef, Action, needs, require
from dphub.metastore.db import transaction

router = APIRouter(prefix="/api/auth/keys", tags=["auth"])

MAX_KEY_BODY = 64 * 1024
CREATED_FIELDS = (
    "id",
    "name",
    "prefix",
    "scope",
    "package",
    "publisher",
    "created_at",
    "expires_at",
)
REQUEST_BODY = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "properties": {
                    "name": {"type": "string", "maxLength": apikeys.NAME_MAX},
                    "scope": {"enum": ["read", "publish", "admin"], "default": "read"},
                    "package": {"type": "string", "description": "OWNER/NAME"},
                    "publisher": {"type": "string"},
                    "expires_in_days": {
                        "type": "integer",
                        "minimum": 1,
                        "maximum": apikeys.MAX_DAYS,
                    },
                },
                "additionalProperties": False,
            }
        }
    },
}
NO_STORE = {"Cache-Control": "no-store"}


@router.post(
    "",
    summary="Create an API key (its secret is in this answer only)",
    status_code=201,
    openapi_extra=needs(Action.ACCOUNT, requestBody=REQUEST_BODY),
)
async def create(request: Request, hub: HubDep, principal: CurrentPrincipal) -> JSON:
    require(principal, Action.ACCOUNT, AccountRef(principal.user_id))
    wanted = apikeys.parse_key_request(await read_json(request, MAX_KEY_BODY))
    ip = client_ip(request)

    def work() -> dict[str, Any]:
        with transaction(hub.sessions) as db:
            row, key = apikeys.create_key(db, principal, wanted, ip=ip)
            described = apikeys.describe(row)
        return {"key": key, **{k: described[k] for k in CREATED_FIELDS}}

    return JSON(await run_in_threadpool(work), status_code=201, headers=NO_STORE)


@router.get("", summary="List your API keys", openapi_extra=needs(Action.ACCOUNT))
async def list_keys(hub: HubDep, principal: CurrentPrincipal) -> JSON:
    require(principal, Action.ACCOUNT, AccountRef(principal.user_id))

    def work() -> list[dict[str, Any]]:
        with hub.sessions() as db:
            return [apikeys.describe(k) for k in apikeys.list_keys(db, principal)]

    return JSON({"keys": await run_in_threadpool(work)}, headers=NO_STORE)


@router.delete(
    "/{key_id}",
    summary="Revoke one of your API keys, and every token made with it",
    openapi_extra=needs(Action.ACCOUNT),
)
async def revoke(key_id: str, request: Request, hub: HubDep, principal: CurrentPrincipal) -> JSON:
    require(principal, Action.ACCOUNT, AccountRef(principal.user_id))
    ip = client_ip(request)

    def work() -> dict[str, Any]:
        with transaction(hub.sessions) as db:
            return apikeys.describe(apikeys.revoke_key(db, principal, key_id, ip=ip))

    return JSON(await run_in_threadpool(work), headers=NO_STORE)
