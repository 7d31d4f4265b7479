"""Hashing files once: SHA-256 in one streaming pass, remembered across runs.

SHA-256 is the identity of bytes on the hub and what its uploads are checked against; MD5 is left to
the older clients that still send it.

The cache works like git's index: an entry is trusted while the file's size, mtime (in ns) and
inode are unchanged, so a re-push of an unchanged package reads no data. A file modified within
the file system's timestamp granularity could keep its mtime, so entries whose mtime is that
recent ("racily clean", in git's words) are not stored.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from dphub.client._config import cache_dir, write_private

CHUNK_SIZE = 1024 * 1024
CACHE_VERSION = 2
RACY_WINDOW_NS = 2_000_000_000


@dataclass(frozen=True)
class FileHashes:
    size: int
    sha256: str
    """Hex digest: the identity of the bytes on the hub."""


def read_chunks(file: BinaryIO, size: int = CHUNK_SIZE) -> Iterator[bytes]:
    while chunk := file.read(size):
        yield chunk


def hash_file(path: Path, *, on_bytes: Callable[[int], None] | None = None) -> FileHashes:
    sha256 = hashlib.sha256()
    size = 0
    with path.open("rb") as file:
        for chunk in read_chunks(file):
            sha256.update(chunk)
            size += len(chunk)
            if on_bytes is not None:
                on_bytes(len(chunk))
    return FileHashes(size=size, sha256=sha256.hexdigest())


def _signature(stat: os.stat_result) -> dict[str, int]:
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "inode": stat.st_ino}


class HashCache:
    """Hashes of local files keyed by absolute path, valid while size, mtime and inode hold."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or cache_dir() / "hashes.json"
        self.hits = 0
        self.misses = 0
        self._lock = threading.Lock()
        self._entries = self._read()
        self._dirty = False

    def _read(self) -> dict[str, dict[str, Any]]:
        try:
            data = json.loads(self.path.read_bytes())
        except (OSError, ValueError):
            return {}  # no cache, or a damaged one: hashing again is always correct
        if not isinstance(data, dict) or data.get("version") != CACHE_VERSION:
            return {}
        entries = data.get("files")
        return entries if isinstance(entries, dict) else {}

    def lookup(self, path: Path) -> FileHashes | None:
        """The cached hashes of ``path`` if the file has not changed since, else ``None``."""
        key = str(path.absolute())
        stat = path.stat()
        with self._lock:
            entry = self._entries.get(key)
        if not isinstance(entry, dict) or entry.get("stat") != _signature(stat):
            return None
        try:
            return FileHashes(size=stat.st_size, sha256=entry["sha256"])
        except KeyError:
            return None

    def hash(self, path: Path, *, on_bytes: Callable[[int], None] | None = None) -> FileHashes:
        """Hashes of ``path``, from the cache when the file is unchanged, else read and stored."""
        cached = self.lookup(path)
        if cached is not None:
            with self._lock:
                self.hits += 1
            return cached
        before = path.stat()
        hashes = hash_file(path, on_bytes=on_bytes)
        after = path.stat()
        with self._lock:
            self.misses += 1
            stable = _signature(before) == _signature(after) and hashes.size == after.st_size
            racy = time.time_ns() - after.st_mtime_ns < RACY_WINDOW_NS
            if stable and not racy:
                self._entries[str(path.absolute())] = {
                    "stat": _signature(after),
                    "sha256": hashes.sha256,
                }
                self._dirty = True
        return hashes

    def save(self) -> None:
        """Write the cache back, dropping entries of files that are gone. Best effort."""
        with self._lock:
            if not self._dirty:
                return
            entries = {k: v for k, v in self._entries.items() if os.path.exists(k)}
            self._dirty = False
        content = json.dumps({"version": CACHE_VERSION, "files": entries}).encode()
        # A read-only home must not fail a push: the cache only saves time.
        with contextlib.suppress(OSError):
            write_private(self.path, content)
