"""Organizations, their members, packages' collaborators and findability: who holds which role.

Each change checks its action with :mod:`dphub.auth.permissions` and lands with its audit event in the
same transaction. An organization always keeps at least one owner.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from dphub.auth import audit
from dphub.auth.permissions import SITE, Action, Role, can, require
from dphub.auth.principal import Principal
from dphub.auth.roles import package_ref, publisher_ref
from dphub.config import FINDABILITIES
from dphub.errors import (
    AlreadyExists,
    Conflict,
    InvalidRequest,
    PackageNotFound,
    PublisherNotFound,
    UserNotFound,
)
from dphub.events import stream as events
from dphub.metastore.models import Collaborator, Membership, Package, Publisher, User
from dphub.metastore.packages import find_package
from dphub.names import check_publisher_name, is_valid_name

TITLE_MAX = 200
ORGANIZATION = "organization"


def parse_role(value: object) -> Role:
    if not isinstance(value, str) or value not in {r.value for r in Role}:
        roles = ", ".join(r.value for r in Role)
        raise InvalidRequest(f"role must be one of {roles}.", field="role")
    return Role(value)


def parse_findability(value: object) -> str:
    if not isinstance(value, str) or value not in FINDABILITIES:
        raise InvalidRequest(
            f"findability must be one of {', '.join(FINDABILITIES)}.", field="findability"
        )
    return value


def _publisher(db: Session, name: str) -> Publisher:
    found = (
        db.scalar(select(Publisher).where(Publisher.name == name)) if is_valid_name(name) else None
    )
    if found is None:
        raise PublisherNotFound(f"No publisher is called {name!r}.")
    return found


def _user(db: Session, username: str) -> User:
    found = (
        db.scalar(select(User).where(User.username == username))
        if is_valid_name(username)
        else None
    )
    if found is None:
        raise UserNotFound(f"No user is called {username!r}.")
    return found


def _organization(db: Session, principal: Principal | None, name: str) -> Publisher:
    publisher = _publisher(db, name)
    require(principal, Action.PUBLISHER_MANAGE, publisher_ref(db, principal, name))
    if publisher.kind != ORGANIZATION:
        raise Conflict(f"{name!r} is a user, not an organization: it has no members to manage.")
    return publisher


def create_organization(
    db: Session, principal: Principal | None, *, name: object, title: object = None
) -> dict[str, Any]:
    require(principal, Action.ORG_CREATE, SITE)
    assert principal is not None
    org_name = check_publisher_name(name)
    if title is not None and (not isinstance(title, str) or len(title) > TITLE_MAX):
        raise InvalidRequest(
            f"title must be text of at most {TITLE_MAX} characters.", field="title"
        )
    taken = db.scalar(select(Publisher.id).where(Publisher.name == org_name))
    if taken is not None or db.scalar(select(User.id).where(User.username == org_name)):
        raise AlreadyExists(f"The name {org_name!r} is taken by a user or an organization.")
    org = Publisher(name=org_name, kind=ORGANIZATION, title=title)
    db.add(org)
    db.flush()
    db.add(Membership(publisher_id=org.id, user_id=principal.user_id, role=Role.OWNER.value))
    audit.record(db, "org.create", principal=principal, target=org_name)
    db.flush()
    return describe_publisher(db, principal, org_name)


def describe_publisher(db: Session, principal: Principal | None, name: str) -> dict[str, Any]:
    """A publisher's public face; its members for those who may see them."""
    publisher = _publisher(db, name)
    require(principal, Action.PUBLISHER_READ, publisher_ref(db, principal, name))
    answer: dict[str, Any] = {
        "name": publisher.name,
        "kind": publisher.kind,
        "title": publisher.title,
        "created_at": publisher.created_at.isoformat(),
    }
    if can(principal, Action.PUBLISHER_MEMBERS, publisher_ref(db, principal, name)):
        answer["members"] = _members(db, publisher)
    return answer


def _members(db: Session, publisher: Publisher) -> list[dict[str, str]]:
    if publisher.kind != ORGANIZATION:
        return [{"username": publisher.name, "role": Role.OWNER.value}]
    rows = db.execute(
        select(User.username, Membership.role)
        .join(Membership, Membership.user_id == User.id)
        .where(Membership.publisher_id == publisher.id)
        .order_by(User.username)
    )
    return [{"username": username, "role": role} for username, role in rows]


def _membership(db: Session, org: Publisher, user: User) -> Membership | None:
    return db.scalar(
        select(Membership).where(Membership.publisher_id == org.id, Membership.user_id == user.id)
    )


def _collaboration(db: Session, package: Package, user: User) -> Collaborator | None:
    return db.scalar(
        select(Collaborator).where(
            Collaborator.package_id == package.id, Collaborator.user_id == user.id
        )
    )


