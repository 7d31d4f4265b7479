"""The API's one edge for errors: every failure leaves as ``{"error": {"code", "message", ...}}``."""

from __future__ import annotations

import logging
from typing import Any

from botocore import exceptions as bc_exc
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException
from starlette.responses import Response

from dphub.api.responses import JSON
from dphub.errors import (
    DphubError,
    InvalidRequest,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    ServiceUnavailable,
    UnsupportedMediaType,
)
from dphub.web.errors import error_page, is_page

log = logging.getLogger("dphub.api")

_BY_STATUS: dict[int, type[DphubError]] = {
    400: InvalidRequest,
    404: NotFound,
    405: MethodNotAllowed,
    413: PayloadTooLarge,
    415: UnsupportedMediaType,
}


def error_response(exc: DphubError, headers: dict[str, str] | None = None) -> JSON:
    headers = dict(headers or {})
    if exc.status == 401:
        headers.setdefault("WWW-Authenticate", 'Bearer realm="dphub"')
    retry_after = exc.details.get("retry_after")
    if exc.status in (429, 503) and isinstance(retry_after, int):
        headers.setdefault("Retry-After", str(retry_after))
    return JSON(exc.to_body(), status_code=exc.status, headers=headers)


def respond(request: Request, exc: DphubError, headers: dict[str, str] | None = None) -> Response:
    """The error as JSON, or as a page when a web page failed."""
    if is_page(request):
        return error_page(request, exc, headers)
    return error_response(exc, headers)


async def _dphub_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, DphubError)
    if exc.status in (401, 403, 429) or exc.refused:
        # refusals are security events: who was refused what (the path, never its query string,
        # which may carry a token)
        client = request.client.host if request.client else "-"
        log.warning("refused %s %s from %s: %s", request.method, request.url.path, client, exc.code)
    return respond(request, exc)


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    problems = [_problem(e) for e in exc.errors()]
    first = problems[0] if problems else {"location": "", "message": "invalid"}
    message = f"{first['location']}: {first['message']}" if first["location"] else first["message"]
    return respond(
        request, InvalidRequest(f"The request is not valid: {message}.", problems=problems)
    )


def _problem(error: Any) -> dict[str, str]:
    location = ".".join(str(part) for part in error.get("loc", ()) if part != "body")
    return {"location": location, "message": str(error.get("msg", "invalid"))}


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    cls = _BY_STATUS.get(exc.status_code, DphubError)
    message = cls.default_message if exc.status_code in _BY_STATUS else str(exc.detail)
    body_exc = cls(message)
    if is_page(request) and exc.status_code in _BY_STATUS:
        return error_page(request, body_exc, dict(exc.headers or {}))
    response = JSON(
        {"error": {"code": body_exc.code, "message": body_exc.message}},
        status_code=exc.status_code,
        headers=exc.headers,
    )
    return response


async def _metastore_down(request: Request, exc: Exception) -> JSON:
    log.warning("metastore unavailable on %s %s: %s", request.method, request.url.path, exc)
    unavailable = ServiceUnavailable(
        "The hub's database cannot be reached right now; nothing was changed. Try again shortly.",
        component="metastore",
    )
    return error_response(unavailable, headers={"Retry-After": "5"})


async def _bitstore_down(request: Request, exc: Exception) -> JSON:
    log.warning("bitstore unavailable on %s %s: %s", request.method, request.url.path, exc)
    unavailable = ServiceUnavailable(
        "The hub's object storage cannot be reached right now; nothing was changed."
        " Try again shortly.",
        component="bitstore",
    )
    return error_response(unavailable, headers={"Retry-After": "5"})


async def _unexpected(request: Request, exc: Exception) -> JSON:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(DphubError())


def install(app: FastAPI) -> None:
    app.add_exception_handler(DphubError, _dphub_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    for failure in (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.TimeoutError):
        app.add_exception_handler(failure, _metastore_down)
    for failure in (bc_exc.EndpointConnectionError, bc_exc.ConnectionClosedError):
        app.add_exception_handler(failure, _bitstore_down)
    app.add_exception_handler(Exception, _unexpected)
