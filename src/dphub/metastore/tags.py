"""Package tags: names (``v1.0``) for revisions, usable wherever a revision number is.

A tag is immutable: tagging again with the same name answers the revision it already names, and
pointing it elsewhere takes ``force`` and the owner role (``package:manage``), because a moved tag
changes what ``/v/<tag>/`` serves. Editors (``package:push``) create tags.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from dphub.auth import audit
from dphub.auth.permissions import Action, require
from dphub.auth.principal import Principal
from dphub.auth.roles import package_ref
from dphub.errors import Conflict, InvalidTag, NotProcessed, PackageNotFound, TagExists
from dphub.events import stream as events
from dphub.metastore.db import transaction
from dphub.metastore.models import Package, PackageTag, User, utcnow
from dphub.metastore.packages import find_package, get_revision
from dphub.names import is_valid_name, tag_problem

MAX_TAGS_PER_PACKAGE = 10_000
"""Keeps a package's tag list one answer long."""


def check_tag(value: object) -> str:
    """``value`` if it may be a tag, else ``InvalidTag`` saying why."""
    problem = tag_problem(value)
    if problem is not None:
        shown = value[:120] if isinstance(value, str) else value
        raise InvalidTag(f"{shown!r} is not a valid tag: {problem}.", field="version")
    assert isinstance(value, str)
    return value


@dataclass(frozen=True)
class Tagged:
    package: str
    tag: str
    revision: int
    created: bool
    """``False`` when the tag already named this revision: nothing changed."""
    moved_from: int | None = None

    def to_json(self) -> dict[str, Any]:
        answer: dict[str, Any] = {
            "package": self.package,
            "tag": self.tag,
            "revision": self.revision,
        }
        if self.moved_from is not None:
            answer["moved_from"] = self.moved_from
        return answer


def _package(db: Session, principal: Principal | None, owner: str, name: str) -> Package:
    if not (is_valid_name(owner) and is_valid_name(name)):
        raise PackageNotFound()
    package = find_package(db, owner, name)
    if package is None:
        raise PackageNotFound()
    return package


def _existing(db: Session, package: Package, tag: str) -> PackageTag | None:
    return db.scalar(
        select(PackageTag).where(PackageTag.package_id == package.id, PackageTag.tag == tag)
    )


def create_tag(
    sessions: sessionmaker[Session],
    principal: Principal | None,
    owner: str,
    name: str,
    *,
    tag: str,
    revision: int | str | None = None,
    force: bool = False,
    ip: str | None = None,
) -> Tagged:
    """:func:`tag_revision` in a transaction of its own, tried once more when a concurrent request
    created the same tag first (the second try then finds it)."""
    for attempt in (1, 2):
        try:
            with transaction(sessions) as db:
                return tag_revision(
                    db, principal, owner, name, tag=tag, revision=revision, force=force, ip=ip
                )
        except IntegrityError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def tag_revision(
    db: Session,
    principal: Principal | None,
    owner: str,
    name: str,
    *,
    tag: str,
    revision: int | str | None = None,
    force: bool = False,
    ip: str | None = None,
) -> Tagged:
    """Name ``revision`` (a number or any other ref; default: the latest successful) ``tag``, in
    ``db``'s transaction."""
    tag = check_tag(tag)
    package = _package(db, principal, owner, name)
    ref = package_ref(db, principal, package)
    require(principal, Action.PACKAGE_PUSH, ref)
    assert principal is not None
    target = get_revision(db, package, revision)
    if target.state == "FAILED":
        raise NotProcessed(
            f"Revision {target.number} of {owner}/{name} failed processing: tag a revision that"
            " succeeded (or one still being processed).",
            revision=target.number,
        )
    ident = f"{owner}/{name}"
    existing = _existing(db, package, tag)
    if existing is None:
        count = db.scalar(
            select(func.count()).select_from(PackageTag).where(PackageTag.package_id == package.id)
        )
        if (count or 0) >= MAX_TAGS_PER_PACKAGE:
            raise Conflict(f"{ident} already has {MAX_TAGS_PER_PACKAGE} tags.")
        db.add(
            PackageTag(
                package_id=package.id,
                tag=tag,
                revision=target.number,
                created_by=principal.user_id,
            )
        )
        db.flush()  # a concurrent tagging of the same name fails here; see create_tag()
        events.record(
            db,
            "tagged",
            owner=owner,
            name=name,
            revision=target.number,
            principal=principal,
            tag=tag,
        )
        return Tagged(ident, tag, target.number, created=True)
    if existing.revision == target.number:
        return Tagged(ident, tag, target.number, created=False)
    if not force:
        raise TagExists(
            f"The tag {tag!r} of {ident} already names revision {existing.revision}; tags are"
            " immutable (an owner may move one with force).",
            tag=tag,
            revision=existing.revision,
        )
    require(principal, Action.PACKAGE_MANAGE, ref)
    before = existing.revision
    existing.revision = target.number
    existing.created_by = principal.user_id
    existing.created_at = utcnow()
    audit.record(
        db,
        "package.tag-moved",
        principal=principal,
        ip=ip,
        target=ident,
        tag=tag,
        before=before,
        after=target.number,
    )
    events.record(
        db,
        "tagged",
        owner=owner,
        name=name,
        revision=target.number,
        principal=principal,
        tag=tag,
        moved_from=before,
    )
    return Tagged(ident, tag, target.number, created=True, moved_from=before)


def list_tags(
    db: Session, principal: Principal | None, owner: str, name: str
) -> list[dict[str, Any]]:
    """The package's tags, newest revision first."""
    package = _package(db, principal, owner, name)
    require(principal, Action.PACKAGE_READ, package_ref(db, principal, package))
    rows = db.execute(
        select(PackageTag.tag, PackageTag.revision, PackageTag.created_at, User.username)
        .outerjoin(User, User.id == PackageTag.created_by)
        .where(PackageTag.package_id == package.id)
        .order_by(PackageTag.revision.desc(), PackageTag.tag)
    )
    return [_entry(tag, number, created, by) for tag, number, created, by in rows]


def _entry(tag: str, revision: int, created_at: datetime, by: str | None) -> dict[str, Any]:
    return {
        "tag": tag,
        "revision": revision,
        "created_at": created_at.isoformat(),
        "created_by": by,
    }
