"""Site administration: the audit log of security events (logins, failed logins, refusals, changes)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query
from starlette.concurrency import run_in_threadpool

from dphub.api.deps import HubDep, MaybePrincipal
from dphub.api.responses import JSON
from dphub.auth import audit
from dphub.auth.permissions import SITE, Action, needs, require
from dphub.metastore.db import transaction
from dphub.metastore.models import AuditEvent

router = APIRouter(prefix="/api/admin", tags=["admin"])

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
MAX_ID = 2**63 - 1


def _event(row: AuditEvent) -> dict[str, Any]:
    return {
        "id": row.id,
        "created_at": row.created_at,
        "event": row.event,
        "outcome": row.outcome,
        "actor": row.actor,
        "actor_id": row.actor_id,
        "ip": row.ip,
        "target": row.target,
        "detail": row.detail or {},
    }


@router.get(
    "/audit",
    summary="Security events, newest first, one page at a time",
    openapi_extra=needs(Action.SITE_ADMIN),
)
async def audit_log(
    hub: HubDep,
    principal: MaybePrincipal,
    event: str | None = Query(default=None, description="Only this event, e.g. login.failed."),
    actor: str | None = Query(default=None, description="Only events of this actor."),
    limit: int = Query(default=DEFAULT_LIMIT, ge=1, le=MAX_LIMIT),
    before: int | None = Query(
        default=None, ge=1, le=MAX_ID, description="Only events older than this event id (paging)."
    ),
) -> JSON:
    require(principal, Action.SITE_ADMIN, SITE)

    def work() -> dict[str, Any]:
        with transaction(hub.sessions) as db:
            rows = audit.recent(db, event=event, actor=actor, before=before, limit=limit + 1)
            page = [_event(row) for row in rows[:limit]]
        following = page[-1]["id"] if len(rows) > limit else None
        return {"events": page, "next": following}

    return JSON(await run_in_threadpool(work), headers={"Cache-Control": "no-store"})
