"""The job queue in the metastore: claim a revision to process, keep the claim alive, finish it.

Finalize inserts the job in the transaction that creates the revision, so no revision is ever
without one. Claiming is a compare-and-set on the job row, after a ``FOR UPDATE SKIP LOCKED`` read
on PostgreSQL (many workers never wait on each other); SQLite serialises writers anyway. A running
job whose heartbeat is older than ``job_timeout`` belongs to a dead worker and is claimed again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from dphub.metastore.db import transaction
from dphub.metastore.models import Job, Revision

QUEUED = "queued"
RUNNING = "running"
DONE = "done"
FAILED = "failed"


@dataclass(frozen=True)
class Claim:
    job_id: int
    revision_id: int
    attempt: int
    worker: str


def _claimable(now: datetime, timeout: int) -> object:
    stale = now - timedelta(seconds=timeout)
    due = or_(Job.retry_at.is_(None), Job.retry_at <= now)
    return or_((Job.state == QUEUED) & due, (Job.state == RUNNING) & (Job.heartbeat_at < stale))


def claim(sessions: sessionmaker[Session], *, worker: str, timeout: int) -> Claim | None:
    """Take the oldest job no live worker holds, or ``None`` when there is none.

    One statement picks and takes the job, so two claimers never both think they lost (or both
    think they won) the same row.
    """
    now = datetime.now(UTC)
    oldest = (
        select(Job.id)
        .where(_claimable(now, timeout))  # type: ignore[arg-type]
        .order_by(Job.id)
        .limit(1)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    with transaction(sessions) as db:
        taken = db.execute(
            update(Job)
            .where(Job.id == oldest)
            .values(
                state=RUNNING,
                worker=worker,
                attempts=Job.attempts + 1,
                started_at=now,
                heartbeat_at=now,
            )
            .returning(Job.id, Job.revision_id, Job.attempts)
        ).first()
        if taken is None:
            return None
        job_id, revision_id, attempts = taken
        db.execute(
            update(Revision)
            .where(Revision.id == revision_id, Revision.state == "QUEUED")
            .values(state="INPROGRESS", modified_at=now)
        )
        return Claim(job_id, revision_id, attempts, worker)


def heartbeat(sessions: sessionmaker[Session], claim: Claim) -> bool:
    """Move the claim's heartbeat on; ``False`` when another worker has taken the job over."""
    with transaction(sessions) as db:
        moved = db.execute(
            update(Job)
            .where(Job.id == claim.job_id, Job.worker == claim.worker, Job.state == RUNNING)
            .values(heartbeat_at=datetime.now(UTC))
        )
        return bool(moved.rowcount == 1)  # type: ignore[attr-defined]


def still_mine(db: Session, claim: Claim) -> bool:
    """Inside the finishing transaction: the job is still this worker's to finish."""
    job = db.get(Job, claim.job_id, with_for_update=True)
    return job is not None and job.worker == claim.worker and job.state == RUNNING


def mark(db: Session, claim: Claim, state: str, error: str | None = None) -> None:
    db.execute(
        update(Job)
        .where(Job.id == claim.job_id)
        .values(state=state, finished_at=datetime.now(UTC), error=error)
    )


def release(sessions: sessionmaker[Session], claim: Claim, error: str, *, delay: float = 0) -> None:
    """Give a job back to the queue after a failure that another attempt may not meet, to be
    claimed again ``delay`` seconds from now (an outage of the store or the database has time
    to end before the next attempt)."""
    retry_at = datetime.now(UTC) + timedelta(seconds=delay) if delay > 0 else None
    with transaction(sessions) as db:
        db.execute(
            update(Job)
            .where(Job.id == claim.job_id, Job.worker == claim.worker, Job.state == RUNNING)
            .values(state=QUEUED, worker=None, heartbeat_at=None, error=error, retry_at=retry_at)
        )


def queue_depth(sessions: sessionmaker[Session]) -> int:
    with sessions() as db:
        count = db.scalar(
            select(func.count()).select_from(Job).where(Job.state.in_((QUEUED, RUNNING)))
        )
        return int(count or 0)


def enqueue(db: Session, revision: Revision) -> None:
    """Queue ``revision`` for processing again (its job reset, or a first one made).

    The revision keeps being served as it is until the new run finishes; a package's successful
    revision only ever moves forward.
    """
    job = db.scalar(select(Job).where(Job.revision_id == revision.id).with_for_update())
    if job is None:
        db.add(Job(revision_id=revision.id))
    elif job.state == RUNNING:
        raise ValueError("this revision is being processed right now")
    else:
        job.state, job.attempts, job.worker, job.error, job.retry_at = QUEUED, 0, None, None, None
        job.heartbeat_at = job.started_at = job.finished_at = None
    if revision.state != "SUCCEEDED":
        revision.state = "QUEUED"
    revision.modified_at = datetime.now(UTC)


def unprocessed(db: Session) -> list[Revision]:
    """Revisions without a job: pushed to a hub from before processing existed."""
    jobless = select(Job.id).where(Job.revision_id == Revision.id).exists()
    return list(db.scalars(select(Revision).where(~jobless).order_by(Revision.id)))
