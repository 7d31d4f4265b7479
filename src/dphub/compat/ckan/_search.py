"""``package_search`` over dphub's package search: CKAN's ``q``, ``fq``, ``rows``, ``start``,
``sort`` and ``facet.field`` read into a :class:`~dphub.findability.search.SearchRequest`, and the
answer written as CKAN's ``{count, results, facets, search_facets}``.

``fq`` is a Solr filter in CKAN; here it is ``field:value`` terms joined by spaces or ``AND``
(``field:"a value"``, ``field:(a OR b)`` for any of several), on ``organization`` (or ``owner_org``),
``tags``, ``license_id`` and ``res_format``. A field may be given once, as dphub's search matches any
of the values of one facet. ``dataset_type:dataset`` and ``state:active``, which CKAN's own pages
send, hold for every dataset here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

import dphub.compat.ckan._params as read
from dphub.api import readers
from dphub.compat.ckan._params import Params
from dphub.compat.ckan._shapes import Caller, dataset, organizations
from dphub.errors import InvalidQuery, NotFound
from dphub.findability.search import (
    MAX_FACET_LIMIT,
    MAX_LIMIT,
    MAX_OFFSET,
    SearchRequest,
    search_packages,
)
from dphub.metastore.models import Publisher

DEFAULT_ROWS = 10
MAX_ROWS = 1000
"""CKAN's ``ckan.search.rows_max``: more rows than this are cut to it."""
DEFAULT_FACET_LIMIT = 50
FQ_FIELDS = {
    "organization": "owner",
    "owner_org": "owner",
    "tags": "keyword",
    "license_id": "license",
    "res_format": "format",
}
"""``fq`` fields and the search facet each one filters on."""
FQ_ANY = {"dataset_type": "dataset", "state": "active"}
"""``fq`` terms that every dataset here matches."""
FACETS = {
    "organization": "owner",
    "tags": "keyword",
    "license_id": "license",
    "res_format": "format",
}
"""``facet.field`` names and the search facet each one counts."""
EMPTY_FACETS = frozenset({"groups"})
"""Facets CKAN's pages ask for that no dataset here has a value of."""
SORTS = {
    "score desc, metadata_modified desc": "relevance",
    "score desc": "relevance",
    "metadata_modified desc": "updated",
    "name asc": "name",
}
"""CKAN's sorts that dphub's search has, and its name for each."""

_QUOTED = r'"(?P<quoted>(?:[^"\\]|\\.)*)"'
_FQ_TERM = re.compile(
    r"""\+?(?P<field>[A-Za-z_]+):"""
    rf"""(?:{_QUOTED}|\((?P<group>(?:"(?:[^"\\]|\\.)*"|[^()"])*)\)|(?P<bare>[^\s"():]+))"""
)
"""One ``field:value``, ``field:"a value"`` or ``field:(a OR "b (c)")`` term (a quoted value may
hold parentheses, and ``OR``)."""
_FQ_VALUE = re.compile(rf"""\s*(?:{_QUOTED}|(?P<bare>[^\s"():]+))\s*""")
_FQ_OR = re.compile(r"OR\s+")
_FQ_GAP = re.compile(r"\s+(?:AND\s+)?")


@dataclass(frozen=True)
class Filters:
    """What ``fq`` asks for: search facet → values, any of which may match."""

    facets: dict[str, tuple[str, ...]]
    nothing: bool = False
    """A term no dataset here matches (``dataset_type:harvest``): the answer is empty."""


def _value(match: re.Match[str]) -> str:
    quoted = match["quoted"]
    return re.sub(r"\\(.)", r"\1", quoted) if quoted is not None else match["bare"]


def _fq_problem(text: str) -> InvalidQuery:
    return InvalidQuery(
        f'fq: cannot read {text[:200]!r}: use field:value, field:"a value" or field:(a OR b)'
        f" terms joined by spaces or AND, with fields {', '.join(FQ_FIELDS)}.",
        parameter="fq",
    )


def _fq_values(match: re.Match[str]) -> list[str]:
    group = match["group"]
    if group is None:
        return [_value(match)]
    values: list[str] = []
    position = 0
    while True:
        found = _FQ_VALUE.match(group, position)
        if found is None or found.end() == found.start():
            raise _fq_problem(match.group())
        values.append(_value(found))
        if found.end() == len(group):
            return values
        separator = _FQ_OR.match(group, found.end())
        if separator is None or found.group().rstrip() == found.group():
            raise _fq_problem(match.group())
        position = separator.end()


def parse_fq(fq: str | None, into: Filters | None = None) -> Filters:
    """``fq`` read into the search's filters (added to ``into``: ``fq_list`` holds several)."""
    filters = into or Filters({})
    text = (fq or "").strip()
    position = 0
    while position < len(text):
        match = _FQ_TERM.match(text, position)
        if match is None:
            raise _fq_problem(text[position:])
        field, values = match["field"], _fq_values(match)
        if field in FQ_ANY:
            if any(v != FQ_ANY[field] for v in values):
                filters = Filters(filters.facets, nothing=True)
        elif field in FQ_FIELDS:
            facet = FQ_FIELDS[field]
            if facet in filters.facets:
                raise InvalidQuery(
                    f"fq: {field} is given twice; list its values as {field}:(a OR b).",
                    parameter="fq",
                )
            filters.facets[facet] = tuple(v.lower() if facet == "format" else v for v in values)
        else:
            raise InvalidQuery(
                f"fq: {field!r} is not a field this hub filters on; use {', '.join(FQ_FIELDS)}.",
                parameter="fq",
            )
        gap = _FQ_GAP.match(text, match.end())
        if gap is None and match.end() < len(text):
            raise _fq_problem(text[match.end() :])
        position = gap.end() if gap is not None else match.end()
    return filters


