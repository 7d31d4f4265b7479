"""Upload sessions: what ``/api/datastore/authorize`` promises, and the bytes that arrive for it.

Authorize is the *negotiate* phase of a push: it says which files the hub already holds (by SHA-256,
and only when the requester could already read those bytes) and signs an upload for each of the rest.
Every file of the session gets a key ``<session id>/<path>``; finalize finds the session from the key of
the uploaded ``datapackage.json``.
"""

from __future__ import annotations

import mimetypes
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from dphub.auth.permissions import Action, require
from dphub.auth.principal import Principal
from dphub.auth.roles import new_package_ref
from dphub.bitstore import BitStore, BlobInfo
from dphub.bitstore.signing import UploadGrant, hex_to_b64, md5_b64_to_hex
from dphub.config import FINDABILITIES, Settings
from dphub.errors import InvalidRequest, TooManyUploads, UploadSessionNotFound
from dphub.ingest import multipart
from dphub.lifecycle import quotas
from dphub.lifecycle.delete import refuse_deleted
from dphub.metastore import references
from dphub.metastore.models import UploadSession, UploadSessionFile
from dphub.metastore.packages import blob_readable_by, find_package, known_md5
from dphub.names import check_name, check_path, check_publisher_name

SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
MAX_FILES_PER_SESSION = 10_000
DESCRIPTOR_PATH = "datapackage.json"


@dataclass(frozen=True)
class FileSpec:
    path: str
    size: int
    md5_b64: str | None
    sha256: str | None
    media_type: str


@dataclass(frozen=True)
class AuthorizeRequest:
    owner: str | None
    name: str | None
    findability: str | None
    files: list[FileSpec]


def guess_media_type(path: str) -> str:
    return mimetypes.guess_type(path, strict=False)[0] or "application/octet-stream"


def split_key(key: str) -> tuple[str, str]:
    session_id, _, path = key.partition("/")
    if not session_id or not path:
        raise UploadSessionNotFound(f"{key!r} is not the key of an upload session's file.")
    return session_id, path


