"""Cross-origin calls from browser apps, for the origins the operator lists in ``DPHUB_CORS_ORIGINS``.

Credentials are never allowed: a browser app sends its token in a header (``Authorization`` or
``Auth-Token``), never the hub's session cookie, so a page on another origin can act only with a
token its user gave it, and the answers it reads are those that token may see.
"""

from __future__ import annotations

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware

from dphub.bitstore.signing import SHA256_FIELD
from dphub.config import Settings

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
# What the hub's own clients send: tokens, JSON bodies, byte ranges and revalidation of reads,
# and the checksum of a presigned PUT to the hub's own bitstore.
REQUEST_HEADERS = (
    "Authorization",
    "Auth-Token",
    "Content-Type",
    "Range",
    "If-None-Match",
    SHA256_FIELD,
)
# What a script needs to read back: caching and ranges of files, the file name, and how long to
# wait after a refusal for too many attempts.
RESPONSE_HEADERS = (
    "ETag",
    "Content-Length",
    "Content-Range",
    "Accept-Ranges",
    "Content-Disposition",
    "Retry-After",
    "X-Request-Id",
)


def install(app: FastAPI, settings: Settings) -> None:
    """Answer CORS preflights and mark answers readable by the listed origins; without any listed
    origin the hub sends no CORS header, and browsers keep other origins' pages out."""
    origins = settings.cors_origins_list
    if not origins:
        return
    app.add_middleware(
        CORSMiddleware,
        allow_origins=origins,
        allow_methods=METHODS,
        allow_headers=REQUEST_HEADERS,
        expose_headers=RESPONSE_HEADERS,
        allow_credentials=False,
    )
