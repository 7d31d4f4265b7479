"""What every blob writer does alike: count and hash the bytes as they come, and check them."""

from __future__ import annotations

import contextlib
import errno
import hashlib
from typing import IO

from dphub.bitstore.interfaces import BlobInfo
from dphub.errors import ChecksumMismatch, InsufficientStorage, SizeMismatch

OUT_OF_SPACE = (errno.ENOSPC, errno.EDQUOT)


def raise_if_full(exc: OSError) -> None:
    """A write failed: when the disk is full, say so as :class:`InsufficientStorage` (a person can
    act on that); any other failure is left to the caller to raise."""
    if exc.errno in OUT_OF_SPACE:
        raise InsufficientStorage() from exc


class SpoolingWriter:
    """Writes to a spool file while hashing; a backend's ``_publish`` makes the checked blob
    readable, and ``_discard`` throws the spool away."""

    def __init__(self, spool: IO[bytes], expected_size: int, md5: bool) -> None:
        self._file: IO[bytes] | None = spool
        self._expected = expected_size
        self._sha256 = hashlib.sha256()
        self._md5 = hashlib.md5(usedforsecurity=False) if md5 else None
        self._size = 0

    @property
    def size(self) -> int:
        return self._size

    def write(self, data: bytes) -> None:
        assert self._file is not None, "write after commit or abort"
        self._size += len(data)
        if self._size > self._expected:
            self.abort()
            raise SizeMismatch(
                f"More bytes arrived than the {self._expected} that were authorized.",
                expected=self._expected,
            )
        self._sha256.update(data)
        if self._md5 is not None:
            self._md5.update(data)
        try:
            self._file.write(data)
        except OSError as exc:
            self.abort()
            raise_if_full(exc)
            raise

    def commit(self, *, md5: str | None = None, sha256: str | None = None) -> BlobInfo:
        assert self._file is not None, "commit after commit or abort"
        digest = self._md5.hexdigest() if self._md5 is not None else None
        info = BlobInfo(self._sha256.hexdigest(), digest, self._size)
        try:
            if info.size != self._expected:
                raise SizeMismatch(
                    f"{info.size} bytes arrived but {self._expected} were authorized.",
                    expected=self._expected,
                    received=info.size,
                )
            if md5 is not None and info.md5 is None:
                raise ValueError("an MD5 check needs a writer made with md5=True")
            if md5 is not None and md5 != info.md5:
                raise ChecksumMismatch("The uploaded bytes do not match the authorized MD5.")
            if sha256 is not None and sha256 != info.sha256:
                raise ChecksumMismatch("The uploaded bytes do not match the authorized SHA-256.")
            self._publish(self._file, info)
        except OSError as exc:
            self.abort()
            raise_if_full(exc)
            raise
        except BaseException:
            self.abort()
            raise
        self._file = None
        return info

    def abort(self) -> None:
        if self._file is not None:
            spool, self._file = self._file, None
            # a full disk refuses the buffered rest as the spool closes: it is thrown away anyway
            with contextlib.suppress(OSError):
                spool.close()
        self._discard()

    def _publish(self, spool: IO[bytes], info: BlobInfo) -> None:
        raise NotImplementedError

    def _discard(self) -> None:
        """Remove what the spool left behind (called on abort, and harmless after commit)."""
