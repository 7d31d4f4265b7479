"""Multipart uploads: parts to the hub's own store, and the status and complete calls for any store."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from dphub.api.deps import CurrentPrincipal, HubDep
from dphub.api.responses import JSON
from dphub.api.routes.publish import pump
from dphub.auth.permissions import Action, needs
from dphub.bitstore.local import MULTIPART_PATH, LocalBitStore, LocalPartWriter
from dphub.bitstore.signing import PartSigner
from dphub.errors import NotFound
from dphub.ingest import multipart

router = APIRouter(prefix=MULTIPART_PATH, tags=["publish"])

MAX_PART_NUMBER = 10_000


@router.put(
    "/{upload_id}/{number}",
    status_code=204,
    summary="Upload one part of a multipart upload to its signed URL (hub's own store)",
    openapi_extra=needs(Action.SIGNED_UPLOAD),
)
async def upload_part(upload_id: str, number: int, request: Request, hub: HubDep) -> Response:
    store = hub.bitstore
    if not isinstance(store, LocalBitStore) or not 0 < number <= MAX_PART_NUMBER:
        raise NotFound("No such multipart upload part here.")
    length = request.headers.get("content-length")
    size = PartSigner(hub.signer).check(
        upload_id,
        number,
        query=request.query_params,
        size=int(length) if length and length.isdigit() else None,
    )
    writer: LocalPartWriter = await run_in_threadpool(store.part_writer, upload_id, number, size)
    try:
        await pump(request, writer.write)
        await run_in_threadpool(writer.commit)
    finally:
        writer.abort()
    return Response(status_code=204)


@router.get(
    "/{upload_id}",
    summary="Which parts of a multipart upload the store holds",
    openapi_extra=needs(Action.UPLOAD_OWN),
)
async def upload_status(upload_id: str, hub: HubDep, principal: CurrentPrincipal) -> JSON:
    def work() -> dict[str, Any]:
        return multipart.status(
            hub.sessions, principal=principal, bitstore=hub.bitstore, upload_id=upload_id
        )

    return JSON(await run_in_threadpool(work))


@router.post(
    "/{upload_id}/complete",
    summary="Join the parts, verify the file's SHA-256 and file it under that hash",
    openapi_extra=needs(Action.UPLOAD_OWN),
)
async def complete(upload_id: str, hub: HubDep, principal: CurrentPrincipal) -> JSON:
    blob = await run_in_threadpool(
        lambda: multipart.complete(
            hub.sessions, principal=principal, bitstore=hub.bitstore, upload_id=upload_id
        )
    )
    return JSON({"upload_id": upload_id, "sha256": blob.sha256, "size": blob.size})
