"""Downloading a package: every stored file verified against its SHA-256 before it lands.

A file is streamed into a temporary file beside its target and moved into place only once its
size and hash match, so a failed or tampered download never replaces what was there.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import httpx

from dphub.client._config import write_private
from dphub.client._hashing import CHUNK_SIZE
from dphub.client._http import absolute, raise_for_status
from dphub.client._progress import Reporter
from dphub.client._transfer import run_parallel, with_retries
from dphub.datapackage import DESCRIPTOR_FILE, local_paths, resource_paths
from dphub.errors import ChecksumMismatch, DphubError, InvalidPath
from dphub.names import check_path


@dataclass(frozen=True)
class RemoteFile:
    path: str
    url: str
    size: int | None
    sha256: str | None


def remote_files(show: dict[str, Any], served: dict[str, Any] | None = None) -> list[RemoteFile]:
    """The files to fetch, from the package show answer's ``files`` list.

    A hub that lists no ``files`` is read through ``served`` instead (the datapackage.json it
    serves, whose paths are URLs), matched by JSON pointer to the original relative paths; those
    files can only be checked when the hub gives their size or hash.
    """
    listed = show.get("files")
    found: list[RemoteFile] = []
    if isinstance(listed, list):
        for item in listed:
            if not isinstance(item, dict) or not isinstance(item.get("url"), str):
                raise DphubError("The hub's package answer lists a file without a URL.")
            found.append(
                RemoteFile(
                    path=check_path(item.get("path")),
                    url=item["url"],
                    size=item.get("size") if isinstance(item.get("size"), int) else None,
                    sha256=item.get("sha256") if isinstance(item.get("sha256"), str) else None,
                )
            )
    elif served is not None:
        urls = dict(resource_paths(served))
        for where, path in local_paths(show.get("descriptor") or {}):
            url = urls.get(where)
            if url is not None:
                found.append(RemoteFile(check_path(path), url, None, None))
    return [f for f in found if f.path != DESCRIPTOR_FILE]


def download_files(
    transfer: httpx.Client,
    *,
    server: str,
    files: list[RemoteFile],
    dest: Path,
    workers: int,
    report: Reporter,
) -> None:
    root = dest.resolve()
    targets = [(f, _target(root, f.path)) for f in files]
    report.start("download", total=sum(f.size or 0 for f in files), files=len(files))
    mode = _file_mode()
    tasks = [partial(_download_one, transfer, server, f, t, mode, report) for f, t in targets]
    run_parallel(tasks, workers=workers)


def write_descriptor(dest: Path, descriptor: dict[str, Any]) -> Path:
    target = dest / DESCRIPTOR_FILE
    content = json.dumps(descriptor, indent=2, ensure_ascii=False).encode() + b"\n"
    write_private(target, content)
    os.chmod(target, _file_mode())
    return target


def _target(root: Path, path: str) -> Path:
    target = root / check_path(path)
    # A symlinked folder inside dest could still lead elsewhere: compare real locations.
    if not target.parent.resolve().is_relative_to(root):
        raise InvalidPath(f"{path!r} would be written outside {root}.", path=path)
    return target


def _download_one(
    transfer: httpx.Client,
    server: str,
    file: RemoteFile,
    target: Path,
    mode: int,
    report: Reporter,
) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    received = 0

    def moved(amount: int) -> None:
        nonlocal received
        received += amount
        report.advance("download", file.path, amount)

    def fetch() -> None:
        moved(-received)
        _fetch(transfer, absolute(server, file.url), file, target, mode, moved)

    with_retries(fetch)
    report.done("download", file.path, received)


def _fetch(
    transfer: httpx.Client,
    url: str,
    file: RemoteFile,
    target: Path,
    mode: int,
    moved: Callable[[int], None],
) -> None:
    fd, temp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    try:
        digest = hashlib.sha256()
        size = 0
        with os.fdopen(fd, "wb") as out, transfer.stream("GET", url) as response:
            raise_for_status(response)
            for chunk in response.iter_bytes(CHUNK_SIZE):
                out.write(chunk)
                digest.update(chunk)
                size += len(chunk)
                moved(len(chunk))
        if file.size is not None and size != file.size:
            raise ChecksumMismatch(
                f"{file.path}: the hub sent {size} bytes, not the {file.size} it lists;"
                " nothing was written.",
                path=file.path,
            )
        if file.sha256 is not None and digest.hexdigest() != file.sha256.lower():
            raise ChecksumMismatch(
                f"{file.path}: the bytes received do not match the SHA-256 the hub lists;"
                " nothing was written.",
                path=file.path,
            )
        os.chmod(temp, mode)
        os.replace(temp, target)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def _file_mode() -> int:
    # The permissions a new file would get from the user's umask (temp files are born 0600).
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask
