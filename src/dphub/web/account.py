"""Signing in and out, the account page (API keys), and organization members."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response

from dphub.api.deps import HubDep, client_ip
from dphub.api.routes.auth import password_login
from dphub.api.routes.oidc import provider_list
from dphub.auth import apikeys, publishers
from dphub.auth.permissions import AccountRef, Action, needs, require
from dphub.auth.principal import Principal
from dphub.auth.sso import COOKIE_NAME as SESSION_COOKIE
from dphub.auth.sso import check_next
from dphub.errors import DphubError, InvalidCredentials, Unauthenticated
from dphub.hub import Hub
from dphub.metastore.db import transaction
from dphub.web.forms import Form, field
from dphub.web.render import page
from dphub.web.session import Viewer, finish, set_cookie

router = APIRouter(tags=["web"], include_in_schema=False)


def _local_next(value: str | None) -> str:
    """Where to go after signing in: a path on this hub only."""
    try:
        target = check_next(value)
    except DphubError:
        return "/"
    return target if target.startswith("/") and not target.startswith("//") else "/"


def _login_page(
    request: Request, hub: Hub, next_url: str, *, problem: str | None = None, status: int = 200
) -> Response:
    providers = provider_list(hub.settings)
    for entry in providers.values():
        entry["url"] += f"?next={quote(next_url)}"
    context = {"next": next_url, "providers": providers, "problem": problem}
    return page(request, "login.html", context, status_code=status)


@router.get("/login", openapi_extra=needs(Action.PUBLIC))
async def login_form(
    request: Request, hub: HubDep, viewer: Viewer, next: str | None = Query(default=None)
) -> Response:
    return _login_page(request, hub, _local_next(next))


@router.post("/login", openapi_extra=needs(Action.PUBLIC))
async def login(request: Request, hub: HubDep, form: Form) -> Response:
    next_url = _local_next(form.get("next"))
    login_name = form.get("login", "").strip()
    secret = form.get("password", "")
    request.state.viewer = None
    if not login_name or not secret:
        problem = "Enter your username or email and your password."
        return _login_page(request, hub, next_url, problem=problem, status=400)
    try:
        answer = await run_in_threadpool(
            password_login, hub, login_name, secret, client_ip(request)
        )
    except InvalidCredentials:
        problem = "That username or email and password do not match an account."
        return _login_page(request, hub, next_url, problem=problem, status=401)
    response = RedirectResponse(next_url, status_code=303)
    set_cookie(request, response, SESSION_COOKIE, answer["token"], max_age=hub.settings.token_ttl)
    return finish(request, response)


@router.post("/logout", openapi_extra=needs(Action.PUBLIC))
async def logout(request: Request, form: Form) -> Response:
    response = RedirectResponse("/", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return finish(request, response)


def _signed_in(viewer: Principal | None) -> Principal:
    if viewer is None:
        raise Unauthenticated("Sign in to manage your account.")
    require(viewer, Action.ACCOUNT, AccountRef(viewer.user_id))
    return viewer


def _account_page(
    request: Request, hub: Hub, viewer: Principal, created: dict[str, Any] | None = None
) -> Response:
    def work() -> list[dict[str, Any]]:
        with hub.sessions() as db:
            return [apikeys.describe(k) for k in apikeys.list_keys(db, viewer)]

    return page(
        request,
        "account.html",
        {"keys": work(), "created": created, "scopes": ("read", "publish", "admin")},
        headers={"Cache-Control": "no-store"},
    )


@router.get("/account", openapi_extra=needs(Action.ACCOUNT))
async def account(request: Request, hub: HubDep, viewer: Viewer) -> Response:
    signed_in = _signed_in(viewer)
    return await run_in_threadpool(_account_page, request, hub, signed_in)


@router.post("/account/keys", openapi_extra=needs(Action.ACCOUNT))
async def create_key(request: Request, hub: HubDep, viewer: Viewer, form: Form) -> Response:
    signed_in = _signed_in(viewer)
    wanted: dict[str, Any] = {"name": field(form, "name"), "scope": form.get("scope") or "read"}
    if form.get("package", "").strip():
        wanted["package"] = form["package"].strip()
    if form.get("expires_in_days", "").strip():
        days = form["expires_in_days"].strip()
        wanted["expires_in_days"] = int(days) if days.isdigit() and len(days) < 7 else days
    parsed = apikeys.parse_key_request(wanted)
    ip = client_ip(request)

    def work() -> Response:
        with transaction(hub.sessions) as db:
            row, key = apikeys.create_key(db, signed_in, parsed, ip=ip)
            created = {"key": key, **apikeys.describe(row)}
        return _account_page(request, hub, signed_in, created)

    return await run_in_threadpool(work)


@router.post("/account/keys/{key_id}/revoke", openapi_extra=needs(Action.ACCOUNT))
async def revoke_key(
    key_id: str, request: Request, hub: HubDep, viewer: Viewer, form: Form
) -> Response:
    signed_in = _signed_in(viewer)
    ip = client_ip(request)

    def work() -> None:
        with transaction(hub.sessions) as db:
            apikeys.revoke_key(db, signed_in, key_id, ip=ip)

    await run_in_threadpool(work)
    return finish(request, RedirectResponse("/account?revoked=1", status_code=303))


@router.post("/{owner}/members", openapi_extra=needs(Action.PUBLISHER_MANAGE))
async def set_member(
    owner: str, request: Request, hub: HubDep, viewer: Viewer, form: Form
) -> Response:
    username, role = field(form, "username"), field(form, "role")

    def work() -> None:
        with transaction(hub.sessions) as db:
            publishers.set_member(db, viewer, owner, username, role)

    await run_in_threadpool(work)
    return finish(request, RedirectResponse(f"/{quote(owner)}#members", status_code=303))


@router.post("/{owner}/members/{username}/remove", openapi_extra=needs(Action.PUBLISHER_MANAGE))
async def remove_member(
    owner: str, username: str, request: Request, hub: HubDep, viewer: Viewer, form: Form
) -> Response:
    def work() -> None:
        with transaction(hub.sessions) as db:
            publishers.remove_member(db, viewer, owner, username)

    await run_in_threadpool(work)
    return finish(request, RedirectResponse(f"/{quote(owner)}#members", status_code=303))
