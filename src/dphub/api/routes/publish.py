"""The publishing flow over HTTP: authorize (negotiate), upload (to the bitstore), finalize (commit)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from dphub import failpoints
from dphub.api.body import read_json
from dphub.api.deps import CurrentPrincipal, HubDep
from dphub.api.formupload import FormUpload, boundary_of
from dphub.api.responses import JSON
from dphub.auth.permissions import Action, needs
from dphub.auth.principal import Principal
from dphub.bitstore import BlobInfo, BlobWriter
from dphub.bitstore.local import UPLOAD_PATH
from dphub.errors import InvalidRequest
from dphub.hub import Hub
from dphub.ingest import finalize as finalize_service
from dphub.ingest import uploads
from dphub.metastore.db import transaction

router = APIRouter(tags=["publish"])

# Disk writes and hashing happen off the event loop, a batch of this many bytes at a time.
BATCH = 1024 * 1024
STATUS_FOR_ACTION = {"200": 200, "201": 201, "204": 204}


def _object_body(body: Any, *, shape: str) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise InvalidRequest(f"Send a JSON object: {shape}.")
    return body


@router.post(
    "/api/datastore/authorize",
    summary="Authorize the upload of a package's files",
    openapi_extra=needs(Action.PACKAGE_PUSH),
)
async def authorize(request: Request, hub: HubDep, principal: CurrentPrincipal) -> JSON:
    return await grant_uploads(request, hub, principal)


async def grant_uploads(request: Request, hub: Hub, principal: Principal) -> JSON:
    """The upload grants for the files of the request's ``{metadata, filedata}`` (also DataHub's
    ``/rawstore/authorize``, whose ``metadata.owner`` names the publisher the same way)."""
    body = _object_body(
        await read_json(request), shape='{"metadata": {"owner", "name"}, "filedata": {...}}'
    )
    parsed = uploads.parse_authorize_body(body)

    def work() -> dict[str, Any]:
        with transaction(hub.sessions) as db:
            return uploads.authorize(
                db,
                principal=principal,
                settings=hub.settings,
                bitstore=hub.bitstore,
                request=parsed,
            )

    return JSON(await run_in_threadpool(work), headers={"Cache-Control": "no-store"})


@router.post(
    "/api/package/upload",
    summary="Finalize a push: create the package's new revision",
    openapi_extra=needs(Action.UPLOAD_OWN),
)
async def finalize(request: Request, hub: HubDep, principal: CurrentPrincipal) -> JSON:
    body = _object_body(await read_json(request), shape='{"datapackage": "<upload_url>/<key>"}')
    done = await run_in_threadpool(
        finalize_service.finalize,
        hub.sessions,
        principal=principal,
        settings=hub.settings,
        bitstore=hub.bitstore,
        datapackage_url=body.get("datapackage"),
    )
    base = hub.settings.base_url
    return JSON(
        {
            "status": "queued",
            "success": True,
            "id": f"{done.owner}/{done.name}",
            "owner": done.owner,
            "name": done.name,
            "revision": done.revision,
            "state": done.state,
            "unchanged": done.unchanged,
            "status_url": f"{base}/api/package/{done.owner}/{done.name}/revisions/{done.revision}",
            "package_url": f"{base}/{done.owner}/{done.name}",
        }
    )


async def pump(request: Request, sink: Callable[[bytes], None]) -> None:
    """Hand the body to a blocking ``sink`` in batches, each in a worker thread."""
    batch = bytearray()
    first = True
    async for chunk in request.stream():
        batch += chunk
        if len(batch) >= BATCH:
            await run_in_threadpool(sink, bytes(batch))
            batch.clear()
            if first:
                first = False
                failpoints.hit("upload.in_flight")
    await run_in_threadpool(sink, bytes(batch))


def _check_key(hub: Hub, key: str) -> None:
    with hub.sessions() as db:
        uploads.open_session_file(db, key)


def _record(hub: Hub, key: str, info: BlobInfo) -> None:
    with transaction(hub.sessions) as db:
        uploads.record_received(db, key=key, blob=info)


@router.post(
    UPLOAD_PATH,
    status_code=204,
    summary="Upload one file with a presigned POST form (upload_query fields, then file)",
    responses={
        200: {"description": "Stored (the form's success_action_status was 200)."},
        201: {"description": "Stored (the form's success_action_status was 201)."},
    },
    openapi_extra=needs(Action.SIGNED_UPLOAD),
)
async def upload_form(request: Request, hub: HubDep) -> Response:
    receiver = FormUpload(
        boundary=boundary_of(request.headers.get("content-type", "")),
        signer=hub.signer,
        bitstore=hub.bitstore,
        check_key=lambda key: _check_key(hub, key),
    )
    try:
        await pump(request, receiver.feed)
        grant, info = await run_in_threadpool(receiver.finish)
    finally:
        receiver.abort()
    await run_in_threadpool(_record, hub, grant.key, info)
    status = STATUS_FOR_ACTION.get(receiver.fields.get("success_action_status", ""), 204)
    return Response(status_code=status)


@router.put(
    UPLOAD_PATH + "/{key:path}",
    status_code=204,
    summary="Upload one file's raw body to its presigned PUT URL",
    openapi_extra=needs(Action.SIGNED_UPLOAD),
)
async def upload_put(key: str, request: Request, hub: HubDep) -> Response:
    length = request.headers.get("content-length")
    grant = hub.signer.check_put(
        key=key,
        query=request.query_params,
        headers=request.headers,
        size=int(length) if length and length.isdigit() else None,
    )
    await run_in_threadpool(_check_key, hub, key)
    writer: BlobWriter = await run_in_threadpool(hub.bitstore.writer, expected_size=grant.size)
    try:
        await pump(request, writer.write)
        info = await run_in_threadpool(writer.commit, sha256=grant.sha256_hex)
    finally:
        writer.abort()
    await run_in_threadpool(_record, hub, key, info)
    return Response(status_code=204)
