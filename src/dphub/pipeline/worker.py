"""The worker loop: claim a job, keep its heartbeat going, process it, repeat.

``dphub worker`` runs it in the foreground with N threads; ``dphub serve`` runs one in a thread of
the server on the embedded setup. A job that raises is given back to the queue until it has used
its attempts, then its revision is FAILED with the error. Beside the job threads, one more thread
delivers webhooks (:mod:`dphub.events.delivery`).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid

from dphub.events import delivery
from dphub.hub import Hub
from dphub.pipeline import jobs
from dphub.pipeline.process import Superseded, fail, process

log = logging.getLogger("dphub.worker")

POLL_SECONDS = 0.25


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Heartbeat:
    """Moves the job's heartbeat on from a side thread while the job runs."""

    def __init__(self, hub: Hub, claim: jobs.Claim) -> None:
        self.hub = hub
        self.claim = claim
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._interval = max(0.5, hub.settings.job_timeout / 4)
        self._thread = threading.Thread(target=self._beat, name="dphub-heartbeat", daemon=True)

    def _beat(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                if not jobs.heartbeat(self.hub.sessions, self.claim):
                    self.lost.set()
                    return
            except Exception:  # a metastore hiccup: try again at the next beat
                log.warning("heartbeat of job %s failed", self.claim.job_id, exc_info=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def run_once(hub: Hub, *, name: str | None = None) -> bool:
    """Claim and process one job; ``False`` when the queue had nothing to claim."""
    name = name or worker_name()
    claim = jobs.claim(hub.sessions, worker=name, timeout=hub.settings.job_timeout)
    if claim is None:
        return False
    log.info(
        "job %s (revision %s) claimed, attempt %s", claim.job_id, claim.revision_id, claim.attempt
    )
    with Heartbeat(hub, claim) as beat:
        try:
            process(hub, claim, alive=lambda: not beat.lost.is_set())
        except Superseded:
            log.warning("job %s was taken over by another worker", claim.job_id)
        except Exception as exc:
            message = f"Processing stopped: {type(exc).__name__}: {exc}"
            log.exception("job %s failed", claim.job_id)
            if claim.attempt >= hub.settings.job_attempts:
                fail(hub, claim, f"{message} (after {claim.attempt} attempts)")
            else:
                delay = hub.settings.job_retry_delay * 4 ** (claim.attempt - 1)
                log.info("job %s goes back to the queue for %g seconds", claim.job_id, delay)
                jobs.release(hub.sessions, claim, message, delay=delay)
    return True


def run(hub: Hub, *, concurrency: int = 1, stop: threading.Event | None = None) -> None:
    """Process jobs on ``concurrency`` threads, and deliver webhooks on one more, until ``stop``
    is set."""
    stop = stop or threading.Event()

    def loop() -> None:
        name = worker_name()
        while not stop.is_set():
            try:
                busy = run_once(hub, name=name)
            except Exception:  # the metastore is unreachable: wait, then try again
                log.warning("the worker could not claim a job", exc_info=True)
                busy = False
            if not busy:
                stop.wait(POLL_SECONDS)

    threads = [
        threading.Thread(target=loop, name=f"dphub-worker-{i}", daemon=True)
        for i in range(concurrency)
    ]
    threads.append(
        threading.Thread(
            target=delivery.run,
            args=(hub,),
            kwargs={"stop": stop},
            name="dphub-webhooks",
            daemon=True,
        )
    )
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
