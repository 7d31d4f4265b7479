"""What every bitstore backend offers: a content-addressed store of immutable blobs.

A blob is named by the SHA-256 of its bytes. Writers stream bytes to a temporary place while hashing
and only move them into place once size and checksum are verified, so no reader sees a partial blob.
The bitstore knows nothing of packages: the metastore maps package files to blobs.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Protocol

from dphub.bitstore.signing import UploadGrant


@dataclass(frozen=True)
class BlobInfo:
    sha256: str
    md5: str | None
    """Hex MD5, when the writer was asked to compute it (to check a Content-MD5)."""
    size: int


@dataclass(frozen=True)
class StoredObject:
    """An object the store holds, as a listing reports it: a blob, or an upload not yet filed."""

    key: str
    """Its key, relative to the store's root (or prefix): ``sha256/ab/cd/<hex>`` for a blob."""
    size: int
    modified: datetime
    sha256: str | None = None
    """The blob's SHA-256; ``None`` for a staged upload."""
    session_id: str | None = None
    """The upload session a staged upload was sent to; ``None`` for a writer's own spool file."""


@dataclass(frozen=True)
class UploadTarget:
    """Where and how a client sends one authorized file: a presigned POST form, and a presigned PUT
    when the SHA-256 is known."""

    upload_url: str
    upload_query: dict[str, str]
    put_url: str | None = None
    put_headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class PartTarget:
    """Where one part of a multipart upload goes: PUT ``size`` bytes to ``url`` with ``headers``."""

    number: int
    size: int
    url: str
    headers: dict[str, str] = field(default_factory=dict)


class BlobWriter(Protocol):
    @property
    def size(self) -> int: ...

    def write(self, data: bytes) -> None:
        """Append bytes; raises ``SizeMismatch`` as soon as more than the expected size arrives."""

    def commit(self, *, md5: str | None = None, sha256: str | None = None) -> BlobInfo:
        """Verify size and the given checksums (hex), then make the blob readable."""

    def abort(self) -> None:
        """Throw away what was written; safe to call after commit or twice."""


class BitStore(Protocol):
    def writer(self, *, expected_size: int, md5: bool = False) -> BlobWriter:
        """A writer for one blob; ``md5`` also computes the MD5 (only a Content-MD5 needs it)."""

    def size(self, sha256: str) -> int | None:
        """The size of the blob, or ``None`` when the store does not hold it."""

    def read(self, sha256: str, *, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """Stream the bytes ``start`` to ``end`` (exclusive) of a blob."""

    def local_path(self, sha256: str) -> Path | None:
        """A file path to serve the blob from, when the backend keeps blobs on local disk."""

    def delete(self, sha256: str) -> None: ...

    def list_blobs(self) -> Iterator[StoredObject]:
        """Every blob the store holds, in no particular order, read as the listing goes."""

    def list_staged(self) -> Iterator[StoredObject]:
        """Uploads not filed under their hash yet: objects sent to a session's key, and what
        interrupted writers left behind. Multipart parts are not listed (see
        ``multipart_uploads``)."""

    def delete_staged(self, key: str) -> None:
        """Remove one object ``list_staged`` reported; any other key is refused."""

    def upload_target(self, grant: UploadGrant, *, expires_at: int) -> UploadTarget:
        """Sign an upload of exactly the grant's bytes, straight to this store."""

    def confirm(self, grant: UploadGrant) -> BlobInfo | None:
        """The blob a client uploaded for ``grant`` if it arrived whole, else ``None``.

        Stores the hub writes through itself record arrivals as they happen; stores clients upload
        to directly are asked here, at finalize, without reading the data back.
        """

    def session_key(self, url: str) -> str | None:
        """The session key in the URL a client finalizes with (``upload_url + "/" + key``)."""

    # multipart uploads: large files in parts, resumable; ``upload_id`` is the hub's own id

    def start_multipart(self, upload_id: str, *, content_type: str) -> str:
        """Open an upload in the store; returns the store's id for it."""

    def part_targets(
        self, upload_id: str, store_upload_id: str, sizes: list[int], *, expires_at: int
    ) -> list[PartTarget]:
        """Signed targets for parts 1..N of the given sizes."""

    def uploaded_parts(self, upload_id: str, store_upload_id: str) -> dict[int, int]:
        """Part number → size of every part the store holds whole."""

    def complete_multipart(
        self, upload_id: str, store_upload_id: str, *, sizes: list[int], sha256: str
    ) -> BlobInfo:
        """Join the parts, verify the SHA-256 of the whole, and file it under that hash.

        Raises ``UploadIncomplete`` when a part is missing or has another size, and
        ``UploadMismatch`` when the joined bytes are not the authorized ones (then discarded).
        """

    def abort_multipart(self, upload_id: str, store_upload_id: str) -> None: ...

    def multipart_uploads(self) -> list[tuple[str, str, datetime]]:
        """``(upload_id, store_upload_id, started)`` of every open multipart upload in the store."""

    def download_url(self, sha256: str, *, filename: str, media_type: str, ttl: int) -> str | None:
        """A short-lived URL the client may fetch the blob from, or ``None`` to have the hub serve it."""
