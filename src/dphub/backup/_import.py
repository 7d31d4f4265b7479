"""Import: a backup into an empty hub, all of it or nothing visible.

1. The manifest must match this hub: same format, same schema revision, the same tables.
2. The hub must be empty: no user, publisher or package, nor any other row, except in the tables
   a hub fills on its own before anyone has an account (:data:`HOUSEKEEPING`), which the backup's
   rows replace.
3. Every row file is checked against the manifest (count, bytes, SHA-256), then every blob is
   streamed into the bitstore while its SHA-256 is computed, and only filed under it when it
   matches. A blob that does not match stops the import.
4. Every row goes in, in one transaction, with its primary key as it was; the datastore tables are
   rebuilt inside it (see :mod:`dphub.backup._datastore`), and the transaction commits last.

Until that commit nothing refers to what came in: blobs stored by an import that failed are
unreferenced, and ``dphub gc`` removes them once they are older than its grace period. A failed
rebuild drops the tables it made.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, func, literal_column, select, text
from sqlalchemy.exc import DataError, IntegrityError

from dphub.backup._datastore import rebuild_tables
from dphub.backup._layout import (
    CHUNK,
    SHA256_HEX,
    Manifest,
    TableEntry,
    blob_file,
    read_lines,
    verify_lines,
)
from dphub.backup._rows import BATCH, row_decoder, tables
from dphub.bitstore import BitStore
from dphub.errors import BackupIncompatible, BackupInvalid, HubNotEmpty
from dphub.hub import Hub
from dphub.metastore.db import current_revision

Say = Callable[[str], None]

CONTENT = ("users", "publishers", "packages")
"""What makes a hub not empty, named in the refusal."""
HOUSEKEEPING = frozenset({"signing_keys", "audit_events", "rate_counters", "oidc_logins"})
"""Tables a hub fills before anyone has an account: the key it signs its first token with,
counters and audit events of attempts to log in, logins begun. An import replaces their rows."""


def import_hub(
    hub: Hub, backup: Path, *, check_only: bool = False, say: Say | None = None
) -> Manifest:
    """Import the backup in ``backup`` into the empty ``hub``; with ``check_only``, only verify
    every hash and count and that the hub can take it."""
    backup = backup.absolute()
    manifest = Manifest.read(backup)
    entries = _matching_tables(hub, manifest)
    with hub.engine.connect() as connection:
        _refuse_unless_empty(connection)
    for entry in manifest.tables:
        verify_lines(backup, entry.contents, f"rows of {entry.name}")
    verify_lines(backup, manifest.blob_list, "the blob list")
    _import_blobs(hub.bitstore, backup, manifest, store=not check_only)
    if say is not None:
        done = "verified" if check_only else "verified and stored"
        say(f"blobs: {manifest.blob_list.lines} {done} ({manifest.blob_bytes} bytes)")
    if not check_only:
        _import_rows(hub, backup, entries, say)
    return manifest


def _matching_tables(hub: Hub, manifest: Manifest) -> dict[str, TableEntry]:
    revision = current_revision(hub.engine)
    if manifest.alembic_revision != revision:
        raise BackupIncompatible(
            f"The backup's metastore schema is at revision {manifest.alembic_revision} (dphub"
            f" {manifest.dphub_version}); this hub's is at {revision}. Import it with the dphub"
            " version that made it, then upgrade that hub."
        )
    entries = {entry.name: entry for entry in manifest.tables}
    expected = {table.name for table in tables()}
    if entries.keys() != expected:
        missing = ", ".join(sorted(expected - entries.keys())) or "none"
        unknown = ", ".join(sorted(entries.keys() - expected)) or "none"
        raise BackupIncompatible(
            f"The backup's tables are not this hub's: missing {missing}; unknown {unknown}."
        )
    return entries


def _refuse_unless_empty(connection: Connection) -> None:
    known = {table.name: table for table in tables()}
    counts = {
        name: int(connection.scalar(select(func.count()).select_from(known[name])) or 0)
        for name in CONTENT
    }
    if any(counts.values()):
        held = ", ".join(f"{count} {name}" for name, count in counts.items())
        raise HubNotEmpty(
            f"This hub is not empty ({held}): a backup is imported only into a hub with no"
            " users, publishers or packages. Nothing was changed."
        )
    for table in tables():
        if table.name in HOUSEKEEPING:
            continue
        if connection.scalar(select(literal_column("1")).select_from(table).limit(1)) is not None:
            raise HubNotEmpty(
                f"This hub is not empty: its table {table.name} holds rows. Nothing was changed."
            )


def _import_blobs(bitstore: BitStore, backup: Path, manifest: Manifest, *, store: bool) -> None:
    total = 0
    for number, item in read_lines(backup, manifest.blob_list):
        sha256, size = _blob_item(item, number)
        _import_blob(bitstore, backup, sha256, size, store=store)
        total += size
    if total != manifest.blob_bytes:
        raise BackupInvalid(
            f"The blobs hold {total} bytes in all; the manifest says {manifest.blob_bytes}."
        )


def _blob_item(item: Any, number: int) -> tuple[str, int]:
    sha256 = item.get("sha256") if isinstance(item, dict) else None
    size = item.get("size") if isinstance(item, dict) else None
    if not (isinstance(sha256, str) and SHA256_HEX.fullmatch(sha256)) or not (
        isinstance(size, int) and not isinstance(size, bool) and size >= 0
    ):
        raise BackupInvalid(f"Line {number} of the blob list is not a blob's hash and size.")
    return sha256, size


def _import_blob(bitstore: BitStore, backup: Path, sha256: str, size: int, *, store: bool) -> None:
    """Stream one blob from the backup into the bitstore, filed only if its hash matches (bytes
    the bitstore already holds under that hash are only checked)."""
    file = blob_file(sha256)
    try:
        found = (backup / file).stat().st_size
    except FileNotFoundError:
        raise BackupInvalid(f"Blob {sha256} is missing from the backup ({file}).") from None
    if found != size:
        raise BackupInvalid(
            f"Blob {sha256} ({file}) has {found} bytes; the backup's blob list says {size}."
        )
    writer = (
        bitstore.writer(expected_size=size) if store and bitstore.size(sha256) != size else None
    )
    digest = hashlib.sha256()
    try:
        with (backup / file).open("rb") as source:
            while chunk := source.read(CHUNK):
                digest.update(chunk)
                if writer is not None:
                    writer.write(chunk)
        if digest.hexdigest() != sha256:
            raise BackupInvalid(
                f"Blob {sha256} ({file}) does not match its SHA-256: its bytes hash to"
                f" {digest.hexdigest()}. The backup is damaged or was changed; no row was"
                " imported."
            )
        if writer is not None:
            writer.commit(sha256=sha256)
    except BaseException:
        if writer is not None:
            writer.abort()
        raise


def _import_rows(hub: Hub, backup: Path, entries: dict[str, TableEntry], say: Say | None) -> None:
    built: list[str] = []
    with hub.engine.connect() as connection:
        transaction = connection.begin()
        try:
            postgres = connection.dialect.name == "postgresql"
            if postgres:
                # nobody may add an account or a package between the check and the commit
                connection.execute(text("LOCK TABLE users, publishers, packages IN EXCLUSIVE MODE"))
            # on SQLite the first write takes the database's write lock, for the same reason
            for table in reversed(tables()):
                if table.name in HOUSEKEEPING:
                    connection.execute(table.delete())
            _refuse_unless_empty(connection)
            for table in tables():
                count = _insert_rows(connection, table, backup, entries[table.name])
                if say is not None and count:
                    say(f"{table.name}: {count} row{'' if count == 1 else 's'}")
            if postgres:
                _advance_sequences(connection)
            rebuild_tables(connection, hub.datastore, hub.settings, backup, built=built, say=say)
            transaction.commit()
        except BaseException:
            transaction.rollback()
            for name in built:
                with contextlib.suppress(Exception):  # the error that got here matters more
                    hub.datastore.drop(name)
            raise


def _insert_rows(connection: Connection, table: Any, backup: Path, entry: TableEntry) -> int:
    decode = row_decoder(table)
    file = entry.contents.file
    count = 0
    batch: list[dict[str, Any]] = []

    def flush() -> None:
        try:
            connection.execute(table.insert(), batch)
        except (IntegrityError, DataError) as exc:
            problem = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
            raise BackupInvalid(
                f"The rows of {table.name} ({file}) do not fit this hub's metastore: {problem}"
            ) from None
        batch.clear()

    for number, item in read_lines(backup, entry.contents):
        try:
            if not isinstance(item, dict):
                raise ValueError("not a JSON object")
            batch.append(decode(item))
        except ValueError as exc:
            raise BackupInvalid(
                f"Line {number} of {file} is not a row of {table.name}: {exc}."
            ) from None
        count += 1
        if len(batch) >= BATCH:
            flush()
    if batch:
        flush()
    if count != entry.contents.lines:
        raise BackupInvalid(f"{file} holds {count} rows; the manifest says {entry.contents.lines}.")
    return count


def _advance_sequences(connection: Connection) -> None:
    """Move each PostgreSQL id sequence past the ids that came in with their rows."""
    for table in tables():
        column = table.autoincrement_column
        if column is None:
            continue
        following = func.coalesce(select(func.max(column)).scalar_subquery(), 0) + 1
        sequence = func.pg_get_serial_sequence(table.name, column.name)
        connection.execute(select(func.setval(sequence, following, False)))
