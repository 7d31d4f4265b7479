"""What a person or program finds at the hub's root: its name, version and where the API is described."""

from __future__ import annotations

from fastapi import APIRouter

import dphub
from dphub.api.deps import HubDep
from dphub.api.responses import JSON
from dphub.auth.permissions import Action, needs

router = APIRouter(tags=["hub"])


@router.get(
    "/", summary="The hub's name, version and API description", openapi_extra=needs(Action.PUBLIC)
)
@router.get(
    "/api",
    summary="The hub's name, version and API description",
    include_in_schema=False,
    openapi_extra=needs(Action.PUBLIC),
)
async def root(hub: HubDep) -> JSON:
    base = hub.settings.base_url
    return JSON(
        {
            "name": "dphub",
            "version": dphub.__version__,
            "openapi": f"{base}/openapi.json",
            "docs": f"{base}/api/docs",
        }
    )
