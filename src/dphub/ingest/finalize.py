"""Finalize (the Meta Ingestor): turn a complete upload session into a new immutable revision.

Everything is checked before anything is written, and the revision, its files and the package's
pointers are written in one transaction: a package is visible with all of its files or not at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote, urlsplit

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from dphub import datapackage, failpoints
from dphub.auth import audit
from dphub.auth.permissions import Action, UploadRef, can, require
from dphub.auth.principal import Principal
from dphub.auth.roles import new_package_ref
from dphub.bitstore import BitStore, BlobInfo
from dphub.config import Settings
from dphub.errors import (
    Conflict,
    InvalidDescriptor,
    InvalidRequest,
    UploadIncomplete,
    UploadMismatch,
    UploadSessionNotFound,
)
from dphub.events import stream as events
from dphub.ingest.uploads import grant_for, split_key
from dphub.lifecycle.delete import refuse_deleted
from dphub.metastore import references
from dphub.metastore.db import transaction
from dphub.metastore.models import (
    Job,
    Revision,
    RevisionFile,
    UploadSession,
    UploadSessionFile,
)
from dphub.metastore.packages import claim_next_revision, find_package, get_revision

DESCRIPTOR_NAME = "datapackage.json"
README_NAMES = ("readme.md", "readme", "readme.txt", "readme.markdown")
ATTEMPTS = 3


@dataclass(frozen=True)
class Finalized:
    owner: str
    name: str
    revision: int
    state: str
    unchanged: bool = False


@dataclass(frozen=True)
class _Plan:
    """What finalize will write, computed and checked before the transaction starts."""

    session_id: str
    owner: str
    name: str
    findability: str | None
    descriptor: dict[str, Any]
    readme: str | None
    files: list[UploadSessionFile]
    arrived: dict[str, BlobInfo]
    """Files the store confirmed at finalize (uploaded straight to it), to record as received."""


def key_from_url(bitstore: BitStore, url: object) -> str:
    """The session key inside ``<upload_url>/<key>``."""
    if not isinstance(url, str) or not url:
        raise InvalidRequest(
            "Send {'datapackage': upload_url + '/' + key} of the uploaded datapackage.json.",
            field="datapackage",
        )
    try:
        path = urlsplit(url).path
    except ValueError:  # http://[ : a bracket that opens no IPv6 address
        path = ""
    key = bitstore.session_key(unquote(path)) if path else None
    if key is None:
        raise InvalidRequest(
            f"{url!r} is not an upload URL of this hub: use upload_url + '/' + upload_query.key"
            " of the datapackage.json from /api/datastore/authorize.",
            field="datapackage",
        )
    return key


def finalize(
    sessions: sessionmaker[Session],
    *,
    principal: Principal,
    settings: Settings,
    bitstore: BitStore,
    datapackage_url: object,
) -> Finalized:
    key = key_from_url(bitstore, datapackage_url)
    with sessions() as db:
        done = _already_finalized(db, key, principal)
        if done is not None:
            return done
        plan = _plan(db, key=key, principal=principal, settings=settings, bitstore=bitstore)
    same = _same_as_latest(sessions, plan)
    if same is not None:
        return same
    for attempt in range(ATTEMPTS):
        try:
            return _write(sessions, plan, principal=principal, settings=settings, bitstore=bitstore)
        except (IntegrityError, OperationalError):
            if attempt == ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


def _same_as_latest(sessions: sessionmaker[Session], plan: _Plan) -> Finalized | None:
    """A push identical to the package's latest revision (same files, same bytes, same findability)
    makes no new revision: the session closes onto the existing one."""
    with transaction(sessions) as db:
        # locked: a purge between this check and the commit would leave the session closed onto
        # a revision that no longer exists
        package = references.lock_package(db, plan.owner, plan.name)
        if package is None or package.deleted_at is not None or not package.latest_revision:
            return None
        if plan.findability is not None and plan.findability != package.findability:
            return None
        latest = get_revision(db, package, "latest")
        # datapackage.json is one of the files, so equal hashes mean an equal descriptor too (the
        # stored one may since have gained what processing inferred)
        pushed = {(f.path, f.received_sha256) for f in plan.files}
        if pushed != {(f.path, f.sha256) for f in latest.files}:
            return None
        upload = db.get(UploadSession, plan.session_id, with_for_update=True)
        if upload is None or upload.closed_at is not None:
            raise Conflict("This upload session was finalized by another request.")
        upload.closed_at = datetime.now(UTC)
        upload.revision = latest.number
        upload.name = plan.name
        return Finalized(plan.owner, plan.name, latest.number, latest.state, unchanged=True)


def _already_finalized(db: Session, key: str, principal: Principal) -> Finalized | None:
    """A retried finalize of a session that already made its revision answers the same again."""
    session_id, _ = split_key(key)
    upload = db.get(UploadSession, session_id)
    if upload is None or not can(principal, Action.UPLOAD_OWN, UploadRef(upload.user_id)):
        raise UploadSessionNotFound()
    if upload.closed_at is None or upload.revision is None or upload.name is None:
        return None
    return Finalized(upload.owner, upload.name, upload.revision, "SUCCEEDED")


def _plan(
    db: Session, *, key: str, principal: Principal, settings: Settings, bitstore: BitStore
) -> _Plan:
    session_id, descriptor_path = split_key(key)
    upload = db.get(UploadSession, session_id)
    if upload is None or not can(principal, Action.UPLOAD_OWN, UploadRef(upload.user_id)):
        raise UploadSessionNotFound()
    if upload.expires_at <= datetime.now(UTC):
        raise UploadSessionNotFound("This upload session has expired: push again.")
    files = {f.path: f for f in upload.files}
    if descriptor_path != DESCRIPTOR_NAME or descriptor_path not in files:
        raise InvalidRequest(
            f"{key!r} is not the key of this push's datapackage.json: finalize with the key"
            " authorize gave for 'datapackage.json'.",
            field="datapackage",
        )

    arrived: dict[str, BlobInfo] = {}
    for f in files.values():
        if f.received_sha256 is None:
            try:
                blob = bitstore.confirm(grant_for(f))
            except UploadMismatch as exc:
                raise UploadMismatch(f"{f.path}: {exc.message}", path=f.path) from None
            if blob is not None:
                arrived[f.path] = blob
                f.received_sha256, f.received_md5 = blob.sha256, blob.md5
    missing = sorted(path for path, f in files.items() if f.received_sha256 is None)
    if missing:
        raise UploadIncomplete(
            f"{len(missing)} file(s) of this push have not been uploaded yet: "
            + ", ".join(missing[:10])
            + ("..." if len(missing) > 10 else ""),
            missing=missing,
        )
    for f in files.values():
        assert f.received_sha256 is not None
        if bitstore.size(f.received_sha256) != f.size:
            raise UploadIncomplete(f"{f.path} is not in the bitstore with its declared size.")

    raw = _read_small(bitstore, files[descriptor_path], settings.max_descriptor_bytes)
    descriptor = datapackage.parse_descriptor(raw)
    datapackage.check_descriptor(descriptor)
    name = _package_name(descriptor, upload.name)
    _check_push(db, principal, upload.owner, name, upload.findability)
    problems = []
    for pointer, path in datapackage.local_paths(descriptor):
        if path not in files:
            problems.append(
                datapackage.Problem(pointer, f"{path!r} was not part of the upload.").to_dict()
            )
    if problems:
        raise InvalidDescriptor(
            f"datapackage.json {problems[0]['pointer']}: {problems[0]['message']}",
            problems=problems,
        )
    readme = None
    for f in files.values():
        if f.path.lower() in README_NAMES:
            raw_readme = _read_small(bitstore, f, settings.max_descriptor_bytes)
            readme = raw_readme.decode("utf-8", errors="replace")
            break
    return _Plan(
        session_id=session_id,
        owner=upload.owner,
        name=name,
        findability=upload.findability,
        descriptor=descriptor,
        readme=readme,
        files=list(files.values()),
        arrived=arrived,
    )


def _check_push(
    db: Session, principal: Principal, owner: str, name: str, findability: str | None
) -> None:
    """Pushing needs the editor role; changing an existing package's findability needs owner."""
    package = find_package(db, owner, name)
    ref = new_package_ref(db, principal, owner, name, package)
    require(principal, Action.PACKAGE_PUSH, ref)
    if package is None:
        refuse_deleted(db, owner, name)
    if package is not None and findability is not None and findability != package.findability:
        require(principal, Action.PACKAGE_MANAGE, ref)


