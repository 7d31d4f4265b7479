"""What a dataset's page shows: badges, resources with their downloads, schemas, a preview of the
rows and the charts, all read through the same services as the API."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from sqlalchemy import select
from sqlalchemy.orm import Session

from dphub.api import readers
from dphub.hub import Hub
from dphub.metastore.models import DatastoreTable
from dphub.web.rows import table_rows
from dphub.web.views import chart_views

PREVIEW_ROWS = 20
"""Rows per page of the data preview."""


@dataclass
class Download:
    label: str
    url: str
    size: int | None = None


@dataclass
class ResourceView:
    index: int
    name: str
    title: str | None
    description: str | None
    format: str | None
    size: int | None
    rows: int | None
    downloads: list[Download]
    fields: list[dict[str, Any]]
    table: DatastoreTable | None
    errors: list[dict[str, Any]] = field(default_factory=list)
    valid: bool | None = None


@dataclass
class Preview:
    resource: ResourceView
    columns: list[str]
    rows: list[tuple[Any, ...]]
    page: int
    pages: int
    first_row: int


@dataclass
class Showcase:
    located: readers.Located
    title: str
    description: str | None
    license: str | None
    resources: list[ResourceView]
    total_rows: int | None
    total_size: int
    package_url: str
    datapackage_url: str
    zip_url: str | None
    views: list[dict[str, Any]]
    preview: Preview | None

    @property
    def invalid(self) -> list[ResourceView]:
        return [r for r in self.resources if r.valid is False]


def _license(descriptor: dict[str, Any]) -> str | None:
    licenses = descriptor.get("licenses")
    if isinstance(licenses, list) and licenses and isinstance(licenses[0], dict):
        first = licenses[0]
        value = first.get("title") or first.get("name") or first.get("path")
        return str(value) if value else None
    return None


def _tables(db: Session, located: readers.Located) -> dict[int, DatastoreTable]:
    if located.revision.state != "SUCCEEDED":
        return {}
    query = select(DatastoreTable).where(DatastoreTable.revision_id == located.revision.id)
    return {t.resource_index: t for t in db.scalars(query)}


def _reports(located: readers.Located) -> dict[str, dict[str, Any]]:
    report = located.revision.report or {}
    found = {}
    for task in report.get("tasks") or []:
        resource = task.get("resource") or {}
        if isinstance(resource.get("name"), str):
            found[resource["name"]] = task
    return found


def _fields(resource: dict[str, Any], table: DatastoreTable | None) -> list[dict[str, Any]]:
    schema = resource.get("schema")
    if isinstance(schema, dict) and isinstance(schema.get("fields"), list):
        return [f for f in schema["fields"] if isinstance(f, dict)]
    if table is not None:
        return [{"name": c["name"], "type": c["type"]} for c in table.columns]
    return []


def _downloads(base: str, located: readers.Located, entry: dict[str, Any]) -> list[Download]:
    revision_url = readers.revision_url(base, located)
    name = entry["name"] or str(entry["index"])
    found = [Download(f"Original ({entry['format'] or 'file'})", entry["url"], entry["size"])]
    for kind in ("csv", "json"):
        output = located.outputs.get(f"{name}_{kind}")
        if output is not None and kind != entry["format"]:
            url = f"{revision_url}/r/{quote(readers.output_leaf(output))}"
            found.append(Download(kind.upper(), url, output.size))
    return found


def build(
    hub: Hub, db: Session, located: readers.Located, *, resource: str | None, page: int
) -> Showcase:
    base = hub.settings.base_url
    descriptor = located.revision.descriptor
    tables = _tables(db, located)
    reports = _reports(located)
    resources = []
    for entry, described in zip(
        readers.resource_entries(base, located), descriptor.get("resources") or [], strict=False
    ):
        table = tables.get(entry["index"])
        name = entry["name"] or str(entry["index"])
        task = reports.get(name, {})
        resources.append(
            ResourceView(
                index=entry["index"],
                name=name,
                title=described.get("title"),
                description=described.get("description"),
                format=entry["format"],
                size=entry["size"],
                rows=table.rows if table is not None else None,
                downloads=_downloads(base, located, entry),
                fields=_fields(described, table),
                table=table,
                errors=list(task.get("errors") or [])[:50],
                valid=task.get("valid"),
            )
        )
    zipped = located.outputs.get("datapackage_zip")
    revision_url = readers.revision_url(base, located)
    counted = [r.rows for r in resources if r.rows is not None]
    return Showcase(
        located=located,
        title=str(descriptor.get("title") or located.package.name),
        description=descriptor.get("description"),
        license=_license(descriptor),
        resources=resources,
        total_rows=sum(counted) if counted else None,
        total_size=sum(f.size for f in located.files.values()),
        package_url=readers.package_url(base, located.package.owner, located.package.name),
        datapackage_url=f"{revision_url}/datapackage.json",
        zip_url=f"{revision_url}/r/{quote(readers.output_leaf(zipped))}" if zipped else None,
        views=chart_views(hub, descriptor, resources),
        preview=_preview(hub, resources, resource, page),
    )


def _preview(
    hub: Hub, resources: list[ResourceView], chosen: str | None, page: int
) -> Preview | None:
    tabular = [r for r in resources if r.table is not None]
    if not tabular:
        return None
    resource = next((r for r in tabular if chosen in (r.name, str(r.index))), tabular[0])
    table = resource.table
    assert table is not None
    pages = max(1, -(-table.rows // PREVIEW_ROWS))
    page = min(max(page, 1), pages)
    offset = (page - 1) * PREVIEW_ROWS
    answer = table_rows(hub, table, limit=PREVIEW_ROWS, offset=offset)
    return Preview(
        resource=resource,
        columns=[f.name for f in answer.fields],
        rows=answer.rows,
        page=page,
        pages=pages,
        first_row=offset + 1,
    )
