"""Dependencies shared by the routes: the hub's services and who is asking."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from dphub.auth.accounts import principal_for_api_key
from dphub.auth.apikeys import looks_like_api_key
from dphub.auth.principal import Principal
from dphub.auth.tokens import principal_for_token
from dphub.errors import Unauthenticated
from dphub.hub import Hub
from dphub.metastore.db import transaction


def get_hub(request: Request) -> Hub:
    hub: Hub = request.app.state.hub
    return hub


HubDep = Annotated[Hub, Depends(get_hub)]


def presented_token(request: Request) -> str | None:
    """The token from ``Auth-Token``, ``Authorization: Bearer`` or ``?jwt=``, in that order."""
    token = request.headers.get("auth-token")
    if not token:
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer":
            token = value.strip()
    if not token:
        token = request.query_params.get("jwt")
    return token or None


def client_ip(request: Request) -> str:
    """The client's address: the connection's. Behind a proxy listed in DPHUB_TRUSTED_PROXIES,
    ``dphub serve`` has already put the address ``X-Forwarded-For`` names there."""
    return request.client.host if request.client is not None else "unknown"


def resolve_principal(hub: Hub, token: str) -> Principal:
    with transaction(hub.sessions) as db:
        if looks_like_api_key(token):
            return principal_for_api_key(db, token)
        return principal_for_token(db, token, grace=hub.settings.token_ttl)


async def optional_principal(request: Request, hub: HubDep) -> Principal | None:
    """The caller, or ``None`` when no token was sent; a bad token is an error, never anonymous."""
    token = presented_token(request)
    if token is None:
        return None
    return await run_in_threadpool(resolve_principal, hub, token)


async def required_principal(
    principal: Annotated[Principal | None, Depends(optional_principal)],
) -> Principal:
    if principal is None:
        raise Unauthenticated()
    return principal


MaybePrincipal = Annotated[Principal | None, Depends(optional_principal)]
CurrentPrincipal = Annotated[Principal, Depends(required_principal)]
