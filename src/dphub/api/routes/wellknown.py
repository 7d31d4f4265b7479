"""The keys that verify the hub's tokens, for any service that wants to check one, and their rotation.

``/.well-known/jwks.json`` lists every key whose tokens are still accepted (RFC 7517, with the
Ed25519 members of RFC 8037); ``/api/auth/public-key`` gives the signing key as PEM.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from dphub.api.deps import CurrentPrincipal, HubDep, client_ip
from dphub.api.responses import JSON
from dphub.auth import audit, signing
from dphub.auth.permissions import SITE, Action, needs, require
from dphub.metastore.db import transaction

router = APIRouter(tags=["auth"])

# Short: a rotation reaches the services that verify tokens within a minute (and a service meeting
# an unknown kid fetches the set again anyway).
KEYS_CACHE = "public, max-age=60"
PEM_TYPE = "application/x-pem-file"


@router.get(
    "/api/auth/public-key",
    summary="The PEM public key that verifies the tokens the hub signs now (EdDSA, Ed25519)",
    openapi_extra=needs(
        Action.PUBLIC,
        responses={"200": {"content": {PEM_TYPE: {"schema": {"type": "string"}}}}},
    ),
    response_class=Response,
)
async def public_key(hub: HubDep) -> Response:
    def work() -> tuple[str, str]:
        with transaction(hub.sessions) as db:
            key = signing.current_key(db)
            return key.public_pem, key.kid

    pem, kid = await run_in_threadpool(work)
    return Response(pem, media_type=PEM_TYPE, headers={"Cache-Control": KEYS_CACHE, "Key-Id": kid})


@router.get(
    "/.well-known/jwks.json",
    summary="Every key whose tokens the hub still accepts, as a JSON Web Key Set",
    openapi_extra=needs(Action.PUBLIC),
)
async def jwks(hub: HubDep) -> JSON:
    def work() -> list[dict[str, Any]]:
        with transaction(hub.sessions) as db:
            keys = signing.verifying_keys(db, grace=hub.settings.token_ttl)
            return [signing.jwk(k) for k in keys]

    return JSON({"keys": await run_in_threadpool(work)}, headers={"Cache-Control": KEYS_CACHE})


@router.post(
    "/api/admin/signing-keys/rotate",
    summary="Start signing tokens with a new key; the old ones verify until their tokens expire",
    openapi_extra=needs(Action.SITE_ADMIN),
)
async def rotate(request: Request, hub: HubDep, principal: CurrentPrincipal) -> JSON:
    require(principal, Action.SITE_ADMIN, SITE)
    ip = client_ip(request)
    grace = hub.settings.token_ttl

    def work() -> dict[str, Any]:
        with transaction(hub.sessions) as db:
            rotation = signing.rotate(db)
            audit.record(
                db,
                "signing-key.rotate",
                principal=principal,
                ip=ip,
                target=rotation.key.kid,
                retired=rotation.retired,
            )
        signing.forget(hub.engine)
        return {
            "signing_key": signing.describe(rotation.key, grace=grace),
            "retired": rotation.retired,
        }

    return JSON(await run_in_threadpool(work), headers={"Cache-Control": "no-store"})
