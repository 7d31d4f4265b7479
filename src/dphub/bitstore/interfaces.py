"""What every bitstore backend offers: a content-addressed store of immutable blobs.

A blob is named by the SHA-256 of its bytes. Writers stream bytes to a temporary place while hashing
and only move them into place once size and checksum are verified, so no reader sees a partial blob.
The bitstore knows nothing of packages: the metastore maps package files to blobs.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True)
class BlobInfo:
    sha256: str
    md5: str | None
    """Hex MD5, when the writer was asked to compute it (to check a Content-MD5)."""
    size: int


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