def _owners(db: Session, publisher_id: int) -> int:
    return (
        db.scalar(
            select(func.count())
            .select_from(Membership)
            .where(Membership.publisher_id == publisher_id, Membership.role == Role.OWNER.value)
        )
        or 0
    )


def set_member(
    db: Session, principal: Principal | None, org_name: str, username: str, role: object
) -> dict[str, Any]:
    """Add ``username`` to the organization with ``role``, or change their role."""
    org = _organization(db, principal, org_name)
    wanted = parse_role(role)
    user = _user(db, username)
    membership = _membership(db, org, user)
    before = membership.role if membership is not None else None
    if membership is None:
        db.add(Membership(publisher_id=org.id, user_id=user.id, role=wanted.value))
    else:
        if before == Role.OWNER.value and wanted is not Role.OWNER and _owners(db, org.id) <= 1:
            raise Conflict(f"{username} is the last owner of {org_name}: make another owner first.")
        membership.role = wanted.value
    if before != wanted.value:
        audit.record(
            db,
            "org.member.set",
            principal=principal,
            target=f"{org_name}:{username}",
            before=before,
            after=wanted.value,
        )
    db.flush()
    return describe_publisher(db, principal, org_name)


def remove_member(
    db: Session, principal: Principal | None, org_name: str, username: str
) -> dict[str, Any]:
    org = _organization(db, principal, org_name)
    user = _user(db, username)
    membership = _membership(db, org, user)
    if membership is None:
        raise UserNotFound(f"{username} is not a member of {org_name}.")
    if membership.role == Role.OWNER.value and _owners(db, org.id) <= 1:
        raise Conflict(f"{username} is the last owner of {org_name}: make another owner first.")
    db.delete(membership)
    audit.record(
        db,
        "org.member.remove",
        principal=principal,
        target=f"{org_name}:{username}",
        before=membership.role,
    )
    db.flush()
    return describe_publisher(db, principal, org_name)


def _package(db: Session, owner: str, name: str) -> Package:
    if not (is_valid_name(owner) and is_valid_name(name)):
        raise PackageNotFound()
    package = find_package(db, owner, name)
    if package is None:
        raise PackageNotFound()
    return package


def list_collaborators(
    db: Session, principal: Principal | None, owner: str, name: str
) -> list[dict[str, str]]:
    package = _package(db, owner, name)
    require(principal, Action.PACKAGE_MEMBERS, package_ref(db, principal, package))
    rows = db.execute(
        select(User.username, Collaborator.role)
        .join(Collaborator, Collaborator.user_id == User.id)
        .where(Collaborator.package_id == package.id)
        .order_by(User.username)
    )
    return [{"username": username, "role": role} for username, role in rows]


def set_collaborator(
    db: Session, principal: Principal | None, owner: str, name: str, username: str, role: object
) -> list[dict[str, str]]:
    package = _package(db, owner, name)
    require(principal, Action.PACKAGE_MANAGE, package_ref(db, principal, package))
    wanted = parse_role(role)
    user = _user(db, username)
    row = _collaboration(db, package, user)
    before = row.role if row is not None else None
    if row is None:
        db.add(Collaborator(package_id=package.id, user_id=user.id, role=wanted.value))
    else:
        row.role = wanted.value
    if before != wanted.value:
        audit.record(
            db,
            "package.collaborator.set",
            principal=principal,
            target=f"{owner}/{name}:{username}",
            before=before,
            after=wanted.value,
        )
    db.flush()
    return list_collaborators(db, principal, owner, name)


def remove_collaborator(
    db: Session, principal: Principal | None, owner: str, name: str, username: str
) -> list[dict[str, str]]:
    package = _package(db, owner, name)
    require(principal, Action.PACKAGE_MANAGE, package_ref(db, principal, package))
    user = _user(db, username)
    row = _collaboration(db, package, user)
    if row is None:
        raise UserNotFound(f"{username} is not a collaborator on {owner}/{name}.")
    db.delete(row)
    audit.record(
        db,
        "package.collaborator.remove",
        principal=principal,
        target=f"{owner}/{name}:{username}",
        before=row.role,
    )
    db.flush()
    return list_collaborators(db, principal, owner, name)


def set_findability(
    db: Session, principal: Principal | None, owner: str, name: str, findability: object
) -> dict[str, Any]:
    package = _package(db, owner, name)
    require(principal, Action.PACKAGE_MANAGE, package_ref(db, principal, package))
    wanted = parse_findability(findability)
    if wanted != package.findability:
        audit.record(
            db,
            "package.findability",
            principal=principal,
            target=f"{owner}/{name}",
            before=package.findability,
            after=wanted,
        )
        events.record(
            db,
            "findability-changed",
            owner=owner,
            name=name,
            principal=principal,
            before=package.findability,
            after=wanted,
        )
        package.findability = wanted
    return {"owner": owner, "name": name, "findability": wanted}
