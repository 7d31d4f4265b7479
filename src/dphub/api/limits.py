"""Bounds on what one request may cost the hub: header and body sizes, and stalls either way.

- Headers larger than ``DPHUB_MAX_HEADER_BYTES`` in total are refused with 431 before any route
  runs.
- A body larger than ``DPHUB_MAX_BODY_BYTES`` is refused with 413: at once when its
  ``Content-Length`` says so, else as soon as that many bytes have arrived. File uploads to the
  hub's own bitstore (``/api/bitstore/``) are exempt: each is bounded by the size its upload grant
  names, which may be far larger.
- A body that stops arriving for ``DPHUB_UPLOAD_IDLE_TIMEOUT`` seconds ends the request with 408;
  the routes that store bodies keep nothing of an unfinished one.
- An answer the client stops taking for ``DPHUB_DOWNLOAD_IDLE_TIMEOUT`` seconds ends with the
  connection closed, so a stalled reader cannot hold a file open forever.

The timeouts bound idleness, not length: a slow but moving transfer of any size goes through.
"""

from __future__ import annotations

import asyncio
import logging

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dphub.api.errors import error_response
from dphub.bitstore.local import MULTIPART_PATH, UPLOAD_PATH
from dphub.config import Settings
from dphub.errors import BodyStalled, DphubError, HeadersTooLarge, PayloadTooLarge

log = logging.getLogger("dphub.api")

GRANT_BOUNDED = (UPLOAD_PATH, MULTIPART_PATH)
"""Paths whose bodies are files, each bounded by its upload grant rather than the body cap."""


class _ClientStalled(Exception):
    """The client took no byte of the answer for the download idle timeout."""


class LimitsMiddleware:
    def __init__(self, app: ASGIApp, *, settings: Settings) -> None:
        self.app = app
        self.max_body = settings.max_body_bytes
        self.max_headers = settings.max_header_bytes
        self.upload_idle = settings.upload_idle_timeout
        self.download_idle = settings.download_idle_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal = self._refusal(scope)
        if refusal is not None:
            await error_response(refusal, headers={"Connection": "close"})(scope, receive, send)
            return
        path: str = scope.get("path", "")
        limit = None if path.startswith(GRANT_BOUNDED) else self.max_body
        received = 0
        body_done = False

        async def bounded_receive() -> Message:
            nonlocal received, body_done
            if body_done:
                # After the body, receive() only waits for the client to go away: no bound.
                return await receive()
            try:
                async with asyncio.timeout(self.upload_idle):
                    message = await receive()
            except TimeoutError:
                raise BodyStalled(
                    f"No byte of the request body arrived for {self.upload_idle:g} seconds;"
                    " nothing of it was kept. Send it again.",
                    timeout=self.upload_idle,
                ) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if limit is not None and received > limit:
                    raise _too_large(limit)
                body_done = not message.get("more_body", False)
            else:
                body_done = True
            return message

        async def bounded_send(message: Message) -> None:
            if message["type"] != "http.response.body":
                await send(message)
                return
            try:
                async with asyncio.timeout(self.download_idle):
                    await send(message)
            except TimeoutError:
                raise _ClientStalled from None

        try:
            await self.app(scope, bounded_receive, bounded_send)
        except _ClientStalled:
            log.warning(
                "closed %s %s: the client took no byte for %g seconds",
                scope.get("method", "-"),
                path,
                self.download_idle,
            )

    def _refusal(self, scope: Scope) -> DphubError | None:
        headers = scope.get("headers") or []
        size = sum(len(name) + len(value) for name, value in headers)
        if size > self.max_headers:
            return HeadersTooLarge(
                f"The request's headers take {size} bytes; the hub accepts at most"
                f" {self.max_headers}.",
                limit=self.max_headers,
            )
        path: str = scope.get("path", "")
        if path.startswith(GRANT_BOUNDED):
            return None
        declared = dict(headers).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_body:
            return _too_large(self.max_body)
        return None


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"The request body is larger than the {limit} bytes the hub reads; files go through an"
        " upload grant (dphub push) instead.",
        limit=limit,
    )
