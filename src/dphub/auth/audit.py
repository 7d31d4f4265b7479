"""The audit log: security events (logins, failed logins, tokens, roles, findability, deletes).

Recorded in the metastore next to the change they describe; readable by site admins.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from dphub.auth.principal import Principal
from dphub.metastore.db import transaction
from dphub.metastore.models import AuditEvent

log = logging.getLogger("dphub.audit")


def record(
    db: Session,
    event: str,
    *,
    outcome: str = "ok",
    principal: Principal | None = None,
    actor: str | None = None,
    ip: str | None = None,
    target: str | None = None,
    **detail: Any,
) -> None:
    """Add one event to the session's transaction (it lands when the change it describes lands).

    ``detail`` must never carry a secret: keys and passwords are described, not copied.
    """
    who = principal.username if principal is not None else actor
    db.add(
        AuditEvent(
            event=event,
            outcome=outcome,
            actor_id=principal.user_id if principal is not None else None,
            actor=who[:320] if who else None,
            ip=ip,
            target=target[:500] if target else None,
            detail=detail,
        )
    )
    # Only what identifies the event: never the detail, which may describe credentials.
    log.info("audit %s %s actor=%s target=%s", event, outcome, _printable(who), _printable(target))


def _printable(text: str | None) -> str | None:
    """Given names reach the log line by line: a control character cannot forge a line."""
    if text is None:
        return None
    return "".join(c if c.isprintable() else "?" for c in text[:320])


def record_apart(sessions: sessionmaker[Session], event: str, **kwargs: Any) -> None:
    """Record an event in a transaction of its own: for refusals, whose own transaction rolls back."""
    with transaction(sessions) as db:
        record(db, event, **kwargs)


def recent(
    db: Session,
    *,
    event: str | None = None,
    actor: str | None = None,
    before: int | None = None,
    limit: int = 100,
) -> list[AuditEvent]:
    """Events newest first, optionally of one event name and one actor, older than event ``before``."""
    query = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit)
    if event:
        query = query.where(AuditEvent.event == event)
    if actor:
        query = query.where(AuditEvent.actor == actor)
    if before is not None:
        query = query.where(AuditEvent.id < before)
    return list(db.scalars(query))
