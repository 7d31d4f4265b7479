"""Probes for process managers and load balancers (is the process up, can it serve), and the
metrics for Prometheus."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from dphub.api.deps import CurrentPrincipal, HubDep
from dphub.api.metrics import HubMetrics
from dphub.api.responses import JSON
from dphub.auth.permissions import SITE, Action, needs, require
from dphub.hub import Hub

router = APIRouter(tags=["hub"])
log = logging.getLogger("dphub.api")

NO_STORE = {"Cache-Control": "no-store"}
PROBE_BLOB = "0" * 64
"""A hash no file has: asking the bitstore for its size is a round trip that reads nothing."""


@router.get(
    "/healthz",
    summary="The process is up (it answers; nothing else is checked)",
    openapi_extra=needs(Action.PUBLIC),
)
async def healthz() -> JSON:
    return JSON({"status": "ok"}, headers=NO_STORE)


def _timed(check: Callable[[], object]) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        check()
    except Exception as exc:  # a probe reports every failure, whatever it is
        log.warning("readiness check failed: %s", type(exc).__name__)
        return {"ok": False, "error": type(exc).__name__}
    return {"ok": True, "ms": round((time.perf_counter() - started) * 1000, 1)}


def _database(hub: Hub) -> None:
    with hub.engine.connect() as connection:
        connection.execute(text("SELECT 1"))


def readiness(hub: Hub) -> dict[str, dict[str, Any]]:
    return {
        "metastore": _timed(lambda: _database(hub)),
        "bitstore": _timed(lambda: hub.bitstore.size(PROBE_BLOB)),
    }


@router.get(
    "/readyz",
    summary="The hub can serve: its database and its object storage answer (503 otherwise)",
    openapi_extra=needs(Action.PUBLIC),
)
async def readyz(hub: HubDep) -> JSON:
    checks = await run_in_threadpool(readiness, hub)
    if all(c["ok"] for c in checks.values()):
        return JSON({"status": "ready", "checks": checks}, headers=NO_STORE)
    failing = ", ".join(name for name, c in checks.items() if not c["ok"])
    body = {
        "status": "unavailable",
        "checks": checks,
        "error": {
            "code": "service-unavailable",
            "message": f"The hub cannot serve right now: {failing} did not answer.",
        },
    }
    return JSON(body, status_code=503, headers={**NO_STORE, "Retry-After": "5"})


@router.get(
    "/metrics",
    summary="Prometheus metrics: requests, latencies and bytes per route; the processing queue",
    openapi_extra=needs(Action.SITE_ADMIN),
    response_class=Response,
    responses={
        200: {
            "description": "Prometheus' text format",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        }
    },
)
async def metrics(request: Request, principal: CurrentPrincipal) -> Response:
    require(principal, Action.SITE_ADMIN, SITE)
    collected: HubMetrics = request.app.state.metrics
    body = await run_in_threadpool(generate_latest, collected.registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST, headers=NO_STORE)
