"""Who still needs a blob, and the locks that keep deleting a blob apart from reusing it.

Blobs are shared: by revisions of any package (its files and the files processing derived from
them) and by open upload sessions (the files they were promised). A blob may be deleted only when
nothing references it, and the check must not race a push that is just starting to use it. Two
kinds of transactions meet here:

- **Referencing** transactions add a reference to a blob the store already holds (authorize
  answering ``exists``, an upload recorded as received, finalize writing a revision's files,
  processing recording a derived file). Each calls :func:`hold` for the blobs it is about to
  reference *before* it checks that the store (or an open session) still has them, and keeps the
  lock until it commits.
- **Deleting** transactions (purge, ``dphub gc``) handle one blob each: :func:`lock_for_delete`,
  then :func:`referenced`, then the delete in the store, then commit.

The two exclude each other: on PostgreSQL with advisory locks (shared for referencing, exclusive
for deleting, on one of ``BUCKETS`` keys derived from the hash), on SQLite with the database's one
write lock (both start with a write). So either the deleter checks first, deletes and commits,
and the referencing transaction then finds the blob missing and has it uploaded (or made) again;
or the referencing transaction commits first, and the deleter's check sees its reference.

A reference lives as long as the reference rows do. Finalize turns the session's references into
the revision's in one transaction (it closes the session and writes the revision's files), and
:func:`referenced` reads both kinds in one statement, so no moment exists where neither is seen.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import ColumnElement, and_, exists, false, or_, select, text, update
from sqlalchemy.orm import Session

from dphub.metastore.models import (
    Package,
    PublisherQuota,
    RevisionFile,
    RevisionOutput,
    UploadSession,
    UploadSessionFile,
)

BUCKETS = 64
"""Lock keys blobs share: few enough that a transaction holding one per file stays small."""
LOCK_CLASS = 0x64706862
"""The first key of every advisory lock dphub takes (``dphb``), apart from other applications'."""


def _postgres(db: Session) -> bool:
    return db.get_bind().dialect.name == "postgresql"


def _bucket(sha256: str) -> int:
    return int(sha256[:2], 16) % BUCKETS


def _write_lock(db: Session) -> None:
    """SQLite: take the database's write lock now (a write that changes nothing), held to commit."""
    db.execute(
        update(PublisherQuota)
        .where(false())
        .values(updated_at=PublisherQuota.updated_at)
        .execution_options(synchronize_session=False)
    )


def hold(db: Session, sha256s: Iterable[str]) -> None:
    """Keep deleters of these blobs waiting until ``db``'s transaction ends.

    Call before checking the store for the blobs; the keys are taken in order, so referencing
    transactions never wait on each other in a cycle.
    """
    buckets = sorted({_bucket(s) for s in sha256s})
    if not buckets:
        return
    if not _postgres(db):
        _write_lock(db)
        return
    for bucket in buckets:
        db.execute(
            text("SELECT pg_advisory_xact_lock_shared(:cls, :key)"),
            {"cls": LOCK_CLASS, "key": bucket},
        )


def lock_for_delete(db: Session, sha256: str) -> None:
    """Wait for every transaction that holds this blob, and keep new ones out until commit."""
    if not _postgres(db):
        _write_lock(db)
        return
    db.execute(
        text("SELECT pg_advisory_xact_lock(:cls, :key)"),
        {"cls": LOCK_CLASS, "key": _bucket(sha256)},
    )


def open_sessions(open_since: datetime) -> ColumnElement[bool]:
    """Upload sessions whose files still count: not closed, and not expired before ``open_since``
    (now minus the grace period)."""
    return and_(UploadSession.closed_at.is_(None), UploadSession.expires_at > open_since)


def referenced(db: Session, sha256: str, *, open_since: datetime) -> bool:
    """Whether any revision file, derived file or open upload session still uses the blob.

    One statement, so it sees one moment of the metastore: a finalize that commits meanwhile is
    seen entirely before (its session's reference) or entirely after (its revision's).
    """
    in_revision = exists(select(RevisionFile.id).where(RevisionFile.sha256 == sha256))
    derived = exists(select(RevisionOutput.id).where(RevisionOutput.sha256 == sha256))
    in_session = exists(
        select(UploadSessionFile.id)
        .join(UploadSession, UploadSession.id == UploadSessionFile.session_id)
        .where(
            or_(UploadSessionFile.sha256 == sha256, UploadSessionFile.received_sha256 == sha256),
            open_sessions(open_since),
        )
    )
    return bool(db.scalar(select(or_(in_revision, derived, in_session))))


def referenced_among(db: Session, sha256s: list[str], *, open_since: datetime) -> set[str]:
    """Which of these blobs something references (a quick first pass, without locks)."""
    found: set[str] = set()
    if not sha256s:
        return found
    found.update(db.scalars(select(RevisionFile.sha256).where(RevisionFile.sha256.in_(sha256s))))
    found.update(
        db.scalars(select(RevisionOutput.sha256).where(RevisionOutput.sha256.in_(sha256s)))
    )
    for column in (UploadSessionFile.sha256, UploadSessionFile.received_sha256):
        found.update(
            s
            for s in db.scalars(
                select(column)
                .join(UploadSession, UploadSession.id == UploadSessionFile.session_id)
                .where(column.in_(sha256s), open_sessions(open_since))
            )
            if s is not None
        )
    return found


def lock_package(db: Session, owner: str, name: str) -> Package | None:
    """The package ``owner/name``, live or deleted, its row locked until commit (``None`` when
    there is none). Deleting, undeleting, purging and finalizing a package serialise on this."""
    if not _postgres(db):
        _write_lock(db)
        query = select(Package)
    else:
        query = select(Package).with_for_update()
    return db.scalar(
        query.where(Package.owner == owner, Package.name == name).execution_options(
            populate_existing=True
        )
    )
