"""Who is looking at a page, and the forms' protection against cross-site requests.

A browser signs in by holding a session token in the ``dphub_session`` cookie (``HttpOnly``,
``SameSite=Lax``, ``Secure`` when the hub's base URL is HTTPS), set by the password login form or
by single sign-on. Only the web pages read that cookie; the API keeps to tokens in headers, so a
page on another site can never make the API act with a visitor's cookie.

Every form carries a random token that must equal the ``dphub_csrf`` cookie (the double-submit
pattern) and, when the browser names the page that sent it (``Origin``), that page must be this
hub's. A form from another site has neither.
"""

from __future__ import annotations

import hmac
import secrets
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from dphub.api.deps import HubDep, resolve_principal
from dphub.auth.principal import Principal
from dphub.auth.sso import COOKIE_NAME as SESSION_COOKIE
from dphub.errors import CsrfFailed, DphubError

CSRF_COOKIE = "dphub_csrf"
CSRF_FIELD = "csrf"


async def page_viewer(request: Request, hub: HubDep) -> Principal | None:
    """The signed-in person, or ``None``; an expired or revoked session is simply signed out."""
    token = request.cookies.get(SESSION_COOKIE)
    principal = None
    if token:
        try:
            principal = await run_in_threadpool(resolve_principal, hub, token)
        except DphubError:
            request.state.drop_session = True
    request.state.viewer = principal
    return principal


Viewer = Annotated[Principal | None, Depends(page_viewer)]


def viewer_of(request: Request) -> Principal | None:
    viewer: Principal | None = getattr(request.state, "viewer", None)
    return viewer


def csrf_token(request: Request) -> str:
    """The token forms on this page carry: the browser's, or a new one set with the page."""
    existing = request.cookies.get(CSRF_COOKIE)
    if existing and len(existing) >= 32:
        return existing
    fresh: str | None = getattr(request.state, "new_csrf", None)
    if fresh is None:
        fresh = secrets.token_urlsafe(32)
        request.state.new_csrf = fresh
    return fresh


def check_form(request: Request, form: dict[str, str]) -> None:
    """Refuse a form that did not come from one of this hub's own pages."""
    cookie = request.cookies.get(CSRF_COOKIE, "")
    sent = form.get(CSRF_FIELD, "")
    # compare_digest takes ASCII text only; the tokens are ASCII, so other text is simply wrong
    if not (cookie and sent and cookie.isascii() and sent.isascii()):
        raise CsrfFailed()
    if not hmac.compare_digest(cookie, sent):
        raise CsrfFailed()
    origin = request.headers.get("origin")
    if origin and origin != "null":
        try:
            sent_from = urlsplit(origin)
        except ValueError:  # an Origin no browser sends
            raise CsrfFailed("This form was sent from another site: nothing was changed.") from None
        if (sent_from.scheme, sent_from.netloc) != (request.url.scheme, request.url.netloc):
            raise CsrfFailed("This form was sent from another site: nothing was changed.")


def set_cookie(
    request: Request, response: Response, name: str, value: str, *, max_age: int | None
) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/",
        secure=request.url.scheme == "https" or _base_is_https(request),
        httponly=True,
        samesite="lax",
    )


def _base_is_https(request: Request) -> bool:
    base: str = request.app.state.hub.settings.base_url
    return base.startswith("https://")


def finish(request: Request, response: Response) -> Response:
    """Set the cookies the page decided on: a fresh CSRF token, a dropped stale session."""
    fresh = getattr(request.state, "new_csrf", None)
    if fresh and request.cookies.get(CSRF_COOKIE) != fresh:
        set_cookie(request, response, CSRF_COOKIE, fresh, max_age=None)
    if getattr(request.state, "drop_session", False):
        response.delete_cookie(SESSION_COOKIE, path="/")
    return response
