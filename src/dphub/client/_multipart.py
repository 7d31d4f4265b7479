"""Large files in parts: read the hub's multipart plan, send the parts storage lacks, complete.

Nothing about an unfinished upload is kept on this side. A part PUT is idempotent, and the hub finds
an unfinished upload again by user, SHA-256 and size: after Ctrl-C, a lost network or a killed
process, the next push is answered with the same upload and the parts already stored, and sends
only the rest.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import httpx

from dphub.client._hashing import FileHashes
from dphub.client._http import absolute, raise_for_status
from dphub.client._package import LocalFile
from dphub.client._progress import Reporter
from dphub.client._transfer import read_range, with_retries
from dphub.errors import DphubError, InvalidUpload, UploadMismatch

PART_STATUSES = (200, 204)
"""S3 answers a stored part with 200, the hub's own bitstore endpoint with 204."""

VERIFY_RATE = 20 * 1024 * 1024
"""Bytes per second the hub is assumed to at least re-read when it checks a completed file."""


@dataclass(frozen=True)
class Part:
    number: int
    offset: int
    size: int
    url: str
    headers: dict[str, str]


@dataclass(frozen=True)
class MultipartPlan:
    """The hub's ``multipart`` answer for one file, checked against the file's size."""

    upload_id: str
    part_size: int
    parts: tuple[Part, ...]
    uploaded: frozenset[int]
    """Numbers of the parts storage already holds, from an earlier push of the same bytes."""
    complete_url: str

    @property
    def missing(self) -> tuple[Part, ...]:
        return tuple(p for p in self.parts if p.number not in self.uploaded)

    @property
    def resumed_bytes(self) -> int:
        return sum(p.size for p in self.parts if p.number in self.uploaded)

    @property
    def missing_bytes(self) -> int:
        return sum(p.size for p in self.missing)


def parse_plan(path: str, answer: Any, *, size: int) -> MultipartPlan:
    """The plan in ``answer``, or :class:`~dphub.errors.DphubError` when it cannot be followed:
    parts numbered 1..N, each ``part_size`` long but the last, together exactly the file."""

    def broken(reason: str) -> DphubError:
        return DphubError(f"The hub's multipart plan for {path} cannot be followed: {reason}.")

    if not isinstance(answer, dict):
        raise broken("it is not an object")
    upload_id, part_size = answer.get("upload_id"), _count(answer.get("part_size"))
    complete_url, raw_parts = answer.get("complete_url"), answer.get("parts")
    if not isinstance(upload_id, str) or not upload_id:
        raise broken("no upload_id")
    if part_size is None or part_size <= 0:
        raise broken("no positive part_size")
    if not isinstance(complete_url, str) or not complete_url:
        raise broken("no complete_url")
    if not isinstance(raw_parts, list) or not raw_parts:
        raise broken("no parts")
    parts: list[Part] = []
    for raw in raw_parts:
        if not isinstance(raw, dict):
            raise broken("a part is not an object")
        number, part_bytes = _count(raw.get("number")), _count(raw.get("size"))
        url, headers = raw.get("url"), raw.get("headers") or {}
        if number is None or part_bytes is None or part_bytes <= 0:
            raise broken("a part has no number or size")
        if not isinstance(url, str) or not url or not isinstance(headers, dict):
            raise broken(f"part {number} has no url")
        strings = {str(k): str(v) for k, v in headers.items()}
        parts.append(Part(number, (number - 1) * part_size, part_bytes, url, strings))
    parts.sort(key=lambda p: p.number)
    if [p.number for p in parts] != list(range(1, len(parts) + 1)):
        raise broken("the parts are not numbered 1 to N")
    if any(p.size != part_size for p in parts[:-1]) or parts[-1].size > part_size:
        raise broken("the part sizes do not match part_size")
    if parts[-1].offset + parts[-1].size != size:
        raise broken(f"the parts hold {parts[-1].offset + parts[-1].size} bytes, not {size}")
    raw_uploaded = answer.get("uploaded") or []
    uploaded = [_count(n) for n in raw_uploaded] if isinstance(raw_uploaded, list) else [None]
    if None in uploaded:
        raise broken("uploaded is not a list of part numbers")
    return MultipartPlan(
        upload_id=upload_id,
        part_size=part_size,
        parts=tuple(parts),
        uploaded=frozenset(n for n in uploaded if n is not None and 1 <= n <= len(parts)),
        complete_url=complete_url,
    )


