"""Bitstore on local disk: ``<root>/sha256/ab/cd/<hex>``, written through ``<root>/tmp``.

Clients upload through the hub's own endpoint (``/api/bitstore/upload``), which speaks the presigned
POST form protocol of S3 and a presigned PUT, and writes here as the bytes arrive.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, BinaryIO

from dphub.bitstore._writer import SpoolingWriter, raise_if_full
from dphub.bitstore.interfaces import BlobInfo, PartTarget, StoredObject, UploadTarget
from dphub.bitstore.signing import PartSigner, UploadGrant, UploadSigner
from dphub.errors import (
    ChecksumMismatch,
    InsufficientStorage,
    NotFound,
    SizeMismatch,
    UploadIncomplete,
    UploadMismatch,
)

SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
CHUNK = 1024 * 1024
UPLOAD_PATH = "/api/bitstore/upload"
MULTIPART_PATH = "/api/bitstore/multipart"
PART_NAME = re.compile(r"^[0-9]{1,5}$")
SPOOL_KEY = re.compile(r"^tmp/[0-9a-f]{32}\.part$")


def blob_relpath(sha256: str) -> str:
    if not SHA256_HEX.fullmatch(sha256):
        raise ValueError("not a SHA-256 hex digest")
    return f"sha256/{sha256[:2]}/{sha256[2:4]}/{sha256}"


def check_room(folder: Path, size: int) -> None:
    """Refuse a file of ``size`` bytes at once when the disk holding ``folder`` has no room for
    it, rather than after half of it was written."""
    free = shutil.disk_usage(folder).free
    if free < size:
        raise InsufficientStorage(
            f"The hub has run out of storage space: this file needs {size} bytes and its disk"
            f" has {free} left. Nothing of the file was kept.",
            needed=size,
            available=free,
        )


def open_spool(path: Path) -> BinaryIO:
    try:
        return open(path, "xb")
    except OSError as exc:
        raise_if_full(exc)
        raise


class LocalBlobWriter(SpoolingWriter):
    def __init__(self, store: LocalBitStore, expected_size: int, md5: bool) -> None:
        self._store = store
        self._tmp = store.root / "tmp" / f"{secrets.token_hex(16)}.part"
        check_room(self._tmp.parent, expected_size)
        super().__init__(open_spool(self._tmp), expected_size, md5)

    def _publish(self, spool: IO[bytes], info: BlobInfo) -> None:
        spool.flush()
        os.fsync(spool.fileno())
        spool.close()
        target = self._store.root / blob_relpath(info.sha256)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self._tmp, target)

    def _discard(self) -> None:
        self._tmp.unlink(missing_ok=True)


class LocalPartWriter:
    """One part of a multipart upload, written aside and moved into place only when whole."""

    def __init__(self, folder: Path, number: int, expected_size: int) -> None:
        self._target = folder / str(number)
        self._tmp = folder / f"{number}.{secrets.token_hex(8)}.part"
        check_room(folder, expected_size)
        self._file: BinaryIO | None = open_spool(self._tmp)
        self._expected = expected_size
        self._size = 0

    def write(self, data: bytes) -> None:
        assert self._file is not None, "write after commit or abort"
        self._size += len(data)
        if self._size > self._expected:
            self.abort()
            raise SizeMismatch(f"More bytes arrived than the {self._expected} of this part.")
        try:
            self._file.write(data)
        except OSError as exc:
            self.abort()
            raise_if_full(exc)
            raise

    def commit(self) -> int:
        assert self._file is not None, "commit after commit or abort"
        try:
            if self._size != self._expected:
                raise SizeMismatch(
                    f"{self._size} bytes arrived but the part has {self._expected}.",
                    expected=self._expected,
                    received=self._size,
                )
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            self._file = None
            os.replace(self._tmp, self._target)
        except OSError as exc:
            self.abort()
            raise_if_full(exc)
            raise
        except BaseException:
            self.abort()
            raise
        return self._size

    def abort(self) -> None:
        if self._file is not None:
            part, self._file = self._file, None
            with contextlib.suppress(OSError):  # a full disk refuses the buffered rest
                part.close()
        self._tmp.unlink(missing_ok=True)


class LocalBitStore:
    def __init__(self, root: Path, *, signer: UploadSigner, base_url: str) -> None:
        self.root = root
        self.signer = signer
        self.upload_url = base_url + UPLOAD_PATH
        self.multipart_url = base_url + MULTIPART_PATH
        (root / "tmp").mkdir(parents=True, exist_ok=True)
        (root / "sha256").mkdir(parents=True, exist_ok=True)

    def writer(self, *, expected_size: int, md5: bool = False) -> LocalBlobWriter:
        return LocalBlobWriter(self, expected_size, md5)

    def size(self, sha256: str) -> int | None:
        try:
            return (self.root / blob_relpath(sha256)).stat().st_size
        except (FileNotFoundError, ValueError):
            return None

    def read(self, sha256: str, *, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        path = self.local_path(sha256)
        if path is None:
            raise NotFound("The blob is not in the bitstore.")
        with open(path, "rb") as source:
            source.seek(start)
            remaining = None if end is None else max(0, end - start)
            while remaining is None or remaining > 0:
                chunk = source.read(CHUNK if remaining is None else min(CHUNK, remaining))
                if not chunk:
                    return
                if remaining is not None:
                    remaining -= len(chunk)
                yield chunk

    def local_path(self, sha256: str) -> Path | None:
        try:
            path = self.root / blob_relpath(sha256)
        except ValueError:
            return None
        return path if path.is_file() else None

    def upload_target(self, grant: UploadGrant, *, expires_at: int) -> UploadTarget:
        form = self.signer.post_form(grant, expires_at=expires_at)
        if not grant.sha256_b64:
            return UploadTarget(self.upload_url, form)
        put_url, put_headers = self.signer.put_url(
            grant, upload_url=self.upload_url, expires_at=expires_at
        )
        return UploadTarget(self.upload_url, form, put_url, put_headers)

    def confirm(self, grant: UploadGrant) -> BlobInfo | None:
        # Every upload comes through the hub, which records it as it arrives: a file not recorded
        # has not been uploaded in this session, whatever blobs the store already holds.
        return None

    def session_key(self, url: str) -> str | None:
        """The key inside an ``upload_url + "/" + key`` of this store, if ``url`` is one."""
        marker = UPLOAD_PATH + "/"
        return url.split(marker, 1)[1] if marker in url else None

    def download_url(self, sha256: str, *, filename: str, media_type: str, ttl: int) -> str | None:
        return None

    # multipart: parts are files in <root>/multipart/<upload id>/<number>

    def _parts(self, upload_id: str) -> Path:
        if not re.fullmatch(r"[A-Za-z0-9_-]{8,64}", upload_id):
            raise NotFound("No such multipart upload.")
        return self.root / "multipart" / upload_id

    def start_multipart(self, upload_id: str, *, content_type: str) -> str:
        self._parts(upload_id).mkdir(parents=True, exist_ok=True)
        return upload_id

    def part_targets(
        self, upload_id: str, store_upload_id: str, sizes: list[int], *, expires_at: int
    ) -> list[PartTarget]:
        signer = PartSigner(self.signer)
        return [
            PartTarget(
                n, size, signer.url(self.multipart_url, upload_id, n, size, expires_at=expires_at)
            )
            for n, size in enumerate(sizes, start=1)
        ]

    def part_writer(self, upload_id: str, number: int, expected_size: int) -> LocalPartWriter:
        folder = self._parts(upload_id)
        if not folder.is_dir():
            raise NotFound("No such multipart upload: it was completed or aborted.")
        return LocalPartWriter(folder, number, expected_size)

    def uploaded_parts(self, upload_id: str, store_upload_id: str) -> dict[int, int]:
        folder = self._parts(upload_id)
        if not folder.is_dir():
            return {}
        return {
            int(p.name): p.stat().st_size for p in folder.iterdir() if PART_NAME.fullmatch(p.name)
        }

    def complete_multipart(
        self, upload_id: str, store_upload_id: str, *, sizes: list[int], sha256: str
    ) -> BlobInfo:
        folder = self._parts(upload_id)
        held = self.uploaded_parts(upload_id, store_upload_id)
        wanted = dict(enumerate(sizes, start=1))
        missing = sorted(n for n, size in wanted.items() if held.get(n) != size)
        if missing:
            raise UploadIncomplete(
                f"Parts {', '.join(map(str, missing[:20]))} are missing or incomplete.",
                parts=missing,
            )
        writer = self.writer(expected_size=sum(sizes))
        try:
            for number in wanted:
                with open(folder / str(number), "rb") as part:
                    while chunk := part.read(CHUNK):
                        writer.write(chunk)
            info = writer.commit(sha256=sha256)
        except ChecksumMismatch:
            self.abort_multipart(upload_id, store_upload_id)
            raise UploadMismatch(
                "The joined parts do not have the authorized SHA-256; upload the file again."
            ) from None
        finally:
            writer.abort()
        self.abort_multipart(upload_id, store_upload_id)
        return info

    def abort_multipart(self, upload_id: str, store_upload_id: str) -> None:
        shutil.rmtree(self._parts(upload_id), ignore_errors=True)

    def multipart_uploads(self) -> list[tuple[str, str, datetime]]:
        root = self.root / "multipart"
        if not root.is_dir():
            return []
        return [
            (p.name, p.name, datetime.fromtimestamp(p.stat().st_mtime, UTC))
            for p in root.iterdir()
            if p.is_dir()
        ]

    def delete(self, sha256: str) -> None:
        path = self.local_path(sha256)
        if path is not None:
            path.unlink(missing_ok=True)

    def list_blobs(self) -> Iterator[StoredObject]:
        for first in _subfolders(self.root / "sha256"):
            for second in _subfolders(first):
                for entry in _files(second):
                    if SHA256_HEX.fullmatch(entry.name) and entry.name[:4] == (
                        first.name + second.name
                    ):
                        found = _stored(f"sha256/{first.name}/{second.name}/{entry.name}", entry)
                        if found is not None:
                            yield StoredObject(
                                found.key, found.size, found.modified, sha256=entry.name
                            )

    def list_staged(self) -> Iterator[StoredObject]:
        # Uploads through the hub are filed under their hash as they complete: all that is ever
        # staged here is the spool file of a writer, left behind when its process died.
        for entry in _files(self.root / "tmp"):
            found = _stored(f"tmp/{entry.name}", entry)
            if found is not None and SPOOL_KEY.fullmatch(found.key):
                yield found

    def delete_staged(self, key: str) -> None:
        if not SPOOL_KEY.fullmatch(key):
            raise ValueError(f"{key!r} is not a staged object of this store")
        (self.root / key).unlink(missing_ok=True)


def _subfolders(folder: Path) -> Iterator[Path]:
    try:
        with os.scandir(folder) as entries:
            found = [Path(e.path) for e in entries if e.is_dir(follow_symlinks=False)]
    except FileNotFoundError:
        return
    yield from sorted(found)


def _files(folder: Path) -> Iterator[os.DirEntry[str]]:
    try:
        with os.scandir(folder) as entries:
            found = [e for e in entries if e.is_file(follow_symlinks=False)]
    except FileNotFoundError:
        return
    yield from found


def _stored(key: str, entry: os.DirEntry[str]) -> StoredObject | None:
    try:
        info = entry.stat(follow_symlinks=False)
    except FileNotFoundError:  # removed since the folder was read
        return None
    return StoredObject(key, info.st_size, datetime.fromtimestamp(info.st_mtime, UTC))
