"""Purge: remove a package for good, with every blob and table that only it used.

Purging never deletes a blob that anything else needs, nor one a push running at the same moment
is about to use. It goes in two phases:

1. **Metadata**, in one transaction holding the package's row lock (the lock finalize and delete
   take too): check that no worker is processing one of its revisions right now, note the
   candidate blobs (its revisions' files and derived files) and datastore tables, then delete the
   package row; revisions, files, derived files, tables' rows, jobs, tags and collaborators go with
   it. From this commit on no reference to the package exists, and authorize no longer offers its
   bytes as ``exists`` to anyone who could only read them through it.
2. **Blobs**, one transaction per candidate (:func:`collect_blob`): take the blob's delete lock
   (see :mod:`dphub.metastore.references`), check in one statement that no revision file, derived
   file or open upload session references it, and only then delete it from the store.

Why a concurrent push always wins: a push reuses a blob through an upload session row (authorize
answering ``exists``, or an upload recorded as received), written in a transaction that holds the
blob's lock from before it checks that the store has the bytes until it commits. If that commit
comes first, the purge's check sees the session's reference and keeps the blob; finalize later
moves the reference from the session to the new revision in one transaction. If the purge's delete
comes first, the push's check finds the blob gone and the client uploads it again. Either way every
file of the push's revision is in the store. Bytes uploaded but not yet recorded anywhere (an
object a client sent straight to S3, a file processing has just derived) are rechecked under the
same lock by the transaction that records them, and sent or made again if they went meanwhile.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from dphub import failpoints
from dphub.auth import audit
from dphub.auth.principal import Principal
from dphub.bitstore import BitStore
from dphub.datastore import Datastore, table_name
from dphub.errors import Conflict, PackageNotFound
from dphub.events import stream as events
from dphub.lifecycle.delete import find_to_manage
from dphub.metastore import references
from dphub.metastore.db import transaction
from dphub.metastore.models import (
    DatastoreTable,
    Job,
    Package,
    Revision,
    RevisionFile,
    RevisionOutput,
    TrustedPublisher,
)
from dphub.pipeline.jobs import RUNNING

log = logging.getLogger("dphub.lifecycle")


@dataclass(frozen=True)
class _Removed:
    """What the metadata phase took away, and what may now be unreferenced."""

    revisions: int
    blobs: dict[str, int]
    """Candidate blobs: SHA-256 → size."""
    tables: set[str]


def collect_blob(
    sessions: sessionmaker[Session], bitstore: BitStore, sha256: str, *, open_since: datetime
) -> int | None:
    """Delete the blob if nothing references it; its size when deleted, else ``None``.

    ``open_since``: upload sessions that expired before then no longer hold their files.
    """
    with transaction(sessions) as db:
        references.lock_for_delete(db, sha256)
        if references.referenced(db, sha256, open_since=open_since):
            return None
        size = bitstore.size(sha256)
        if size is None:
            return None
        bitstore.delete(sha256)
        failpoints.hit("gc.blob_deleted")
        return size


def purge_package(
    sessions: sessionmaker[Session],
    *,
    principal: Principal | None,
    bitstore: BitStore,
    datastore: Datastore,
    owner: str,
    name: str,
    grace: timedelta,
    job_timeout: int,
) -> dict[str, Any]:
    """Remove the package (live or deleted) with its revisions, tables and unshared blobs."""
    with transaction(sessions) as db:
        removed = _remove_metadata(db, principal, owner, name, job_timeout=job_timeout)
    dropped = 0
    for table in sorted(removed.tables):
        try:
            datastore.drop(table)
            dropped += 1
        except Exception:  # the metadata is gone already: report, and carry on with the blobs
            log.warning("purge of %s/%s could not drop table %s", owner, name, table, exc_info=True)
    freed = deleted = 0
    open_since = datetime.now(UTC) - grace
    for sha256 in sorted(removed.blobs):
        size = collect_blob(sessions, bitstore, sha256, open_since=open_since)
        if size is not None:
            deleted += 1
            freed += size
    return {
        "owner": owner,
        "name": name,
        "purged": True,
        "revisions": removed.revisions,
        "tables": dropped,
        "blobs": {
            "removed": deleted,
            "bytes": freed,
            "kept": len(removed.blobs) - deleted,
        },
    }


def _remove_metadata(
    db: Session, principal: Principal | None, owner: str, name: str, *, job_timeout: int
) -> _Removed:
    found = find_to_manage(db, principal, owner, name)
    package = references.lock_package(db, owner, name)
    if package is None or package.id != found.id:
        raise PackageNotFound()  # purged by another request meanwhile
    revision_ids = select(Revision.id).where(Revision.package_id == package.id)
    _refuse_if_processing(db, package, revision_ids, job_timeout=job_timeout)

    blobs: dict[str, int] = {}
    for model in (RevisionFile, RevisionOutput):
        rows = db.execute(
            select(model.sha256, model.size).where(model.revision_id.in_(revision_ids)).distinct()
        )
        blobs.update({sha256: int(size) for sha256, size in rows})
    tables = set(
        db.scalars(
            select(DatastoreTable.table_name).where(DatastoreTable.revision_id.in_(revision_ids))
        )
    )
    # A revision that never finished processing may have loaded tables it did not record.
    unfinished = db.execute(
        select(Revision.id, Revision.descriptor).where(
            Revision.package_id == package.id, Revision.state != "SUCCEEDED"
        )
    )
    for revision_id, descriptor in unfinished:
        resources = descriptor.get("resources") if isinstance(descriptor, dict) else None
        count = len(resources) if isinstance(resources, list) else 0
        tables.update(table_name(revision_id, index) for index in range(count))
    revisions = len(db.scalars(revision_ids).all())

    db.execute(
        delete(TrustedPublisher).where(
            TrustedPublisher.owner == owner, TrustedPublisher.name == name
        )
    )
    db.execute(delete(Package).where(Package.id == package.id))
    target = f"{owner}/{name}"
    audit.record(
        db,
        "package.purge",
        principal=principal,
        target=target,
        revisions=revisions,
        was_deleted=package.deleted_at is not None,
    )
    events.record(db, "purged", owner=owner, name=name, principal=principal, revisions=revisions)
    return _Removed(revisions, blobs, tables)


def _refuse_if_processing(
    db: Session, package: Package, revision_ids: Any, *, job_timeout: int
) -> None:
    """A worker busy with one of the package's revisions would leave a table behind: wait for it.

    The job rows are locked too, so no worker claims one of them before they are deleted.
    """
    jobs = db.scalars(select(Job).where(Job.revision_id.in_(revision_ids)).with_for_update()).all()
    alive_since = datetime.now(UTC) - timedelta(seconds=job_timeout)
    for job in jobs:
        if job.state == RUNNING and job.heartbeat_at is not None and job.heartbeat_at > alive_since:
            number = db.scalar(select(Revision.number).where(Revision.id == job.revision_id))
            raise Conflict(
                f"Revision {number} of {package.owner}/{package.name} is being processed right"
                " now: purge it again once processing has finished (dphub status shows it).",
                revision=number,
            )
