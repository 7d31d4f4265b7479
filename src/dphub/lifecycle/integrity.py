"""The integrity check of a whole hub (``dphub admin check``): what must hold, whatever crashed.

Each finding names the check it belongs to and a stable code:

- ``blobs``: every file and derived file of every revision is in the bitstore with its recorded
  size and SHA-256 (each blob read back once, streamed): ``blob-missing``, ``blob-size``,
  ``blob-corrupt``.
- ``revisions``: every package has revisions numbered 1, 2, ... without a gap, the last one its
  latest, and its successful revision is one that succeeded (``package-empty``, ``revision-gap``,
  ``latest-revision``, ``successful-revision``); every revision holds its datapackage.json and
  every file its descriptor names (``revision-incomplete``): finalize never leaves less.
- ``jobs``: every revision has its processing job (``job-missing``), and every job has finished
  (``job-queued``, ``job-running``); on a hub in service (``live``), queued jobs and jobs whose
  worker still beats are fine and only a job running past its lease counts
  (``job-lease-expired``). A finished job's revision is SUCCEEDED or FAILED
  (``revision-unsettled``).
- ``uploads``: no upload session names a revision without having been closed onto it
  (``upload-half-closed``).
- ``tables``: every datastore table the metastore records is in the datastore with its rows
  (``table-missing``, ``table-rows``); only succeeded revisions record tables
  (``table-unexpected``), as many as they say they loaded (``tables-missing``).

Garbage is not a finding: blobs nothing references and uploads never finalized are invisible, and
``dphub gc`` removes them after the grace period.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session, aliased, sessionmaker

from dphub import datapackage
from dphub.bitstore import BitStore
from dphub.datastore import Datastore
from dphub.errors import NotFound, QueryTimeout, TableNotFound
from dphub.metastore.models import (
    DatastoreTable,
    Job,
    Package,
    Revision,
    RevisionFile,
    RevisionOutput,
    UploadSession,
)
from dphub.pipeline import jobs

FORMAT = 1
"""Version of the report's JSON shape; it changes only when a key changes meaning or goes."""
CHECKS = ("blobs", "revisions", "jobs", "uploads", "tables")
BATCH = 200
"""Revisions whose rows are read at once."""
SETTLED = ("SUCCEEDED", "FAILED")


@dataclass(frozen=True)
class Violation:
    """One thing found wrong, with where it was found (``None`` where it does not apply)."""

    check: str
    code: str
    message: str
    package: str | None = None
    """``owner/name``."""
    revision: int | None = None
    path: str | None = None
    """A file's path, a derived file's name, or a datastore table's name."""
    sha256: str | None = None

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class Report:
    """What one run looked at and what it found."""

    live: bool
    read_blobs: bool
    violations: list[Violation] = field(default_factory=list)
    packages: int = 0
    revisions: int = 0
    files: int = 0
    derived_files: int = 0
    blobs: int = 0
    """Distinct blobs checked."""
    bytes_read: int = 0
    jobs: int = 0
    tables: int = 0

    @property
    def ok(self) -> bool:
        return not self.violations

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "ok": self.ok,
            "live": self.live,
            "read_blobs": self.read_blobs,
            "checked": {
                "packages": self.packages,
                "revisions": self.revisions,
                "files": self.files,
                "derived_files": self.derived_files,
                "blobs": self.blobs,
                "bytes_read": self.bytes_read,
                "jobs": self.jobs,
                "tables": self.tables,
            },
            "violations": [v.to_json() for v in self.violations],
        }


@dataclass(frozen=True)
class _Revision:
    id: int
    package: str
    number: int
    state: str
    stats: dict[str, Any]
    named_paths: tuple[str, ...]
    """The local files its descriptor names."""


