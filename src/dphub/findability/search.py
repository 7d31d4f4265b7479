"""Package search: full text, filters, facets, sort and paging over the search documents.

One query shape on both metastores; only the full-text match and its rank differ. SQLite matches
its FTS5 table and ranks with ``bm25`` weighted by column (name and title, keywords, description,
resource and field names, README). PostgreSQL matches the generated ``document`` column (GIN index;
title and name A, keywords and description B, resource and field names C, README D) and ranks with
``ts_rank`` over ``rank_document``, its A and B parts alone: a package that matches only in its
README or its resource and field names ranks after those that match in their title, keywords or
description. Ties go to the newest package. Every search joins ``packages``, so it lists only what
the caller may see listed (``roles.listed_clause``), never a deleted package, and always with the
findability of the moment.

A search runs two statements: the summary (the total and the facets, in one pass over the matches)
and the page. Facets count the packages of the whole result (every filter applied), the most
frequent values first.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    CompoundSelect,
    FromClause,
    Select,
    and_,
    case,
    cast,
    column,
    false,
    func,
    literal,
    literal_column,
    null,
    select,
    table,
    union_all,
)
from sqlalchemy.orm import Session

from dphub.auth.principal import Principal
from dphub.auth.roles import held_clause, listed_clause
from dphub.errors import InvalidRequest
from dphub.findability.query import TextQuery, parse_query
from dphub.metastore.models import Package, SearchDocument, SearchTerm

SORTS = ("relevance", "updated", "name")
FACETS = ("owner", "license", "format", "keyword")
FINDABILITIES = ("published", "unlisted", "private")
DEFAULT_LIMIT = 20
MAX_LIMIT = 100
DEFAULT_FACET_LIMIT = 20
MAX_FACET_LIMIT = 100
MAX_OFFSET = 2**31 - 1
MAX_FILTER_VALUES = 20
MAX_VALUE_CHARS = 200
FEW = 5_000
"""Up to this many matches, a page sorted by date or name is sorted from the matches; beyond, it is
read from the documents in that order until the page is full."""
TOTAL = "~total"
"""The summary row that carries the total (no facet has this name)."""
DESCRIPTION_CHARS = 500
"""Descriptions in results are cut to this many characters."""

FTS5_WEIGHTS = {
    "name": 10.0,
    "title": 10.0,
    "keywords": 5.0,
    "description": 3.0,
    "resources": 2.0,
    "fields": 2.0,
    "readme": 1.0,
}
"""bm25 weight of each column of the SQLite index, in the index's column order."""
TS_CONFIG = "english"

POSTGRES_PLANNING = select(
    func.set_config("random_page_cost", "1.1", True),
    func.set_config("plan_cache_mode", "force_custom_plan", True),
)
"""Settings for the search's own transaction. The tables a search reads are small and hot, but
PostgreSQL's default page costs assume a spinning disk: with them it scans every package to join
a handful of matches. A custom plan per search, as each query's selectivity differs widely."""

_docs = SearchDocument.__table__
_terms = SearchTerm.__table__
_packages = Package.__table__
_fts = table("package_search_fts", column("rowid"))
_document: ColumnElement[Any] = literal_column("package_search.document")
_rank_document: ColumnElement[Any] = literal_column("package_search.rank_document")


@dataclass(frozen=True)
class SearchRequest:
    """What a caller asks for; lists of filter values mean any of them (and all filters apply)."""

    q: str | None = None
    owner: tuple[str, ...] = ()
    license: tuple[str, ...] = ()
    format: tuple[str, ...] = ()
    keyword: tuple[str, ...] = ()
    findability: tuple[str, ...] = ()
    """Only among the caller's own packages (those it holds a role on)."""
    sort: str | None = None
    """``relevance`` (the default with ``q``), ``updated`` (newest first; the default without),
    or ``name``."""
    limit: int = DEFAULT_LIMIT
    offset: int = 0
    facet_limit: int = DEFAULT_FACET_LIMIT
    """Values listed per facet, the most frequent first; 0 for no facets."""

    def filters(self) -> dict[str, tuple[str, ...]]:
        return {
            "owner": self.owner,
            "license": self.license,
            "format": self.format,
            "keyword": self.keyword,
        }


@dataclass(frozen=True)
class Plan:
    """A checked request: the parsed text and the sort that applies."""

    request: SearchRequest
    text: TextQuery | None
    sort: str


