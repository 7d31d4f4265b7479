"""The integrity check over a real metastore (SQLite and PostgreSQL), a bitstore on disk and a
DuckDB datastore: each invariant it checks, broken on purpose, is reported where it was broken.

The damaged and lost blobs of a real push are in tests/e2e/test_admin_check.py.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest
from sqlalchemy.orm import Session, sessionmaker

from dphub.bitstore.local import LocalBitStore
from dphub.bitstore.signing import UploadSigner
from dphub.datastore import Field, table_name
from dphub.datastore.embedded import EmbeddedDatastore
from dphub.lifecycle.integrity import Report, check_hub
from dphub.metastore.db import transaction
from dphub.metastore.models import (
    DatastoreTable,
    Job,
    Package,
    Revision,
    RevisionFile,
    RevisionOutput,
    UploadSession,
    User,
)

TIMEOUT = 60
DESCRIPTOR = b'{"name": "p", "resources": [{"name": "data", "path": "data.csv"}]}'
DATA = b"n\n1\n2\n3\n"


class Hub:
    """A metastore, a bitstore and a datastore, and a way to write rows as a hub would."""

    def __init__(self, sessions: sessionmaker[Session], root: Path) -> None:
        self.sessions = sessions
        self.bitstore = LocalBitStore(
            root / "blobs", signer=UploadSigner("k" * 40), base_url="http://hub.test"
        )
        self.datastore = EmbeddedDatastore(root / "datastore", timeout=10, max_rows=100)
        with transaction(sessions) as db:
            user = User(username="ann", email="ann@example.org")
            db.add(user)
            db.flush()
            self.user_id = user.id

    def store(self, data: bytes) -> str:
        writer = self.bitstore.writer(expected_size=len(data))
        writer.write(data)
        return writer.commit().sha256

    def package(self, name: str, *, latest: int, successful: int | None = None) -> int:
        with transaction(self.sessions) as db:
            package = Package(
                owner="ann",
                name=name,
                findability="published",
                latest_revision=latest,
                successful_revision=successful,
            )
            db.add(package)
            db.flush()
            return package.id

    def revision(
        self,
        package_id: int,
        number: int,
        *,
        state: str = "SUCCEEDED",
        job: str | None = "done",
        beat: datetime | None = None,
        files: dict[str, bytes] | None = None,
        tables: int = 0,
        load: bool = True,
    ) -> int:
        files = {"datapackage.json": DESCRIPTOR, "data.csv": DATA} if files is None else files
        with transaction(self.sessions) as db:
            revision = Revision(
                package_id=package_id,
                number=number,
                state=state,
                descriptor={"name": "p", "resources": [{"name": "data", "path": "data.csv"}]},
                stats={"files": len(files), **({"tables": tables} if tables else {})},
            )
            db.add(revision)
            db.flush()
            for path, data in files.items():
                db.add(
                    RevisionFile(
                        revision_id=revision.id,
                        path=path,
                        sha256=self.store(data),
                        size=len(data),
                        media_type="text/plain",
                    )
                )
            if job is not None:
                db.add(Job(revision_id=revision.id, state=job, heartbeat_at=beat))
            for index in range(tables):
                name = table_name(revision.id, index)
                db.add(
                    DatastoreTable(
                        revision_id=revision.id,
                        resource_index=index,
                        resource_name="data",
                        table_name=name,
                        columns=[{"name": "n", "type": "integer"}],
                        rows=3,
                    )
                )
                if load:
                    self.load(name)
            return revision.id

    def load(self, table: str) -> None:
        con = duckdb.connect(":memory:")
        try:
            con.execute("CREATE TABLE src AS SELECT range + 1 AS n FROM range(3)")
            self.datastore.load(
                con, "src", table=table, fields=[Field("n", "integer")], csv_path=Path("unused")
            )
        finally:
            con.close()

    def check(self, **options: Any) -> Report:
        return check_hub(
            self.sessions, self.bitstore, self.datastore, job_timeout=TIMEOUT, **options
        )


def found(report: Report) -> set[tuple[str, str, str | None, int | None]]:
    return {(v.check, v.code, v.package, v.revision) for v in report.violations}


@pytest.fixture
def hub(db: sessionmaker[Session], tmp_path: Path) -> Hub:
    return Hub(db, tmp_path)


def test_a_consistent_hub_passes(hub: Hub) -> None:
    package = hub.package("good", latest=2, successful=2)
    hub.revision(package, 1, state="FAILED")
    second = hub.revision(package, 2, tables=1)
    with transaction(hub.sessions) as db:
        db.add(
            RevisionOutput(
                revision_id=second,
                name="data_csv",
                kind="csv",
                sha256=hub.store(DATA),
                size=len(DATA),
                media_type="text/csv",
            )
        )
    report = hub.check()
    assert report.ok, report.violations
    assert report.to_json()["checked"] == {
        "packages": 1,
        "revisions": 2,
        "files": 4,
        "derived_files": 1,
        "blobs": 2,
        "bytes_read": len(DESCRIPTOR) + len(DATA),
        "jobs": 2,
        "tables": 1,
    }


def test_each_broken_invariant_is_reported_where_it_is(hub: Hub) -> None:
    gappy = hub.package("gappy", latest=3)
    hub.revision(gappy, 1)
    hub.revision(gappy, 3)
    hub.revision(hub.package("behind", latest=2), 1)
    hub.revision(hub.package("pointer", latest=1, successful=1), 1, state="FAILED")
    hub.revision(hub.package("partial", latest=1), 1, files={"datapackage.json": DESCRIPTOR})
    hub.package("empty", latest=0)
    tabled = hub.package("tabled", latest=2)
    hub.revision(tabled, 1, state="FAILED", tables=1, load=False)
    hub.revision(tabled, 2, tables=1, load=False)
    jobs = hub.package("jobs", latest=4)
    hub.revision(jobs, 1, state="QUEUED", job="queued")
    long_ago = datetime.now(UTC) - timedelta(seconds=TIMEOUT * 2)
    hub.revision(jobs, 2, state="INPROGRESS", job="running", beat=long_ago)
    hub.revision(jobs, 3, job=None)
    hub.revision(jobs, 4, state="INPROGRESS", job="done")
    with transaction(hub.sessions) as db:
        db.add(
            UploadSession(
                id="half",
                owner="ann",
                name="jobs",
                user_id=hub.user_id,
                expires_at=datetime.now(UTC) + timedelta(hours=1),
                revision=5,
            )
        )

    expected = {
        ("revisions", "revision-gap", "ann/gappy", 2),
        ("revisions", "latest-revision", "ann/behind", 2),
        ("revisions", "successful-revision", "ann/pointer", 1),
        ("revisions", "revision-incomplete", "ann/partial", 1),
        ("revisions", "package-empty", "ann/empty", None),
        ("tables", "table-unexpected", "ann/tabled", 1),
        ("tables", "table-missing", "ann/tabled", 1),
        ("tables", "table-missing", "ann/tabled", 2),
        ("jobs", "job-missing", "ann/jobs", 3),
        ("jobs", "revision-unsettled", "ann/jobs", 4),
        ("uploads", "upload-half-closed", "ann/jobs", 5),
    }
    report = hub.check()
    assert found(report) == expected | {
        ("jobs", "job-queued", "ann/jobs", 1),
        ("jobs", "job-running", "ann/jobs", 2),
    }
    assert not report.ok
    incomplete = next(v for v in report.violations if v.code == "revision-incomplete")
    assert incomplete.path == "data.csv"
    live = hub.check(live=True)
    assert found(live) == expected | {("jobs", "job-lease-expired", "ann/jobs", 2)}


def test_blobs_are_checked_by_size_alone_when_asked(hub: Hub) -> None:
    hub.revision(hub.package("p", latest=1), 1)
    sha256 = hashlib.sha256(DATA).hexdigest()
    path = hub.bitstore.local_path(sha256)
    assert path is not None
    path.write_bytes(DATA.replace(b"1", b"7"))  # same size, other bytes
    assert hub.check(read_blobs=False).ok
    (violation,) = hub.check().violations
    assert (violation.code, violation.package, violation.revision, violation.path) == (
        "blob-corrupt",
        "ann/p",
        1,
        "data.csv",
    )
    path.write_bytes(DATA + b"4\n")
    (violation,) = hub.check(read_blobs=False).violations
    assert violation.code == "blob-size"
