"""The search documents: one per package, built from its latest successful revision.

Processing rewrites a package's document in the transaction that makes a revision its successful
one (:func:`reindex`); ``dphub search reindex`` rebuilds them all (:func:`reindex_all`), for packages
pushed before the hub had search. Findability and deletion are read from ``packages`` at query time,
so changing them needs no document rewritten; a purged package's document goes with its row.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import and_, delete, insert, select
from sqlalchemy.orm import Session, sessionmaker

from dphub.metastore.db import transaction
from dphub.metastore.models import Package, Revision, SearchDocument, SearchTerm

README_CHARS = 100_000
"""The part of a README that is indexed; the rest of a longer one is not searched."""
TEXT_CHARS = 20_000
"""The part of a title or description that is indexed."""
VALUE_CHARS = 200
"""The longest facet value (keyword, license, format) kept; longer ones are cut."""
MAX_VALUES = 100
"""Keywords, licenses or formats kept per package."""
MAX_NAMES = 2_000
"""Resource and field names kept per package."""
BATCH = 100


@dataclass(frozen=True)
class Built:
    """A package's search document and facet values, as rows ready to insert."""

    document: dict[str, Any]
    terms: list[dict[str, Any]]


def _text(value: Any, limit: int) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return None
    return value.strip()[:limit]


def _unique(values: Iterable[str], limit: int) -> list[str]:
    seen: dict[str, None] = {}
    for value in values:
        cut = value.strip()[:VALUE_CHARS].strip()
        if cut:
            seen.setdefault(cut, None)
        if len(seen) >= limit:
            break
    return list(seen)


def _resources(descriptor: dict[str, Any]) -> list[dict[str, Any]]:
    resources = descriptor.get("resources")
    if not isinstance(resources, list):
        return []
    return [r for r in resources if isinstance(r, dict)]


def keywords_of(descriptor: dict[str, Any]) -> list[str]:
    keywords = descriptor.get("keywords")
    if not isinstance(keywords, list):
        return []
    return _unique((k for k in keywords if isinstance(k, str)), MAX_VALUES)


def licenses_of(descriptor: dict[str, Any]) -> list[str]:
    """Each license by its SPDX-style ``name``, else its ``title``, else its ``path``."""
    found = []
    licenses = descriptor.get("licenses")
    for item in licenses if isinstance(licenses, list) else []:
        if isinstance(item, str):
            found.append(item)
        elif isinstance(item, dict):
            label = next(
                (item[k] for k in ("name", "title", "path") if isinstance(item.get(k), str)), None
            )
            if label:
                found.append(label)
    return _unique(found, MAX_VALUES)


def _format_of(resource: dict[str, Any]) -> str | None:
    declared = resource.get("format")
    if isinstance(declared, str) and declared.strip():
        return declared.strip().lower()
    path = resource.get("path")
    if isinstance(path, list):
        path = path[0] if path else None
    if not isinstance(path, str):
        return None
    extension = posixpath.splitext(urlsplit(path).path)[1]
    return extension[1:].lower() or None


def formats_of(descriptor: dict[str, Any]) -> list[str]:
    """Each resource's ``format``, else the extension of its path, lowercased."""
    return _unique((f for f in (_format_of(r) for r in _resources(descriptor)) if f), MAX_VALUES)


def resource_names_of(descriptor: dict[str, Any]) -> list[str]:
    names = (r.get("name") for r in _resources(descriptor))
    return _unique((n for n in names if isinstance(n, str)), MAX_NAMES)


def field_names_of(descriptor: dict[str, Any]) -> list[str]:
    def names() -> Iterator[str]:
        for resource in _resources(descriptor):
            schema = resource.get("schema")
            fields = schema.get("fields") if isinstance(schema, dict) else None
            for field in fields if isinstance(fields, list) else []:
                if isinstance(field, dict) and isinstance(field.get("name"), str):
                    yield field["name"]

    return _unique(names(), MAX_NAMES)


