"""dphub's packages, resources and organizations in CKAN's shapes: a dataset, a resource, an
organization, as ``package_show``, ``resource_show`` and ``organization_show`` give them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from dphub.api import readers
from dphub.auth.principal import Principal
from dphub.auth.publishers import ORGANIZATION
from dphub.compat.ckan._names import ckan_name, resource_id
from dphub.findability.index import formats_of, keywords_of, licenses_of
from dphub.hub import Hub
from dphub.metastore.models import DatastoreTable, Publisher


@dataclass(frozen=True)
class Caller:
    """Who runs an action, on which hub."""

    hub: Hub
    principal: Principal | None

    @property
    def base_url(self) -> str:
        return self.hub.settings.base_url


def timestamp(moment: datetime) -> str:
    """CKAN's timestamps: ISO 8601 in UTC, without an offset."""
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat()


def organization(publisher: Publisher, *, package_count: int | None = None) -> dict[str, Any]:
    title = publisher.title or publisher.name
    shown: dict[str, Any] = {
        "id": publisher.name,
        "name": publisher.name,
        "title": title,
        "display_name": title,
        "description": "",
        "image_url": "",
        "image_display_url": "",
        "created": timestamp(publisher.created_at),
        "type": "organization",
        "is_organization": True,
        "state": "active",
        "approval_status": "approved",
    }
    if package_count is not None:
        shown["package_count"] = package_count
    return shown


def organizations(db: Session, names: Sequence[str]) -> dict[str, Publisher]:
    """The organizations among these publisher names (the others are users)."""
    if not names:
        return {}
    found = db.scalars(
        select(Publisher).where(Publisher.name.in_(set(names)), Publisher.kind == ORGANIZATION)
    )
    return {p.name: p for p in found}


def _license(descriptor: Mapping[str, Any]) -> tuple[str | None, str | None, str | None]:
    """The first license's id (the value search filters on), title and URL."""
    ids = licenses_of(dict(descriptor))
    if not ids:
        return None, None, None
    licenses = descriptor.get("licenses")
    first = licenses[0] if isinstance(licenses, list) and licenses else None
    if not isinstance(first, dict):
        return ids[0], ids[0], None
    title = first.get("title") if isinstance(first.get("title"), str) else ids[0]
    url = first.get("path") if isinstance(first.get("path"), str) else None
    return ids[0], title, url


def loaded(db: Session, located: readers.Located) -> set[int]:
    """The indexes of the resources the revision has datastore tables of."""
    indexes = db.scalars(
        select(DatastoreTable.resource_index).where(
            DatastoreTable.revision_id == located.revision.id
        )
    )
    return set(indexes)


def resource(
    base_url: str,
    located: readers.Located,
    described: Mapping[str, Any],
    index: int,
    tables: set[int],
    ref: str | None = None,
) -> dict[str, Any]:
    """A resource of the revision; ``tables`` are the indexes of those with a datastore table,
    ``ref`` the revision its id names (none: the latest successful one)."""
    package, revision = located.package, located.revision
    path = described.get("path")
    stored = located.files.get(path) if isinstance(path, str) else None
    if isinstance(path, str) and "://" in path:
        url = path
    else:
        url = readers.resource_url(base_url, located, dict(described), index)
    formats = formats_of({"resources": [dict(described)]})
    pinned = f"{package.name}@{ref}" if ref else package.name
    media_type = described.get("mediatype")
    if not isinstance(media_type, str):
        media_type = stored.media_type if stored is not None else None
    return {
        "id": resource_id(package.owner, pinned, described, index),
        "package_id": ckan_name(package.owner, package.name),
        "name": described.get("name") or str(index),
        "description": described.get("description") or "",
        "url": url,
        "format": formats[0].upper() if formats else "",
        "mimetype": media_type,
        "size": stored.size if stored else described.get("bytes"),
        "hash": f"sha256:{stored.sha256}" if stored else described.get("hash") or "",
        "datastore_active": index in tables,
        "position": index,
        "state": "active",
        "url_type": None,
        "created": timestamp(revision.created_at),
        "last_modified": timestamp(revision.modified_at),
    }


def _resources(descriptor: Mapping[str, Any]) -> list[tuple[int, Mapping[str, Any]]]:
    found = descriptor.get("resources")
    items = found if isinstance(found, list) else []
    return [(i, r) for i, r in enumerate(items) if isinstance(r, dict)]


def dataset(
    db: Session, base_url: str, located: readers.Located, owner: Publisher | None
) -> dict[str, Any]:
    """The revision as a CKAN dataset; ``owner`` is the package's organization (``None`` for a
    user's package)."""
    package, revision = located.package, located.revision
    descriptor = revision.descriptor
    name = ckan_name(package.owner, package.name)
    tables = loaded(db, located)
    resources = [
        resource(base_url, located, described, index, tables)
        for index, described in _resources(descriptor)
    ]
    keywords = keywords_of(descriptor)
    license_id, license_title, license_url = _license(descriptor)
    extras = {
        "dphub_owner": package.owner,
        "dphub_name": package.name,
        "dphub_revision": str(revision.number),
        "dphub_findability": package.findability,
        "datapackage_url": f"{readers.revision_url(base_url, located)}/datapackage.json",
    }
    title, description, version = (descriptor.get(k) for k in ("title", "description", "version"))
    return {
        "id": name,
        "name": name,
        "type": "dataset",
        "title": title if isinstance(title, str) and title else package.name,
        "notes": description if isinstance(description, str) else "",
        "version": version if isinstance(version, str) else None,
        "license_id": license_id,
        "license_title": license_title,
        "license_url": license_url,
        "organization": organization(owner) if owner is not None else None,
        "owner_org": owner.name if owner is not None else None,
        "private": package.findability == "private",
        "state": "active",
        "metadata_created": timestamp(package.created_at),
        "metadata_modified": timestamp(revision.modified_at),
        "author": None,
        "author_email": None,
        "maintainer": None,
        "maintainer_email": None,
        "url": readers.package_url(base_url, package.owner, package.name),
        "tags": [
            {"name": k, "display_name": k, "state": "active", "vocabulary_id": None}
            for k in keywords
        ],
        "num_tags": len(keywords),
        "resources": resources,
        "num_resources": len(resources),
        "groups": [],
        "extras": [{"key": k, "value": v} for k, v in extras.items()],
    }