def check_hub(
    sessions: sessionmaker[Session],
    bitstore: BitStore,
    datastore: Datastore,
    *,
    job_timeout: int,
    live: bool = False,
    read_blobs: bool = True,
    found: Callable[[Violation], None] | None = None,
) -> Report:
    """Check every invariant over the whole hub; ``found`` hears of each violation as it is found.

    The metastore is read in short transactions, a batch of revisions at a time, and the blobs
    are read outside of them. A hub at work may change between two batches: run it on a quiet hub
    (or with ``live``, which accepts processing in progress) for a definitive answer.
    """
    report = Report(live=live, read_blobs=read_blobs)

    def add(violation: Violation) -> None:
        report.violations.append(violation)
        if found is not None:
            found(violation)

    _check_packages(sessions, report, add)
    _check_uploads(sessions, add)
    verified: dict[str, tuple[str, str] | None] = {}
    lease = timedelta(seconds=job_timeout)
    for batch in _revision_batches(sessions):
        report.revisions += len(batch)
        _check_batch(
            sessions,
            bitstore,
            datastore,
            batch,
            report=report,
            add=add,
            verified=verified,
            lease=lease,
        )
    return report


def _check_packages(
    sessions: sessionmaker[Session], report: Report, add: Callable[[Violation], None]
) -> None:
    """Numbering and pointers, each package's in one statement (one moment of the metastore)."""
    successful = aliased(Revision)
    query = (
        select(
            Package.id,
            Package.owner,
            Package.name,
            Package.latest_revision,
            Package.successful_revision,
            func.count(Revision.id),
            func.min(Revision.number),
            func.max(Revision.number),
            successful.state,
        )
        .outerjoin(Revision, Revision.package_id == Package.id)
        .outerjoin(
            successful,
            and_(
                successful.package_id == Package.id,
                successful.number == Package.successful_revision,
            ),
        )
        .group_by(Package.id, successful.state)
        .order_by(Package.owner, Package.name)
    )
    with sessions() as db:
        rows = db.execute(query).all()
        gapped = {}
        for package_id, owner, name, latest, succ, count, low, high, succ_state in rows:
            report.packages += 1
            ref = f"{owner}/{name}"
            if not count:
                add(
                    Violation(
                        "revisions",
                        "package-empty",
                        f"{ref} has no revision: a package is made together with its first.",
                        package=ref,
                    )
                )
                continue
            if low != 1 or high != count:
                gapped[package_id] = ref
            if latest != high:
                add(
                    Violation(
                        "revisions",
                        "latest-revision",
                        f"{ref} says its latest revision is {latest}, but its last one is {high}.",
                        package=ref,
                        revision=latest,
                    )
                )
            if succ is not None and succ_state != "SUCCEEDED":
                what = f"is {succ_state}" if succ_state else "does not exist"
                add(
                    Violation(
                        "revisions",
                        "successful-revision",
                        f"{ref} serves revision {succ} as its successful one, but that revision"
                        f" {what}.",
                        package=ref,
                        revision=succ,
                    )
                )
        for package_id, ref in gapped.items():
            numbers = list(
                db.scalars(
                    select(Revision.number)
                    .where(Revision.package_id == package_id)
                    .order_by(Revision.number)
                )
            )
            missing = sorted(set(range(1, max(numbers) + 1)) - set(numbers))
            add(
                Violation(
                    "revisions",
                    "revision-gap",
                    f"{ref} lacks revision(s) {_numbers(missing)}: revisions are numbered from 1"
                    " without a gap.",
                    package=ref,
                    revision=missing[0] if missing else None,
                )
            )


def _check_uploads(sessions: sessionmaker[Session], add: Callable[[Violation], None]) -> None:
    with sessions() as db:
        half = db.execute(
            select(
                UploadSession.id, UploadSession.owner, UploadSession.name, UploadSession.revision
            )
            .where(UploadSession.closed_at.is_(None), UploadSession.revision.is_not(None))
            .order_by(UploadSession.created_at)
        ).all()
    for session_id, owner, name, number in half:
        ref = f"{owner}/{name}" if name else owner
        add(
            Violation(
                "uploads",
                "upload-half-closed",
                f"Upload session {session_id} names revision {number} of {ref} but was never"
                " closed: finalize closes a session and makes its revision in one transaction.",
                package=ref if name else None,
                revision=number,
            )
        )


