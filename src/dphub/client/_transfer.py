"""Running transfers in parallel and retrying the ones the network dropped."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from typing import TypeVar

import httpx

T = TypeVar("T")

RETRIES = 2
RETRY_DELAY = 1.0


def run_parallel(tasks: Sequence[Callable[[], T]], *, workers: int) -> list[T]:
    """Run ``tasks`` on up to ``workers`` threads; the first failure cancels what has not started
    and is raised once the running tasks end."""
    if not tasks:
        return []
    if workers <= 1 or len(tasks) == 1:
        return [task() for task in tasks]
    with ThreadPoolExecutor(max_workers=min(workers, len(tasks))) as pool:
        futures = [pool.submit(task) for task in tasks]
        done, _ = wait(futures, return_when=FIRST_EXCEPTION)
        failed = next((f for f in futures if f in done and f.exception() is not None), None)
        if failed is not None:
            pool.shutdown(wait=True, cancel_futures=True)
            error = failed.exception()
            assert error is not None
            raise error
        return [f.result() for f in futures]


def with_retries(action: Callable[[], T], *, on_retry: Callable[[], None] | None = None) -> T:
    """Run ``action``, again up to ``RETRIES`` times when the connection fails midway.

    Only transport failures are retried: an HTTP error answer is a decision, not an accident.
    Every transfer dphub retries is idempotent (content-addressed upload, download to a temp file).
    """
    for attempt in range(RETRIES + 1):
        try:
            return action()
        except httpx.TransportError:
            if attempt == RETRIES:
                raise
            if on_retry is not None:
                on_retry()
            time.sleep(RETRY_DELAY * (attempt + 1))
    raise AssertionError("unreachable")
