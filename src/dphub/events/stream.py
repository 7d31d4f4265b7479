"""Recording events: one row per happening, in the transaction of the change it reports, with a
delivery owed to every active webhook of the package's publisher that wants that kind."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from dphub.auth.principal import Principal
from dphub.metastore.models import Event, Publisher, Webhook, WebhookDelivery

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
