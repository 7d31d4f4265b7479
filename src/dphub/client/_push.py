"""Publishing a package in phases: hash, negotiate (authorize), upload what is missing, finalize.

Each phase is one function, so a failure says which step broke and nothing after it has run:
the hub only creates the revision at finalize, with every file already in storage.
"""

from __future__ import annotations

import io
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import httpx

from dphub.client._hashing import CHUNK_SIZE, FileHashes, HashCache
from dphub.client._http import absolute, raise_for_status
from dphub.client._multipart import multipart_tasks, parse_plan
from dphub.client._package import LocalFile, LocalPackage
from dphub.client._progress import Reporter
from dphub.client._transfer import Cancelled, read_range, run_parallel, with_retries
from dphub.datapackage import DESCRIPTOR_FILE
from dphub.errors import DphubError, InvalidUpload


@dataclass(frozen=True)
class PushResult:
    owner: str
    name: str
    revision: int | None
    url: str
    """The package's page on the hub."""
    status_url: str | None
    """Where the processing state of the new revision can be polled."""
    uploaded_files: tuple[str, ...]
    skipped_files: tuple[str, ...]
    """Files the hub already held with the same SHA-256: nothing was sent."""
    uploaded_bytes: int
    """Bytes sent in this run: a resumed push counts only what it sent."""
    status: str = "queued"
    unchanged: bool = False
    """The hub found this revision identical to the latest one and kept that."""
    resumed_bytes: int = 0
    """Bytes of large files that storage already held, left by an earlier push that was
    interrupted: they were not sent again."""


@dataclass(frozen=True)
class HashedFile:
    file: LocalFile
    hashes: FileHashes


def hash_files(
    package: LocalPackage, *, cache: HashCache, report: Reporter, workers: int = 4
) -> list[HashedFile]:
    """Phase 1: the SHA-256 of every file, reading only files the cache does not know.

    Files are hashed on ``workers`` threads (hashlib releases the GIL on large buffers), and the
    result keeps the package's file order.
    """
    unknown = [f for f in package.files if cache.lookup(f.absolute) is None]
    report.start("hash", total=sum(f.size for f in unknown), files=len(unknown))

    def one(file: LocalFile) -> HashedFile:
        hashes = cache.hash(file.absolute, on_bytes=partial(report.advance, "hash", file.path))
        report.done("hash", file.path, hashes.size)
        return HashedFile(file, hashes)

    hashed = run_parallel([partial(one, f) for f in package.files], workers=workers)
    cache.save()
    return hashed


def authorize(
    api: httpx.Client,
    *,
    owner: str,
    name: str,
    findability: str | None,
    files: list[HashedFile],
) -> dict[str, dict[str, Any]]:
    """Phase 2: tell the hub what the package holds; it answers, per file, how to upload it or
    that it already has those bytes."""
    metadata: dict[str, Any] = {"owner": owner, "name": name}
    if findability is not None:
        metadata["findability"] = findability
    filedata = {
        f.file.path: {
            "size": f.hashes.size,
            "sha256": f.hashes.sha256,
            "type": f.file.mimetype,
            "name": os.path.basename(f.file.path),
        }
        for f in files
    }
    response = api.post(
        "/api/datastore/authorize", json={"metadata": metadata, "filedata": filedata}
    )
    raise_for_status(response)
    answers = response.json().get("filedata")
    if not isinstance(answers, dict):
        raise DphubError("The hub's authorize answer has no 'filedata' object.")
    missing = [f.file.path for f in files if not isinstance(answers.get(f.file.path), dict)]
    if missing:
        raise DphubError(f"The hub's authorize answer says nothing of {', '.join(missing)}.")
    return answers


@dataclass(frozen=True)
class UploadOutcome:
    uploaded: list[str]
    skipped: list[str]
    sent_bytes: int
    """Bytes sent in this run."""
    resumed_bytes: int
    """Bytes of parts storage already held from an earlier, interrupted push: not sent again."""