def _package_name(descriptor: dict[str, Any], session_name: str | None) -> str:
    name = descriptor.get("name")
    if name is None:
        if session_name is None:
            problem = {
                "file": "datapackage.json",
                "pointer": "/name",
                "message": "A package needs a name to be published.",
            }
            raise InvalidDescriptor(
                "datapackage.json /name: a package needs a name to be published.",
                problems=[problem],
            )
        return session_name
    if session_name is not None and name != session_name:
        problem = {
            "file": "datapackage.json",
            "pointer": "/name",
            "message": f"The name {name!r} differs from {session_name!r} given at authorize.",
        }
        raise InvalidDescriptor(f"datapackage.json /name: {problem['message']}", problems=[problem])
    return str(name)


def _read_small(bitstore: BitStore, f: UploadSessionFile, limit: int) -> bytes:
    if f.size > limit:
        raise InvalidRequest(f"{f.path} is larger than the {limit} bytes the hub reads for it.")
    assert f.received_sha256 is not None
    return b"".join(bitstore.read(f.received_sha256))


def _write(
    sessions: sessionmaker[Session],
    plan: _Plan,
    *,
    principal: Principal,
    settings: Settings,
    bitstore: BitStore,
) -> Finalized:
    now = datetime.now(UTC)
    with transaction(sessions) as db:
        package, number = claim_next_revision(
            db,
            owner=plan.owner,
            name=plan.name,
            findability=plan.findability or settings.default_findability,
        )
        upload = db.get(UploadSession, plan.session_id, with_for_update=True)
        if upload is None or upload.closed_at is not None:
            raise Conflict("This upload session was finalized by another request.")
        if package.deleted_at is not None:
            refuse_deleted(db, plan.owner, plan.name)
        # Under the files' locks, no purge or gc removes them until the revision holds them:
        # the open session has kept them so far (checked again, in case it expired meanwhile),
        # except files the store confirmed only now, checked again themselves.
        references.hold(db, (f.received_sha256 for f in plan.files if f.received_sha256))
        failpoints.hit("finalize.files_held")
        if upload.expires_at <= datetime.now(UTC):
            raise UploadSessionNotFound("This upload session has expired: push again.")
        for path, blob in plan.arrived.items():
            if bitstore.size(blob.sha256) != blob.size:
                raise UploadIncomplete(f"{path} is no longer in the bitstore: push again.")
        if plan.findability is not None and plan.findability != package.findability:
            audit.record(
                db,
                "package.findability",
                principal=principal,
                target=f"{plan.owner}/{plan.name}",
                before=package.findability,
                after=plan.findability,
            )
            events.record(
                db,
                "findability-changed",
                owner=plan.owner,
                name=plan.name,
                principal=principal,
                before=package.findability,
                after=plan.findability,
            )
            package.findability = plan.findability
        total = sum(f.size for f in plan.files)
        revision = Revision(
            package_id=package.id,
            number=number,
            state="QUEUED",
            descriptor=plan.descriptor,
            readme=plan.readme,
            created_by=principal.user_id,
            created_at=now,
            modified_at=now,
            pipelines={},
            errors={},
            stats={"files": len(plan.files), "bytes": total},
        )
        db.add(revision)
        db.flush()
        for f in plan.files:
            assert f.received_sha256 is not None
            db.add(
                RevisionFile(
                    revision_id=revision.id,
                    path=f.path,
                    sha256=f.received_sha256,
                    md5=f.received_md5,
                    size=f.size,
                    media_type=f.media_type,
                )
            )
        for path, blob in plan.arrived.items():
            db.execute(
                update(UploadSessionFile)
                .where(
                    UploadSessionFile.session_id == plan.session_id,
                    UploadSessionFile.path == path,
                )
                .values(received_sha256=blob.sha256, received_md5=blob.md5, received_at=now)
            )
        db.add(Job(revision_id=revision.id, created_at=now))
        events.record(
            db,
            "pushed",
            owner=plan.owner,
            name=plan.name,
            revision=number,
            principal=principal,
            files=len(plan.files),
            bytes=total,
        )
        upload.closed_at = now
        upload.revision = number
        upload.name = plan.name
        failpoints.hit("finalize.before_commit")
    return Finalized(plan.owner, plan.name, number, "QUEUED")
