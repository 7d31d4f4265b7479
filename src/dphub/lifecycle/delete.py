"""Soft delete and undelete.

A deleted package keeps every row and every blob; only ``packages.deleted_at`` is set. Every read
finds packages through :func:`dphub.metastore.packages.find_package` (or lists them with
``deleted_at IS NULL``), so one committed update hides the package from all of them at once: its
page, descriptor, files, revisions, datastore tables, DataProxy and lists. Only its owners and site
admins still find it, to undelete or purge it; to anyone else it does not exist.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from dphub.auth import audit
from dphub.auth.permissions import Action, PackageRef, as_deleted, require
from dphub.auth.principal import Principal
from dphub.auth.roles import package_ref
from dphub.errors import Conflict, PackageDeleted, PackageNotFound
from dphub.events import stream as events
from dphub.metastore.models import Package
from dphub.metastore.references import lock_package
from dphub.names import is_valid_name


def find_any(db: Session, owner: str, name: str) -> Package | None:
    """The package ``owner/name`` whether deleted or not (one row per name at most)."""
    if not (is_valid_name(owner) and is_valid_name(name)):
        return None
    return db.scalar(select(Package).where(Package.owner == owner, Package.name == name))


def managed_ref(db: Session, principal: Principal | None, package: Package) -> PackageRef:
    """The package as ``package:manage`` checks it: as it is when live, as deleted otherwise."""
    ref = package_ref(db, principal, package)
    return ref if package.deleted_at is None else as_deleted(ref)


def find_to_manage(db: Session, principal: Principal | None, owner: str, name: str) -> Package:
    """The package, live or deleted, once the caller is known to be allowed to manage it."""
    package = find_any(db, owner, name)
    if package is None:
        raise PackageNotFound()
    require(principal, Action.PACKAGE_MANAGE, managed_ref(db, principal, package))
    return package


def state(package: Package) -> dict[str, Any]:
    return {
        "owner": package.owner,
        "name": package.name,
        "findability": package.findability,
        "deleted": package.deleted_at is not None,
        "deleted_at": package.deleted_at.isoformat() if package.deleted_at else None,
    }


def _locked(db: Session, package: Package) -> Package:
    locked = lock_package(db, package.owner, package.name)
    if locked is None or locked.id != package.id:
        raise PackageNotFound()  # purged meanwhile
    return locked


def delete_package(
    db: Session, principal: Principal | None, owner: str, name: str
) -> dict[str, Any]:
    """Hide the package everywhere; deleting a deleted package changes nothing."""
    package = _locked(db, find_to_manage(db, principal, owner, name))
    if package.deleted_at is None:
        package.deleted_at = datetime.now(UTC)
        target = f"{owner}/{name}"
        audit.record(db, "package.delete", principal=principal, target=target)
        events.record(db, "deleted", owner=owner, name=name, principal=principal)
    return state(package)


def undelete_package(
    db: Session, principal: Principal | None, owner: str, name: str
) -> dict[str, Any]:
    """Bring a deleted package back as it was, with its findability, revisions and roles."""
    package = _locked(db, find_to_manage(db, principal, owner, name))
    if package.deleted_at is None:
        raise Conflict(f"{owner}/{name} is not deleted: there is nothing to undelete.")
    package.deleted_at = None
    audit.record(db, "package.undelete", principal=principal, target=f"{owner}/{name}")
    events.record(db, "undeleted", owner=owner, name=name, principal=principal)
    return state(package)


def refuse_deleted(db: Session, owner: str, name: str) -> None:
    """A push to the name of a deleted package is refused: it would bring the package back without
    its owners deciding to, or mix a new package into the old one's history."""
    deleted = db.scalar(
        select(Package.id).where(
            Package.owner == owner, Package.name == name, Package.deleted_at.is_not(None)
        )
    )
    if deleted is not None:
        raise PackageDeleted(
            f"{owner}/{name} was deleted. Undelete it (dphub undelete {owner}/{name}) to push to"
            f" it again, or purge it (dphub purge {owner}/{name}) to start a new package of that"
            " name.",
            package=f"{owner}/{name}",
        )
