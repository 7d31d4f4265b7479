"""The audit log: security events (logins, failed logins, tokens, roles, findability, deletes).

Recorded in the metastore next to the change they describe; readable by site admins.
"""

from __future__ import annotations

import logging
from typing import Any

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
    log.info("audit %s %s actor=%s target=%s", event, outcome, who, target)


def record_apart(sessions: sessionmaker[Session], event: str, **kwargs: Any) -> None:
    """Record an event in a transaction of its own: for refusals, whose own transaction rolls back."""
    with transaction(sessions) as db:
        record(db, event, **kwargs)