def check(request: SearchRequest, principal: Principal | None) -> Plan:
    """Validate the request; raises :class:`InvalidQuery` or :class:`InvalidRequest`."""
    if not 0 <= request.limit <= MAX_LIMIT:
        raise InvalidRequest(f"limit must be between 0 and {MAX_LIMIT}.", parameter="limit")
    if not 0 <= request.offset <= MAX_OFFSET:
        raise InvalidRequest(f"offset must be between 0 and {MAX_OFFSET}.", parameter="offset")
    if not 0 <= request.facet_limit <= MAX_FACET_LIMIT:
        raise InvalidRequest(
            f"facet_limit must be between 0 and {MAX_FACET_LIMIT}.", parameter="facet_limit"
        )
    for facet, values in {**request.filters(), "findability": request.findability}.items():
        if len(values) > MAX_FILTER_VALUES:
            raise InvalidRequest(
                f"At most {MAX_FILTER_VALUES} values of {facet} may be given.", parameter=facet
            )
        for value in values:
            if "\x00" in value or len(value) > MAX_VALUE_CHARS:
                raise InvalidRequest(
                    f"A value of {facet} is longer than {MAX_VALUE_CHARS} characters or holds"
                    " a NUL character.",
                    parameter=facet,
                )
    unknown = sorted(set(request.findability) - set(FINDABILITIES))
    if unknown:
        raise InvalidRequest(
            f"findability {unknown[0]!r} is not one of {', '.join(FINDABILITIES)}.",
            parameter="findability",
        )
    if request.findability and principal is None:
        raise InvalidRequest(
            "The findability filter selects among your own packages: log in to use it.",
            parameter="findability",
        )
    text_query = parse_query(request.q) if request.q and request.q.strip() else None
    sort = request.sort or ("relevance" if text_query is not None else "updated")
    if sort not in SORTS:
        raise InvalidRequest(f"sort {sort!r} is not one of {', '.join(SORTS)}.", parameter="sort")
    if sort == "relevance" and text_query is None:
        sort = "updated"
    return Plan(request, text_query, sort)


class _Statements:
    """The SQL of one search on one dialect."""

    def __init__(self, plan: Plan, principal: Principal | None, dialect: str) -> None:
        self.plan = plan
        self.principal = principal
        self.sqlite = dialect == "sqlite"
        self.text = plan.text
        self.ts_query: ColumnElement[Any] | None = None
        if self.text is not None and not self.sqlite:
            self.ts_query = func.to_tsquery(
                literal_column(f"'{TS_CONFIG}'::regconfig"), self.text.tsquery()
            )

    def source(self) -> FromClause:
        """The documents (for the page's columns and order) with their packages."""
        if self.text is not None and self.sqlite:
            start = _fts.join(_docs, _docs.c.package_id == _fts.c.rowid)
            return start.join(_packages, _packages.c.id == _docs.c.package_id)
        return _docs.join(_packages, _packages.c.id == _docs.c.package_id)

    def matched(self) -> FromClause:
        """What the summary needs, reading as few (wide) document rows as can be: on SQLite the
        full-text index gives the matching packages by itself; the PostgreSQL index is a column of
        the documents; without words, ``packages`` alone (only a package with a document has
        facet values, so counting facet values counts documents)."""
        if self.text is None:
            return _packages
        if self.sqlite:
            return _fts.join(_packages, _packages.c.id == _fts.c.rowid)
        return self.source()

    def where(self) -> list[ColumnElement[bool]]:
        request = self.plan.request
        conditions: list[ColumnElement[bool]] = [
            _packages.c.deleted_at.is_(None),
            _packages.c.successful_revision.is_not(None),
            listed_clause(self.principal),
        ]
        if self.text is not None:
            if self.sqlite:
                conditions.append(
                    literal_column("package_search_fts").op("MATCH")(self.text.fts5())
                )
            else:
                assert self.ts_query is not None
                conditions.append(_document.op("@@")(self.ts_query))
        for facet, values in request.filters().items():
            if values:
                tagged = select(_terms.c.package_id).where(
                    _terms.c.facet == facet, _terms.c.value.in_(values)
                )
                conditions.append(_packages.c.id.in_(tagged))
        if request.findability:
            conditions.append(_packages.c.findability.in_(request.findability))
            conditions.append(held_clause(self.principal))
        return conditions

    def rank(self) -> ColumnElement[Any]:
        if self.sqlite:
            return func.bm25(literal_column("package_search_fts"), *FTS5_WEIGHTS.values())
        assert self.ts_query is not None
        return func.ts_rank(_rank_document, self.ts_query)

    def page(self, total: int) -> Select[Any]:
        request = self.plan.request
        columns = [
            _docs.c.owner,
            _docs.c.name,
            _docs.c.title,
            _docs.c.description,
            _docs.c.updated,
            _docs.c.licenses,
            _docs.c.formats,
            _docs.c.keywords,
        ]
        if self.plan.sort == "relevance":
            # ranked where the count is (no document read for a package off the page); ties go
            # to the newest package
            rank = self.rank().label("rank")
            best = rank.asc() if self.sqlite else rank.desc()
            top = (
                select(_packages.c.id, _packages.c.findability, rank)
                .select_from(self.matched())
                .where(*self.where())
                .order_by(best, _packages.c.id.desc())
                .limit(request.limit)
                .offset(request.offset)
                .subquery("top")
            )
            order = top.c.rank.asc() if self.sqlite else top.c.rank.desc()
            return (
                select(*columns, top.c.findability)
                .select_from(top.join(_docs, _docs.c.package_id == top.c.id))
                .order_by(order, top.c.id.desc())
            )
        if self.plan.sort == "name":
            ordering = [_docs.c.name.asc(), _docs.c.owner.asc()]
        else:
            ordering = [_docs.c.updated.desc(), _docs.c.package_id.desc()]
        if total > FEW:
            # many matches: walking the documents in order finds a page's worth soon
            return (
                select(*columns, _packages.c.findability)
                .select_from(self.source())
                .where(*self.where())
                .order_by(*ordering)
                .limit(request.limit)
                .offset(request.offset)
            )
        # few: walking the documents in order could pass nearly all of them first
        matched = (
            select(_packages.c.id, _packages.c.findability)
            .select_from(self.matched())
            .where(*self.where())
            .cte("matched")
            .prefix_with("MATERIALIZED")
        )
        return (
            select(*columns, matched.c.findability)
            .select_from(matched.join(_docs, _docs.c.package_id == matched.c.id))
            .order_by(*ordering)
            .limit(request.limit)
            .offset(request.offset)
        )

    def summary(self) -> CompoundSelect[Any]:
        """The total, the facets and (for a signed-in caller) the findability of their own, in one
        pass over the matches: rows of ``(facet, value, n)``, the total as ``TOTAL``.

        Every document has exactly one ``owner`` facet value, so the owner counts add up to the
        total; the matches are found once (materialized), then their facet values looked up.
        """
        request = self.plan.request
        held = held_clause(self.principal) if self.principal is not None else false()
        matched = (
            select(
                _packages.c.id.label("package_id"),
                _packages.c.findability,
                case((held, 1), else_=0).label("held"),
            )
            .select_from(self.matched())
            .where(*self.where())
            .cte("matched")
            .prefix_with("MATERIALIZED")
        )
        counted_facets = FACETS if request.facet_limit else ("owner",)
        counted = (
            select(_terms.c.facet, _terms.c.value, func.count().label("n"))
            .select_from(matched.join(_terms, _terms.c.package_id == matched.c.package_id))
            .where(_terms.c.facet.in_(counted_facets))
            .group_by(_terms.c.facet, _terms.c.value)
            .cte("counted")
            .prefix_with("MATERIALIZED")
        )
        ranked = select(
            counted.c.facet,
            counted.c.value,
            counted.c.n,
            func.row_number()
            .over(partition_by=counted.c.facet, order_by=[counted.c.n.desc(), counted.c.value])
            .label("position"),
        ).subquery("ranked")
        parts: list[Any] = [
            select(ranked.c.facet, ranked.c.value, ranked.c.n).where(
                ranked.c.position <= request.facet_limit
            ),
            select(
                literal(TOTAL).label("facet"),
                null().label("value"),
                cast(func.coalesce(func.sum(counted.c.n), 0), BigInteger).label("n"),
            ).where(counted.c.facet == "owner"),
        ]
        if self.principal is not None:
            owner_of = and_(_terms.c.package_id == matched.c.package_id, _terms.c.facet == "owner")
            parts.append(
                select(literal("findability"), matched.c.findability, func.count())
                .select_from(matched.join(_terms, owner_of))
                .where(matched.c.held == 1)
                .group_by(matched.c.findability)
            )
        return union_all(*parts)


