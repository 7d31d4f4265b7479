"""Auth routes: exchange credentials for a token, and ask who a token belongs to."""

from __future__ import annotations

import base64
from typing import Any

import orjson
from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from dphub.api.body import read_bounded
from dphub.api.deps import HubDep, client_ip, presented_token, resolve_principal
from dphub.api.responses import JSON
from dphub.api.routes import oidc
from dphub.auth.accounts import authenticate
from dphub.auth.audit import record, record_apart
from dphub.auth.permissions import Action, needs
from dphub.auth.ratelimit import login_succeeded, start_login
from dphub.auth.tokens import issue_token
from dphub.errors import DphubError, InvalidCredentials, InvalidJson, InvalidRequest
from dphub.hub import Hub
from dphub.metastore.db import transaction

router = APIRouter(prefix="/api/auth", tags=["auth"])

MAX_CREDENTIALS_BODY = 64 * 1024


def _basic_credentials(request: Request) -> tuple[str, str] | None:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        login, sep, secret = base64.b64decode(value.strip(), validate=True).decode().partition(":")
    except ValueError:  # binascii.Error, UnicodeDecodeError, and non-ASCII text
        raise InvalidCredentials("The Basic authorization header is not valid base64.") from None
    if not sep:
        raise InvalidCredentials("The Basic authorization header lacks the ':' separator.")
    return login, secret


def _json_credentials(body: bytes) -> tuple[str, str]:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise InvalidJson("The body is not valid JSON.") from None
    if not isinstance(data, dict):
        raise InvalidRequest('Send {"username" or "email", "secret"}.')
    login = data.get("username") or data.get("email")
    secret = data.get("secret") or data.get("password")
    if not isinstance(login, str) or not isinstance(secret, str) or not login or not secret:
        raise InvalidRequest('Send {"username" or "email", "secret"} as strings.')
    return login, secret


def password_login(hub: Hub, login: str, secret: str, ip: str) -> dict[str, Any]:
    """The token, within the login rate limits; every outcome lands in the audit log."""
    attempt = start_login(hub, login=login, ip=ip)
    try:
        answer = _token_for(hub, login, secret, ip)
    except InvalidCredentials:
        # The login as typed, never the secret; its own transaction, as the attempt's rolled back.
        record_apart(hub.sessions, "login.failed", outcome="failed", actor=login, ip=ip)
        raise
    login_succeeded(hub, attempt)
    return answer


def _token_for(hub: Hub, login: str, secret: str, ip: str) -> dict[str, Any]:
    with transaction(hub.sessions) as db:
        user = authenticate(db, login=login, secret=secret)
        record(db, "login", principal=user, ip=ip, via=user.via)
        token, expires_at = issue_token(
            db, user, ttl=hub.settings.token_ttl, api_key_id=user.api_key_id
        )
        return {"token": token, "expires_at": expires_at, "username": user.username}


@router.post(
    "/token",
    summary="Exchange a username or email and a secret (password or API key) for a token",
    openapi_extra=needs(
        Action.PUBLIC,
        requestBody={
            "required": False,
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "properties": {
                            "username": {"type": "string"},
                            "email": {"type": "string"},
                            "secret": {"type": "string"},
                        },
                    }
                }
            },
        },
    ),
)
async def token(request: Request, hub: HubDep) -> JSON:
    credentials = _basic_credentials(request)
    if credentials is None:
        body = await read_bounded(request, MAX_CREDENTIALS_BODY)
        credentials = _json_credentials(body)
    answer = await run_in_threadpool(password_login, hub, *credentials, client_ip(request))
    return JSON(answer, headers={"Cache-Control": "no-store"})


@router.get(
    "/check", summary="Who the presented token belongs to", openapi_extra=needs(Action.PUBLIC)
)
async def check(request: Request, hub: HubDep) -> JSON:
    return JSON(await who(request, hub))


async def who(request: Request, hub: Hub) -> dict[str, Any]:
    """``{"authenticated": true, "profile"}`` for a good token, else the login providers."""
    token = presented_token(request)
    if token is not None:
        try:
            principal = await run_in_threadpool(resolve_principal, hub, token)
        except DphubError:
            principal = None
        if principal is not None:
            profile = {
                "id": principal.user_id,
                "username": principal.username,
                "email": principal.email,
                "is_admin": principal.is_admin,
            }
            return {"authenticated": True, "profile": profile}
    return {"authenticated": False, "providers": oidc.provider_list(hub.settings)}