def _count(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return None


class _PartsLeft:
    """Counts a file's parts down across worker threads; whoever sends the last one completes."""

    def __init__(self, count: int) -> None:
        self._left = count
        self._lock = threading.Lock()

    def one_done(self) -> bool:
        with self._lock:
            self._left -= 1
            return self._left == 0


def multipart_tasks(
    client: httpx.Client,
    *,
    server: str,
    file: LocalFile,
    hashes: FileHashes,
    plan: MultipartPlan,
    report: Reporter,
    cancel: threading.Event,
) -> list[tuple[int, Callable[[], None]]]:
    """The work for one file as ``(bytes, task)`` pairs for the shared pool: one task per missing
    part, the one finishing last also completing the upload (a lone task when no part is
    missing, weighed as the whole file since the hub then reads it all back)."""
    finish = partial(
        complete_upload,
        client,
        server=server,
        path=file.path,
        hashes=hashes,
        plan=plan,
        cancel=cancel,
    )

    def complete_only() -> None:
        finish()
        report.done("upload", file.path, hashes.size)

    missing = plan.missing
    if not missing:
        return [(hashes.size, complete_only)]
    left = _PartsLeft(len(missing))

    def send(part: Part) -> None:
        put_part(
            client,
            server=server,
            file=file,
            size=hashes.size,
            part=part,
            report=report,
            cancel=cancel,
        )
        if left.one_done():
            complete_only()

    return [(part.size, partial(send, part)) for part in missing]


def put_part(
    client: httpx.Client,
    *,
    server: str,
    file: LocalFile,
    size: int,
    part: Part,
    report: Reporter,
    cancel: threading.Event | None = None,
) -> None:
    """PUT one part's bytes, streamed from disk, to its presigned URL, retried if the network drops."""
    if file.absolute.stat().st_size != size:
        raise InvalidUpload(f"{file.path} changed while it was being pushed; push again.")
    headers = dict(part.headers)
    headers["Content-Length"] = str(part.size)
    sent = 0

    def moved(amount: int) -> None:
        nonlocal sent
        sent += amount
        report.advance("upload", file.path, amount)

    def put() -> None:
        body = read_range(
            file.absolute,
            offset=part.offset,
            size=part.size,
            moved=moved,
            cancel=cancel,
            name=file.path,
        )
        response = client.put(absolute(server, part.url), content=body, headers=headers)
        raise_for_status(response)
        if response.status_code not in PART_STATUSES:
            raise DphubError(
                f"The storage answered HTTP {response.status_code} to part {part.number}"
                f" of {file.path}, not 200 or 204."
            )

    with_retries(put, on_retry=lambda: moved(-sent), cancel=cancel)


def complete_upload(
    client: httpx.Client,
    *,
    server: str,
    path: str,
    hashes: FileHashes,
    plan: MultipartPlan,
    cancel: threading.Event | None = None,
) -> None:
    """Ask the hub to assemble the parts; it checks the whole file's SHA-256 before answering.

    ``client`` must send the hub token: ``complete_url`` is on the hub's own origin.
    """
    timeout = _complete_timeout(client.timeout, hashes.size)

    def post() -> httpx.Response:
        return client.post(absolute(server, plan.complete_url), json={}, timeout=timeout)

    response = with_retries(post, cancel=cancel)
    raise_for_status(response)
    try:
        answer = response.json()
    except ValueError:
        answer = None
    if not isinstance(answer, dict) or not isinstance(answer.get("sha256"), str):
        raise DphubError(f"The hub's answer to completing {path} does not say what it stored.")
    if answer["sha256"] != hashes.sha256 or answer.get("size") != hashes.size:
        raise UploadMismatch(
            f"The hub assembled {path} as {answer.get('size')} bytes with SHA-256"
            f" {answer['sha256']}, not the {hashes.size} bytes with SHA-256 {hashes.sha256}"
            " that were pushed.",
            path=path,
        )


def _complete_timeout(base: httpx.Timeout, size: int) -> httpx.Timeout:
    # The hub reads the whole file back before it answers: allow for that on big files.
    if base.read is None:
        return base
    read = max(base.read, size / VERIFY_RATE)
    return httpx.Timeout(base.connect, read=read, write=base.write, pool=base.pool)
