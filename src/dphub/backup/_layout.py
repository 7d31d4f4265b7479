"""What a backup folder holds, where, and how its files are written and checked.

::

    manifest.json           format, versions, schema revision; per table: rows, bytes, SHA-256;
                            the blob list's count, bytes and SHA-256
    tables/<table>.jsonl    the table's rows, one JSON object a line, in primary-key order
    blobs.jsonl             every blob: {"sha256": ..., "size": ...}, one a line, by hash
    blobs/sha256/ab/cd/<sha256>
                            the blob's bytes, where the bitstore keeps them (``ab``, ``cd``: the
                            first four hex digits of the hash)

The manifest is small whatever the hub's size; the lists that grow with the hub are JSON Lines,
read and written a line at a time, and covered by the manifest's hashes. Every file is created
readable by its owner only: the rows hold password hashes, API key hashes and the private keys
that sign tokens.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import orjson

from dphub.bitstore.local import blob_relpath
from dphub.errors import BackupIncompatible, BackupInvalid

FORMAT = "dphub-backup"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
BLOB_LIST = "blobs.jsonl"
CHUNK = 1024 * 1024
SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
TABLE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


def table_file(name: str) -> str:
    if not TABLE_NAME.fullmatch(name):
        raise ValueError(f"not a table name: {name!r}")
    return f"tables/{name}.jsonl"


def blob_file(sha256: str) -> str:
    return f"blobs/{blob_relpath(sha256)}"


@dataclass(frozen=True)
class FileEntry:
    """What the manifest says of one JSON Lines file: its lines, bytes and SHA-256."""

    file: str
    lines: int
    bytes: int
    sha256: str


@dataclass(frozen=True)
class TableEntry:
    name: str
    contents: FileEntry


@dataclass(frozen=True)
class Manifest:
    dphub_version: str
    alembic_revision: str | None
    created_at: str
    source: dict[str, str]
    """The backends the hub ran on: ``metastore``, ``bitstore``, ``datastore``."""
    tables: list[TableEntry]
    """In dependency order: a table comes after every table it refers to."""
    blob_list: FileEntry
    blob_bytes: int

    def rows(self) -> int:
        return sum(t.contents.lines for t in self.tables)

    def to_json(self) -> bytes:
        document = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "dphub_version": self.dphub_version,
            "alembic_revision": self.alembic_revision,
            "created_at": self.created_at,
            "source": self.source,
            "tables": [
                {
                    "name": t.name,
                    "file": t.contents.file,
                    "rows": t.contents.lines,
                    "bytes": t.contents.bytes,
                    "sha256": t.contents.sha256,
                }
                for t in self.tables
            ],
            "blobs": {
                "file": self.blob_list.file,
                "count": self.blob_list.lines,
                "bytes": self.blob_bytes,
                "list_bytes": self.blob_list.bytes,
                "list_sha256": self.blob_list.sha256,
            },
        }
        return orjson.dumps(document, option=orjson.OPT_INDENT_2) + b"\n"

    @classmethod
    def read(cls, folder: Path) -> Manifest:
        path = folder / MANIFEST
        try:
            document = orjson.loads(path.read_bytes())
        except FileNotFoundError:
            raise BackupInvalid(
                f"{folder} holds no {MANIFEST}: it is not a dphub backup, or the export that"
                " wrote it did not finish."
            ) from None
        except orjson.JSONDecodeError as exc:
            raise BackupInvalid(f"{path} is not valid JSON: {exc}.") from None
        try:
            return cls._parse(document)
        except (KeyError, TypeError, ValueError) as exc:
            raise BackupInvalid(f"{path} is not a dphub backup manifest ({exc}).") from None

    @classmethod
    def _parse(cls, document: Any) -> Manifest:
        if not isinstance(document, dict) or document.get("format") != FORMAT:
            raise ValueError(f'"format" is not "{FORMAT}"')
        version = document["format_version"]
        if version != FORMAT_VERSION:
            raise BackupIncompatible(
                f"The backup is in format version {version}; this dphub reads version"
                f" {FORMAT_VERSION}. Import it with the dphub version that wrote it"
                f" ({document.get('dphub_version')})."
            )
        tables = []
        for item in document["tables"]:
            name = _text(item["name"])
            if item["file"] != table_file(name):
                raise ValueError(f"table {name} is not in {table_file(name)}")
            tables.append(TableEntry(name, _entry(item, "file", "rows", "bytes", "sha256")))
        blobs = document["blobs"]
        if blobs["file"] != BLOB_LIST:
            raise ValueError(f"the blob list is not {BLOB_LIST}")
        revision = document["alembic_revision"]
        return cls(
            dphub_version=_text(document["dphub_version"]),
            alembic_revision=None if revision is None else _text(revision),
            created_at=_text(document["created_at"]),
            source={str(k): str(v) for k, v in dict(document["source"]).items()},
            tables=tables,
            blob_list=_entry(blobs, "file", "count", "list_bytes", "list_sha256"),
            blob_bytes=_count(blobs["bytes"]),
        )


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{value!r} is not a string")
    return value


def _count(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise TypeError(f"{value!r} is not a count")
    return value


def _entry(item: dict[str, Any], file: str, lines: str, size: str, sha256: str) -> FileEntry:
    digest = _text(item[sha256])
    if not SHA256_HEX.fullmatch(digest):
        raise ValueError(f"{digest!r} is not a SHA-256")
    return FileEntry(_text(item[file]), _count(item[lines]), _count(item[size]), digest)


def make_private_dir(path: Path) -> None:
    """Create ``path`` readable by its owner only (whatever the umask)."""
    path.mkdir(mode=0o700)
    os.chmod(path, 0o700)


def make_private_parents(folder: Path, file: str) -> None:
    """Create the folders of ``file`` (relative to ``folder``) that are missing, each private."""
    path = folder
    for part in Path(file).parts[:-1]:
        path = path / part
        if not path.is_dir():
            make_private_dir(path)


def open_private(path: Path) -> IO[bytes]:
    """A new file readable by its owner only, for writing; refuses to reuse an existing one."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.fchmod(descriptor, 0o600)
    return os.fdopen(descriptor, "wb")


