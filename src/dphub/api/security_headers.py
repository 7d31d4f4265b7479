"""Headers every answer carries, unless its route set its own:

- ``X-Content-Type-Options: nosniff``: a browser never guesses a type from the bytes, so a
  published file cannot be turned into a script or a page;
- ``Referrer-Policy`` (``DPHUB_REFERRER_POLICY``): API answers leak no URL to the sites they
  link; the web pages set ``same-origin`` themselves;
- ``Strict-Transport-Security`` (``DPHUB_HSTS_MAX_AGE``) when the hub is reached over HTTPS:
  the request's own scheme (behind a trusted proxy, its ``X-Forwarded-Proto``), or an https
  ``DPHUB_BASE_URL``. Browsers ignore the header over plain HTTP, so it is not sent there.
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dphub.config import Settings


class SecurityHeadersMiddleware:
    def __init__(self, app: ASGIApp, *, settings: Settings) -> None:
        self.app = app
        self.defaults = {
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": settings.referrer_policy,
        }
        self.hsts = f"max-age={settings.hsts_max_age}" if settings.hsts_max_age else None
        self.https_base = settings.base_url.startswith("https://")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        hsts = self.hsts if self.https_base or scope.get("scheme") == "https" else None

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in self.defaults.items():
                    headers.setdefault(name, value)
                if hsts is not None:
                    headers.setdefault("Strict-Transport-Security", hsts)
            await send(message)

        await self.app(scope, receive, with_headers)
