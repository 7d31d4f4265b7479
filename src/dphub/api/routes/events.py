"""The activity stream (what happened to packages, newest first) and publishers' webhooks."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from dphub.api.body import read_json
from dphub.api.deps import HubDep, MaybePrincipal
from dphub.api.responses import JSON
from dphub.auth.permissions import Action, needs
from dphub.errors import InvalidQuery, InvalidRequest, NotFound
from dphub.events import stream, webhooks
from dphub.metastore.db import transaction

router = APIRouter(tags=["events"])

MAX_ID = 2**63 - 1
MAX_WEBHOOK_BODY = 16 * 1024
NO_STORE = {"Cache-Control": "no-store"}
WEBHOOKS = "/api/publisher/{name}/webhooks"
KIND_HELP = "Only these kinds, comma separated: " + ", ".join(stream.KINDS) + "."
WEBHOOK_BODY = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "properties": {
                    "url": {"type": "string", "description": "https URL to POST events to"},
                    "kinds": {
                        "type": "array",
                        "items": {"type": "string", "enum": list(stream.KINDS)},
                        "description": "The event kinds to deliver; all when left out",
                    },
                },
                "required": ["url"],
                "additionalProperties": False,
            }
        }
    },
}


def _limit() -> Any:
    return Query(default=stream.DEFAULT_LIMIT, ge=1, le=stream.MAX_LIMIT)


def _before() -> Any:
    return Query(
        default=None, ge=1, le=MAX_ID, description="Only entries older than this id (paging)."
    )


@router.get(
    "/api/events",
    summary="Events of packages, newest first: a hub's, a publisher's or one package's",
    openapi_extra=needs(Action.PUBLIC),
)
async def list_events(
    hub: HubDep,
    principal: MaybePrincipal,
    owner: str | None = Query(default=None, description="Only this publisher's packages."),
    package: str | None = Query(default=None, description="Only this package of the owner."),
    kind: str | None = Query(default=None, description=KIND_HELP),
    limit: int = _limit(),
    before: int | None = _before(),
) -> JSON:
    kinds = stream.parse_kinds(kind)
    if package is not None and owner is None:
        raise InvalidQuery("Name the package's owner too: ?owner=OWNER&package=NAME.")

    def work() -> dict[str, Any]:
        with transaction(hub.sessions) as db:
            if owner is not None and package is not None:
                page = stream.package_events(
                    db, principal, owner, package, kinds=kinds, before=before, limit=limit
                )
            elif owner is not None:
                page = stream.owner_events(
                    db, principal, owner, kinds=kinds, before=before, limit=limit
                )
            else:
                page = stream.hub_events(db, principal, kinds=kinds, before=before, limit=limit)
            return page.to_json()

    return JSON(await run_in_threadpool(work), headers=NO_STORE)


@router.get(
    "/api/package/{owner}/{name}/events",
    summary="One package's events, newest first",
    openapi_extra=needs(Action.PACKAGE_READ),
)
async def package_events(
    owner: str,
    name: str,
    hub: HubDep,
    principal: MaybePrincipal,
    kind: str | None = Query(default=None, description=KIND_HELP),
    limit: int = _limit(),
    before: int | None = _before(),
) -> JSON:
    kinds = stream.parse_kinds(kind)

    def work() -> dict[str, Any]:
        with transaction(hub.sessions) as db:
            return stream.package_events(
                db, principal, owner, name, kinds=kinds, before=before, limit=limit
            ).to_json()

    return JSON(await run_in_threadpool(work), headers=NO_STORE)


@router.post(
    WEBHOOKS,
    status_code=201,
    summary="Register a webhook; the answer shows its signing secret, once",
    openapi_extra=needs(Action.PUBLISHER_MANAGE, requestBody=WEBHOOK_BODY),
)
async def add_webhook(name: str, request: Request, hub: HubDep, principal: MaybePrincipal) -> JSON:
    body = await read_json(request, MAX_WEBHOOK_BODY)
    if not isinstance(body, dict):
        raise InvalidRequest('Send {"url": "https://...", "kinds"?: ["pushed", ...]}.')
    unknown = sorted(set(body) - {"url", "kinds"})
    if unknown:
        raise InvalidRequest(f"Unknown fields: {', '.join(unknown)[:200]}.")
    settings = hub.settings

    def work() -> dict[str, Any]:
        with transaction(hub.sessions) as db:
            return webhooks.create_webhook(
                db,
                principal,
                name,
                url=body.get("url"),
                kinds=body.get("kinds"),
                allow_http=settings.webhook_allow_http,
                allow_private=settings.webhook_allow_private,
            )

    return JSON(await run_in_threadpool(work), status_code=201, headers=NO_STORE)


@router.get(
    WEBHOOKS,
    summary="A publisher's webhooks (never their secrets)",
    openapi_extra=needs(Action.PUBLISHER_MANAGE),
)
async def list_webhooks(name: str, hub: HubDep, principal: MaybePrincipal) -> JSON:
    def work() -> list[dict[str, Any]]:
        with transaction(hub.sessions) as db:
            return webhooks.list_webhooks(db, principal, name)

    return JSON({"webhooks": await run_in_threadpool(work)}, headers=NO_STORE)


def _hook_id(name: str, hook_id: str) -> int:
    if not hook_id.isascii() or not hook_id.isdigit() or len(hook_id) > 12:
        raise NotFound(f"{name[:100]} has no webhook with id {hook_id[:20]!r}.")
    return int(hook_id)


@router.delete(
    WEBHOOKS + "/{hook_id}",
    status_code=204,
    summary="Remove a webhook, its delivery log and the deliveries it is still owed",
    openapi_extra=needs(Action.PUBLISHER_MANAGE),
)
async def remove_webhook(
    name: str, hook_id: str, hub: HubDep, principal: MaybePrincipal
) -> Response:
    number = _hook_id(name, hook_id)

    def work() -> None:
        with transaction(hub.sessions) as db:
            webhooks.remove_webhook(db, principal, name, number)

    await run_in_threadpool(work)
    return Response(status_code=204)


@router.get(
    WEBHOOKS + "/{hook_id}/deliveries",
    summary="A webhook's delivery log, newest first: state, attempts, last status and error",
    openapi_extra=needs(Action.PUBLISHER_MANAGE),
)
async def webhook_deliveries(
    name: str,
    hook_id: str,
    hub: HubDep,
    principal: MaybePrincipal,
    state: str | None = Query(default=None, description="pending, delivered or failed."),
    limit: int = _limit(),
    before: int | None = _before(),
) -> JSON:
    number = _hook_id(name, hook_id)

    def work() -> dict[str, Any]:
        with transaction(hub.sessions) as db:
            return webhooks.list_deliveries(
                db, principal, name, number, state=state, before=before, limit=limit
            )

    return JSON(await run_in_threadpool(work), headers=NO_STORE)