def _item(row: Any, base_url: str) -> dict[str, Any]:
    description = row.description
    if description is not None and len(description) > DESCRIPTION_CHARS:
        description = description[: DESCRIPTION_CHARS - 1].rstrip() + "…"
    updated: datetime = row.updated
    return {
        "owner": row.owner,
        "name": row.name,
        "title": row.title,
        "description": description,
        "findability": row.findability,
        "updated": updated.isoformat(),
        "licenses": list(row.licenses or []),
        "formats": list(row.formats or []),
        "keywords": list(row.keywords or []),
        "url": f"{base_url}/{row.owner}/{row.name}",
    }


def search_packages(
    db: Session, principal: Principal | None, request: SearchRequest, *, base_url: str
) -> dict[str, Any]:
    """``{items, total_count, facets}`` of the packages ``principal`` may see listed."""
    plan = check(request, principal)
    dialect = db.get_bind().dialect.name
    statements = _Statements(plan, principal, dialect)
    if dialect == "postgresql":
        db.execute(POSTGRES_PLANNING)
    total = 0
    facets: dict[str, list[dict[str, Any]]] = {facet: [] for facet in FACETS}
    if principal is not None:
        facets["findability"] = []
    for row in db.execute(statements.summary()):
        if row.facet == TOTAL:
            total = int(row.n)
        else:
            facets[row.facet].append({"value": row.value, "count": int(row.n)})
    if "findability" in facets:
        found = sorted(facets["findability"], key=lambda f: (-f["count"], f["value"]))
        facets["findability"] = found[: request.facet_limit]
    items: list[dict[str, Any]] = []
    if request.limit and request.offset < total:
        items = [_item(row, base_url) for row in db.execute(statements.page(total))]
    return {"items": items, "total_count": total, "facets": facets}