def authorize(
    db: Session,
    *,
    principal: Principal,
    settings: Settings,
    bitstore: BitStore,
    request: AuthorizeRequest,
) -> dict[str, Any]:
    owner = check_publisher_name(request.owner or principal.username)
    name = check_name(request.name, what="package name") if request.name else None
    package = find_package(db, owner, name) if name else None
    require(
        principal, Action.PACKAGE_PUSH, new_package_ref(db, principal, owner, name or "", package)
    )
    if name is not None and package is None:
        refuse_deleted(db, owner, name)
    if request.findability is not None and request.findability not in FINDABILITIES:
        raise InvalidRequest(
            f"findability must be one of {', '.join(FINDABILITIES)}.", field="findability"
        )
    if not request.files:
        raise InvalidRequest("filedata lists no file to upload.", field="filedata")
    if len(request.files) > MAX_FILES_PER_SESSION:
        raise InvalidRequest(f"A push may hold at most {MAX_FILES_PER_SESSION} files.")
    for spec in request.files:
        check_path(spec.path)
        if spec.size > settings.max_upload_bytes:
            raise InvalidRequest(
                f"{spec.path} is larger than the {settings.max_upload_bytes} bytes this hub takes.",
                path=spec.path,
            )

    check_open_uploads(db, owner, settings)
    quotas.check_push(
        db,
        owner=owner,
        package=package,
        creates=name is not None and package is None,
        findability=request.findability
        or (package.findability if package is not None else settings.default_findability),
        files=[quotas.PushedFile(spec.sha256, spec.size) for spec in request.files],
    )

    now = datetime.now(UTC)
    upload = UploadSession(
        id=secrets.token_urlsafe(18),
        owner=owner,
        name=name,
        findability=request.findability,
        user_id=principal.user_id,
        created_at=now,
        expires_at=now + timedelta(seconds=settings.session_ttl),
    )
    db.add(upload)
    db.flush()
    # Whether the store holds a file is asked under the blobs' locks, so that a purge or a gc
    # cannot delete bytes between this answer and the session's record of them.
    references.hold(db, (spec.sha256 for spec in request.files if spec.sha256 is not None))
    expires_at = int(time.time()) + settings.upload_ttl
    answer: dict[str, Any] = {}
    for spec in request.files:
        stored = spec.sha256 is not None and bitstore.size(spec.sha256) == spec.size
        held = _held_by_hub(db, spec, principal) if stored else None
        row = UploadSessionFile(
            session_id=upload.id,
            path=spec.path,
            size=spec.size,
            md5=_md5_hex(spec.md5_b64),
            sha256=spec.sha256,
            media_type=spec.media_type,
            # The descriptor goes to a key of the session, so that the URL finalize is called
            # with names the session; so does anything without a SHA-256 to file it under, and
            # bytes the store holds but the requester may not read: they must prove they have
            # them by uploading, never by naming the hash.
            staged=spec.sha256 is None or spec.path == DESCRIPTOR_PATH or (stored and not held),
        )
        if held is not None:
            row.received_sha256, row.received_md5, row.received_at = held.sha256, held.md5, now
        db.add(row)
        grant = grant_for(row)
        target = bitstore.upload_target(grant, expires_at=expires_at)
        entry: dict[str, Any] = {
            "name": spec.path.rsplit("/", 1)[-1],
            "md5": spec.md5_b64,
            "sha256": spec.sha256,
            "size": spec.size,
            "length": spec.size,
            "type": spec.media_type,
            "exists": held is not None,
            "upload_url": target.upload_url,
            "upload_query": target.upload_query,
        }
        if held is None and spec.sha256 and spec.size > settings.multipart_threshold:
            entry["multipart"] = multipart.plan(
                db,
                principal=principal,
                settings=settings,
                bitstore=bitstore,
                sha256=spec.sha256,
                size=spec.size,
                content_type=spec.media_type,
                expires_at=expires_at,
            )
        elif target.put_url is not None:
            entry["put_url"], entry["put_headers"] = target.put_url, target.put_headers
        answer[spec.path] = entry
    db.flush()
    return {
        "filedata": answer,
        "session": {"id": upload.id, "expires": upload.expires_at.isoformat()},
    }


def check_open_uploads(db: Session, owner: str, settings: Settings) -> None:
    """Refuse a push while ``owner`` has ``DPHUB_MAX_OPEN_UPLOADS`` others in progress.

    A push is in progress from its authorize until its finalize, for at most the lifetime of its
    upload grants (``DPHUB_UPLOAD_TTL``): an abandoned one stops counting then. Pushes racing
    through this check at the same moment may each pass it.
    """
    limit = settings.max_open_uploads
    if not limit:
        return
    since = datetime.now(UTC) - timedelta(seconds=settings.upload_ttl)
    in_progress = int(
        db.scalar(
            select(func.count())
            .select_from(UploadSession)
            .where(
                UploadSession.owner == owner,
                UploadSession.closed_at.is_(None),
                UploadSession.created_at > since,
            )
        )
        or 0
    )
    if in_progress >= limit:
        raise TooManyUploads(
            f"{owner} already has {in_progress} pushes in progress, as many as this hub takes at"
            f" once (DPHUB_MAX_OPEN_UPLOADS={limit}). Let one finish and push again; an abandoned"
            f" push stops counting {settings.upload_ttl} seconds after it started.",
            limit=limit,
            in_progress=in_progress,
            retry_after=60,
        )


def grant_for(row: UploadSessionFile) -> UploadGrant:
    """The upload a session's file was authorized for; the same every time it is asked."""
    return UploadGrant(
        key=f"{row.session_id}/{row.path}",
        size=row.size,
        content_type=row.media_type,
        md5_b64=hex_to_b64(row.md5) if row.md5 else None,
        sha256_b64=hex_to_b64(row.sha256) if row.sha256 else None,
        staged=row.staged,
    )


