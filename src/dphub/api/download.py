"""Serving a blob: ETag from its SHA-256, ``If-None-Match``, and byte ranges."""

from __future__ import annotations

import re
from urllib.parse import quote

from fastapi import Request
from starlette.responses import FileResponse, RedirectResponse, Response, StreamingResponse

from dphub.bitstore import BitStore
from dphub.errors import RangeNotSatisfiable, ResourceNotFound

RANGE = re.compile(r"^bytes=\s*(\d*)\s*-\s*(\d*)\s*$")


def _etag_matches(header: str | None, etag: str) -> bool:
    if not header:
        return False
    candidates = [c.strip().removeprefix("W/") for c in header.split(",")]
    return "*" in candidates or etag in candidates


def check_range(header: str | None, size: int) -> None:
    """Refuse, as JSON, the ranges no byte of the file satisfies; well-formed ones pass on."""
    if not header or "," in header:
        return
    match = RANGE.match(header)
    if match is None:
        return
    first, last = match.groups()
    if first and int(first) >= size:
        raise RangeNotSatisfiable(
            f"The range starts at byte {first} but the file has {size} bytes.", size=size
        )
    if not first and last == "0":
        raise RangeNotSatisfiable("A suffix range of zero bytes selects nothing.", size=size)
    if not first and not last:
        raise RangeNotSatisfiable("The range names no byte.", size=size)


def serve_blob(
    request: Request,
    bitstore: BitStore,
    *,
    sha256: str,
    size: int,
    media_type: str,
    filename: str,
    cache_control: str,
    redirect_ttl: int,
) -> Response:
    etag = f'"{sha256}"'
    headers = {
        "ETag": etag,
        "Cache-Control": cache_control,
        "Accept-Ranges": "bytes",
        "Content-Disposition": f"inline; filename*=UTF-8''{quote(filename)}",
        "X-Content-Type-Options": "nosniff",
    }
    if _etag_matches(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers=headers)
    redirect = bitstore.download_url(
        sha256, filename=filename, media_type=media_type, ttl=redirect_ttl
    )
    if redirect is not None and request.method == "HEAD":
        # A presigned URL is signed for GET alone, so the store would refuse a HEAD sent on to it;
        # the size and type are known here, and tools that size a file first (DuckDB's httpfs,
        # curl -I) get them from the hub.
        head = Response(status_code=200, headers={**headers, "Content-Length": str(size)})
        head.headers["content-type"] = media_type
        return head
    if redirect is not None:
        # The store serves the bytes (with Range) itself; the signed URL must not be cached.
        return RedirectResponse(
            redirect, status_code=302, headers={"ETag": etag, "Cache-Control": "no-store"}
        )
    path = bitstore.local_path(sha256)
    if path is not None:
        if size == 0:
            return Response(b"", media_type=media_type, headers=headers)
        check_range(request.headers.get("range"), size)
        response: Response = FileResponse(path, media_type=media_type, headers=headers)
    elif bitstore.size(sha256) is None:
        raise ResourceNotFound("The file's bytes are missing from the bitstore.")
    else:
        response = StreamingResponse(bitstore.read(sha256), media_type=media_type, headers=headers)
    # Starlette would add "charset=utf-8" to text types; a published file's encoding is its own.
    response.headers["content-type"] = media_type
    return response
