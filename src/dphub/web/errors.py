"""Errors on the web pages: the same codes and sentences as the API, as a page a person reads."""

from __future__ import annotations

from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from dphub.errors import DphubError
from dphub.web.render import page
from dphub.web.session import finish

TITLES = {
    400: "That request is not right",
    401: "Sign in to continue",
    403: "Not allowed",
    404: "Not found",
    405: "Not allowed here",
    408: "That took too long",
    409: "Not possible right now",
    413: "Too large",
    415: "Not accepted",
    429: "Slow down",
    503: "Unavailable for a moment",
}


def is_page(request: Request) -> bool:
    """Whether the request was routed to one of the web pages."""
    route = request.scope.get("route")
    return "web" in (getattr(route, "tags", None) or ())


def error_page(
    request: Request, exc: DphubError, headers: dict[str, str] | None = None
) -> Response:
    """A page for ``exc``; a signed-out visitor asking for a page that needs an account is sent to
    the login page, and comes back after it."""
    if exc.status == 401 and request.method == "GET":
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return finish(request, RedirectResponse(f"/login?next={quote(target)}", status_code=303))
    context = {
        "title": TITLES.get(exc.status, "Something went wrong"),
        "status": exc.status,
        "code": exc.code,
        "message": exc.message,
    }
    response = page(request, "error.html", context, status_code=exc.status)
    response.headers.update(
        {k: v for k, v in (headers or {}).items() if k.lower() != "www-authenticate"}
    )
    return response
