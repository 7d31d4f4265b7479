"""CKAN's Action API (``/api/action/<action>`` and ``/api/3/action/<action>``), for ``ckanapi`` and
other CKAN clients: one route that reads the parameters and the credential, runs the action from
:mod:`dphub.compat.ckan`'s table and answers in CKAN's envelope, failures included.

The route serves several actions, so it declares ``public``; each action reads packages, tables and
publishers through the same services, and so the same permission checks, as dphub's own routes.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import parse_qsl

import orjson
from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from dphub.api.body import read_bounded
from dphub.api.deps import HubDep, presented_token, resolve_principal
from dphub.api.responses import JSON
from dphub.auth.permissions import Action, needs
from dphub.auth.principal import Principal
from dphub.compat import ckan
from dphub.errors import DphubError, InvalidJson
from dphub.hub import Hub

log = logging.getLogger("dphub.api")

router = APIRouter(tags=["ckan"])

MAX_BODY = 1024 * 1024
NO_STORE = {"Cache-Control": "no-store"}
# How the API description shows CKAN's envelope, so that clients know its failures too
SUCCESS = {
    "type": "object",
    "required": ["help", "success", "result"],
    "properties": {"help": {"type": "string"}, "success": {"const": True}, "result": {}},
}
FAILURE = {
    "type": "object",
    "required": ["help", "success", "error"],
    "properties": {
        "help": {"type": "string"},
        "success": {"const": False},
        "error": {
            "type": "object",
            "required": ["__type", "message"],
            "properties": {"__type": {"type": "string"}, "message": {"type": "string"}},
        },
    },
}
FAILED = {
    "description": "CKAN's failure envelope; the hub's own error body when the request is"
    " refused before any action runs (too large, the hub's database unreachable)",
    "content": {
        "application/json": {"schema": {"anyOf": [FAILURE, {"$ref": "#/components/schemas/Error"}]}}
    },
}
PARAMETERS = {
    "description": "The action's parameters (a GET sends them in the query string)",
    "required": False,
    "content": {
        "application/json": {"schema": {"type": "object"}},
        "application/x-www-form-urlencoded": {"schema": {"type": "object"}},
    },
}
RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The action's result in CKAN's envelope",
        "content": {"application/json": {"schema": SUCCESS}},
    },
    "4XX": FAILED,
    503: FAILED,
}


def _credential(request: Request) -> str | None:
    """dphub's ways of sending a token, then CKAN's: the bare token or API key in
    ``Authorization`` (as ``ckanapi`` sends it) or in ``X-CKAN-API-Key``."""
    token = presented_token(request)
    if token:
        return token
    for header in ("authorization", "x-ckan-api-key"):
        value = request.headers.get(header, "").strip()
        if value and " " not in value:
            return value
    return None


async def _principal(request: Request, hub: Hub) -> Principal | None:
    token = _credential(request)
    if token is None:
        return None
    return await run_in_threadpool(resolve_principal, hub, token)


async def _parameters(request: Request) -> dict[str, Any]:
    """The action's parameters: the query string of a GET (a repeated name gives a list), the
    JSON object (or form) a POST sends."""
    if request.method == "POST":
        body = await read_bounded(request, MAX_BODY)
        if request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            pairs = parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)
        elif body.strip():
            try:
                data = orjson.loads(body)
            except orjson.JSONDecodeError as exc:
                raise InvalidJson(f"The body is not valid JSON: {exc}.") from None
            if not isinstance(data, dict):
                raise InvalidJson(f"The body is a JSON {type(data).__name__}, not an object.")
            return data
        else:
            pairs = []
    else:
        pairs = request.query_params.multi_items()
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            earlier = found[key]
            found[key] = [*earlier, value] if isinstance(earlier, list) else [earlier, value]
        else:
            found[key] = value
    found.pop("callback", None)
    return found


async def run_action(action: str, request: Request, hub: HubDep) -> JSON:
    base = hub.settings.base_url
    if action not in ckan.ACTIONS:
        status, body = ckan.bad_request(base, action, f"Action name not known: {action}")
        return JSON(body, status_code=status)
    try:
        params = await _parameters(request)
        principal = await _principal(request, hub)
        result = await run_in_threadpool(ckan.call, hub, principal, action, params)
    except DphubError as exc:
        if exc.status in (401, 403, 429) or exc.refused:
            # refusals are security events, logged as the API's error handler logs them
            client = request.client.host if request.client else "-"
            log.warning(
                "refused %s %s from %s: %s", request.method, request.url.path, client, exc.code
            )
        status, body = ckan.failure(base, action, exc)
        headers = dict(NO_STORE)
        retry_after = exc.details.get("retry_after")
        if isinstance(retry_after, int):
            headers["Retry-After"] = str(retry_after)
        return JSON(body, status_code=status, headers=headers)
    return JSON(ckan.success(base, action, result), headers=NO_STORE)


for _path in ("/api/action/{action}", "/api/3/action/{action}"):
    router.add_api_route(
        _path,
        run_action,
        methods=["GET", "POST"],
        summary="CKAN Action API: status_show, package_list, package_show, package_search,"
        " resource_show, organization_list, organization_show, datastore_search,"
        " datastore_search_sql",
        openapi_extra=needs(Action.PUBLIC, requestBody=PARAMETERS),
        responses=RESPONSES,
    )
