"""A dataset's pages: the showcase, its history and diffs, processing, and findability for owners."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response

from dphub.api import readers
from dphub.api.deps import HubDep
from dphub.api.responses import JSON
from dphub.auth import publishers
from dphub.auth.permissions import Action, can, needs
from dphub.auth.principal import Principal
from dphub.auth.roles import package_ref
from dphub.errors import DphubError, InvalidRequest, RevisionNotFound
from dphub.hub import Hub
from dphub.metastore import diff, tags
from dphub.metastore.db import transaction
from dphub.metastore.packages import list_revisions
from dphub.pipeline.steps import STEPS
from dphub.web.errors import error_page
from dphub.web.forms import Form, field
from dphub.web.render import page
from dphub.web.session import Viewer, finish, page_viewer
from dphub.web.showcase import build

router = APIRouter(tags=["web"], include_in_schema=False)

PENDING = ("QUEUED", "INPROGRESS")


def _processing_url(owner: str, name: str, number: int) -> str:
    return f"/{quote(owner)}/{quote(name)}/v/{number}/processing"


async def _render_showcase(
    request: Request,
    hub: Hub,
    viewer: Principal | None,
    owner: str,
    name: str,
    ref: str | None,
    resource: str | None,
    page_number: int,
) -> Response:
    """The showcase, or a redirect to the processing page while there is nothing to show yet."""

    def work() -> dict[str, Any] | str:
        with hub.sessions() as db:
            try:
                located = readers.locate(db, viewer, owner, name, ref)
            except RevisionNotFound:
                if ref is not None:
                    raise
                latest = readers.locate(db, viewer, owner, name, "latest")
                return _processing_url(owner, name, latest.revision.number)
            if located.revision.state in PENDING:
                return _processing_url(owner, name, located.revision.number)
            shown = build(hub, db, located, resource=resource, page=page_number)
            reference = package_ref(db, viewer, located.package)
            return {
                "show": shown,
                "package": located.package,
                "revision": located.revision,
                "pinned": ref is not None,
                "may_manage": can(viewer, Action.PACKAGE_MANAGE, reference),
            }

    found = await run_in_threadpool(work)
    if isinstance(found, str):
        return finish(request, RedirectResponse(found, status_code=303))
    # a big page (a chart's thousand rows): rendered off the event loop
    return await run_in_threadpool(page, request, "dataset.html", found)


async def showcase(request: Request, hub: Hub, owner: str, name: str) -> Response:
    """The dataset's page, for a browser at ``/<owner>/<name>`` (that address answers JSON to
    programs: see ``api/routes/files.py``)."""
    try:
        viewer = await page_viewer(request, hub)
        wanted = request.query_params.get("page", "1")
        if not (wanted.isascii() and wanted.isdigit() and 0 < len(wanted) < 10):
            raise InvalidRequest("page must be a whole number from 1.", field="page")
        resource = request.query_params.get("resource")
        return await _render_showcase(
            request, hub, viewer, owner, name, None, resource, max(1, int(wanted))
        )
    except DphubError as exc:
        return error_page(request, exc)


@router.get("/{owner}/{name}/v/{ref}", openapi_extra=needs(Action.PACKAGE_READ))
async def showcase_at(
    owner: str,
    name: str,
    ref: str,
    request: Request,
    hub: HubDep,
    viewer: Viewer,
    resource: str | None = None,
    page_number: int = Query(default=1, alias="page", ge=1, le=10**9),
) -> Response:
    return await _render_showcase(request, hub, viewer, owner, name, ref, resource, page_number)


@router.get("/{owner}/{name}/v/{ref}/processing", openapi_extra=needs(Action.PACKAGE_READ))
async def processing(
    owner: str,
    name: str,
    ref: str,
    request: Request,
    hub: HubDep,
    viewer: Viewer,
    format: str = Query(default="html", pattern="^(html|json)$"),
) -> Response:
    def work() -> tuple[readers.Located, dict[str, Any]]:
        with hub.sessions() as db:
            located = readers.locate(db, viewer, owner, name, ref)
            status = readers.revision_status(
                hub.settings.base_url, located.package, located.revision
            )
            return located, status

    located, status = await run_in_threadpool(work)
    done = f"/{quote(owner)}/{quote(name)}"
    if located.revision.number != located.package.latest_revision:
        done += f"/v/{located.revision.number}"
    if format == "json":
        return JSON({**status, "showcase": done}, headers={"Cache-Control": "no-store"})
    pipelines = status["pipelines"] or {
        key: {"title": title, "status": "QUEUED"} for key, title in STEPS.items()
    }
    steps = [dict(value, key=key) for key, value in pipelines.items()]
    return page(
        request,
        "processing.html",
        {
            "package": located.package,
            "revision": located.revision,
            "status": status,
            "steps": steps,
            "showcase_url": done,
            "pending": located.revision.state in PENDING,
        },
    )


@router.get("/{owner}/{name}/history", openapi_extra=needs(Action.PACKAGE_READ))
async def history(owner: str, name: str, request: Request, hub: HubDep, viewer: Viewer) -> Response:
    def work() -> dict[str, Any]:
        with hub.sessions() as db:
            located = readers.locate(db, viewer, owner, name, "latest")
            tagged: dict[int, list[str]] = {}
            for entry in tags.list_tags(db, viewer, owner, name):
                tagged.setdefault(entry["revision"], []).append(entry["tag"])
            return {
                "package": located.package,
                "revisions": list_revisions(db, located.package),
                "tags": tagged,
            }

    return page(request, "history.html", await run_in_threadpool(work))


@router.get("/{owner}/{name}/changes", openapi_extra=needs(Action.PACKAGE_READ))
async def changes(
    owner: str,
    name: str,
    request: Request,
    hub: HubDep,
    viewer: Viewer,
    from_ref: str | None = Query(default=None, alias="from", max_length=100),
    to_ref: str | None = Query(default=None, alias="to", max_length=100),
) -> Response:
    def work() -> dict[str, Any]:
        with hub.sessions() as db:
            located = readers.locate(db, viewer, owner, name, "latest")
            found = diff.revision_diff(
                db, viewer, owner, name, from_ref=from_ref or None, to_ref=to_ref or None
            )
            return {"package": located.package, "diff": found}

    return page(request, "diff.html", await run_in_threadpool(work))


@router.post("/{owner}/{name}/findability", openapi_extra=needs(Action.PACKAGE_MANAGE))
async def findability(
    owner: str, name: str, request: Request, hub: HubDep, viewer: Viewer, form: Form
) -> Response:
    wanted = field(form, "findability")

    def work() -> None:
        with transaction(hub.sessions) as db:
            publishers.set_findability(db, viewer, owner, name, wanted)

    await run_in_threadpool(work)
    return finish(
        request, RedirectResponse(f"/{quote(owner)}/{quote(name)}?changed=findability", 303)
    )
