"""A package's history: tags naming its revisions, and what changed between two revisions."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool

from dphub.api.body import read_json
from dphub.api.deps import HubDep, MaybePrincipal, client_ip
from dphub.api.responses import JSON
from dphub.auth.permissions import Action, needs
from dphub.errors import InvalidRequest
from dphub.metastore import diff, tags

router = APIRouter(prefix="/api/package", tags=["packages"])

MAX_TAG_BODY = 4 * 1024
TAG_BODY = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "properties": {
                    "version": {
                        "type": "string",
                        "description": "The tag: letters, digits, '.', '_', '-', '+'",
                    },
                    "revision": {
                        "type": ["integer", "string"],
                        "description": "The revision to tag (default: the latest successful)",
                    },
                    "force": {
                        "type": "boolean",
                        "description": "Move an existing tag (needs the owner role)",
                    },
                },
                "required": ["version"],
                "additionalProperties": False,
            }
        }
    },
}
RefQuery = "A revision number, latest, successful or a tag of the package."


def _tag_request(body: Any) -> tuple[str, int | str | None, bool]:
    if not isinstance(body, dict):
        raise InvalidRequest('Send {"version": "<tag>", "revision"?: <number>, "force"?: false}.')
    unknown = sorted(set(body) - {"version", "revision", "force"})
    if unknown:
        raise InvalidRequest(f"Unknown fields: {', '.join(unknown)}.")
    version, revision, force = body.get("version"), body.get("revision"), body.get("force", False)
    if not isinstance(version, str):
        raise InvalidRequest('"version" is required: the tag, e.g. "v1.0".', field="version")
    if revision is not None and (isinstance(revision, bool) or not isinstance(revision, int | str)):
        raise InvalidRequest(
            '"revision" must be a revision number (or latest, successful or a tag).',
            field="revision",
        )
    if not isinstance(force, bool):
        raise InvalidRequest('"force" must be true or false.', field="force")
    return version, revision, force


@router.post(
    "/{owner}/{name}/tag",
    summary="Tag a revision (default: the latest successful); tags move only when forced",
    status_code=201,
    openapi_extra=needs(Action.PACKAGE_PUSH, requestBody=TAG_BODY),
    responses={
        200: {
            "description": "The tag already named that revision: nothing changed",
            "content": {"application/json": {"schema": {"type": "object"}}},
        }
    },
)
async def tag(
    owner: str, name: str, request: Request, hub: HubDep, principal: MaybePrincipal
) -> JSON:
    version, revision, force = _tag_request(await read_json(request, MAX_TAG_BODY))
    ip = client_ip(request)

    def work() -> tags.Tagged:
        return tags.create_tag(
            hub.sessions,
            principal,
            owner,
            name,
            tag=version,
            revision=revision,
            force=force,
            ip=ip,
        )

    tagged = await run_in_threadpool(work)
    return JSON(tagged.to_json(), status_code=201 if tagged.created else 200)


@router.get(
    "/{owner}/{name}/tags",
    summary="List a package's tags, newest revision first",
    openapi_extra=needs(Action.PACKAGE_READ),
)
async def list_tags(owner: str, name: str, hub: HubDep, principal: MaybePrincipal) -> JSON:
    def work() -> list[dict[str, Any]]:
        with hub.sessions() as db:
            return tags.list_tags(db, principal, owner, name)

    return JSON({"tags": await run_in_threadpool(work)})


@router.get(
    "/{owner}/{name}/diff",
    summary="What changed between two revisions: files, descriptor, schemas, row counts",
    openapi_extra=needs(Action.PACKAGE_READ),
)
async def revision_diff(
    owner: str,
    name: str,
    hub: HubDep,
    principal: MaybePrincipal,
    from_ref: str | None = Query(
        default=None, alias="from", description=f"{RefQuery} Default: the one before 'to'."
    ),
    to_ref: str | None = Query(
        default=None, alias="to", description=f"{RefQuery} Default: latest."
    ),
) -> JSON:
    def work() -> dict[str, Any]:
        with hub.sessions() as db:
            return diff.revision_diff(db, principal, owner, name, from_ref=from_ref, to_ref=to_ref)

    return JSON(await run_in_threadpool(work))
