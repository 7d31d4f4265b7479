"""The facts permissions are decided on: a caller's role on a publisher or a package.

Only loads; :mod:`dphub.auth.permissions` decides.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, and_, false, or_, select, true
from sqlalchemy.orm import Session

from dphub.auth.permissions import PackageRef, PublisherRef, Role
from dphub.auth.principal import Principal
from dphub.metastore.models import Collaborator, Membership, Package, Publisher


def _higher(a: Role | None, b: Role | None) -> Role | None:
    if a is None or b is None:
        return a or b
    return a if a.rank >= b.rank else b


def publisher_role(db: Session, principal: Principal | None, name: str) -> Role | None:
    if principal is None:
        return None
    if principal.username == name:
        return Role.OWNER
    role = db.scalar(
        select(Membership.role)
        .join(Publisher, Publisher.id == Membership.publisher_id)
        .where(Publisher.name == name, Membership.user_id == principal.user_id)
    )
    return Role(role) if role else None


def collaborator_role(db: Session, principal: Principal | None, package_id: int) -> Role | None:
    if principal is None:
        return None
    role = db.scalar(
        select(Collaborator.role).where(
            Collaborator.package_id == package_id, Collaborator.user_id == principal.user_id
        )
    )
    return Role(role) if role else None


def package_ref(db: Session, principal: Principal | None, package: Package) -> PackageRef:
    role = _higher(
        publisher_role(db, principal, package.owner),
        collaborator_role(db, principal, package.id),
    )
    return PackageRef(package.owner, package.name, package.findability, role)


def new_package_ref(
    db: Session, principal: Principal | None, owner: str, name: str, package: Package | None
) -> PackageRef:
    """The package a push targets, existing or about to be created."""
    if package is not None:
        return package_ref(db, principal, package)
    return PackageRef(owner, name, None, publisher_role(db, principal, owner))


def publisher_ref(db: Session, principal: Principal | None, name: str) -> PublisherRef:
    return PublisherRef(name, publisher_role(db, principal, name))


def collaborator_roles(db: Session, principal: Principal | None, owner: str) -> dict[int, Role]:
    """The caller's collaborator roles on ``owner``'s packages, by package id."""
    if principal is None:
        return {}
    rows = db.execute(
        select(Collaborator.package_id, Collaborator.role)
        .join(Package, Package.id == Collaborator.package_id)
        .where(Package.owner == owner, Collaborator.user_id == principal.user_id)
    )
    return {package_id: Role(role) for package_id, role in rows}


def package_refs(
    db: Session, principal: Principal | None, packages: list[Package]
) -> list[PackageRef]:
    """References for many packages of possibly several owners, in few queries."""
    owners = {p.owner for p in packages}
    publisher = {o: publisher_role(db, principal, o) for o in owners}
    collaborating: dict[int, Role] = {}
    for owner in owners:
        collaborating.update(collaborator_roles(db, principal, owner))
    return [
        PackageRef(
            p.owner, p.name, p.findability, _higher(publisher[p.owner], collaborating.get(p.id))
        )
        for p in packages
    ]


def listed_clause(principal: Principal | None) -> ColumnElement[bool]:
    """SQL for :func:`dphub.auth.permissions.listed` over the ``packages`` table: published
    packages, and those the caller holds a role on, within the credential's limit."""
    published = Package.findability == "published"
    if principal is None:
        return published
    return or_(published, held_clause(principal))


def held_clause(principal: Principal | None) -> ColumnElement[bool]:
    """SQL over the ``packages`` table for the packages the caller holds a role on (as a member
    of their publisher, a collaborator, or a site admin), within the credential's limit."""
    if principal is None:
        return false()
    held: ColumnElement[bool]
    if principal.is_admin:
        held = true()
    else:
        member_of = (
            select(Publisher.name)
            .join(Membership, Membership.publisher_id == Publisher.id)
            .where(Membership.user_id == principal.user_id)
        )
        collaborating = select(Collaborator.package_id).where(
            Collaborator.user_id == principal.user_id
        )
        held = or_(
            Package.owner == principal.username,
            Package.owner.in_(member_of),
            Package.id.in_(collaborating),
        )
    if principal.package is not None:
        held = and_(
            held, Package.owner == principal.package[0], Package.name == principal.package[1]
        )
    if principal.publisher is not None:
        held = and_(held, Package.owner == principal.publisher)
    return held
