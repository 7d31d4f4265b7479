"""Storage accounting and quotas per publisher.

Usage is counted in two classes, by the findability of the package: **public** (published and
unlisted packages: anyone with the URL can read them) and **private**. In each class a blob counts
once, however many files, revisions and packages of the publisher hold it: that is what re-pushing
unchanged files costs the hub. Only the files publishers push count; the files processing derives
from them are the hub's own. A deleted package keeps counting, in bytes and as a package, until it
is purged: its bytes are still stored, and undeleting it must not take the publisher past a limit.

A site admin sets three limits per publisher (a missing one is no limit): ``max_public_bytes``,
``max_private_bytes`` and ``max_packages``. Authorize refuses a push that would cross one, counting
only what the push adds: a file whose bytes the publisher already holds in that class costs nothing,
and a push creates a package only when the name is new. A push that moves an existing package to
the other class adds that package's bytes to it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from dphub.auth import audit
from dphub.auth.permissions import SITE, Action, require
from dphub.auth.principal import Principal
from dphub.auth.roles import publisher_ref
from dphub.errors import InvalidRequest, PublisherNotFound, QuotaExceeded
from dphub.metastore.models import Package, Publisher, PublisherQuota, Revision, RevisionFile
from dphub.names import is_valid_name

CLASSES = ("public", "private")
LIMITS = ("max_public_bytes", "max_private_bytes", "max_packages")
MAX_LIMIT = 2**63 - 1
BATCH = 500


def findability_class(findability: str) -> str:
    """``private`` for private packages; published and unlisted ones are ``public``."""
    return "private" if findability == "private" else "public"


def _in_class(cls: str) -> ColumnElement[bool]:
    if cls == "private":
        return Package.findability == "private"
    return Package.findability != "private"


def _publisher(db: Session, owner: str) -> Publisher:
    found = (
        db.scalar(select(Publisher).where(Publisher.name == owner))
        if is_valid_name(owner)
        else None
    )
    if found is None:
        raise PublisherNotFound(f"No publisher is called {owner[:100]!r}.")
    return found


@dataclass(frozen=True)
class Usage:
    bytes: dict[str, int]
    packages: dict[str, int]

    def to_json(self) -> dict[str, Any]:
        return {cls: {"bytes": self.bytes[cls], "packages": self.packages[cls]} for cls in CLASSES}


def _class_blobs(owner: str, cls: str) -> Any:
    """Distinct ``(sha256, size)`` of the files of ``owner``'s packages in one class."""
    return (
        select(RevisionFile.sha256, RevisionFile.size)
        .join(Revision, Revision.id == RevisionFile.revision_id)
        .join(Package, Package.id == Revision.package_id)
        .where(Package.owner == owner, _in_class(cls))
        .distinct()
    )


def _package_blobs(package: Package) -> Any:
    return (
        select(RevisionFile.sha256, RevisionFile.size)
        .join(Revision, Revision.id == RevisionFile.revision_id)
        .where(Revision.package_id == package.id)
        .distinct()
    )


def class_bytes(db: Session, owner: str, cls: str) -> int:
    blobs = _class_blobs(owner, cls).subquery()
    return int(db.scalar(select(func.coalesce(func.sum(blobs.c.size), 0))) or 0)


def usage(db: Session, owner: str) -> Usage:
    stored: dict[str, int] = {}
    packages: dict[str, int] = {}
    for cls in CLASSES:
        stored[cls] = class_bytes(db, owner, cls)
        packages[cls] = int(
            db.scalar(
                select(func.count())
                .select_from(Package)
                .where(Package.owner == owner, _in_class(cls))
            )
            or 0
        )
    return Usage(stored, packages)


def _limits(quota: PublisherQuota | None) -> dict[str, int | None]:
    return {limit: getattr(quota, limit) if quota is not None else None for limit in LIMITS}


def storage(db: Session, principal: Principal | None, owner: str) -> dict[str, Any]:
    """What ``owner`` stores and may store, for its members (the user themself) and site admins."""
    publisher = _publisher(db, owner)
    require(principal, Action.PUBLISHER_MEMBERS, publisher_ref(db, principal, owner))
    return _report(db, publisher)


def _report(db: Session, publisher: Publisher) -> dict[str, Any]:
    return {
        "owner": publisher.name,
        **usage(db, publisher.name).to_json(),
        "quota": _limits(db.get(PublisherQuota, publisher.id)),
    }


