"""Garbage collection: blobs nothing references any more, and uploads that were never filed.

``dphub gc`` lists the store and removes

- every blob older than the grace period that no revision file, derived file or open upload
  session references (an upload session counts until it has been expired for the grace period);
- every staged upload (an object sent to a session's key, not filed under its hash yet) whose
  session is closed, gone, or expired for longer than the grace period;
- the spool files interrupted writers left behind, once untouched for the grace period (and at
  least an hour, as a writer at work touches its spool all the time).

It is safe while pushes run: the grace period spares bytes uploaded but not yet recorded, and each
blob is checked again under its delete lock right before it goes (see
:mod:`dphub.lifecycle.purge` for why a push reusing a blob always wins).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from dphub.bitstore import BitStore
from dphub.bitstore.interfaces import StoredObject
from dphub.lifecycle.purge import collect_blob
from dphub.metastore import references
from dphub.metastore.models import UploadSession

BATCH = 500
SPOOL_IDLE = timedelta(hours=1)
"""Spool files younger than this may belong to a writer at work, whatever the grace period."""


@dataclass(frozen=True)
class Removal:
    kind: str
    """``blob`` or ``staged``."""
    key: str
    size: int
    modified: datetime


@dataclass
class Collected:
    """What one run removed (or, in a dry run, would remove)."""

    dry_run: bool
    blobs: int = 0
    blob_bytes: int = 0
    staged: int = 0
    staged_bytes: int = 0
    scanned: int = 0
    """Blobs listed in the store."""
    young: int = 0
    """Blobs left alone because they are younger than the grace period."""
    kept: int = 0
    """Blobs that looked unreferenced but were found in use (or gone) on the check right before
    deleting."""

    def add(self, removal: Removal) -> None:
        if removal.kind == "blob":
            self.blobs += 1
            self.blob_bytes += removal.size
        else:
            self.staged += 1
            self.staged_bytes += removal.size


def collect_garbage(
    sessions: sessionmaker[Session],
    bitstore: BitStore,
    *,
    grace: timedelta,
    dry_run: bool = False,
    report: Callable[[Removal], None] | None = None,
) -> Collected:
    """Remove (or, with ``dry_run``, only list) what nothing needs; ``report`` hears of each."""
    now = datetime.now(UTC)
    cutoff = now - grace
    done = Collected(dry_run=dry_run)

    def removed(removal: Removal) -> None:
        done.add(removal)
        if report is not None:
            report(removal)

    for batch in _batches(bitstore.list_blobs(), done, cutoff):
        shas = [b.sha256 for b in batch if b.sha256 is not None]
        with sessions() as db:
            used = references.referenced_among(db, shas, open_since=cutoff)
        for blob in batch:
            if blob.sha256 is None or blob.sha256 in used:
                continue
            if dry_run:
                removed(Removal("blob", blob.key, blob.size, blob.modified))
                continue
            size = collect_blob(sessions, bitstore, blob.sha256, open_since=cutoff)
            if size is None:
                done.kept += 1
            else:
                removed(Removal("blob", blob.key, size, blob.modified))

    for staged in _stale_staged(sessions, bitstore, now=now, cutoff=cutoff):
        if not dry_run:
            bitstore.delete_staged(staged.key)
        removed(Removal("staged", staged.key, staged.size, staged.modified))
    return done


def _batches(
    blobs: Iterator[StoredObject], done: Collected, cutoff: datetime
) -> Iterator[list[StoredObject]]:
    """The blobs older than ``cutoff``, a batch at a time (the listing is never held whole)."""
    batch: list[StoredObject] = []
    for blob in blobs:
        done.scanned += 1
        if blob.modified >= cutoff:
            done.young += 1
            continue
        batch.append(blob)
        if len(batch) >= BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def _stale_staged(
    sessions: sessionmaker[Session], bitstore: BitStore, *, now: datetime, cutoff: datetime
) -> Iterator[StoredObject]:
    spool_cutoff = min(cutoff, now - SPOOL_IDLE)
    for staged in bitstore.list_staged():
        if staged.session_id is None:
            if staged.modified < spool_cutoff:
                yield staged
            continue
        if staged.modified >= cutoff:
            continue
        with sessions() as db:
            still_open = db.scalar(
                select(UploadSession.id).where(
                    UploadSession.id == staged.session_id, references.open_sessions(cutoff)
                )
            )
        if still_open is None:
            yield staged
