"""The activity stream: events recorded in the transaction of the change they report, each with a
delivery owed to every active webhook of the package's publisher that wants that kind; and read
back newest first, only for those who may see the package.

Events name their package by owner and name. Which package that is, and so who may see the
event, is decided when it is read: the live package of that name if it was created no later than
the event, else (deleted, purged, or an earlier package of that name) a package private to its
publisher.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, or_, select
from sqlalchemy.orm import Session

from dphub.auth.permissions import Action, PackageRef, can, require
from dphub.auth.principal import Principal
from dphub.auth.roles import listed_clause, package_ref, publisher_ref, publisher_role
from dphub.errors import InvalidQuery, PackageNotFound
from dphub.metastore.models import Event, Package, Publisher, Webhook, WebhookDelivery
from dphub.metastore.packages import find_package
from dphub.names import is_valid_name

KINDS = (
    "pushed",
    "processed",
    "failed",
    "tagged",
    "deleted",
    "undeleted",
    "purged",
    "findability-changed",
)


def record(
    db: Session,
    kind: str,
    *,
    owner: str,
    name: str | None = None,
    revision: int | None = None,
    principal: Principal | None = None,
    **detail: Any,
) -> Event:
    """Add the event and its webhook deliveries to ``db``'s transaction."""
    assert kind in KINDS, kind
    event = Event(
        kind=kind,
        owner=owner,
        name=name,
        revision=revision,
        actor_id=principal.user_id if principal is not None else None,
        actor=principal.username if principal is not None else None,
        detail=detail,
    )
    db.add(event)
    db.flush()
    hooks = db.scalars(
        select(Webhook)
        .join(Publisher, Publisher.id == Webhook.publisher_id)
        .where(Publisher.name == owner, Webhook.active.is_(True))
    )
    for hook in hooks:
        if hook.kinds is None or kind in hook.kinds:
            db.add(WebhookDelivery(webhook_id=hook.id, event_id=event.id))
    return event


# Reading the stream

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
MAX_ID = 2**63 - 1


@dataclass(frozen=True)
class Page:
    """Events newest first; ``next`` is the ``before`` of the following page, or ``None``."""

    events: list[dict[str, Any]]
    next: int | None

    def to_json(self) -> dict[str, Any]:
        return {"events": self.events, "next": self.next}


def parse_kinds(value: str | None) -> tuple[str, ...] | None:
    """``pushed,failed`` → the kinds asked for; ``None`` or empty for every kind."""
    if value is None or not value.strip():
        return None
    kinds = tuple(dict.fromkeys(k.strip() for k in value.split(",") if k.strip()))
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise InvalidQuery(
            f"Unknown event kind {unknown[0][:40]!r}: use one of {', '.join(KINDS)}.", field="kind"
        )
    return kinds


def describe(event: Event) -> dict[str, Any]:
    return {
        "id": event.id,
        "created_at": event.created_at,
        "kind": event.kind,
        "owner": event.owner,
        "name": event.name,
        "revision": event.revision,
        "actor": event.actor,
        "detail": event.detail or {},
    }


def _same_package() -> ColumnElement[bool]:
    """The package row that an event belongs to: same owner and name, live, and created no later
    than the event (an earlier package of that name, since purged, is another package)."""
    return and_(
        Package.owner == Event.owner,
        Package.name == Event.name,
        Package.deleted_at.is_(None),
        Package.created_at <= Event.created_at,
    )


def _of_listed_package(principal: Principal | None) -> ColumnElement[bool]:
    return exists(select(Package.id).where(_same_package(), listed_clause(principal)))


def _of_live_package() -> ColumnElement[bool]:
    return exists(select(Package.id).where(_same_package()))


def _page(
    db: Session,
    conditions: list[ColumnElement[bool]],
    *,
    kinds: tuple[str, ...] | None,
    before: int | None,
    limit: int,
) -> Page:
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidQuery(f"limit must be between 1 and {MAX_LIMIT}.", field="limit")
    if kinds:
        conditions.append(Event.kind.in_(kinds))
    if before is not None:
        conditions.append(Event.id < before)
    rows = list(
        db.scalars(select(Event).where(*conditions).order_by(Event.id.desc()).limit(limit + 1))
    )
    events = [describe(e) for e in rows[:limit]]
    return Page(events, events[-1]["id"] if len(rows) > limit else None)


def _publisher_member(db: Session, principal: Principal | None, owner: str) -> bool:
    return can(principal, Action.PUBLISHER_MEMBERS, publisher_ref(db, principal, owner))


def package_events(
    db: Session,
    principal: Principal | None,
    owner: str,
    name: str,
    *,
    kinds: tuple[str, ...] | None = None,
    before: int | None = None,
    limit: int = DEFAULT_LIMIT,
) -> Page:
    """One package's events, for those who may read the package.

    A package that is deleted or purged (or an earlier package of that name) counts as private to
    its publisher: only the publisher's members see those events. Anyone else gets the same
    ``PackageNotFound`` whether the package never existed or is hidden.
    """
    if not (is_valid_name(owner) and is_valid_name(name)):
        raise PackageNotFound()
    package = find_package(db, owner, name)
    member = _publisher_member(db, principal, owner)
    conditions: list[ColumnElement[bool]] = [Event.owner == owner, Event.name == name]
    if package is not None:
        require(principal, Action.PACKAGE_READ, package_ref(db, principal, package))
        if not member:
            conditions.append(Event.created_at >= package.created_at)
    else:
        gone = PackageRef(owner, name, "private", publisher_role(db, principal, owner))
        require(principal, Action.PACKAGE_READ, gone)
    return _page(db, conditions, kinds=kinds, before=before, limit=limit)


def owner_events(
    db: Session,
    principal: Principal | None,
    owner: str,
    *,
    kinds: tuple[str, ...] | None = None,
    before: int | None = None,
    limit: int = DEFAULT_LIMIT,
) -> Page:
    """The events of ``owner``'s packages that the caller sees listed; those of its deleted and
    purged packages for the publisher's members only."""
    if not is_valid_name(owner):
        raise InvalidQuery(f"{owner[:100]!r} is not a publisher name.", field="owner")
    visible = _of_listed_package(principal)
    if _publisher_member(db, principal, owner):
        visible = or_(visible, ~_of_live_package())
    conditions = [Event.owner == owner, visible]
    return _page(db, conditions, kinds=kinds, before=before, limit=limit)


def hub_events(
    db: Session,
    principal: Principal | None,
    *,
    kinds: tuple[str, ...] | None = None,
    before: int | None = None,
    limit: int = DEFAULT_LIMIT,
) -> Page:
    """The events of every live package the caller sees listed."""
    return _page(db, [_of_listed_package(principal)], kinds=kinds, before=before, limit=limit)
