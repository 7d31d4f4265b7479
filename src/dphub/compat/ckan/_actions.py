"""The actions, each a plain function of the caller and the parameters, and the table that names
them. Each reads through dphub's services, which check who may read what."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

import dphub
import dphub.compat.ckan._params as read
from dphub.api import readers, tables
from dphub.auth.principal import Principal
from dphub.auth.publishers import ORGANIZATION, describe_publisher
from dphub.auth.roles import listed_clause
from dphub.compat.ckan import _shapes as shapes
from dphub.compat.ckan._envelope import API_VERSION, error_answer
from dphub.compat.ckan._names import ckan_name, package_of
from dphub.compat.ckan._params import MISSING, Params
from dphub.compat.ckan._search import (
    Filters,
    Search,
    listed_count,
    search_datasets,
    search_request,
)
from dphub.compat.ckan._shapes import Caller
from dphub.errors import (
    DphubError,
    InvalidRequest,
    NotFound,
    PublisherNotFound,
    ResourceNotFound,
)
from dphub.findability.search import MAX_OFFSET
from dphub.hub import Hub
from dphub.metastore.models import Package, Publisher

CKAN_VERSION = "2.10.0"
"""The CKAN release whose Action API this follows, for clients that choose features by version."""
MAX_ORGANIZATIONS = 1000
MAX_ORGANIZATIONS_WITH_FIELDS = 25
ORGANIZATION_DATASETS = 1000
"""The most datasets ``organization_show`` lists with ``include_datasets``."""
CAPACITY = {"owner": "admin", "editor": "editor", "viewer": "member"}
"""CKAN's names for dphub's organization roles."""
CKAN_TYPES = {
    "integer": "int",
    "year": "int",
    "number": "numeric",
    "string": "text",
    "boolean": "bool",
    "date": "date",
    "datetime": "timestamp",
    "time": "time",
    "object": "json",
    "array": "json",
}
"""Datastore column types as CKAN's datastore names them (PostgreSQL's words)."""


def status_show(caller: Caller, params: Params) -> dict[str, Any]:
    """The site: its URL, the CKAN version whose API it follows, its extensions."""
    return {
        "site_title": "dphub",
        "site_description": "A hub for Frictionless Data Packages.",
        "site_url": caller.base_url,
        "ckan_version": CKAN_VERSION,
        "dphub_version": dphub.__version__,
        "error_emails_to": None,
        "locale_default": "en",
        "extensions": ["datastore"],
    }


def help_show(caller: Caller, params: Params) -> str:
    """What an action does. Parameters: name."""
    name = read.text(params, "name", required=True) or ""
    spec = ACTIONS.get(name)
    if spec is None:
        raise NotFound(f"No action is called {name[:100]!r}.")
    return spec.help


def package_list(caller: Caller, params: Params) -> list[str]:
    """The names of the published datasets, by publisher and name. Parameters: limit, offset."""
    limit = read.whole(params, "limit", MAX_OFFSET, most=MAX_OFFSET)
    offset = read.whole(params, "offset", 0, most=MAX_OFFSET)
    with caller.hub.sessions() as db:
        # byte order on both metastores (PostgreSQL's default collation may skip punctuation)
        postgres = db.get_bind().dialect.name == "postgresql"
        order = [c.collate("C") if postgres else c for c in (Package.owner, Package.name)]
        query = (
            select(Package.owner, Package.name)
            .where(
                Package.deleted_at.is_(None),
                Package.successful_revision.is_not(None),
                listed_clause(None),
            )
            .order_by(*order)
            .limit(limit)
            .offset(offset)
        )
        return [ckan_name(owner, name) for owner, name in db.execute(query)]


def package_show(caller: Caller, params: Params) -> dict[str, Any]:
    """A dataset, from its latest successfully processed revision. Parameters: id (its name)."""
    wanted = read.text(params, "id", required=True) or ""
    found = package_of(wanted)
    if found is None:
        raise NotFound(f"No dataset is called {wanted[:200]!r}.")
    owner, name = found
    with caller.hub.sessions() as db:
        located = readers.locate(db, caller.principal, owner, name)
        organization = shapes.organizations(db, [owner]).get(owner)
        return shapes.dataset(db, caller.base_url, located, organization)


def package_search(caller: Caller, params: Params) -> dict[str, Any]:
    """Find datasets. Parameters: q, fq (organization:, tags:, license_id:, res_format:), rows,
    start, sort, facet.field, facet.limit, include_private."""
    search = search_request(params)
    with caller.hub.sessions() as db:
        return search_datasets(db, caller, search)


def resource_show(caller: Caller, params: Params) -> dict[str, Any]:
    """A resource of a dataset. Parameters: id (owner/name/resource, as package_show gives)."""
    wanted = read.text(params, "id", required=True) or ""
    parts = wanted.split("/")
    if len(parts) != 3 or not all(parts):
        raise ResourceNotFound(f"No resource has the id {wanted[:200]!r}.")
    owner, package, label = parts
    name, _, ref = package.partition("@")
    with caller.hub.sessions() as db:
        located = readers.locate(db, caller.principal, owner, name, ref or None)
        described, index = readers.find_resource(located, label)
        indexes = shapes.loaded(db, located)
        return shapes.resource(caller.base_url, located, described, index, indexes, ref)


def _organization_rows(db: Session, params: Params) -> list[Publisher]:
    query = select(Publisher).where(Publisher.kind == ORGANIZATION)
    only = read.names(params, "organizations")
    if only is not None:
        query = query.where(Publisher.name.in_(only))
    q = read.text(params, "q")
    if q:
        escaped = q.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        pattern = f"%{escaped}%"
        query = query.where(
            or_(
                func.lower(Publisher.name).like(pattern, escape="\\"),
                func.lower(func.coalesce(Publisher.title, "")).like(pattern, escape="\\"),
            )
        )
    return list(db.scalars(query))


def _organization_order(params: Params) -> tuple[str, bool]:
    """``sort``: the field (name, title or package_count) and whether it is descending."""
    words = (read.text(params, "sort") or "title asc").strip().lower().split()
    field, direction = [*words, "asc"][:2] if len(words) in (1, 2) else ("", "")
    if field not in ("name", "title", "package_count") or direction not in ("asc", "desc"):
        raise InvalidRequest(
            "sort must be name, title or package_count, then asc or desc.", field="sort"
        )
    return field, direction == "desc"


def organization_list(caller: Caller, params: Params) -> list[Any]:
    """The organizations: their names, or with all_fields their details. Parameters: all_fields,
    sort (name, title or package_count, asc or desc), limit, offset, organizations, q."""
    all_fields = read.flag(params, "all_fields", False)
    most = MAX_ORGANIZATIONS_WITH_FIELDS if all_fields else MAX_ORGANIZATIONS
    limit = read.whole(params, "limit", most, most=most)
    offset = read.whole(params, "offset", 0, most=MAX_OFFSET)
    field, descending = _organization_order(params)
    with_counts = read.flag(params, "include_dataset_count", True)
    with caller.hub.sessions() as db:
        found = _organization_rows(db, params)
        counts: dict[str, int] = {}
        if field == "package_count":
            counts = {o.name: listed_count(db, caller, o.name) for o in found}

        def key(o: Publisher) -> tuple[Any, str]:
            if field == "package_count":
                return counts[o.name], o.name
            return ((o.title or o.name).lower() if field == "title" else o.name), o.name

        found.sort(key=key, reverse=descending)
        page = found[offset : offset + limit]
        if not all_fields:
            return [o.name for o in page]
        if with_counts:
            for o in page:
                counts.setdefault(o.name, listed_count(db, caller, o.name))
        return [shapes.organization(o, package_count=counts.get(o.name)) for o in page]


def organization_show(caller: Caller, params: Params) -> dict[str, Any]:
    """An organization; with include_datasets its datasets, and its members for its members.
    Parameters: id (its name), include_datasets."""
    wanted = read.text(params, "id", required=True) or ""
    include_datasets = read.flag(params, "include_datasets", False)
    with caller.hub.sessions() as db:
        organization = shapes.organizations(db, [wanted]).get(wanted)
        if organization is None:
            raise PublisherNotFound(f"No organization is called {wanted[:200]!r}.")
        described = describe_publisher(db, caller.principal, wanted)
        count = listed_count(db, caller, wanted)
        shown = shapes.organization(organization, package_count=count)
        if "members" in described:
            shown["users"] = [
                {"name": m["username"], "capacity": CAPACITY.get(m["role"], "member")}
                for m in described["members"]
            ]
        if include_datasets:
            search = Search(
                q=None,
                filters=Filters({"owner": (wanted,)}),
                rows=ORGANIZATION_DATASETS,
                start=0,
                facets=[],
                facet_limit=0,
                sort="name",
                include_private=True,
            )
            shown["packages"] = search_datasets(db, caller, search)["results"]
        return shown


def _table_search(params: Params) -> tuple[tables.TableSearch, str]:
    """``datastore_search``'s parameters as the datastore's own search takes them, and the
    records format."""
    wanted = read.text(params, "resource_id") or read.text(params, "id")
    if wanted is None:
        raise InvalidRequest(MISSING, field="resource_id")
    filters = read.json_value(params, "filters", dict, '{"column": "value"}')
    q = read.given(params, "q")
    if isinstance(q, dict) and not all(isinstance(v, str) for v in q.values()):
        raise InvalidRequest('q must be text or JSON like {"column": "text"}.', field="q")
    sort = read.given(params, "sort")
    if isinstance(sort, list) and all(isinstance(s, str) for s in sort):
        sort = ", ".join(sort)
    if sort is not None and not isinstance(sort, str):
        raise InvalidRequest('sort must be text like "year desc, name".', field="sort")
    records_format = read.text(params, "records_format") or "objects"
    if records_format not in tables.RECORD_FORMATS:
        raise InvalidRequest(
            f"records_format must be one of {', '.join(tables.RECORD_FORMATS)}.",
            field="records_format",
        )
    threshold = read.given(params, "total_estimation_threshold")
    search = tables.TableSearch(
        resource_id=wanted,
        q=read.json_text(params, "q", dict, '{"column": "text"}'),
        filters=json.dumps(filters) if filters is not None else None,
        fields=read.json_text(params, "fields", list, '["a", "b"]'),
        sort=sort,
        limit=read.whole(params, "limit", tables.DEFAULT_LIMIT, most=tables.MAX_LIMIT),
        offset=read.whole(params, "offset", 0, most=MAX_OFFSET),
        include_total=read.flag(params, "include_total", True),
        total_estimation_threshold=(
            None
            if threshold is None
            else read.whole(params, "total_estimation_threshold", 0, most=MAX_OFFSET)
        ),
    )
    return search, records_format


def datastore_search(caller: Caller, params: Params) -> dict[str, Any]:
    """Rows of a resource's datastore table. Parameters: resource_id, q (text or {"column":
    "text"}), filters ({"column": value}), fields, sort, limit, offset, include_total,
    records_format (objects, lists or csv)."""
    search, records_format = _table_search(params)
    page = tables.search_table(caller.hub, caller.principal, search)
    answer: dict[str, Any] = {
        "include_total": search.include_total,
        "resource_id": search.resource_id,
        "fields": [{"id": f.name, "type": CKAN_TYPES.get(f.type, "text")} for f in page.fields],
        "records_format": records_format,
        "records": tables.records(page.answer, records_format),
        "limit": search.limit,
        "offset": search.offset,
        "_links": _links(params, search.limit, search.offset),
    }
    if search.include_total:
        answer["total"] = page.total
        answer["total_was_estimated"] = page.estimated
    return answer


def _links(params: Params, limit: int, offset: int) -> dict[str, str]:
    """The first and the next page, as CKAN links them: paths relative to the site."""
    kept = {
        k: v if isinstance(v, str) else json.dumps(v)
        for k, v in params.items()
        if k != "offset" and v is not None
    }
    path = f"/api/{API_VERSION}/action/datastore_search"
    return {
        "start": f"{path}?{urlencode(kept)}",
        "next": f"{path}?{urlencode({**kept, 'offset': offset + limit})}",
    }


def datastore_search_sql(caller: Caller, params: Params) -> dict[str, Any]:
    """One read-only SELECT over datastore tables, each named by its resource id in double
    quotes. Parameters: sql."""
    statement = read.text(params, "sql", required=True) or ""
    answer = tables.run_select(caller.hub, caller.principal, statement)
    return {
        "sql": statement,
        "fields": [{"id": f.name, "type": CKAN_TYPES.get(f.type, "text")} for f in answer.fields],
        "records": tables.records(answer, "objects"),
        "records_truncated": answer.truncated,
    }


@dataclass(frozen=True)
class ActionSpec:
    run: Callable[[Caller, Params], Any]
    parameters: tuple[str, ...]
    """The parameters a validation error may be listed under."""
    search: bool = False
    """A query problem is a search query error (as CKAN's search engine reports it)."""

    @property
    def help(self) -> str:
        return " ".join((self.run.__doc__ or "").split())


ACTIONS: dict[str, ActionSpec] = {
    "status_show": ActionSpec(status_show, ()),
    "help_show": ActionSpec(help_show, ("name",)),
    "package_list": ActionSpec(package_list, ("limit", "offset")),
    "package_show": ActionSpec(package_show, ("id",)),
    "package_search": ActionSpec(
        package_search,
        ("q", "fq", "fq_list", "rows", "start", "sort", "facet.field", "facet.limit"),
        search=True,
    ),
    "resource_show": ActionSpec(resource_show, ("id",)),
    "organization_list": ActionSpec(
        organization_list, ("all_fields", "sort", "limit", "offset", "organizations", "q")
    ),
    "organization_show": ActionSpec(organization_show, ("id", "include_datasets")),
    "datastore_search": ActionSpec(
        datastore_search,
        ("resource_id", "q", "filters", "fields", "sort", "limit", "offset", "records_format"),
    ),
    "datastore_search_sql": ActionSpec(datastore_search_sql, ("sql",)),
}


def call(hub: Hub, principal: Principal | None, action: str, params: Params) -> Any:
    """Run one action of :data:`ACTIONS` (the route checks that it is one) for ``principal``."""
    return ACTIONS[action].run(Caller(hub, principal), params)


def failure(base_url: str, action: str, exc: DphubError) -> tuple[int, dict[str, Any]]:
    """The status and CKAN body of an action's failure."""
    spec = ACTIONS.get(action)
    return error_answer(
        base_url,
        action,
        exc,
        parameters=spec.parameters if spec else (),
        search=spec.search if spec else False,
    )
