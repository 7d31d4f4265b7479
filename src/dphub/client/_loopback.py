"""The browser login's receiving end: a one-shot HTTP server on 127.0.0.1 that waits for the hub to
send the browser back with a one-time code.

The address it gives the hub as ``next`` carries a random ``session`` value; only a request bringing
that value back is taken, so another web page cannot slip its own code into the login.
"""

from __future__ import annotations

import hmac
import secrets
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

CALLBACK_PATH = "/callback"
_DONE_PAGE = b"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>dphub: logged in</title></head>
<body style="font-family: sans-serif; margin: 4em auto; max-width: 32em">
<h1>You are logged in</h1>
<p>The <code>dphub</code> command line has received your login. You can close this tab.</p>
</body></html>
"""
_REFUSED_PAGE = b"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>dphub: not this login</title></head>
<body style="font-family: sans-serif; margin: 4em auto; max-width: 32em">
<h1>This is not the login the command line is waiting for</h1>
<p>Run <code>dphub login --browser</code> again and use the address it prints.</p>
</body></html>
"""


class LoopbackReceiver:
    """Listens on a random port of 127.0.0.1 until one code arrives (or it is closed)."""

    def __init__(self) -> None:
        self._session = secrets.token_urlsafe(16)
        self._code: str | None = None
        self._arrived = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                receiver._handle(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # the URL holds the one-time code: never print it

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="dphub-login-receiver", daemon=True
        )
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def next_url(self) -> str:
        """Where the hub should send the browser once the login is done."""
        return f"http://127.0.0.1:{self.port}{CALLBACK_PATH}?session={self._session}"

    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(request.path)
        query = parse_qs(parts.query)
        session = query.get("session", [""])[0]
        code = query.get("code", [""])[0]
        accepted = (
            parts.path == CALLBACK_PATH
            and bool(code)
            and hmac.compare_digest(session.encode(), self._session.encode())
            and not self._arrived.is_set()
        )
        if accepted:
            self._code = code
        page = _DONE_PAGE if accepted else _REFUSED_PAGE
        request.send_response(200 if accepted else 400)
        request.send_header("Content-Type", "text/html; charset=utf-8")
        request.send_header("Content-Length", str(len(page)))
        request.send_header("Cache-Control", "no-store")
        request.send_header("Referrer-Policy", "no-referrer")
        request.end_headers()
        request.wfile.write(page)
        if accepted:
            self._arrived.set()

    def wait(self, timeout: float) -> str | None:
        """The code, or ``None`` when none came within ``timeout`` seconds."""
        if not self._arrived.wait(timeout):
            return None
        return self._code

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> LoopbackReceiver:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
