"""File routes: datapackage.json with hub URLs, resources by name or index, and every stored file.

``/<owner>/<name>/...`` follows the latest successful revision; ``/<owner>/<name>/v/<n>/...`` is pinned
to revision ``n`` and never changes, so it is cached for good. ``/v/<tag>/`` (and ``/v/latest/``) may
name another revision tomorrow (an owner can move a tag), so caches revalidate it.
"""

from __future__ import annotations

from typing import Any, Literal

import orjson
from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from dphub.api import readers
from dphub.api.deps import HubDep, MaybePrincipal
from dphub.api.download import serve_blob
from dphub.api.responses import JSON
from dphub.api.routes.dataproxy import stream_table
from dphub.auth.permissions import Action, needs
from dphub.dataproxy import Options
from dphub.errors import ResourceNotFound
from dphub.hub import Hub
from dphub.metastore.models import RevisionFile
from dphub.metastore.packages import pins_revision
from dphub.web import dataset
from dphub.web.browse import wants_html

router = APIRouter(tags=["files"])

# r/<resource>.json is an array of objects, whether processing derived it or the DataProxy makes
# it on the fly (from its NDJSON, one object per line)
CONVERTED: dict[str, Literal["json", "ndjson", "csv"]] = {
    "json": "ndjson",
    "ndjson": "ndjson",
    "csv": "csv",
}

NOT_MODIFIED = {"description": "Not modified: If-None-Match names the current ETag"}
DESCRIPTOR_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The descriptor, its paths rewritten to the hub's URLs",
        "content": {"application/json": {"schema": {"type": "object"}}},
    },
    304: NOT_MODIFIED,
}
BYTES = {"*/*": {"schema": {"type": "string", "format": "binary"}}}
FILE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "The file's bytes, in the file's own media type", "content": BYTES},
    206: {"description": "The bytes of the requested Range", "content": BYTES},
    302: {"description": "To a short-lived signed URL of the object store (S3 backends)"},
    304: NOT_MODIFIED,
}
PACKAGE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The package as JSON, or its page for a browser (Accept: text/html)",
        "content": {"text/html": {"schema": {"type": "string"}}},
    }
}

IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "public, no-cache"
PRIVATE = "private, no-cache"


def _cache_control(located: readers.Located, pinned: bool) -> str:
    if located.package.findability == "private":
        return PRIVATE
    return IMMUTABLE if pinned else REVALIDATE


def _locate(hub: Hub, principal: Any, owner: str, name: str, ref: str | None) -> readers.Located:
    with hub.sessions() as db:
        return readers.locate(db, principal, owner, name, ref)


async def _descriptor(
    request: Request, hub: Hub, principal: Any, owner: str, name: str, ref: str | None
) -> Response:
    located = await run_in_threadpool(_locate, hub, principal, owner, name, ref)
    body = orjson.dumps(
        readers.public_descriptor(hub.settings.base_url, located), option=orjson.OPT_INDENT_2
    )
    etag = f'"dp-{located.revision.id}-{located.revision.number}"'
    headers = {"ETag": etag, "Cache-Control": _cache_control(located, pins_revision(ref))}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    return Response(body, media_type="application/json", headers=headers)


async def _resource(
    request: Request, hub: Hub, principal: Any, owner: str, name: str, ref: str | None, leaf: str
) -> Response:
    located = await run_in_threadpool(_locate, hub, principal, owner, name, ref)
    try:
        resource, _ = readers.find_resource(located, leaf)
    except ResourceNotFound:
        output = readers.find_output(located, leaf)
        if output is None:
            return await _converted(request, hub, located, leaf, ref)
        return _serve_blob(
            request,
            hub,
            located,
            output.sha256,
            output.size,
            output.media_type,
            leaf,
            pinned=pins_revision(ref),
        )
    path = resource.get("path")
    if "data" in resource and path is None:
        return JSON(
            resource["data"], headers={"Cache-Control": _cache_control(located, pins_revision(ref))}
        )
    if not isinstance(path, str) or path not in located.files:
        raise ResourceNotFound(
            f"Resource {leaf!r} is not one stored file; its files are listed in the package's"
            " 'files' and served under files/<path>."
        )
    return _serve(request, hub, located, located.files[path], pins_revision(ref))


async def _converted(
    request: Request, hub: Hub, located: readers.Located, leaf: str, ref: str | None
) -> Response:
    """``r/<resource>.json|ndjson|csv`` before processing made that file (or when it makes none):
    converted on the fly by the DataProxy, so the link works the moment a push finishes."""
    stem, _, ext = leaf.rpartition(".")
    if ext not in CONVERTED:
        raise ResourceNotFound(f"No resource or derived file {leaf!r} in this revision.")
    resource, _ = readers.find_resource(located, stem)
    path = resource.get("path")
    if not isinstance(path, str) or path not in located.files:
        raise ResourceNotFound(f"Resource {stem!r} is not one stored file.")
    stored = located.files[path]
    url = str(request.url)
    options = Options(format=CONVERTED[ext])
    etag = f'"dp-{stored.sha256[:40]}-{ext}"'
    headers = {"ETag": etag, "Cache-Control": _cache_control(located, pins_revision(ref))}
    return await run_in_threadpool(
        stream_table,
        request,
        hub,
        sha256=stored.sha256,
        filename=path,
        resource=resource,
        options=options,
        url=url,
        headers=headers,
        as_records=ext == "json",
    )


