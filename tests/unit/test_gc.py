"""Garbage collection and the references it checks: the bitstore listings it reads (local disk and
S3), what counts as a reference on both metastores, the lock that keeps a delete apart from a reuse,
and a collection run over a real store and metastore."""

from __future__ import annotations

import hashlib
import os
import secrets
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from dphub.auth.principal import Principal
from dphub.bitstore.interfaces import BitStore
from dphub.bitstore.local import LocalBitStore, blob_relpath
from dphub.bitstore.s3 import S3BitStore
from dphub.bitstore.signing import UploadSigner
from dphub.datastore.embedded import EmbeddedDatastore
from dphub.errors import Conflict
from dphub.lifecycle.gc import Removal, collect_garbage
from dphub.lifecycle.purge import collect_blob, purge_package
from dphub.metastore import references
from dphub.metastore.db import transaction
from dphub.metastore.models import (
    Job,
    Package,
    Revision,
    RevisionFile,
    RevisionOutput,
    UploadSession,
    UploadSessionFile,
    User,
)

NOW = datetime.now(UTC)
LONG_AGO = NOW - timedelta(days=3)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def store_blob(store: BitStore, data: bytes) -> str:
    writer = store.writer(expected_size=len(data))
    writer.write(data)
    return writer.commit().sha256


def dead_writer(store: LocalBitStore, data: bytes) -> Path:
    """What a writer whose process died leaves behind: its spool file."""
    spool = store.root / "tmp" / f"{secrets.token_hex(16)}.part"
    spool.write_bytes(data)
    return spool


def local_store(root: Path) -> LocalBitStore:
    return LocalBitStore(root, signer=UploadSigner("k" * 40), base_url="http://hub.test")


@pytest.fixture(params=["local", "s3"])
def bitstore(request: pytest.FixtureRequest, tmp_path: Path) -> BitStore:
    if request.param == "local":
        return local_store(tmp_path / "blobs")
    server = request.getfixturevalue("s3_server")
    bucket = request.getfixturevalue("s3_bucket")
    return S3BitStore(client=server.client(), bucket=bucket, prefix="hub/")


# the listings


def test_list_blobs_reports_key_size_and_age(bitstore: BitStore) -> None:
    before = datetime.now(UTC) - timedelta(seconds=5)
    blobs = [b"a,b\n1,2\n", b"", b"x" * 3000]
    for data in blobs:
        store_blob(bitstore, data)
    listed = {found.sha256: found for found in bitstore.list_blobs()}
    assert set(listed) == {sha(data) for data in blobs}
    for data in blobs:
        found = listed[sha(data)]
        assert (found.key, found.size, found.session_id) == (
            blob_relpath(sha(data)),
            len(data),
            None,
        )
        assert before <= found.modified <= datetime.now(UTC) + timedelta(seconds=5)
    bitstore.delete(sha(blobs[0]))
    assert {found.sha256 for found in bitstore.list_blobs()} == {sha(b""), sha(b"x" * 3000)}


def test_list_staged_reports_what_was_never_filed(bitstore: BitStore) -> None:
    if isinstance(bitstore, S3BitStore):
        client, bucket = bitstore.client, bitstore.bucket
        client.put_object(Bucket=bucket, Key="hub/staging/sess1/data/a.csv", Body=b"abc")
        client.put_object(Bucket=bucket, Key="hub/staging/mp/upload1", Body=b"part")
        expected = {("staging/sess1/data/a.csv", 3, "sess1")}
    else:
        assert isinstance(bitstore, LocalBitStore)
        dead_writer(bitstore, b"12345")
        expected = {(f"tmp/{p.name}", 5, None) for p in (bitstore.root / "tmp").iterdir()}
    store_blob(bitstore, b"filed\n")
    listed = {(found.key, found.size, found.session_id) for found in bitstore.list_staged()}
    assert listed == expected
    for key, _, _ in expected:
        bitstore.delete_staged(key)
    assert list(bitstore.list_staged()) == []
    for bad in (blob_relpath(sha(b"filed\n")), "staging/mp/upload1", "tmp/../sha256", "elsewhere"):
        with pytest.raises(ValueError, match="not a staged object"):
            bitstore.delete_staged(bad)
    assert bitstore.size(sha(b"filed\n")) == 6


# references, on both metastores


def _package(db: Session, name: str) -> Revision:
    user = db.query(User).filter_by(username="ann").one_or_none()
    if user is None:
        user = User(username="ann", email="ann@example.org")
        db.add(user)
        db.flush()
    package = Package(owner="ann", name=name, findability="published", latest_revision=1)
    db.add(package)
    db.flush()
    revision = Revision(package_id=package.id, number=1, state="SUCCEEDED", descriptor={})
    db.add(revision)
    db.flush()
    return revision


