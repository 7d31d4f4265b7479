"""Single sign-on routes: start a login at a provider, come back from it, hand the token over."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse

from dphub.api.body import read_json
from dphub.api.deps import HubDep, client_ip
from dphub.api.responses import JSON
from dphub.auth import sso
from dphub.auth.permissions import Action, needs
from dphub.auth.providers import configured, find_provider
from dphub.auth.ratelimit import limit_exchange
from dphub.config import Settings
from dphub.errors import InvalidRequest

router = APIRouter(prefix="/api/auth/oidc", tags=["auth"])

MAX_REDEEM_BODY = 4 * 1024
NO_STORE = {"Cache-Control": "no-store"}
COOKIE_PATH = "/api/auth/oidc/"
REDEEM_BODY = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "properties": {"code": {"type": "string"}},
                "required": ["code"],
            }
        }
    },
}


def login_url(settings: Settings, provider: str) -> str:
    return f"{settings.base_url}/api/auth/oidc/{provider}/login"


def provider_list(settings: Settings) -> dict[str, dict[str, str]]:
    """The configured providers as ``/api/auth/check`` lists them: name → title, kind, login URL."""
    return {
        p.name: {"title": p.title, "kind": p.kind, "url": login_url(settings, p.name)}
        for p in configured(settings)
    }


@router.get(
    "/{provider}/login",
    summary="Start a single sign-on login: redirects to the provider",
    status_code=302,
    response_class=RedirectResponse,
    openapi_extra=needs(Action.PUBLIC),
)
async def login(
    provider: str,
    request: Request,
    hub: HubDep,
    next: str | None = Query(
        default=None,
        description="Where to go after the login: a path on this hub, or the command line's"
        " loopback address (http://127.0.0.1:PORT/...).",
    ),
) -> RedirectResponse:
    chosen = find_provider(hub.settings, provider)
    ip = client_ip(request)

    def work() -> sso.Started:
        limit_exchange(hub, ip, event="sso.login")
        return sso.start_login(
            hub.sessions, chosen, base_url=hub.settings.base_url, next_url=next, ip=ip
        )

    started = await run_in_threadpool(work)
    response = RedirectResponse(started.url, status_code=302, headers=NO_STORE)
    name, value = sso.binding_cookie(started.state)
    response.set_cookie(
        name,
        value,
        max_age=sso.LOGIN_TTL,
        path=COOKIE_PATH,
        secure=hub.settings.base_url.startswith("https://"),
        httponly=True,
        samesite="lax",
    )
    return response


@router.get(
    "/{provider}/callback",
    summary="Where the provider sends the browser back; redirects to the login's next address",
    status_code=302,
    response_class=RedirectResponse,
    openapi_extra=needs(Action.PUBLIC),
)
async def callback(
    provider: str,
    request: Request,
    hub: HubDep,
    code: str | None = None,
    state: str | None = None,
    error: str | None = None,
) -> RedirectResponse:
    chosen = find_provider(hub.settings, provider)
    ip = client_ip(request)

    def work() -> sso.Finished:
        return sso.finish_login(
            hub.sessions,
            chosen,
            base_url=hub.settings.base_url,
            token_ttl=hub.settings.token_ttl,
            state=state,
            code=code,
            cookies=request.cookies,
            error=error,
            ip=ip,
        )

    finished = await run_in_threadpool(work)
    response = RedirectResponse(finished.location, status_code=302, headers=NO_STORE)
    if state:
        response.delete_cookie(sso.binding_cookie(state)[0], path=COOKIE_PATH)
    if finished.session_token is not None:
        response.headers.append(
            "Set-Cookie",
            sso.session_cookie(
                hub.settings.base_url, finished.session_token, max_age=hub.settings.token_ttl
            ),
        )
    return response


@router.post(
    "/redeem",
    summary="Exchange the one-time code of a command-line login for a token",
    openapi_extra=needs(Action.PUBLIC, requestBody=REDEEM_BODY),
)
async def redeem(request: Request, hub: HubDep) -> JSON:
    body = await read_json(request, MAX_REDEEM_BODY)
    code = body.get("code") if isinstance(body, dict) else None
    if not isinstance(code, str) or not code:
        raise InvalidRequest('Send {"code": "<the one-time code>"}.', field="code")
    ip = client_ip(request)

    def work() -> dict[str, Any]:
        limit_exchange(hub, ip, event="sso.redeem")
        return sso.redeem(hub.sessions, code, token_ttl=hub.settings.token_ttl, ip=ip)

    return JSON(await run_in_threadpool(work), headers=NO_STORE)