def parse_limits(body: dict[str, Any]) -> dict[str, int | None]:
    """The limits a quota update sets: each a whole number of bytes (or packages), or null for no
    limit; limits left out stay as they are."""
    unknown = sorted(set(body) - set(LIMITS))
    if unknown:
        raise InvalidRequest(
            f"Unknown quota field {unknown[0][:40]!r}: send any of {', '.join(LIMITS)}.",
            field=unknown[0][:40],
        )
    if not body:
        raise InvalidRequest(f"Send at least one of {', '.join(LIMITS)} (null for no limit).")
    limits: dict[str, int | None] = {}
    for key, value in body.items():
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_LIMIT
        ):
            raise InvalidRequest(
                f"{key} must be a whole number from 0 to {MAX_LIMIT}, or null for no limit.",
                field=key,
            )
        limits[key] = value
    return limits


def set_quota(
    db: Session, principal: Principal | None, owner: str, body: dict[str, Any]
) -> dict[str, Any]:
    require(principal, Action.SITE_ADMIN, SITE)
    publisher = _publisher(db, owner)
    limits = parse_limits(body)
    quota = db.get(PublisherQuota, publisher.id, with_for_update=True)
    before = _limits(quota)
    if quota is None:
        quota = PublisherQuota(publisher_id=publisher.id)
        db.add(quota)
    for key, value in limits.items():
        setattr(quota, key, value)
    quota.updated_at = datetime.now(UTC)
    db.flush()
    after = _limits(quota)
    if after != before:
        audit.record(db, "quota.set", principal=principal, target=owner, before=before, after=after)
    return _report(db, publisher)


@dataclass(frozen=True)
class PushedFile:
    sha256: str | None
    size: int


def check_push(
    db: Session,
    *,
    owner: str,
    package: Package | None,
    creates: bool,
    findability: str,
    files: Iterable[PushedFile],
) -> None:
    """Refuse (``QuotaExceeded``) a push that would take ``owner`` past one of its limits.

    ``package`` is the live package pushed to, if any; ``creates`` whether the push makes a new
    package (its name is new); ``findability`` the one the package will have. Files without a
    SHA-256 count in full: the hub cannot know them yet.
    """
    publisher = db.scalar(select(Publisher).where(Publisher.name == owner))
    quota = db.get(PublisherQuota, publisher.id) if publisher is not None else None
    if quota is None:
        return
    if creates and quota.max_packages is not None:
        count = int(
            db.scalar(select(func.count()).select_from(Package).where(Package.owner == owner)) or 0
        )
        if count + 1 > quota.max_packages:
            raise QuotaExceeded(
                f"{owner} has {count} of the {quota.max_packages} packages its quota allows"
                " (max_packages): this push would create another. Purge a package it no longer"
                " needs, or ask a site admin for a larger quota.",
                limit="max_packages",
                allowed=quota.max_packages,
                used=count,
                adding=1,
            )
    cls = findability_class(findability)
    limit_name = f"max_{cls}_bytes"
    limit = getattr(quota, limit_name)
    if limit is None:
        return
    used = class_bytes(db, owner, cls)
    moving = (
        package if package is not None and findability_class(package.findability) != cls else None
    )
    adding = _new_bytes(db, owner, cls, files, moving=moving)
    if moving is not None:
        adding += _moved_bytes(db, owner, cls, moving)
    if used + adding > limit:
        raise QuotaExceeded(
            f"{owner} stores {used} bytes of {cls} data and its quota allows {limit}"
            f" ({limit_name}); this push adds {adding} bytes the hub does not hold for it yet,"
            f" {used + adding} in all. Purge packages it no longer needs, or ask a site admin for a"
            " larger quota.",
            limit=limit_name,
            allowed=limit,
            used=used,
            adding=adding,
        )


def _new_bytes(
    db: Session, owner: str, cls: str, files: Iterable[PushedFile], *, moving: Package | None
) -> int:
    """Bytes of the pushed files that ``owner`` does not hold in ``cls`` yet, each blob once (a
    package ``moving`` into the class brings its own, counted by :func:`_moved_bytes`)."""
    sized: dict[str, int] = {}
    adding = 0
    for f in files:
        if f.sha256 is None:
            adding += f.size
        else:
            sized[f.sha256] = f.size
    shas = sorted(sized)
    held: set[str] = set()
    sources = [_class_blobs(owner, cls).subquery()]
    if moving is not None:
        sources.append(_package_blobs(moving).subquery())
    for start in range(0, len(shas), BATCH):
        chunk = shas[start : start + BATCH]
        for blobs in sources:
            held.update(db.scalars(select(blobs.c.sha256).where(blobs.c.sha256.in_(chunk))))
    return adding + sum(size for sha, size in sized.items() if sha not in held)


def _moved_bytes(db: Session, owner: str, cls: str, package: Package) -> int:
    """Bytes of ``package`` that ``owner`` does not hold in ``cls``: what moving it there adds."""
    own = _package_blobs(package).subquery()
    elsewhere = _class_blobs(owner, cls).subquery()
    moved = select(func.coalesce(func.sum(own.c.size), 0)).where(
        own.c.sha256.not_in(select(elsewhere.c.sha256))
    )
    return int(db.scalar(moved) or 0)
