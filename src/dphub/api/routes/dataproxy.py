"""``GET /api/dataproxy``: a hub file (or an allowed outside URL) as JSON, NDJSON or CSV, streamed.

The conversion starts on the first request, before or without processing, and never holds the file
or the answer in memory. A revision's bytes never change, so answers about them carry an ETag made
of the blob's hash and the options, and are cached like the files they come from.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import zlib
from collections.abc import Iterator
from pathlib import Path

from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response, StreamingResponse

from dphub.api import proxied
from dphub.api.deps import HubDep, MaybePrincipal
from dphub.auth.permissions import Action, needs
from dphub.dataproxy import Options, open_table
from dphub.errors import InvalidRequest
from dphub.hub import Hub
from dphub.pipeline.outputs import materialize

router = APIRouter(tags=["dataproxy"])

MEDIA_TYPES = {
    "json": "application/json",
    "ndjson": "application/x-ndjson",
    "csv": "text/csv; charset=utf-8",
}
FORMATS = tuple(MEDIA_TYPES)


def _gzip(chunks: Iterator[bytes]) -> Iterator[bytes]:
    packer = zlib.compressobj(6, zlib.DEFLATED, 31)  # 31: a gzip header and trailer
    for chunk in chunks:
        packed = packer.compress(chunk)
        if packed:
            yield packed
    yield packer.flush()


def as_array(lines: Iterator[bytes]) -> Iterator[bytes]:
    """NDJSON (one object per line) rewritten on the fly as one JSON array of those objects."""
    yield b"["
    pending, started = b"", False
    for chunk in lines:
        data = pending + chunk
        cut = data.rfind(b"\n")
        if cut < 0:
            pending = data
            continue
        head, pending = data[:cut], data[cut + 1 :]
        if head:
            yield (b",\n" if started else b"") + head.replace(b"\n", b",\n")
            started = True
    if pending.strip():
        yield (b",\n" if started else b"") + pending
    yield b"]\n"


def _cleanup(chunks: Iterator[bytes], workdir: Path) -> Iterator[bytes]:
    try:
        yield from chunks
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _workdir(hub: Hub) -> Path:
    root = hub.settings.data_dir / "work"
    root.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix="dataproxy-", dir=root))


def _options(
    fmt: str,
    limit: int | None,
    offset: int,
    fields: str | None,
    encoding: str | None,
    delimiter: str | None,
    sheet: str | None,
    header: bool,
) -> Options:
    if fmt not in FORMATS:
        raise InvalidRequest(
            f"format {fmt!r} is not one the DataProxy writes: use json, ndjson or csv."
        )
    chosen = tuple(f.strip() for f in fields.split(",") if f.strip()) if fields else None
    sheet_ref: str | int | None = sheet
    if sheet is not None and sheet.isascii() and sheet.isdigit():
        sheet_ref = int(sheet)
    return Options(
        format=fmt,  # type: ignore[arg-type]
        limit=limit,
        offset=offset,
        fields=chosen,
        encoding=encoding,
        delimiter=delimiter,
        sheet=sheet_ref,
        header=header,
    )


@router.get(
    "/api/dataproxy",
    summary="A tabular file as JSON, NDJSON or CSV, streamed",
    openapi_extra=needs(Action.PACKAGE_READ),
    responses={
        200: {
            "description": "The rows, in the format asked for",
            "content": {media: {"schema": {}} for media in MEDIA_TYPES.values()},
        },
        304: {"description": "Not modified: If-None-Match names the current ETag"},
    },
)
async def dataproxy(
    request: Request,
    hub: HubDep,
    principal: MaybePrincipal,
    url: str = Query(description="A hub URL of a resource or file (or an allowed outside URL)."),
    format: str = Query(default="json", description="json, ndjson or csv"),
    limit: int | None = Query(default=None, ge=0, description="Rows to answer (default: all)."),
    max_results: int | None = Query(
        default=None, ge=0, alias="max-results", description="The original DataProxy's limit."
    ),
    offset: int = Query(default=0, ge=0, description="Rows to skip."),
    fields: str | None = Query(default=None, description="Columns to answer, comma separated."),
    encoding: str | None = Query(
        default=None, description="The file's encoding (default: detected)."
    ),
    delimiter: str | None = Query(default=None, description="CSV delimiter (default: sniffed)."),
    sheet: str | None = Query(default=None, description="XLSX sheet: a name or a 1-based index."),
    header: bool = Query(default=True, description="The first row holds the column names."),
) -> Response:
    options = _options(
        format,
        limit if limit is not None else max_results,
        offset,
        fields,
        encoding,
        delimiter,
        sheet,
        header,
    )
    return await run_in_threadpool(_answer, request, hub, principal, url, options)


def _answer(request: Request, hub: Hub, principal: object, url: str, options: Options) -> Response:
    path = proxied.hub_path(hub, url)
    if path is None:
        return _outside(request, hub, url, options)
    source = proxied.locate_source(hub, principal, path)  # type: ignore[arg-type]
    resource = source.resource
    if resource is not None and options.sheet is not None:
        # another sheet than the resource's: its schema describes different columns
        resource = {k: v for k, v in resource.items() if k != "schema"}
    etag = '"dp-' + hashlib.sha256(f"{source.sha256}|{options!r}".encode()).hexdigest()[:40] + '"'
    cache = (
        "private, no-cache"
        if source.private
        else ("public, max-age=31536000, immutable" if source.pinned else "public, no-cache")
    )
    return stream_table(
        request,
        hub,
        sha256=source.sha256,
        filename=source.filename,
        resource=resource,
        options=options,
        url=url,
        headers={"ETag": etag, "Cache-Control": cache},
    )


def stream_table(
    request: Request,
    hub: Hub,
    *,
    sha256: str,
    filename: str,
    resource: dict[str, object] | None,
    options: Options,
    url: str,
    headers: dict[str, str],
    as_records: bool = False,
) -> Response:
    """The converted table as a streamed response (shared with the read routes); ``as_records``
    turns NDJSON into one JSON array of objects."""
    headers = {**headers, "X-Content-Type-Options": "nosniff", "Vary": "Accept-Encoding"}
    wanted = request.headers.get("if-none-match")
    if wanted and headers.get("ETag") in [c.strip().removeprefix("W/") for c in wanted.split(",")]:
        return Response(status_code=304, headers=headers)
    workdir = _workdir(hub)
    try:
        local = materialize(hub.bitstore, sha256, workdir=workdir, name=filename)
        prepared = open_table(
            local, resource, name=filename, options=options, workdir=workdir, url=url
        )
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    chunks = as_array(prepared.chunks()) if as_records else prepared.chunks()
    media_type = MEDIA_TYPES["json" if as_records else options.format]
    return _respond(request, chunks, workdir, media_type, headers)


def _respond(
    request: Request,
    chunks: Iterator[bytes],
    workdir: Path,
    media_type: str,
    headers: dict[str, str],
) -> StreamingResponse:
    body = _cleanup(chunks, workdir)
    if "gzip" in request.headers.get("accept-encoding", "").lower():
        body = _gzip(body)
        headers = {**headers, "Content-Encoding": "gzip"}
    return StreamingResponse(body, media_type=media_type, headers=headers)


def _outside(request: Request, hub: Hub, url: str, options: Options) -> Response:
    from dphub.dataproxy.remote import fetch

    allowed = hub.settings.dataproxy_allowed_hosts_list
    proxied.check_outside(allowed)
    workdir = _workdir(hub)
    try:
        fetched = fetch(
            url,
            allowed_hosts=allowed,
            workdir=workdir,
            max_bytes=hub.settings.dataproxy_max_bytes,
            timeout=hub.settings.dataproxy_timeout,
        )
        name = urlsplit_name(fetched.url)
        prepared = open_table(
            fetched.path, None, name=name, options=options, workdir=workdir, url=url
        )
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    headers = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
    return _respond(request, prepared.chunks(), workdir, MEDIA_TYPES[options.format], headers)


def urlsplit_name(url: str) -> str:
    from urllib.parse import urlsplit

    leaf = urlsplit(url).path.rsplit("/", 1)[-1]
    return leaf or "download"
