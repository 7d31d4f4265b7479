"""The job queue in the metastore, on SQLite and PostgreSQL: oldest first, one worker per job,
stale claims taken over, jobs given back, and no job handed out twice under concurrent claimers."""

from __future__ import annotations

import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, event, select, update
from sqlalchemy.orm import Session, sessionmaker

from dphub.metastore.db import transaction
from dphub.metastore.models import Job, Package, Revision, User
from dphub.pipeline import jobs

TIMEOUT = 30
"""Seconds without a heartbeat after which a running job counts as its worker's corpse."""


@pytest.fixture
def sessions(db: sessionmaker[Session]) -> sessionmaker[Session]:
    return db


def enqueue(sessions: sessionmaker[Session], count: int, *, package: str = "rain") -> list[int]:
    """``count`` revisions of one package, each with its queued job; returns the job ids in order."""
    with transaction(sessions) as db:
        user = db.scalar(select(User).where(User.username == "ann"))
        if user is None:
            user = User(username="ann", email="ann@example.org")
            db.add(user)
            db.flush()
        pack = Package(owner="ann", name=package, findability="public", latest_revision=count)
        db.add(pack)
        db.flush()
        ids = []
        for number in range(1, count + 1):
            revision = Revision(
                package_id=pack.id,
                number=number,
                state="QUEUED",
                descriptor={"name": package, "resources": []},
                created_by=user.id,
            )
            db.add(revision)
            db.flush()
            job = Job(revision_id=revision.id)
            db.add(job)
            db.flush()
            ids.append(job.id)
        return ids


def job_row(sessions: sessionmaker[Session], job_id: int) -> Job:
    with sessions() as db:
        job = db.get(Job, job_id)
        assert job is not None
        return job


def revision_state(sessions: sessionmaker[Session], revision_id: int) -> str:
    with sessions() as db:
        revision = db.get(Revision, revision_id)
        assert revision is not None
        return revision.state


def age_heartbeat(sessions: sessionmaker[Session], job_id: int, seconds: float) -> None:
    """Make the job's last heartbeat ``seconds`` old, as if its worker had stopped beating."""
    with transaction(sessions) as db:
        db.execute(
            update(Job)
            .where(Job.id == job_id)
            .values(heartbeat_at=datetime.now(UTC) - timedelta(seconds=seconds))
        )


def claim(sessions: sessionmaker[Session], worker: str = "w1") -> jobs.Claim | None:
    return jobs.claim(sessions, worker=worker, timeout=TIMEOUT)


def test_an_empty_queue_has_nothing_to_claim(sessions: sessionmaker[Session]) -> None:
    assert claim(sessions) is None
    assert jobs.queue_depth(sessions) == 0


def test_claim_takes_the_oldest_job_and_starts_its_revision(
    sessions: sessionmaker[Session],
) -> None:
    ids = enqueue(sessions, 3)
    before = datetime.now(UTC)
    first = claim(sessions, "worker-a")
    assert first is not None
    assert (first.job_id, first.attempt, first.worker) == (ids[0], 1, "worker-a")
    row = job_row(sessions, ids[0])
    assert (row.state, row.worker, row.attempts) == (jobs.RUNNING, "worker-a", 1)
    assert row.revision_id == first.revision_id
    assert row.started_at is not None
    assert row.started_at >= before - timedelta(seconds=1)
    assert row.heartbeat_at == row.started_at
    assert revision_state(sessions, first.revision_id) == "INPROGRESS"
    for other in ids[1:]:
        assert job_row(sessions, other).state == jobs.QUEUED
        assert revision_state(sessions, job_row(sessions, other).revision_id) == "QUEUED"


def test_each_claim_takes_the_next_job_until_none_is_left(
    sessions: sessionmaker[Session],
) -> None:
    ids = enqueue(sessions, 3)
    taken = [claim(sessions, f"w{i}") for i in range(3)]
    assert [c.job_id if c else None for c in taken] == ids
    assert claim(sessions, "w9") is None
    # a live claim (fresh heartbeat) is nobody else's to take
    assert all(jobs.heartbeat(sessions, c) for c in taken if c)
    assert claim(sessions, "w9") is None


