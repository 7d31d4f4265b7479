"""Publishers and access: organizations and their members, package collaborators, findability."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from dphub.api.body import read_json
from dphub.api.deps import CurrentPrincipal, HubDep, MaybePrincipal
from dphub.api.responses import JSON
from dphub.auth import publishers
from dphub.auth.permissions import Action, needs
from dphub.errors import InvalidRequest
from dphub.hub import Hub
from dphub.metastore.db import transaction

router = APIRouter(tags=["publishers"])

MAX_BODY = 64 * 1024


async def _object(request: Request) -> dict[str, Any]:
    body = await read_json(request, MAX_BODY)
    if not isinstance(body, dict):
        raise InvalidRequest("Send a JSON object.")
    return body


async def _in_transaction(hub: Hub, work: Callable[[Session], Any]) -> Any:
    def run() -> Any:
        with transaction(hub.sessions) as db:
            return work(db)

    return await run_in_threadpool(run)


@router.get(
    "/api/publisher/{name}",
    summary="A user or organization: name, kind, title; its members for members",
    openapi_extra=needs(Action.PUBLISHER_READ),
)
async def show_publisher(name: str, hub: HubDep, principal: MaybePrincipal) -> JSON:
    return JSON(
        await _in_transaction(hub, lambda db: publishers.describe_publisher(db, principal, name))
    )


@router.post(
    "/api/org",
    status_code=201,
    summary="Create an organization; its creator becomes its owner",
    openapi_extra=needs(Action.ORG_CREATE),
)
async def create_org(request: Request, hub: HubDep, principal: CurrentPrincipal) -> JSON:
    body = await _object(request)
    answer = await _in_transaction(
        hub,
        lambda db: publishers.create_organization(
            db, principal, name=body.get("name"), title=body.get("title")
        ),
    )
    return JSON(answer, status_code=201)


@router.put(
    "/api/org/{org}/members/{username}",
    summary='Add a member to an organization or change their role: {"role": "viewer"}',
    openapi_extra=needs(Action.PUBLISHER_MANAGE),
)
async def set_member(
    org: str, username: str, request: Request, hub: HubDep, principal: MaybePrincipal
) -> JSON:
    body = await _object(request)
    return JSON(
        await _in_transaction(
            hub, lambda db: publishers.set_member(db, principal, org, username, body.get("role"))
        )
    )


@router.delete(
    "/api/org/{org}/members/{username}",
    summary="Remove a member from an organization",
    openapi_extra=needs(Action.PUBLISHER_MANAGE),
)
async def remove_member(org: str, username: str, hub: HubDep, principal: MaybePrincipal) -> JSON:
    return JSON(
        await _in_transaction(
            hub, lambda db: publishers.remove_member(db, principal, org, username)
        )
    )


@router.get(
    "/api/package/{owner}/{name}/collaborators",
    summary="A package's collaborators and their roles",
    openapi_extra=needs(Action.PACKAGE_MEMBERS),
)
async def list_collaborators(owner: str, name: str, hub: HubDep, principal: MaybePrincipal) -> JSON:
    found = await _in_transaction(
        hub, lambda db: publishers.list_collaborators(db, principal, owner, name)
    )
    return JSON({"collaborators": found})


@router.put(
    "/api/package/{owner}/{name}/collaborators/{username}",
    summary='Give a user a role on one package: {"role": "editor"}',
    openapi_extra=needs(Action.PACKAGE_MANAGE),
)
async def set_collaborator(
    owner: str,
    name: str,
    username: str,
    request: Request,
    hub: HubDep,
    principal: MaybePrincipal,
) -> JSON:
    body = await _object(request)
    found = await _in_transaction(
        hub,
        lambda db: publishers.set_collaborator(
            db, principal, owner, name, username, body.get("role")
        ),
    )
    return JSON({"collaborators": found})


@router.delete(
    "/api/package/{owner}/{name}/collaborators/{username}",
    summary="Take a user's role on one package away",
    openapi_extra=needs(Action.PACKAGE_MANAGE),
)
async def remove_collaborator(
    owner: str, name: str, username: str, hub: HubDep, principal: MaybePrincipal
) -> JSON:
    found = await _in_transaction(
        hub, lambda db: publishers.remove_collaborator(db, principal, owner, name, username)
    )
    return JSON({"collaborators": found})


@router.patch(
    "/api/package/{owner}/{name}",
    summary='Change a package\'s findability: {"findability": "private"}',
    openapi_extra=needs(Action.PACKAGE_MANAGE),
)
async def update_package(
    owner: str, name: str, request: Request, hub: HubDep, principal: MaybePrincipal
) -> JSON:
    body = await _object(request)
    unknown = sorted(set(body) - {"findability"})
    if unknown or "findability" not in body:
        raise InvalidRequest(
            'Send {"findability": "published" | "unlisted" | "private"}; other fields'
            f" cannot be changed here{': ' + ', '.join(unknown) if unknown else ''}."
        )
    return JSON(
        await _in_transaction(
            hub,
            lambda db: publishers.set_findability(db, principal, owner, name, body["findability"]),
        )
    )
