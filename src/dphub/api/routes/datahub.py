"""DataHub's second-generation API (``/auth``, ``/rawstore``, ``/source``, ``/metastore``,
``/resolver``), for the ``data`` command line and ``datahub-client``: thin routes over the same
authorize, finalize, status and search services as dphub's own API (see dphub.compat.datahub)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from dphub.api.body import read_json
from dphub.api.deps import CurrentPrincipal, HubDep, MaybePrincipal
from dphub.api.responses import JSON
from dphub.api.routes import auth, publish, wellknown
from dphub.auth.permissions import Action, needs
from dphub.auth.tokens import issue_token
from dphub.compat import datahub
from dphub.errors import DphubError
from dphub.ingest import finalize as finalize_service
from dphub.metastore.db import transaction

router = APIRouter(tags=["datahub"])

NO_STORE = {"Cache-Control": "no-store"}
SERVICE_TOKEN_TTL = 3600
"""Seconds a service token from /auth/authorize lives (never past the token it was made from)."""


@router.get(
    "/auth/check",
    summary="DataHub: who the token (?jwt= or Auth-Token) belongs to, or the login providers",
    openapi_extra=needs(Action.PUBLIC),
)
async def check(request: Request, hub: HubDep) -> JSON:
    body = await auth.who(request, hub)
    if body["authenticated"]:
        profile = body["profile"]
        # this API's owner id is the publisher's name
        body["profile"] = {**profile, "id": profile["username"], "userid": profile["id"]}
    return JSON(body, headers=NO_STORE)


@router.get(
    "/auth/authorize",
    summary="DataHub: trade the user's token for a rawstore or source service token",
    openapi_extra=needs(Action.PUBLIC),
)
async def authorize_service(
    hub: HubDep,
    principal: CurrentPrincipal,
    service: str = Query(description="rawstore or source"),
) -> JSON:
    permissions = datahub.service_permissions(principal, service)

    def work() -> str:
        with transaction(hub.sessions) as db:
            token, _ = issue_token(
                db,
                principal,
                ttl=min(SERVICE_TOKEN_TTL, hub.settings.token_ttl),
                api_key_id=principal.api_key_id,
            )
            return token

    token = await run_in_threadpool(work)
    return JSON(
        {
            "userid": principal.username,
            "permissions": permissions,
            "service": service,
            "token": token,
        },
        headers=NO_STORE,
    )


@router.get(
    "/auth/public-key",
    summary="DataHub: the PEM public key that verifies the hub's tokens",
    openapi_extra=needs(Action.PUBLIC),
    response_class=Response,
    responses={200: {"content": {wellknown.PEM_TYPE: {"schema": {"type": "string"}}}}},
)
async def public_key(hub: HubDep) -> Response:
    return await wellknown.public_key(hub)


@router.post(
    "/rawstore/authorize",
    summary="DataHub: presigned upload forms for a dataset's files ({metadata: {owner}, filedata})",
    openapi_extra=needs(Action.PACKAGE_PUSH),
)
async def rawstore_authorize(request: Request, hub: HubDep, principal: CurrentPrincipal) -> JSON:
    return await publish.grant_uploads(request, hub, principal)


@router.get(
    "/rawstore/presign",
    summary="DataHub: the URL of one of your uploaded files, for /source/upload",
    openapi_extra=needs(Action.UPLOAD_OWN),
)
async def presign(
    hub: HubDep,
    principal: CurrentPrincipal,
    url: str = Query(description="upload_url + '/' + key of the uploaded file"),
    ownerid: str | None = Query(default=None),
) -> JSON:
    def work() -> str:
        with hub.sessions() as db:
            return datahub.presign(db, hub.bitstore, principal, ownerid, url)

    return JSON({"url": await run_in_threadpool(work)}, headers=NO_STORE)


@router.post(
    "/source/upload",
    summary="DataHub: publish the uploaded datapackage.json named by a flow spec",
    openapi_extra=needs(Action.UPLOAD_OWN),
)
async def source_upload(request: Request, hub: HubDep, principal: CurrentPrincipal) -> JSON:
    spec, errors = datahub.parse_flow_spec(await read_json(request))

    def work() -> dict[str, Any]:
        assert spec is not None
        with hub.sessions() as db:
            problems = datahub.spec_problems(db, hub.bitstore, principal, spec)
        if problems:
            return {"success": False, "dataset_id": None, "flow_id": None, "errors": problems}
        done = finalize_service.finalize(
            hub.sessions,
            principal=principal,
            settings=hub.settings,
            bitstore=hub.bitstore,
            datapackage_url=spec.datapackage_url,
        )
        return {
            "success": True,
            "dataset_id": f"{done.owner}/{done.name}",
            "flow_id": f"{done.owner}/{done.name}/{done.revision}",
            "errors": [],
        }

    if spec is None:
        return JSON({"success": False, "dataset_id": None, "flow_id": None, "errors": errors})
    try:
        return JSON(await run_in_threadpool(work))
    except DphubError as exc:
        if exc.status in (401, 403, 404, 429, 503):
            raise
        # what is wrong with the push itself: answered as that API did
        return JSON(
            {"success": False, "dataset_id": None, "flow_id": None, "errors": [exc.message]}
        )


@router.get(
    "/source/{ownerid}/{dataset}/{ref}",
    summary="DataHub: a revision's processing (a number, latest or successful)",
    openapi_extra=needs(Action.PACKAGE_READ),
)
async def source_status(
    ownerid: str, dataset: str, ref: str, hub: HubDep, principal: MaybePrincipal
) -> JSON:
    def work() -> dict[str, Any]:
        with hub.sessions() as db:
            return datahub.flow_status(db, principal, ownerid, dataset, ref)

    return JSON(await run_in_threadpool(work), headers=NO_STORE)


@router.get(
    "/metastore/search",
    summary='DataHub: search datasets; values JSON-encoded (q="words", size=20, from=0)',
    openapi_extra=needs(Action.PUBLIC),
)
async def metastore_search(request: Request, hub: HubDep, principal: MaybePrincipal) -> JSON:
    params = dict(request.query_params)

    def work() -> dict[str, Any]:
        with hub.sessions() as db:
            return datahub.search(db, principal, params, base_url=hub.settings.base_url)

    return JSON(await run_in_threadpool(work))


@router.get(
    "/resolver/resolve",
    summary="DataHub: the ids of <owner>/<dataset>",
    openapi_extra=needs(Action.PACKAGE_READ),
)
async def resolve(
    hub: HubDep, principal: MaybePrincipal, path: str = Query(description="<owner>/<dataset>")
) -> JSON:
    def work() -> dict[str, str]:
        with hub.sessions() as db:
            return datahub.resolve(db, principal, path)

    return JSON(await run_in_threadpool(work))