def _sort(params: Params) -> str | None:
    text = read.text(params, "sort")
    if text is None:
        return None
    normal = re.sub(r"\s*,\s*", ", ", re.sub(r"\s+", " ", text.strip().lower()))
    if normal not in SORTS:
        raise InvalidQuery(
            f'Invalid "sort" parameter {text[:100]!r}: use one of {", ".join(SORTS)}.'
        )
    return SORTS[normal]


def _facet_fields(params: Params) -> list[str]:
    fields = read.names(params, "facet.field") or []
    unknown = [f for f in fields if f not in FACETS and f not in EMPTY_FACETS]
    if unknown:
        raise InvalidQuery(
            f"facet.field {unknown[0]!r} is not a facet of this hub: use {', '.join(FACETS)}."
        )
    return list(dict.fromkeys(fields))


def _facet_limit(params: Params) -> int:
    """``facet.limit``; a negative one (CKAN's "no limit") is the most the search lists."""
    value = read.given(params, "facet.limit")
    if isinstance(value, int | str) and str(value).strip().startswith("-"):
        return MAX_FACET_LIMIT
    return read.whole(params, "facet.limit", DEFAULT_FACET_LIMIT, most=MAX_FACET_LIMIT)


@dataclass(frozen=True)
class Search:
    q: str | None
    filters: Filters
    rows: int
    start: int
    facets: list[str]
    facet_limit: int
    sort: str | None
    include_private: bool
    """Also the packages the caller holds a role on (CKAN's private datasets); without it, the
    published ones alone."""


def search_request(params: Params) -> Search:
    """``package_search``'s parameters, checked."""
    q = read.text(params, "q")
    if q is not None and q.strip() in ("*:*", "*"):
        q = None
    filters = parse_fq(read.text(params, "fq"))
    for extra in read.names(params, "fq_list") or []:
        filters = parse_fq(extra, filters)
    return Search(
        q=q,
        filters=filters,
        rows=read.whole(params, "rows", DEFAULT_ROWS, most=MAX_ROWS),
        start=read.whole(params, "start", 0, most=MAX_OFFSET),
        facets=_facet_fields(params),
        facet_limit=_facet_limit(params),
        sort=_sort(params),
        include_private=read.flag(params, "include_private", False),
    )


def search_datasets(db: Session, caller: Caller, search: Search) -> dict[str, Any]:
    """``package_search``'s result: the matching datasets (whole, as ``package_show`` gives them),
    their count and the facets asked for. Rows beyond the search's own page size are read page
    after page."""
    if search.filters.nothing:
        return _answer([], 0, {}, search, {})
    who = caller.principal if search.include_private else None
    counted = any(f in FACETS for f in search.facets)
    items: list[dict[str, Any]] = []
    total, facets = 0, {}
    offset, wanted, first = search.start, search.rows, True
    while first or (wanted > 0 and offset < total):
        limit = min(wanted, MAX_LIMIT)
        found = search_packages(
            db,
            who,
            SearchRequest(
                q=search.q,
                owner=search.filters.facets.get("owner", ()),
                license=search.filters.facets.get("license", ()),
                format=search.filters.facets.get("format", ()),
                keyword=search.filters.facets.get("keyword", ()),
                sort=search.sort,
                limit=limit,
                offset=offset,
                facet_limit=search.facet_limit if first and counted else 0,
            ),
            base_url=caller.base_url,
        )
        if first:
            total, facets, first = found["total_count"], found["facets"], False
        items.extend(found["items"])
        if len(found["items"]) < limit:
            break
        offset, wanted = offset + limit, wanted - limit
    owners = [i["owner"] for i in items] + [f["value"] for f in facets.get("owner", [])]
    found_organizations = organizations(db, owners)
    results = []
    for item in items:
        try:
            located = readers.locate(db, who, item["owner"], item["name"])
        except NotFound:
            continue  # deleted or hidden since the search read it
        owner = found_organizations.get(item["owner"])
        results.append(dataset(db, caller.base_url, located, owner))
    return _answer(results, total, facets, search, found_organizations)


def _answer(
    results: list[dict[str, Any]],
    total: int,
    facets: Mapping[str, list[dict[str, Any]]],
    search: Search,
    found_organizations: Mapping[str, Publisher],
) -> dict[str, Any]:
    counts: dict[str, dict[str, int]] = {}
    shown: dict[str, dict[str, Any]] = {}
    for field in search.facets:
        entries = []
        for entry in facets.get(FACETS.get(field, ""), []):
            value, label = entry["value"], entry["value"]
            if field == "organization":
                if value not in found_organizations:
                    continue  # a user's packages: they have no organization
                label = found_organizations[value].title or value
            elif field == "res_format":
                value = label = value.upper()
            entries.append({"name": value, "display_name": label, "count": entry["count"]})
        counts[field] = {e["name"]: e["count"] for e in entries}
        shown[field] = {"title": field, "items": entries}
    order = next((k for k, v in SORTS.items() if v == search.sort), None)
    return {
        "count": total,
        "results": results,
        "facets": counts,
        "search_facets": shown,
        "sort": order or "score desc, metadata_modified desc",
    }


def listed_count(db: Session, caller: Caller, owner: str) -> int:
    """How many of ``owner``'s packages the caller sees listed, as search counts them."""
    found = search_packages(
        db,
        caller.principal,
        SearchRequest(owner=(owner,), limit=0, facet_limit=0),
        base_url=caller.base_url,
    )
    return int(found["total_count"])