def _held_by_hub(db: Session, spec: FileSpec, principal: Principal) -> BlobInfo | None:
    """The stored blob to reuse for this file, following DESIGN §3: a SHA-256 was sent and the
    requester could already read those bytes."""
    if spec.sha256 is None or not blob_readable_by(db, spec.sha256, principal):
        return None
    md5 = known_md5(db, spec.sha256)
    if md5 is not None and spec.md5_b64 is not None and _md5_hex(spec.md5_b64) != md5:
        return None  # the client's two digests disagree: let the upload check them
    return BlobInfo(spec.sha256, md5, spec.size)


def _md5_hex(md5_b64: str | None) -> str | None:
    return md5_b64_to_hex(md5_b64) if md5_b64 else None


def open_session_file(db: Session, key: str, *, for_update: bool = False) -> UploadSessionFile:
    """The file of an open, unexpired upload session that ``key`` names."""
    session_id, path = split_key(key)
    query = select(UploadSessionFile).where(
        UploadSessionFile.session_id == session_id, UploadSessionFile.path == path
    )
    row = db.scalar(query.with_for_update() if for_update else query)
    if row is None:
        raise UploadSessionNotFound()
    upload = row.session
    if upload.closed_at is not None or upload.expires_at <= datetime.now(UTC):
        raise UploadSessionNotFound(
            "This upload session is closed or has expired: run the push (authorize) again."
        )
    return row


def record_received(db: Session, *, key: str, blob: BlobInfo) -> None:
    """Note that the verified bytes of ``key`` are in the bitstore."""
    references.hold(db, [blob.sha256])
    row = open_session_file(db, key, for_update=True)
    row.received_sha256 = blob.sha256
    row.received_md5 = blob.md5
    row.received_at = datetime.now(UTC)


def parse_authorize_body(body: Mapping[str, Any]) -> AuthorizeRequest:
    """Read the wire shape of DESIGN §2, accepting ``size`` or ``length`` as the original clients do."""
    metadata = body.get("metadata") or {}
    filedata = body.get("filedata")
    if not isinstance(metadata, dict):
        raise InvalidRequest("metadata must be an object.", field="metadata")
    if not isinstance(filedata, dict):
        raise InvalidRequest("filedata must be an object of path: file details.", field="filedata")
    files = []
    for path, info in filedata.items():
        if not isinstance(info, dict):
            raise InvalidRequest(f"filedata[{path!r}] must be an object.", path=path)
        files.append(_file_spec(path, info))
    return AuthorizeRequest(
        owner=_optional_str(metadata, "owner"),
        name=_optional_str(metadata, "name"),
        findability=_optional_str(metadata, "findability"),
        files=files,
    )


def _file_spec(path: str, info: Mapping[str, Any]) -> FileSpec:
    size = info.get("size", info.get("length"))
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise InvalidRequest(
            f"{path}: size (or length) must be a whole number of bytes.", path=path
        )
    md5 = info.get("md5")
    if md5 is not None and (not isinstance(md5, str) or _md5_hex(md5) is None):
        raise InvalidRequest(f"{path}: md5 must be the base64 of a 16-byte MD5 digest.", path=path)
    sha256 = info.get("sha256")
    if sha256 is not None:
        if not isinstance(sha256, str) or not SHA256_HEX.fullmatch(sha256.lower()):
            raise InvalidRequest(f"{path}: sha256 must be 64 hexadecimal digits.", path=path)
        sha256 = sha256.lower()
    if md5 is None and sha256 is None:
        raise InvalidRequest(f"{path}: send its md5 (base64) or sha256 (hex).", path=path)
    media_type = info.get("type") or guess_media_type(path)
    if not isinstance(media_type, str) or len(media_type) > 255 or "\n" in media_type:
        raise InvalidRequest(f"{path}: type must be a media type such as text/csv.", path=path)
    return FileSpec(path, size, md5, sha256, media_type)


def _optional_str(data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise InvalidRequest(f"metadata.{key} must be a string.", field=key)
    return value
