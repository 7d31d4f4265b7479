"""What a person or program finds at the hub's root: its name, version and where the API is described."""

from __future__ import annotations

from fastapi import APIRouter

import dphub
from dphub.api.deps import HubDep
from dphub.api.responses import JSON
from dphub.auth.permissions import Action, needs
from dphub.hub import Hub

router = APIRouter(tags=["hub"])


def describe_hub(hub: Hub) -> JSON:
    """What ``/api`` answers, and ``/`` to a client that does not ask for a web page."""
    base = hub.settings.base_url
    return JSON(
        {
            "name": "dphub",
            "version": dphub.__version__,
            "openapi": f"{base}/openapi.json",
            "docs": f"{base}/api/docs",
        }
    )


@router.get(
    "/api",
    summary="The hub's name, version and API description",
    openapi_extra=needs(Action.PUBLIC),
)
async def root(hub: HubDep) -> JSON:
    return describe_hub(hub)
