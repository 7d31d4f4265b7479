"""Reading request bodies with a size limit: a client can never make the hub buffer without bound."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import Request

from dphub.errors import InvalidJson, PayloadTooLarge

MAX_JSON_BODY = 16 * 1024 * 1024


async def read_bounded(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"The body is larger than the {limit} bytes this route accepts.")
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"The body is larger than the {limit} bytes this route accepts.")
        chunks.append(chunk)
    return b"".join(chunks)


async def read_json(request: Request, limit: int = MAX_JSON_BODY) -> Any:
    body = await read_bounded(request, limit)
    if not body.strip():
        raise InvalidJson("The body is empty; send a JSON object.")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidJson(f"The body is not valid JSON: {exc}.") from None