def _revision_batches(sessions: sessionmaker[Session]) -> Iterator[list[_Revision]]:
    last = 0
    while True:
        with sessions() as db:
            rows = db.execute(
                select(
                    Revision.id,
                    Package.owner,
                    Package.name,
                    Revision.number,
                    Revision.state,
                    Revision.stats,
                    Revision.descriptor,
                )
                .join(Package, Package.id == Revision.package_id)
                .where(Revision.id > last)
                .order_by(Revision.id)
                .limit(BATCH)
            ).all()
        if not rows:
            return
        last = rows[-1][0]
        yield [
            _Revision(
                id=revision_id,
                package=f"{owner}/{name}",
                number=number,
                state=state,
                stats=stats if isinstance(stats, dict) else {},
                named_paths=_named_paths(descriptor),
            )
            for revision_id, owner, name, number, state, stats, descriptor in rows
        ]


def _named_paths(descriptor: Any) -> tuple[str, ...]:
    if not isinstance(descriptor, dict):
        return ()
    try:
        return tuple(path for _, path in datapackage.local_paths(descriptor))
    except (TypeError, ValueError, AttributeError):
        return ()


def _check_batch(
    sessions: sessionmaker[Session],
    bitstore: BitStore,
    datastore: Datastore,
    batch: list[_Revision],
    *,
    report: Report,
    add: Callable[[Violation], None],
    verified: dict[str, tuple[str, str] | None],
    lease: timedelta,
) -> None:
    ids = [r.id for r in batch]
    with sessions() as db:
        files = db.execute(
            select(
                RevisionFile.revision_id, RevisionFile.path, RevisionFile.sha256, RevisionFile.size
            )
            .where(RevisionFile.revision_id.in_(ids))
            .order_by(RevisionFile.revision_id, RevisionFile.path)
        ).all()
        outputs = db.execute(
            select(
                RevisionOutput.revision_id,
                RevisionOutput.name,
                RevisionOutput.sha256,
                RevisionOutput.size,
            )
            .where(RevisionOutput.revision_id.in_(ids))
            .order_by(RevisionOutput.revision_id, RevisionOutput.name)
        ).all()
        job_rows = db.execute(
            select(Job.revision_id, Job.state, Job.heartbeat_at).where(Job.revision_id.in_(ids))
        ).all()
        table_rows = db.execute(
            select(DatastoreTable.revision_id, DatastoreTable.table_name, DatastoreTable.rows)
            .where(DatastoreTable.revision_id.in_(ids))
            .order_by(DatastoreTable.revision_id, DatastoreTable.resource_index)
        ).all()
    now = datetime.now(UTC)
    paths: dict[int, list[str]] = {i: [] for i in ids}
    for revision_id, path, _, _ in files:
        paths[revision_id].append(path)
    tables: dict[int, list[tuple[str, int]]] = {i: [] for i in ids}
    for revision_id, name, rows in table_rows:
        tables[revision_id].append((name, int(rows)))
    job_of = {revision_id: (state, beat) for revision_id, state, beat in job_rows}
    by_id = {r.id: r for r in batch}

    for revision in batch:
        _check_contents(revision, paths[revision.id], add)
        _check_job(revision, job_of.get(revision.id), add, live=report.live, now=now, lease=lease)
        _check_tables(revision, tables[revision.id], datastore, add)
    report.jobs += len(job_rows)
    report.tables += len(table_rows)
    report.files += len(files)
    report.derived_files += len(outputs)
    for revision_id, path, sha256, size in [*files, *outputs]:
        if sha256 not in verified:
            verified[sha256] = _verify_blob(bitstore, sha256, int(size), report)
        problem = verified[sha256]
        if problem is not None:
            revision = by_id[revision_id]
            code, why = problem
            add(
                Violation(
                    "blobs",
                    code,
                    f"{revision.package} revision {revision.number} {path}: {why}",
                    package=revision.package,
                    revision=revision.number,
                    path=path,
                    sha256=sha256,
                )
            )


def _verify_blob(
    bitstore: BitStore, sha256: str, size: int, report: Report
) -> tuple[str, str] | None:
    """``(code, reason)`` when the blob is not held whole, else ``None``."""
    report.blobs += 1
    held = bitstore.size(sha256)
    if held is None:
        return "blob-missing", "its blob is not in the bitstore."
    if held != size:
        return "blob-size", f"its blob holds {held} bytes, not the {size} recorded."
    if not report.read_blobs:
        return None
    digest = hashlib.sha256()
    try:
        for chunk in bitstore.read(sha256):
            digest.update(chunk)
            report.bytes_read += len(chunk)
    except NotFound:
        return "blob-missing", "its blob is not in the bitstore."
    if digest.hexdigest() != sha256:
        return (
            "blob-corrupt",
            f"its blob's bytes have the SHA-256 {digest.hexdigest()}, not the one recorded.",
        )
    return None