def test_a_stale_claim_is_taken_over_and_the_old_worker_learns_it(
    sessions: sessionmaker[Session],
) -> None:
    (job_id,) = enqueue(sessions, 1)
    old = claim(sessions, "dead-worker")
    assert old is not None
    assert old.attempt == 1
    assert claim(sessions, "new-worker") is None  # still beating: not stale yet

    age_heartbeat(sessions, job_id, TIMEOUT + 5)
    new = claim(sessions, "new-worker")
    assert new is not None
    assert (new.job_id, new.revision_id, new.attempt) == (job_id, old.revision_id, 2)
    row = job_row(sessions, job_id)
    assert (row.state, row.worker, row.attempts) == (jobs.RUNNING, "new-worker", 2)
    assert row.heartbeat_at is not None
    assert row.heartbeat_at > datetime.now(UTC) - timedelta(seconds=TIMEOUT)
    assert revision_state(sessions, new.revision_id) == "INPROGRESS"

    assert jobs.heartbeat(sessions, old) is False
    assert jobs.heartbeat(sessions, new) is True
    with transaction(sessions) as db:
        assert jobs.still_mine(db, old) is False
    with transaction(sessions) as db:
        assert jobs.still_mine(db, new) is True
    # the old worker's late release changes nothing
    jobs.release(sessions, old, "late")
    row = job_row(sessions, job_id)
    assert (row.state, row.worker, row.error) == (jobs.RUNNING, "new-worker", None)


def test_a_job_just_under_the_timeout_is_not_taken_over(sessions: sessionmaker[Session]) -> None:
    (job_id,) = enqueue(sessions, 1)
    assert claim(sessions, "slow-worker") is not None
    age_heartbeat(sessions, job_id, TIMEOUT - 5)
    assert claim(sessions, "eager-worker") is None
    assert job_row(sessions, job_id).worker == "slow-worker"


def test_finished_jobs_are_never_claimed_again(sessions: sessionmaker[Session]) -> None:
    done_id, failed_id = enqueue(sessions, 2)
    for state in (jobs.DONE, jobs.FAILED):
        taken = claim(sessions)
        assert taken is not None
        with transaction(sessions) as db:
            assert jobs.still_mine(db, taken)
            jobs.mark(db, taken, state, "broken" if state == jobs.FAILED else None)
    for job_id in (done_id, failed_id):
        age_heartbeat(sessions, job_id, TIMEOUT * 10)
    assert claim(sessions) is None
    assert job_row(sessions, done_id).state == jobs.DONE
    failed = job_row(sessions, failed_id)
    assert (failed.state, failed.error) == (jobs.FAILED, "broken")
    assert failed.finished_at is not None


def test_release_puts_the_job_back_for_another_attempt(sessions: sessionmaker[Session]) -> None:
    first_id, second_id = enqueue(sessions, 2)
    taken = claim(sessions, "w1")
    assert taken is not None
    assert taken.job_id == first_id
    jobs.release(sessions, taken, "the bitstore was away")
    row = job_row(sessions, first_id)
    assert (row.state, row.worker, row.heartbeat_at) == (jobs.QUEUED, None, None)
    assert row.error == "the bitstore was away"
    assert heartbeat_lost(sessions, taken)
    # back at its place in the queue: the oldest again
    again = claim(sessions, "w2")
    assert again is not None
    assert (again.job_id, again.attempt) == (first_id, 2)
    assert revision_state(sessions, again.revision_id) == "INPROGRESS"
    following = claim(sessions, "w3")
    assert following is not None
    assert following.job_id == second_id


def heartbeat_lost(sessions: sessionmaker[Session], claim: jobs.Claim) -> bool:
    with transaction(sessions) as db:
        mine = jobs.still_mine(db, claim)
    return not mine and jobs.heartbeat(sessions, claim) is False


def test_queue_depth_counts_queued_and_running_jobs(sessions: sessionmaker[Session]) -> None:
    enqueue(sessions, 3)
    assert jobs.queue_depth(sessions) == 3
    taken = claim(sessions)
    assert taken is not None
    assert jobs.queue_depth(sessions) == 3
    with transaction(sessions) as db:
        jobs.mark(db, taken, jobs.DONE)
    assert jobs.queue_depth(sessions) == 2
    enqueue(sessions, 2, package="snow")
    assert jobs.queue_depth(sessions) == 4