def build(
    *,
    package_id: int,
    owner: str,
    name: str,
    revision: int,
    descriptor: dict[str, Any],
    readme: str | None,
    updated: datetime,
) -> Built:
    """The document and facet values of one revision of a package (defensive about descriptors:
    a value of the wrong type is left out, never an error)."""
    keywords = keywords_of(descriptor)
    licenses = licenses_of(descriptor)
    formats = formats_of(descriptor)
    document = {
        "package_id": package_id,
        "revision": revision,
        "owner": owner,
        "name": name,
        "title": _text(descriptor.get("title"), TEXT_CHARS),
        "description": _text(descriptor.get("description"), TEXT_CHARS),
        "readme": _text(readme, README_CHARS),
        "keywords": keywords,
        "licenses": licenses,
        "formats": formats,
        "resources": resource_names_of(descriptor),
        "fields": field_names_of(descriptor),
        "updated": updated,
    }
    terms = [{"facet": "owner", "value": owner, "package_id": package_id}]
    for facet, values in (("license", licenses), ("format", formats), ("keyword", keywords)):
        terms += [{"facet": facet, "value": v, "package_id": package_id} for v in values]
    return Built(document, terms)


def write(db: Session, built: Iterable[Built]) -> int:
    """Insert documents (whose packages have none at the moment); returns how many."""
    documents, terms = [], []
    for item in built:
        documents.append(item.document)
        terms.extend(item.terms)
    if documents:
        db.execute(insert(SearchDocument), documents)
    if terms:
        db.execute(insert(SearchTerm), terms)
    return len(documents)


def _forget(db: Session, package_ids: list[int]) -> None:
    db.execute(delete(SearchTerm).where(SearchTerm.package_id.in_(package_ids)))
    db.execute(delete(SearchDocument).where(SearchDocument.package_id.in_(package_ids)))


def _built(package: Package, revision: Revision) -> Built:
    return build(
        package_id=package.id,
        owner=package.owner,
        name=package.name,
        revision=revision.number,
        descriptor=dict(revision.descriptor or {}),
        readme=revision.readme,
        updated=revision.modified_at,
    )


def reindex(db: Session, package_id: int) -> bool:
    """Rewrite a package's document from its successful revision, in the caller's transaction
    (which should hold the package's row); returns whether the package has a document now."""
    _forget(db, [package_id])
    package = db.get(Package, package_id)
    if package is None or package.successful_revision is None:
        return False
    revision = db.scalar(
        select(Revision).where(
            Revision.package_id == package.id, Revision.number == package.successful_revision
        )
    )
    if revision is None:
        return False
    return write(db, [_built(package, revision)]) == 1


def reindex_all(sessions: sessionmaker[Session], *, batch: int = BATCH) -> int:
    """Rebuild the document of every package that has a successful revision, a batch of packages
    per transaction; safe while the hub runs. Returns the number of documents written."""
    written = 0
    after = 0
    while True:
        with sessions() as db:
            ids = list(
                db.scalars(
                    select(Package.id)
                    .where(Package.id > after, Package.successful_revision.is_not(None))
                    .order_by(Package.id)
                    .limit(batch)
                )
            )
        if not ids:
            return written
        after = ids[-1]
        with transaction(sessions) as db:
            if db.get_bind().dialect.name == "postgresql":
                # hold the rows first, as processing does before it rewrites a document
                db.execute(select(Package.id).where(Package.id.in_(ids)).with_for_update())
            # on SQLite the first statement writes, so no other write can slip in between
            _forget(db, ids)
            rows = db.execute(
                select(Package, Revision)
                .join(
                    Revision,
                    and_(
                        Revision.package_id == Package.id,
                        Revision.number == Package.successful_revision,
                    ),
                )
                .where(Package.id.in_(ids))
            )
            written += write(db, (_built(package, revision) for package, revision in rows))