async def _file(
    request: Request, hub: Hub, principal: Any, owner: str, name: str, ref: str | None, path: str
) -> Response:
    located = await run_in_threadpool(_locate, hub, principal, owner, name, ref)
    stored = located.files.get(path)
    if stored is None:
        raise ResourceNotFound(f"No file {path!r} in this revision.")
    return _serve(request, hub, located, stored, pins_revision(ref))


def _serve(
    request: Request, hub: Hub, located: readers.Located, f: RevisionFile, pinned: bool
) -> Response:
    filename = f.path.rsplit("/", 1)[-1]
    return _serve_blob(
        request, hub, located, f.sha256, f.size, f.media_type, filename, pinned=pinned
    )


def _serve_blob(
    request: Request,
    hub: Hub,
    located: readers.Located,
    sha256: str,
    size: int,
    media_type: str,
    filename: str,
    *,
    pinned: bool,
) -> Response:
    return serve_blob(
        request,
        hub.bitstore,
        sha256=sha256,
        size=size,
        media_type=media_type,
        filename=filename,
        cache_control=_cache_control(located, pinned),
        redirect_ttl=hub.settings.download_ttl,
    )


@router.api_route(
    "/{owner}/{name}/datapackage.json",
    methods=["GET", "HEAD"],
    summary="The package descriptor with hub URLs",
    openapi_extra=needs(Action.PACKAGE_READ),
    responses=DESCRIPTOR_RESPONSES,
)
async def descriptor(
    owner: str, name: str, request: Request, hub: HubDep, principal: MaybePrincipal
) -> Response:
    return await _descriptor(request, hub, principal, owner, name, None)


@router.api_route(
    "/{owner}/{name}/v/{ref}/datapackage.json",
    methods=["GET", "HEAD"],
    summary="A revision's descriptor",
    openapi_extra=needs(Action.PACKAGE_READ),
    responses=DESCRIPTOR_RESPONSES,
)
async def descriptor_at(
    owner: str, name: str, ref: str, request: Request, hub: HubDep, principal: MaybePrincipal
) -> Response:
    return await _descriptor(request, hub, principal, owner, name, ref)


@router.api_route(
    "/{owner}/{name}/r/{leaf:path}",
    methods=["GET", "HEAD"],
    summary="A resource by name or index",
    openapi_extra=needs(Action.PACKAGE_READ),
    responses=FILE_RESPONSES,
)
async def resource(
    owner: str, name: str, leaf: str, request: Request, hub: HubDep, principal: MaybePrincipal
) -> Response:
    return await _resource(request, hub, principal, owner, name, None, leaf)


@router.api_route(
    "/{owner}/{name}/v/{ref}/r/{leaf:path}",
    methods=["GET", "HEAD"],
    summary="A revision's resource",
    openapi_extra=needs(Action.PACKAGE_READ),
    responses=FILE_RESPONSES,
)
async def resource_at(
    owner: str,
    name: str,
    ref: str,
    leaf: str,
    request: Request,
    hub: HubDep,
    principal: MaybePrincipal,
) -> Response:
    return await _resource(request, hub, principal, owner, name, ref, leaf)


@router.api_route(
    "/{owner}/{name}/files/{path:path}",
    methods=["GET", "HEAD"],
    summary="A stored file by its path",
    openapi_extra=needs(Action.PACKAGE_READ),
    responses=FILE_RESPONSES,
)
async def file(
    owner: str, name: str, path: str, request: Request, hub: HubDep, principal: MaybePrincipal
) -> Response:
    return await _file(request, hub, principal, owner, name, None, path)


@router.api_route(
    "/{owner}/{name}/v/{ref}/files/{path:path}",
    methods=["GET", "HEAD"],
    summary="A revision's file by its path",
    openapi_extra=needs(Action.PACKAGE_READ),
    responses=FILE_RESPONSES,
)
async def file_at(
    owner: str,
    name: str,
    ref: str,
    path: str,
    request: Request,
    hub: HubDep,
    principal: MaybePrincipal,
) -> Response:
    return await _file(request, hub, principal, owner, name, ref, path)


@router.api_route(
    "/{owner}/{name}",
    methods=["GET", "HEAD"],
    summary="The package, as JSON",
    openapi_extra=needs(Action.PACKAGE_READ),
    responses=PACKAGE_RESPONSES,
)
async def package_page(
    owner: str, name: str, request: Request, hub: HubDep, principal: MaybePrincipal
) -> Response:
    if wants_html(request):
        return await dataset.showcase(request, hub, owner, name)

    def work() -> dict[str, Any]:
        with hub.sessions() as db:
            return readers.package_show(
                hub.settings.base_url, readers.locate(db, principal, owner, name)
            )

    return JSON(await run_in_threadpool(work))