def race(
    sessions: sessionmaker[Session], expected: int, *, name: str, threads_count: int = 8
) -> list[jobs.Claim]:
    """``threads_count`` workers claiming at once until ``expected`` jobs are taken."""
    claimed: list[jobs.Claim] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    start = threading.Barrier(threads_count)
    deadline = time.monotonic() + 60

    def claimer(index: int) -> None:
        try:
            start.wait()
            # Keep claiming until every job is taken: a claim may answer None while jobs still
            # wait (every one left is being claimed by another worker at that moment).
            while time.monotonic() < deadline:
                taken = claim(sessions, f"{name}-{index}")
                with lock:
                    if taken is not None:
                        claimed.append(taken)
                    elif len(claimed) >= expected:
                        return
        except BaseException as exc:  # reported by the main thread
            with lock:
                errors.append(exc)

    threads = [threading.Thread(target=claimer, args=(i,)) for i in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=90)
    assert not errors, errors
    return claimed


def test_concurrent_claimers_never_share_a_job(sessions: sessionmaker[Session]) -> None:
    ids = enqueue(sessions, 20)
    claimed = race(sessions, len(ids), name="first")
    counts = Counter(c.job_id for c in claimed)
    assert sorted(counts) == ids
    assert set(counts.values()) == {1}, "a job was handed to two claimers"
    assert {c.attempt for c in claimed} == {1}
    with sessions() as db:
        rows = {j.id: j for j in db.scalars(select(Job))}
        assert set(db.scalars(select(Revision.state))) == {"INPROGRESS"}
    for c in claimed:
        assert (rows[c.job_id].worker, rows[c.job_id].attempts) == (c.worker, 1)

    # every worker dies at once: each job is taken over by exactly one of the next ones
    for job_id in ids:
        age_heartbeat(sessions, job_id, TIMEOUT + 5)
    again = race(sessions, len(ids), name="second")
    counts = Counter(c.job_id for c in again)
    assert sorted(counts) == ids
    assert set(counts.values()) == {1}, "a stale job was taken over twice"
    assert {c.attempt for c in again} == {2}
    assert not any(jobs.heartbeat(sessions, c) for c in claimed)
    assert all(jobs.heartbeat(sessions, c) for c in again)


def test_a_claimer_that_loses_the_race_for_the_oldest_job_takes_the_next(
    request: pytest.FixtureRequest, engine: Engine, sessions: sessionmaker[Session]
) -> None:
    """Two workers pick the oldest job at the same moment: one gets it, the other the next one,
    rather than going back to sleep with work waiting."""
    first_id, second_id = enqueue(sessions, 2)
    rival: list[jobs.Claim | None] = []
    me = threading.get_ident()

    def interleave(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        # Between this claimer's read of the oldest job and its compare-and-set, another worker
        # claims from start to finish.
        if (
            threading.get_ident() == me
            and statement.lstrip().startswith("UPDATE jobs")
            and not rival
        ):
            thread = threading.Thread(target=lambda: rival.append(claim(sessions, "rival")))
            thread.start()
            thread.join(timeout=60)
            assert rival, "the rival claim did not finish"

    event.listen(engine, "before_cursor_execute", interleave)
    try:
        mine = claim(sessions, "me")
    finally:
        event.remove(engine, "before_cursor_execute", interleave)
    assert rival[0] is not None
    assert mine is not None
    assert {mine.job_id, rival[0].job_id} == {first_id, second_id}


def test_a_job_given_back_with_a_delay_waits_for_it(sessions: sessionmaker[Session]) -> None:
    first_id, second_id = enqueue(sessions, 2)
    taken = claim(sessions, "w1")
    assert taken is not None
    assert taken.job_id == first_id
    jobs.release(sessions, taken, "the bitstore was away", delay=60)
    row = job_row(sessions, first_id)
    assert row.state == jobs.QUEUED
    assert row.retry_at is not None
    assert 55 < (row.retry_at - datetime.now(UTC)).total_seconds() <= 60
    # not due yet: the next job is claimed instead, then nothing
    following = claim(sessions, "w2")
    assert following is not None
    assert following.job_id == second_id
    assert claim(sessions, "w3") is None
    # once due, the job is claimed again; queueing it anew (reprocess) clears the wait
    with transaction(sessions) as db:
        db.execute(
            update(Job)
            .where(Job.id == first_id)
            .values(retry_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    again = claim(sessions, "w4")
    assert again is not None
    assert (again.job_id, again.attempt) == (first_id, 2)
