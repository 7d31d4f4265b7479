"""Large files in parts: plan them at authorize, resume them on a re-run, complete them on the hub.

A multipart upload belongs to one user and one content (SHA-256 and size). A push interrupted
midway (Ctrl-C, a lost network, a killed process) leaves the finished parts in the store; the next
authorize of the same bytes by the same user finds the upload again and lists them, so only the
missing parts are sent. Completing verifies the SHA-256 of the whole file before it is filed under
it, then marks the file received in the user's open upload sessions.
"""

from __future__ import annotations

import math
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session, sessionmaker

from dphub.auth.permissions import Action, UploadRef, can
from dphub.auth.principal import Principal
from dphub.bitstore import BitStore, BlobInfo
from dphub.config import Settings
from dphub.errors import NotFound
from dphub.metastore.db import transaction
from dphub.metastore.models import MultipartUpload, UploadSession, UploadSessionFile

MAX_PARTS = 10_000
MIB = 1024 * 1024
COMPLETE_PATH = "/api/bitstore/multipart/{id}/complete"


def part_sizes(size: int, part_size: int) -> list[int]:
    count = max(1, math.ceil(size / part_size))
    return [part_size] * (count - 1) + [size - part_size * (count - 1)]


def choose_part_size(size: int, preferred: int) -> int:
    """The preferred size, raised (to whole MiB) when the file would need more than 10,000 parts."""
    smallest = math.ceil(size / MAX_PARTS / MIB) * MIB
    return max(preferred, smallest)


def plan(
    db: Session,
    *,
    principal: Principal,
    settings: Settings,
    bitstore: BitStore,
    sha256: str,
    size: int,
    content_type: str,
    expires_at: int,
) -> dict[str, Any]:
    """The multipart plan for one file: a resumed upload of the same bytes, or a new one."""
    fresh_since = datetime.now(UTC) - timedelta(seconds=settings.session_ttl)
    upload = db.scalar(
        select(MultipartUpload)
        .where(
            MultipartUpload.user_id == principal.user_id,
            MultipartUpload.sha256 == sha256,
            MultipartUpload.size == size,
            MultipartUpload.completed_at.is_(None),
            MultipartUpload.created_at > fresh_since,
        )
        .order_by(MultipartUpload.created_at.desc())
        .limit(1)
    )
    if upload is None:
        upload_id = secrets.token_urlsafe(24)
        upload = MultipartUpload(
            id=upload_id,
            user_id=principal.user_id,
            sha256=sha256,
            size=size,
            part_size=choose_part_size(size, settings.multipart_part_size),
            store_upload_id=bitstore.start_multipart(upload_id, content_type=content_type),
        )
        db.add(upload)
        db.flush()
        held: dict[int, int] = {}
    else:
        held = bitstore.uploaded_parts(upload.id, upload.store_upload_id)
    sizes = part_sizes(size, upload.part_size)
    targets = bitstore.part_targets(upload.id, upload.store_upload_id, sizes, expires_at=expires_at)
    return {
        "upload_id": upload.id,
        "part_size": upload.part_size,
        "parts": [
            {"number": t.number, "size": t.size, "url": t.url, "headers": t.headers}
            for t in targets
        ],
        "uploaded": sorted(n for n, got in held.items() if n <= len(sizes) and sizes[n - 1] == got),
        "complete_url": settings.base_url + COMPLETE_PATH.format(id=upload.id),
    }


def _owned(db: Session, principal: Principal, upload_id: str) -> MultipartUpload:
    upload = db.get(MultipartUpload, upload_id)
    if upload is None or not can(principal, Action.UPLOAD_OWN, UploadRef(upload.user_id)):
        raise NotFound("No such multipart upload.")
    return upload


def status(
    sessions: sessionmaker[Session], *, principal: Principal, bitstore: BitStore, upload_id: str
) -> dict[str, Any]:
    with sessions() as db:
        upload = _owned(db, principal, upload_id)
    held = bitstore.uploaded_parts(upload.id, upload.store_upload_id)
    return {
        "upload_id": upload.id,
        "size": upload.size,
        "sha256": upload.sha256,
        "part_size": upload.part_size,
        "completed": upload.completed_at is not None,
        "parts": [{"number": n, "size": held[n]} for n in sorted(held)],
    }


def complete(
    sessions: sessionmaker[Session], *, principal: Principal, bitstore: BitStore, upload_id: str
) -> BlobInfo:
    with sessions() as db:
        upload = _owned(db, principal, upload_id)
    if upload.completed_at is None:
        blob = bitstore.complete_multipart(
            upload.id,
            upload.store_upload_id,
            sizes=part_sizes(upload.size, upload.part_size),
            sha256=upload.sha256,
        )
    else:
        blob = BlobInfo(upload.sha256, None, upload.size)
    now = datetime.now(UTC)
    with transaction(sessions) as db:
        db.execute(
            update(MultipartUpload).where(MultipartUpload.id == upload.id).values(completed_at=now)
        )
        open_sessions = select(UploadSession.id).where(
            UploadSession.user_id == principal.user_id, UploadSession.closed_at.is_(None)
        )
        db.execute(
            update(UploadSessionFile)
            .where(
                UploadSessionFile.session_id.in_(open_sessions),
                UploadSessionFile.sha256 == blob.sha256,
                UploadSessionFile.size == blob.size,
                UploadSessionFile.received_sha256.is_(None),
            )
            .values(received_sha256=blob.sha256, received_at=now)
        )
    return blob


def abort_stale(
    sessions: sessionmaker[Session], *, bitstore: BitStore, older_than: timedelta
) -> int:
    """Abort the multipart uploads started before ``older_than`` ago; returns how many."""
    cutoff = datetime.now(UTC) - older_than
    aborted = 0
    for upload_id, store_upload_id, started in bitstore.multipart_uploads():
        if started < cutoff:
            bitstore.abort_multipart(upload_id, store_upload_id)
            aborted += 1
    with transaction(sessions) as db:
        db.execute(
            delete(MultipartUpload).where(
                MultipartUpload.completed_at.is_(None), MultipartUpload.created_at < cutoff
            )
        )
    return aborted
