"""Trusted publishing routes: a package's trusted CI issuers, and the exchange of a CI's OIDC token
for a short-lived publish token."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from dphub.api.body import read_json
from dphub.api.deps import HubDep, MaybePrincipal, client_ip
from dphub.api.responses import JSON
from dphub.auth import trusted
from dphub.auth.permissions import Action, needs
from dphub.auth.ratelimit import limit_exchange
from dphub.errors import InvalidRequest, NotFound
from dphub.hub import Hub
from dphub.metastore.db import transaction

router = APIRouter(tags=["trusted publishing"])

MAX_TRUST_BODY = 16 * 1024
MAX_EXCHANGE_BODY = 64 * 1024
NO_STORE = {"Cache-Control": "no-store"}
TRUST_BODY = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "properties": {
                    "issuer": {"type": "string", "description": "https URL of the OIDC issuer"},
                    "subject": {
                        "type": "string",
                        "description": "The token's sub, '*' matching any run of characters",
                    },
                    "audience": {"type": "string"},
                },
                "required": ["issuer", "subject"],
                "additionalProperties": False,
            }
        }
    },
}
EXCHANGE_BODY = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "properties": {
                    "token": {"type": "string", "description": "The CI's OIDC token (a JWT)"},
                    "package": {
                        "type": "string",
                        "description": "OWNER/NAME, when several packages trust the token",
                    },
                },
                "required": ["token"],
            }
        }
    },
}
TRUSTS = "/api/package/{owner}/{name}/trusted-publishers"


def _trust_request(body: Any) -> trusted.TrustRequest:
    if not isinstance(body, dict):
        raise InvalidRequest('Send {"issuer", "subject", "audience"?}.')
    unknown = sorted(set(body) - {"issuer", "subject", "audience"})
    if unknown:
        raise InvalidRequest(f"Unknown fields: {', '.join(unknown)}.")
    issuer, subject, audience = body.get("issuer"), body.get("subject"), body.get("audience")
    if not isinstance(issuer, str) or not isinstance(subject, str):
        raise InvalidRequest('"issuer" and "subject" are required strings.')
    if audience is not None and not isinstance(audience, str):
        raise InvalidRequest('"audience" must be a string.', field="audience")
    return trusted.TrustRequest(issuer, subject, audience)


@router.get(
    TRUSTS,
    summary="List the CI issuers and subjects trusted to push a package",
    openapi_extra=needs(Action.PACKAGE_MEMBERS),
)
async def list_trusts(owner: str, name: str, hub: HubDep, principal: MaybePrincipal) -> JSON:
    def work() -> list[dict[str, Any]]:
        with hub.sessions() as db:
            return trusted.list_trusted(db, principal, owner, name)

    return JSON({"trusted_publishers": await run_in_threadpool(work)})


@router.post(
    TRUSTS,
    summary="Trust a CI issuer and subject to push a package (which may not exist yet)",
    status_code=201,
    openapi_extra=needs(Action.PACKAGE_MANAGE, requestBody=TRUST_BODY),
)
async def add_trust(
    owner: str, name: str, request: Request, hub: HubDep, principal: MaybePrincipal
) -> JSON:
    wanted = _trust_request(await read_json(request, MAX_TRUST_BODY))
    ip = client_ip(request)

    def work() -> dict[str, Any]:
        with transaction(hub.sessions) as db:
            return trusted.add_trusted(
                db,
                principal,
                owner,
                name,
                wanted,
                allow_insecure=hub.settings.oidc_allow_insecure_issuers,
                ip=ip,
            )

    return JSON(await run_in_threadpool(work), status_code=201)


@router.delete(
    TRUSTS + "/{trust_id}",
    summary="Stop trusting a CI issuer and subject",
    status_code=204,
    openapi_extra=needs(Action.PACKAGE_MANAGE),
)
async def remove_trust(
    owner: str, name: str, trust_id: str, request: Request, hub: HubDep, principal: MaybePrincipal
) -> Response:
    if not trust_id.isascii() or not trust_id.isdigit() or len(trust_id) > 12:
        raise NotFound(f"{owner}/{name} has no trusted publisher with id {trust_id[:20]!r}.")
    ip = client_ip(request)

    def work() -> None:
        with transaction(hub.sessions) as db:
            trusted.remove_trusted(db, principal, owner, name, int(trust_id), ip=ip)

    await run_in_threadpool(work)
    return Response(status_code=204)


def exchange_token(hub: Hub, token: str, package: str | None, ip: str) -> dict[str, Any]:
    """The whole exchange, run in the threadpool: verify the CI's token, issue the hub's."""
    limit_exchange(hub, ip)
    return trusted.exchange(
        hub.sessions,
        token,
        base_url=hub.settings.base_url,
        allow_insecure=hub.settings.oidc_allow_insecure_issuers,
        package=package,
        ip=ip,
    )


@router.post(
    "/api/auth/oidc/exchange",
    summary="Exchange a CI's OIDC token for a 15-minute token that may push one package",
    tags=["auth"],
    openapi_extra=needs(Action.PUBLIC, requestBody=EXCHANGE_BODY),
)
async def exchange(request: Request, hub: HubDep) -> JSON:
    body = await read_json(request, MAX_EXCHANGE_BODY)
    token = body.get("token") if isinstance(body, dict) else None
    package = body.get("package") if isinstance(body, dict) else None
    if not isinstance(token, str) or not token:
        raise InvalidRequest('Send {"token": "<the CI\'s OIDC token>"}.', field="token")
    if package is not None and not isinstance(package, str):
        raise InvalidRequest('"package" must be a string OWNER/NAME.', field="package")
    answer = await run_in_threadpool(exchange_token, hub, token, package, client_ip(request))
    return JSON(answer, headers=NO_STORE)
