"""Export: the metastore's rows as of one moment, and every blob those rows reference.

The rows are read in one transaction that sees a single moment of the metastore (REPEATABLE READ
and READ ONLY on PostgreSQL; one read transaction on SQLite, whose WAL keeps that moment for it),
then the blobs the same transaction lists are copied. Blobs never change once stored (their name is
their hash), so copying them after the rows is right as long as none is deleted in between. Only
purge and ``dphub gc`` delete blobs, and only blobs nothing references *now*: a blob whose last
reference goes away during the export (its package purged) may go before it is copied. GC's grace
period does not prevent that, as it spares blobs by their age, not by how long they have been
unreferenced. So on PostgreSQL the export first takes, for its whole run, the shared side of every
blob lock that purge and gc take exclusively before deleting (see
:mod:`dphub.metastore.references`): deleters wait until the export ends, while pushes (which take
the shared side too) go on. SQLite has no such lock short of stopping every write, so there a blob
that went is reported and the export fails; run it again.

The backup is written into a hidden sibling folder and renamed to its name once complete, so a
folder of that name is always a finished backup.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import orjson
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, exists, or_, select, text, union

from dphub import __version__
from dphub.backup._layout import (
    BLOB_LIST,
    MANIFEST,
    FileEntry,
    LinesWriter,
    Manifest,
    TableEntry,
    blob_file,
    fsync_dir,
    fsync_tree,
    make_private_dir,
    make_private_parents,
    open_private,
    table_file,
)
from dphub.backup._rows import BATCH, stream_rows, tables
from dphub.bitstore import BitStore
from dphub.errors import BackupExists, BackupIncompatible, BlobMissing, NotFound
from dphub.hub import Hub
from dphub.metastore import references
from dphub.metastore.db import alembic_config
from dphub.metastore.models import RevisionFile, RevisionOutput, UploadSession, UploadSessionFile

Say = Callable[[str], None]


def export_hub(hub: Hub, target: Path, *, say: Say | None = None) -> Manifest:
    """Write a backup of ``hub`` to the new folder ``target``; returns its manifest."""
    target = target.absolute()
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise BackupExists(f"{target} already exists and is not an empty folder.")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.parent / f".{target.name}.partial-{secrets.token_hex(4)}"
    make_private_dir(staging)
    try:
        make_private_dir(staging / "tables")
        make_private_dir(staging / "blobs")
        with _deleters_wait(hub.engine), _snapshot(hub.engine) as connection:
            revision = _schema_revision(connection)
            entries = []
            for table in tables():
                with LinesWriter(staging, table_file(table.name)) as out:
                    for line in stream_rows(connection, table):
                        out.write(line)
                entries.append(TableEntry(table.name, out.entry()))
                if say is not None:
                    say(f"{table.name}: {_rows(out.lines)}")
            blob_list, blob_bytes = _copy_blobs(connection, hub.bitstore, staging, say)
        manifest = Manifest(
            dphub_version=__version__,
            alembic_revision=revision,
            created_at=datetime.now(UTC).isoformat(),
            source=_backends(hub),
            tables=entries,
            blob_list=blob_list,
            blob_bytes=blob_bytes,
        )
        # written last: a folder without a manifest is never taken for a backup
        with open_private(staging / MANIFEST) as written:
            written.write(manifest.to_json())
            written.flush()
            os.fsync(written.fileno())
        fsync_tree(staging)
        os.rename(staging, target)
        fsync_dir(target.parent)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return manifest


def _schema_revision(connection: Connection) -> str:
    """The metastore's schema revision, which must be the one this dphub's tables describe."""
    found = MigrationContext.configure(connection).get_current_revision()
    head = ScriptDirectory.from_config(alembic_config(connection.engine)).get_current_head()
    if found is None:
        raise BackupIncompatible(
            "This metastore holds no dphub schema: check --data-dir and DPHUB_DATABASE_URL."
        )
    if found != head:
        raise BackupIncompatible(
            f"The metastore's schema is at revision {found}, and this dphub's at {head}: export"
            " with the dphub version the hub runs, or run `dphub db upgrade` first."
        )
    return str(found)


@contextmanager
def _deleters_wait(engine: Engine) -> Iterator[None]:
    """On PostgreSQL, hold the shared side of every blob lock until the block ends, so purge and
    gc delete no blob meanwhile. Session locks on a connection of their own, taken before the
    snapshot begins, so the snapshot sees every deletion that finished before them."""
    if engine.dialect.name != "postgresql":
        yield
        return
    with engine.connect() as connection:
        for bucket in range(references.BUCKETS):
            connection.execute(
                text("SELECT pg_advisory_lock_shared(:cls, :key)"),
                {"cls": references.LOCK_CLASS, "key": bucket},
            )
        connection.commit()  # session locks outlive the transaction; do not sit idle in one
        try:
            yield
        finally:
            # the pool would hand the connection on with its session locks still held
            connection.execute(text("SELECT pg_advisory_unlock_all()"))
            connection.commit()


@contextmanager
def _snapshot(engine: Engine) -> Iterator[Connection]:
    """A connection whose reads all see one moment of the metastore."""
    with engine.connect() as connection:
        if engine.dialect.name == "postgresql":
            connection = connection.execution_options(
                isolation_level="REPEATABLE READ", postgresql_readonly=True
            )
        transaction = connection.begin()
        try:
            if engine.dialect.name == "sqlite":
                # the sqlite3 driver opens no transaction for reads: without one, each statement
                # would see the database as it is when it runs
                connection.exec_driver_sql("BEGIN")
            yield connection
        finally:
            transaction.rollback()


def _copy_blobs(
    connection: Connection, bitstore: BitStore, folder: Path, say: Say | None
) -> tuple[FileEntry, int]:
    total = count = 0
    with LinesWriter(folder, BLOB_LIST) as listing:
        previous = None
        for sha256, size, required in _referenced(connection):
            if sha256 == previous:
                continue  # a blob a session holds that a revision holds too: listed once
            previous = sha256
            if not required:
                stored = bitstore.size(sha256)
                if stored is None:
                    continue  # promised to an upload that never arrived, or a lapsed session's
                size = stored
            _copy_blob(bitstore, sha256, size, folder)
            listing.write(orjson.dumps({"sha256": sha256, "size": size}) + b"\n")
            total += size
            count += 1
    if say is not None:
        say(f"blobs: {count} ({total} bytes)")
    return listing.entry(), total


def _referenced(connection: Connection) -> Iterator[tuple[str, int, bool]]:
    """``(sha256, size, required)`` of each blob the rows reference, in hash order.

    Revision files and derived files must be in the store. Blobs of open upload sessions are
    taken when the store holds them, for a push to finish after a restore.
    """
    files = select(RevisionFile.sha256, RevisionFile.size)
    outputs = select(RevisionOutput.sha256, RevisionOutput.size)
    both = union(files, outputs).subquery()
    query = select(both.c.sha256, both.c.size).order_by(both.c.sha256)
    required = connection.execute(query.execution_options(yield_per=BATCH))
    column = UploadSessionFile.received_sha256
    held = (
        select(column, UploadSessionFile.size)
        .join(UploadSession, UploadSession.id == UploadSessionFile.session_id)
        .where(column.is_not(None), UploadSession.closed_at.is_(None))
        .where(
            ~or_(
                exists().where(RevisionFile.sha256 == column),
                exists().where(RevisionOutput.sha256 == column),
            )
        )
        .order_by(column)
    )
    for row in required:
        yield str(row[0]), int(row[1]), True
    for row in connection.execute(held.execution_options(yield_per=BATCH)):
        yield str(row[0]), int(row[1]), False


def _copy_blob(bitstore: BitStore, sha256: str, size: int, folder: Path) -> None:
    path = folder / blob_file(sha256)
    make_private_parents(folder, blob_file(sha256))
    digest = hashlib.sha256()
    copied = 0
    try:
        with open_private(path) as out:
            for chunk in bitstore.read(sha256):
                digest.update(chunk)
                copied += len(chunk)
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
    except NotFound:
        raise BlobMissing(
            f"Blob {sha256} ({size} bytes), which the metastore references, is not in the"
            " bitstore. If a package was purged or `dphub gc` ran during the export, run the"
            " export again; otherwise the bitstore has lost it."
        ) from None
    if (copied, digest.hexdigest()) != (size, sha256):
        raise BlobMissing(
            f"Blob {sha256} in the bitstore is damaged: {copied} bytes with SHA-256"
            f" {digest.hexdigest()}, where the metastore records {size} bytes."
        )


def _rows(count: int) -> str:
    return f"{count} row{'' if count == 1 else 's'}"


def _backends(hub: Hub) -> dict[str, str]:
    storage = hub.settings.storage_url
    return {
        "metastore": hub.engine.dialect.name,
        "bitstore": "s3" if storage.startswith("s3://") else "local",
        "datastore": hub.datastore.dialect,
    }