def fsync_dir(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def fsync_tree(path: Path) -> None:
    """Make the entries of ``path`` and of every folder under it durable."""
    for folder, _, _ in os.walk(path, topdown=False):
        fsync_dir(Path(folder))


class LinesWriter:
    """Writes a JSON Lines file of the backup, counting its lines and hashing its bytes."""

    def __init__(self, folder: Path, file: str) -> None:
        self.file = file
        self._out = open_private(folder / file)
        self._sha256 = hashlib.sha256()
        self.lines = 0
        self.bytes = 0

    def write(self, line: bytes) -> None:
        self._out.write(line)
        self._sha256.update(line)
        self.lines += 1
        self.bytes += len(line)

    def entry(self) -> FileEntry:
        return FileEntry(self.file, self.lines, self.bytes, self._sha256.hexdigest())

    def __enter__(self) -> LinesWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if exc is None:
                self._out.flush()
                os.fsync(self._out.fileno())
        finally:
            self._out.close()


def verify_lines(folder: Path, entry: FileEntry, what: str) -> None:
    """Check a JSON Lines file of the backup against its manifest entry, reading it in chunks."""
    path = folder / entry.file
    digest = hashlib.sha256()
    size = lines = 0
    try:
        with path.open("rb") as source:
            while chunk := source.read(CHUNK):
                digest.update(chunk)
                size += len(chunk)
                lines += chunk.count(b"\n")
    except FileNotFoundError:
        raise BackupInvalid(f"The backup has no {entry.file} ({what}).") from None
    if (lines, size, digest.hexdigest()) != (entry.lines, entry.bytes, entry.sha256):
        raise BackupInvalid(
            f"{entry.file} ({what}) does not match the manifest: {lines} lines and {size} bytes"
            f" with SHA-256 {digest.hexdigest()}, where the manifest says {entry.lines} lines and"
            f" {entry.bytes} bytes with SHA-256 {entry.sha256}."
        )


def read_lines(folder: Path, entry: FileEntry) -> Iterator[tuple[int, Any]]:
    """``(line number, parsed JSON)`` of each line of a JSON Lines file, read as it goes."""
    with (folder / entry.file).open("rb") as source:
        for number, line in enumerate(source, 1):
            try:
                yield number, orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                raise BackupInvalid(f"Line {number} of {entry.file} is not JSON: {exc}.") from None