def _session(db: Session, *, expires: datetime, closed: bool = False) -> UploadSession:
    user = db.query(User).filter_by(username="ann").one()
    upload = UploadSession(
        id=f"s{time.monotonic_ns()}",
        owner="ann",
        user_id=user.id,
        expires_at=expires,
        closed_at=NOW if closed else None,
    )
    db.add(upload)
    db.flush()
    return upload


def _session_file(db: Session, upload: UploadSession, path: str, **columns: Any) -> None:
    db.add(
        UploadSessionFile(session_id=upload.id, path=path, size=1, media_type="text/csv", **columns)
    )


def test_what_counts_as_a_reference(db: sessionmaker[Session]) -> None:
    digests = {name: sha(name.encode()) for name in (
        "file", "output", "declared", "received", "closed", "expired", "recent", "free"
    )}  # fmt: skip
    with transaction(db) as s:
        revision = _package(s, "p")
        s.add(
            RevisionFile(
                revision_id=revision.id,
                path="a.csv",
                sha256=digests["file"],
                size=1,
                media_type="text/csv",
            )
        )
        s.add(
            RevisionOutput(
                revision_id=revision.id,
                name="a_csv",
                kind="csv",
                sha256=digests["output"],
                size=1,
                media_type="text/csv",
            )
        )
        live = _session(s, expires=NOW + timedelta(hours=1))
        _session_file(s, live, "d.csv", sha256=digests["declared"])
        _session_file(s, live, "r.csv", received_sha256=digests["received"])
        done = _session(s, expires=NOW + timedelta(hours=1), closed=True)
        _session_file(s, done, "c.csv", sha256=digests["closed"])
        gone = _session(s, expires=NOW - timedelta(hours=30))
        _session_file(s, gone, "e.csv", sha256=digests["expired"])
        lately = _session(s, expires=NOW - timedelta(hours=1))
        _session_file(s, lately, "l.csv", received_sha256=digests["recent"])
    open_since = NOW - timedelta(hours=24)  # a grace period of a day
    used = {"file", "output", "declared", "received", "recent"}
    with db() as s:
        for name, digest in digests.items():
            assert references.referenced(s, digest, open_since=open_since) == (name in used), name
        found = references.referenced_among(s, list(digests.values()), open_since=open_since)
        assert found == {digests[name] for name in used}
        # with no grace at all, a session counts only until it expires
        assert not references.referenced(s, digests["recent"], open_since=NOW)


def test_a_delete_lock_keeps_a_reuse_waiting(db: sessionmaker[Session]) -> None:
    """A transaction about to reference a blob waits for a deleter that holds the blob's lock,
    and a deleter waits for a transaction that holds the blob."""
    digest = sha(b"contended")
    timings: dict[str, float] = {}

    def deleter() -> None:
        with transaction(db) as s:
            references.lock_for_delete(s, digest)
            timings["locked"] = time.monotonic()
            time.sleep(0.6)
        timings["released"] = time.monotonic()

    thread = threading.Thread(target=deleter)
    thread.start()
    while "locked" not in timings:
        time.sleep(0.01)
    with transaction(db) as s:
        references.hold(s, [digest])
        timings["held"] = time.monotonic()
    thread.join()
    assert timings["held"] >= timings["released"] - 0.05

    def referencer() -> None:
        with transaction(db) as s:
            references.hold(s, [digest, sha(b"other")])
            timings["holding"] = time.monotonic()
            time.sleep(0.6)
        timings["done"] = time.monotonic()

    thread = threading.Thread(target=referencer)
    thread.start()
    while "holding" not in timings:
        time.sleep(0.01)
    with transaction(db) as s:
        references.lock_for_delete(s, digest)
        timings["deleting"] = time.monotonic()
    thread.join()
    assert timings["deleting"] >= timings["done"] - 0.05


# a collection run


@pytest.fixture
def store(tmp_path: Path) -> LocalBitStore:
    return local_store(tmp_path / "blobs")


def _age(store: LocalBitStore, digest: str, when: datetime) -> None:
    stamp = when.timestamp()
    os.utime(store.root / blob_relpath(digest), (stamp, stamp))


