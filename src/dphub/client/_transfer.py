"""Running transfers in parallel, retrying the ones the network dropped, stopping them on Ctrl-C."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from pathlib import Path
from typing import TypeVar

import httpx

from dphub.client._hashing import CHUNK_SIZE
from dphub.errors import InvalidUpload

T = TypeVar("T")

RETRIES = 2
RETRY_DELAY = 1.0


class Cancelled(Exception):
    """Raised inside a transfer whose run was interrupted, so its thread stops at the next chunk."""


def run_parallel(
    tasks: Sequence[Callable[[], T]],
    *,
    workers: int,
    cancel: threading.Event | None = None,
) -> list[T]:
    """Run ``tasks`` on up to ``workers`` threads; the first failure cancels what has not started
    and is raised once the running tasks end.

    When the waiting thread is interrupted (Ctrl-C), nothing more starts and ``cancel`` is set,
    so running transfers that watch it stop within a chunk instead of finishing their body.
    """
    if not tasks:
        return []
    if workers <= 1 or len(tasks) == 1:
        return [task() for task in tasks]
    with ThreadPoolExecutor(max_workers=min(workers, len(tasks))) as pool:
        futures = [pool.submit(task) for task in tasks]
        try:
            done, _ = wait(futures, return_when=FIRST_EXCEPTION)
        except BaseException:
            if cancel is not None:
                cancel.set()
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        failed = next((f for f in futures if f in done and f.exception() is not None), None)
        if failed is not None:
            pool.shutdown(wait=True, cancel_futures=True)
            error = failed.exception()
            assert error is not None
            raise error
        return [f.result() for f in futures]


def with_retries(
    action: Callable[[], T],
    *,
    on_retry: Callable[[], None] | None = None,
    cancel: threading.Event | None = None,
) -> T:
    """Run ``action``, again up to ``RETRIES`` times when the connection fails midway.

    Only transport failures are retried: an HTTP error answer is a decision, not an accident.
    Every transfer dphub retries is idempotent (content-addressed upload, a part of a multipart
    upload, download to a temp file). Once ``cancel`` is set, no attempt starts.
    """
    for attempt in range(RETRIES + 1):
        if cancel is not None and cancel.is_set():
            raise Cancelled("The transfer was interrupted.")
        try:
            return action()
        except httpx.TransportError:
            if attempt == RETRIES or (cancel is not None and cancel.is_set()):
                raise
            if on_retry is not None:
                on_retry()
            delay = RETRY_DELAY * (attempt + 1)
            if cancel is not None:
                cancel.wait(delay)
            else:
                time.sleep(delay)
    raise AssertionError("unreachable")


def read_range(
    path: Path,
    *,
    offset: int,
    size: int,
    moved: Callable[[int], None],
    cancel: threading.Event | None = None,
    name: str | None = None,
) -> Iterator[bytes]:
    """Exactly ``size`` bytes of ``path`` from ``offset``, in chunks, as a request body.

    Sending exactly the announced number of bytes keeps ``Content-Length`` true; a file that
    shrank since it was hashed is an error rather than a short body.
    """
    left = size
    with path.open("rb") as raw:
        raw.seek(offset)
        while left > 0:
            if cancel is not None and cancel.is_set():
                raise Cancelled(f"The upload of {name or path.name} was interrupted.")
            chunk = raw.read(min(CHUNK_SIZE, left))
            if not chunk:
                raise InvalidUpload(
                    f"{name or path.name} shrank while it was being pushed; push again."
                )
            left -= len(chunk)
            moved(len(chunk))
            yield chunk