def upload_missing(
    client: httpx.Client,
    *,
    server: str,
    files: list[HashedFile],
    answers: dict[str, dict[str, Any]],
    workers: int,
    report: Reporter,
) -> UploadOutcome:
    """Phase 3: send each file the hub does not hold, on ``workers`` threads, biggest work first.

    A file with a ``multipart`` plan is sent part by part, its parts sharing the pool with every
    other transfer, and completed on the hub once its last part is stored; parts storage already
    holds are not sent again. ``client`` sends the hub token only to the hub's own origin, never
    to object storage.
    """
    todo = [f for f in files if not answers[f.file.path].get("exists")]
    skipped = [f.file.path for f in files if answers[f.file.path].get("exists")]
    todo.sort(key=lambda f: f.hashes.size, reverse=True)
    plans = {
        f.file.path: parse_plan(f.file.path, answers[f.file.path]["multipart"], size=f.hashes.size)
        for f in todo
        if answers[f.file.path].get("multipart") is not None
    }
    report.start("upload", total=sum(f.hashes.size for f in todo), files=len(todo))
    for path, plan in plans.items():
        report.resume("upload", path, plan.resumed_bytes)
    cancel = threading.Event()
    work: list[tuple[int, Callable[[], None]]] = []
    for item in todo:
        in_parts = plans.get(item.file.path)
        if in_parts is None:
            answer = answers[item.file.path]
            task = partial(_upload_one, client, server, item, answer, report, cancel)
            work.append((item.hashes.size, task))
        else:
            work.extend(
                multipart_tasks(
                    client,
                    server=server,
                    file=item.file,
                    hashes=item.hashes,
                    plan=in_parts,
                    report=report,
                    cancel=cancel,
                )
            )
    # Longest first keeps the pool busy to the end; the sort is stable, so a file's parts stay
    # together and in order.
    work.sort(key=lambda pair: pair[0], reverse=True)
    run_parallel([task for _, task in work], workers=workers, cancel=cancel)
    resumed = sum(plan.resumed_bytes for plan in plans.values())
    return UploadOutcome(
        uploaded=[f.file.path for f in todo],
        skipped=skipped,
        sent_bytes=sum(f.hashes.size for f in todo) - resumed,
        resumed_bytes=resumed,
    )


def _upload_one(
    transfer: httpx.Client,
    server: str,
    item: HashedFile,
    answer: dict[str, Any],
    report: Reporter,
    cancel: threading.Event,
) -> None:
    file, size = item.file, item.hashes.size
    if file.absolute.stat().st_size != size:
        raise InvalidUpload(f"{file.path} changed while it was being pushed; push again.")
    sent = 0

    def moved(amount: int) -> None:
        nonlocal sent
        sent += amount
        report.advance("upload", file.path, amount)

    def rewind() -> None:
        moved(-sent)

    put_url = answer.get("put_url")
    upload_url = answer.get("upload_url")
    if isinstance(put_url, str) and put_url:
        headers = {str(k): str(v) for k, v in (answer.get("put_headers") or {}).items()}
        headers["Content-Length"] = str(size)
        headers.setdefault("Content-Type", file.mimetype)

        def put() -> None:
            body = read_range(
                file.absolute, offset=0, size=size, moved=moved, cancel=cancel, name=file.path
            )
            response = transfer.put(absolute(server, put_url), content=body, headers=headers)
            raise_for_status(response)

        with_retries(put, on_retry=rewind, cancel=cancel)
    elif isinstance(upload_url, str) and upload_url:
        fields = {str(k): str(v) for k, v in (answer.get("upload_query") or {}).items()}

        def post() -> None:
            with _CountingReader(file.absolute, moved, cancel) as body:
                response = transfer.post(
                    absolute(server, upload_url),
                    data=fields,
                    files={"file": (os.path.basename(file.path), body, file.mimetype)},
                )
            raise_for_status(response)

        with_retries(post, on_retry=rewind, cancel=cancel)
    else:
        raise DphubError(f"The hub gave no upload URL for {file.path}.")
    report.done("upload", file.path, size)


class _CountingReader(io.BufferedReader):
    """A file opened for reading that reports each read, for the form upload's progress."""

    def __init__(self, path: Path, moved: Callable[[int], None], cancel: threading.Event) -> None:
        super().__init__(io.FileIO(path, "r"), buffer_size=CHUNK_SIZE)
        self._moved = moved
        self._cancel = cancel

    def read(self, size: int | None = -1, /) -> bytes:
        if self._cancel.is_set():
            raise Cancelled(f"The upload of {self.name} was interrupted.")
        chunk = super().read(size)
        self._moved(len(chunk))
        return chunk


def finalize(api: httpx.Client, *, answers: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Phase 4: ask the hub to create the revision from the uploaded datapackage.json."""
    entry = answers[DESCRIPTOR_FILE]
    upload_url = entry.get("upload_url")
    query = entry.get("upload_query")
    key = query.get("key") if isinstance(query, dict) else None
    if not isinstance(upload_url, str) or not isinstance(key, str):
        raise InvalidUpload(
            "The hub's authorize answer gave no upload_url and key for datapackage.json,"
            " so the upload cannot be finalized."
        )
    datapackage = upload_url.rstrip("/") + "/" + key
    response = api.post("/api/package/upload", json={"datapackage": datapackage})
    raise_for_status(response)
    answer = response.json()
    if not isinstance(answer, dict):
        raise DphubError("The hub's finalize answer is not a JSON object.")
    return answer