def test_collect_removes_only_old_unreferenced_blobs(
    db: sessionmaker[Session], store: LocalBitStore
) -> None:
    used = store_blob(store, b"year,value\n2020,1\n")
    orphan = store_blob(store, b"nobody,needs\nthis,1\n")
    young = store_blob(store, b"just,uploaded\n1,2\n")
    for digest in (used, orphan):
        _age(store, digest, LONG_AGO)
    with transaction(db) as s:
        revision = _package(s, "kept")
        s.add(
            RevisionFile(
                revision_id=revision.id, path="a.csv", sha256=used, size=18, media_type="text/csv"
            )
        )
    spools = [dead_writer(store, b"partial"), dead_writer(store, b"fresh")]
    stamp = (NOW - timedelta(hours=30)).timestamp()
    os.utime(spools[0], (stamp, stamp))  # the other may belong to a writer at work

    heard: list[Removal] = []
    dry = collect_garbage(db, store, grace=timedelta(hours=24), dry_run=True, report=heard.append)
    assert [(r.kind, r.key, r.size) for r in heard] == [
        ("blob", blob_relpath(orphan), 20),
        ("staged", f"tmp/{spools[0].name}", 7),
    ]
    assert (dry.blobs, dry.blob_bytes, dry.staged, dry.staged_bytes) == (1, 20, 1, 7)
    assert (dry.scanned, dry.young) == (3, 1)
    assert all(store.size(d) is not None for d in (used, orphan, young))
    assert spools[0].exists()

    done = collect_garbage(db, store, grace=timedelta(hours=24))
    assert (done.blobs, done.blob_bytes, done.staged, done.staged_bytes) == (1, 20, 1, 7)
    assert store.size(orphan) is None
    assert store.size(used) is not None
    assert store.size(young) is not None
    assert not spools[0].exists()
    assert spools[1].exists()

    # no grace: the young one goes too, and the referenced one still stays
    done = collect_garbage(db, store, grace=timedelta(0))
    assert (done.blobs, done.young) == (1, 0)
    assert store.size(young) is None
    assert store.size(used) is not None
    assert spools[1].exists()  # untouched for less than an hour, whatever the grace


def test_collect_blob_checks_again_under_the_lock(
    db: sessionmaker[Session], store: LocalBitStore
) -> None:
    """A reference that lands between the quick pass and the delete keeps the blob."""
    digest = store_blob(store, b"late,reference\n1,2\n")
    with transaction(db) as s:
        _package(s, "other")
        upload = _session(s, expires=NOW + timedelta(hours=1))
        _session_file(s, upload, "late.csv", sha256=digest)
    assert collect_blob(db, store, digest, open_since=NOW) is None
    assert store.size(digest) is not None
    with transaction(db) as s:
        s.get(UploadSession, upload.id).closed_at = NOW  # type: ignore[union-attr]
    assert collect_blob(db, store, digest, open_since=NOW) == 19
    assert store.size(digest) is None
    assert collect_blob(db, store, digest, open_since=NOW) is None


def test_purge_waits_for_a_worker_at_work(
    db: sessionmaker[Session], store: LocalBitStore, tmp_path: Path
) -> None:
    """A revision being processed would leave a table behind: purge answers 409 until the worker
    is done (or is found dead: its heartbeat is older than the job timeout)."""
    digest = store_blob(store, b"in,process\n1,2\n")
    with transaction(db) as s:
        revision = _package(s, "busy")
        s.add(
            RevisionFile(
                revision_id=revision.id, path="a.csv", sha256=digest, size=15, media_type="text/csv"
            )
        )
        # the heartbeat of a worker at work now (NOW is when the module was imported, which may be
        # longer ago than the job timeout in a long test run)
        job = Job(
            revision_id=revision.id,
            state="running",
            worker="w",
            heartbeat_at=datetime.now(UTC),
        )
        s.add(job)
        s.flush()
        job_id = job.id
        owner_id = s.query(User).filter_by(username="ann").one().id
    ann = Principal(owner_id, "ann", "ann@example.org")
    datastore = EmbeddedDatastore(tmp_path / "datastore", timeout=5, max_rows=100)
    options: dict[str, Any] = {
        "principal": ann,
        "bitstore": store,
        "datastore": datastore,
        "owner": "ann",
        "name": "busy",
        "grace": timedelta(0),
        "job_timeout": 60,
    }
    with pytest.raises(Conflict, match="Revision 1 of ann/busy is being processed"):
        purge_package(db, **options)
    assert store.size(digest) == 15
    with transaction(db) as s:
        s.get(Job, job_id).heartbeat_at = datetime.now(UTC) - timedelta(minutes=5)  # type: ignore[union-attr]
    done = purge_package(db, **options)
    assert (done["revisions"], done["blobs"]) == (1, {"removed": 1, "bytes": 15, "kept": 0})
    assert store.size(digest) is None
    with db() as s:
        assert s.get(Job, job_id) is None