def _check_contents(
    revision: _Revision, paths: list[str], add: Callable[[Violation], None]
) -> None:
    held = set(paths)
    lacking = [
        p for p in dict.fromkeys(("datapackage.json", *revision.named_paths)) if p not in held
    ]
    declared = revision.stats.get("files")
    if isinstance(declared, int) and declared != len(paths) and not lacking:
        lacking = [f"{declared - len(paths)} of its {declared} files"]
    if lacking:
        add(
            Violation(
                "revisions",
                "revision-incomplete",
                f"{revision.package} revision {revision.number} lacks {', '.join(lacking[:10])}:"
                " a revision is made with every file of its push.",
                package=revision.package,
                revision=revision.number,
                path=lacking[0],
            )
        )


def _check_job(
    revision: _Revision,
    job: tuple[str, datetime | None] | None,
    add: Callable[[Violation], None],
    *,
    live: bool,
    now: datetime,
    lease: timedelta,
) -> None:
    where = f"{revision.package} revision {revision.number}"

    def found(code: str, message: str) -> None:
        add(
            Violation(
                "jobs",
                code,
                f"{where}: {message}",
                package=revision.package,
                revision=revision.number,
            )
        )

    if job is None:
        found("job-missing", "has no processing job (run dphub reprocess).")
        return
    state, beat = job
    if state == jobs.QUEUED and not live:
        found("job-queued", "its processing job is still queued.")
    elif state == jobs.RUNNING:
        stale = beat is None or beat < now - lease
        if live and stale:
            found(
                "job-lease-expired",
                "its processing job is running past its lease: no worker holds it.",
            )
        elif not live:
            found("job-running", "its processing job is still running.")
    elif state in (jobs.DONE, jobs.FAILED) and revision.state not in SETTLED:
        found(
            "revision-unsettled",
            f"its processing job is {state}, but the revision is still {revision.state}.",
        )


def _check_tables(
    revision: _Revision,
    recorded: list[tuple[str, int]],
    datastore: Datastore,
    add: Callable[[Violation], None],
) -> None:
    where = f"{revision.package} revision {revision.number}"

    def found(code: str, message: str, table: str | None = None) -> None:
        add(
            Violation(
                "tables",
                code,
                f"{where}: {message}",
                package=revision.package,
                revision=revision.number,
                path=table,
            )
        )

    if recorded and revision.state != "SUCCEEDED":
        found(
            "table-unexpected",
            f"is {revision.state} but records {len(recorded)} datastore table(s).",
            recorded[0][0],
        )
    loaded = revision.stats.get("tables")
    if revision.state == "SUCCEEDED" and isinstance(loaded, int) and loaded > len(recorded):
        found("tables-missing", f"loaded {loaded} table(s) but records {len(recorded)}.")
    for name, rows in recorded:
        counted = _count_rows(datastore, name)
        if counted is None:
            found("table-missing", f"its table {name} is not in the datastore.", name)
        elif counted >= 0 and counted != rows:
            found("table-rows", f"its table {name} holds {counted} rows, not {rows}.", name)


def _count_rows(datastore: Datastore, table: str) -> int | None:
    """The table's rows; ``None`` when the datastore lacks it, ``-1`` when counting took too long."""

    def build(refs: Any) -> tuple[str, Sequence[Any]]:
        # the backend's own reference to a table the metastore named: no outside text
        return f"SELECT count(*) FROM {refs[table]}", []  # noqa: S608

    try:
        answer = datastore.query([table], build)
    except TableNotFound:
        return None
    except QueryTimeout:
        return -1
    return int(answer.rows[0][0])


def _numbers(numbers: list[int]) -> str:
    shown = ", ".join(str(n) for n in numbers[:10])
    return shown + (f" and {len(numbers) - 10} more" if len(numbers) > 10 else "")
