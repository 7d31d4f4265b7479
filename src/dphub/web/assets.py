"""The pages' own CSS, JavaScript and the chart library, shipped inside the package (no CDN: a hub
works offline). Each is addressed with its content hash, so browsers may keep it for a year."""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path

from fastapi import APIRouter, Request
from starlette.responses import Response

from dphub.auth.permissions import Action, needs
from dphub.errors import NotFound

router = APIRouter(tags=["web"], include_in_schema=False)

STATIC = Path(__file__).parent / "static"
TYPES = {
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
    ".txt": "text/plain; charset=utf-8",
    ".png": "image/png",
}


@cache
def _load(path: str) -> tuple[bytes, str] | None:
    """The file's bytes and hash; only files directly under ``static/`` or ``static/vendor/``."""
    parts = path.split("/")
    if not 1 <= len(parts) <= 2 or any(p in ("", ".", "..") or p.startswith(".") for p in parts):
        return None
    file = STATIC.joinpath(*parts)
    if file.suffix not in TYPES or not file.is_file():
        return None
    data = file.read_bytes()
    return data, hashlib.sha256(data).hexdigest()[:16]


def asset_url(path: str) -> str:
    """``/static/<path>?v=<hash>``: the address templates link to."""
    found = _load(path)
    if found is None:
        raise ValueError(f"no static asset {path!r}")
    return f"/static/{path}?v={found[1]}"


@router.get("/static/{path:path}", openapi_extra=needs(Action.PUBLIC))
async def asset(path: str, request: Request) -> Response:
    found = _load(path)
    if found is None:
        raise NotFound(f"No asset {path!r}.")
    data, digest = found
    etag = f'"{digest}"'
    versioned = request.query_params.get("v") == digest
    headers = {
        "ETag": etag,
        "Cache-Control": "public, max-age=31536000, immutable"
        if versioned
        else "public, max-age=300",
        "X-Content-Type-Options": "nosniff",
    }
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    return Response(data, media_type=TYPES[Path(path).suffix], headers=headers)
