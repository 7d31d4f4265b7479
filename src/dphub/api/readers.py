"""Read side of the API: find a package revision the caller may read, and describe it as JSON."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from sqlalchemy import select
from sqlalchemy.orm import Session

from dphub.auth.permissions import Action, require
from dphub.auth.principal import Principal
from dphub.auth.roles import package_ref
from dphub.errors import (
    InvalidQuery,
    PackageNotFound,
    ResourceNotFound,
    RevisionNotFound,
    TableNotFound,
)
from dphub.metastore.models import (
    DatastoreTable,
    Package,
    Revision,
    RevisionFile,
    RevisionOutput,
)
from dphub.metastore.packages import find_package, get_revision
from dphub.names import is_valid_name
from dphub.pipeline import steps


@dataclass(frozen=True)
class Located:
    package: Package
    revision: Revision
    files: dict[str, RevisionFile]
    outputs: dict[str, RevisionOutput]
    """What processing derived from the revision, by name (``<resource>_csv``, ``datapackage_zip``)."""


def locate(
    db: Session,
    principal: Principal | None,
    owner: str,
    name: str,
    ref: str | int | None = None,
) -> Located:
    """The package revision, or the same ``PackageNotFound`` whether it is absent or hidden."""
    if not (is_valid_name(owner) and is_valid_name(name)):
        raise PackageNotFound()
    package = find_package(db, owner, name)
    if package is None:
        raise PackageNotFound()
    require(principal, Action.PACKAGE_READ, package_ref(db, principal, package))
    revision = get_revision(db, package, ref)
    outputs = db.scalars(select(RevisionOutput).where(RevisionOutput.revision_id == revision.id))
    return Located(
        package, revision, {f.path: f for f in revision.files}, {o.name: o for o in outputs}
    )


def package_url(base: str, owner: str, name: str) -> str:
    return f"{base}/{owner}/{name}"


def revision_url(base: str, located: Located) -> str:
    p = located.package
    return f"{package_url(base, p.owner, p.name)}/v/{located.revision.number}"


def file_url(base: str, located: Located, path: str) -> str:
    return f"{revision_url(base, located)}/files/{quote(path)}"


def _extension(path: str) -> str:
    leaf = path.rsplit("/", 1)[-1]
    return leaf.rsplit(".", 1)[-1].lower() if "." in leaf else ""


def resource_url(base: str, located: Located, resource: dict[str, Any], index: int) -> str:
    name = resource.get("name") or str(index)
    path = resource.get("path")
    ext = _extension(path) if isinstance(path, str) else "json" if "data" in resource else ""
    leaf = f"{name}.{ext}" if ext else str(name)
    return f"{revision_url(base, located)}/r/{quote(leaf)}"


def _is_local(path: object) -> bool:
    return isinstance(path, str) and "://" not in path


def public_descriptor(base: str, located: Located) -> dict[str, Any]:
    """The stored descriptor with each local resource path made an absolute hub URL."""
    descriptor = dict(located.revision.descriptor)
    resources = []
    for index, resource in enumerate(descriptor.get("resources") or []):
        resource = dict(resource)
        path = resource.get("path")
        if _is_local(path):
            resource["path"] = resource_url(base, located, resource, index)
        elif isinstance(path, list):
            resource["path"] = [file_url(base, located, p) if _is_local(p) else p for p in path]
        resources.append(resource)
    for derived in derived_resources(base, located):
        if derived["format"] in ARCHIVE_KINDS:
            # Data Package readers (frictionless-py) open a .zip path as compressed data and check
            # `bytes` and `hash` against what they unpack, so the archive's own would fail them:
            # the package answer's `derived` list keeps those.
            derived = {k: v for k, v in derived.items() if k not in ("bytes", "hash")}
        resources.append(derived)
    descriptor["resources"] = resources
    return descriptor


OUTPUT_EXTENSIONS = {"csv": "csv", "json": "json", "zip": "zip", "preview": "json"}
ARCHIVE_KINDS = frozenset({"zip"})


def output_leaf(output: RevisionOutput) -> str:
    return f"{output.name}.{OUTPUT_EXTENSIONS.get(output.kind, 'bin')}"


def derived_resources(base: str, located: Located) -> list[dict[str, Any]]:
    """Processing's files as Data Package resources, each saying what it was derived from."""
    names = {
        i: r.get("name") or str(i)
        for i, r in enumerate(located.revision.descriptor.get("resources") or [])
    }
    entries = []
    for output in located.outputs.values():
        if output.kind == "preview":
            continue
        entry: dict[str, Any] = {
            "name": output.name,
            "path": f"{revision_url(base, located)}/r/{quote(output_leaf(output))}",
            "format": output.kind,
            "mediatype": output.media_type,
            "bytes": output.size,
            "hash": f"sha256:{output.sha256}",
            "dphub": {"type": f"derived/{output.kind}"},
        }
        if output.resource_index is not None:
            entry["dphub"]["derivedFrom"] = [names.get(output.resource_index)]
        entries.append(entry)
    return entries


def find_output(located: Located, leaf: str) -> RevisionOutput | None:
    """A derived file by ``<name>.<ext>``, or ``<resource>.csv|json`` for a resource stored in
    another format."""
    for output in located.outputs.values():
        if leaf == output_leaf(output):
            return output
    stem, _, ext = leaf.rpartition(".")
    if ext in ("csv", "json"):
        return located.outputs.get(f"{stem}_{ext}")
    return None


def file_entry(base: str, located: Located, f: RevisionFile) -> dict[str, Any]:
    return {
        "path": f.path,
        "size": f.size,
        "sha256": f.sha256,
        "md5": f.md5,
        "type": f.media_type,
        "url": file_url(base, located, f.path),
    }


def resource_entries(base: str, located: Located) -> list[dict[str, Any]]:
    entries = []
    for index, resource in enumerate(located.revision.descriptor.get("resources") or []):
        path = resource.get("path")
        stored = located.files.get(path) if isinstance(path, str) else None
        entries.append(
            {
                "index": index,
                "name": resource.get("name"),
                "path": path,
                "format": resource.get("format") or (_extension(path) if stored else None),
                "size": stored.size if stored else None,
                "sha256": stored.sha256 if stored else None,
                "url": resource_url(base, located, resource, index),
            }
        )
    return entries


def revision_status(base: str, package: Package, revision: Revision) -> dict[str, Any]:
    return {
        "id": f"{package.owner}/{package.name}/{revision.number}",
        "package": f"{package.owner}/{package.name}",
        "revision": revision.number,
        "state": revision.state,
        "pipelines": steps.in_order(revision.pipelines),
        "errors": revision.errors,
        "stats": revision.stats,
        "report": revision.report,
        "created": revision.created_at.isoformat(),
        "modified": revision.modified_at.isoformat(),
        "url": f"{base}/api/package/{package.owner}/{package.name}/revisions/{revision.number}",
    }


def package_show(base: str, located: Located) -> dict[str, Any]:
    p, r = located.package, located.revision
    descriptor = r.descriptor
    return {
        "id": f"{p.owner}/{p.name}",
        "name": p.name,
        "owner": p.owner,
        "publisher": p.owner,
        "title": descriptor.get("title"),
        "findability": p.findability,
        "revision": r.number,
        "latest_revision": p.latest_revision,
        "successful_revision": p.successful_revision,
        "state": r.state,
        "descriptor": descriptor,
        "readme": r.readme,
        "created": p.created_at.isoformat(),
        "modified": r.created_at.isoformat(),
        "url": package_url(base, p.owner, p.name),
        "bitstore_url": revision_url(base, located),
        "datapackage_url": f"{revision_url(base, located)}/datapackage.json",
        "resources": resource_entries(base, located),
        "files": [file_entry(base, located, f) for f in located.files.values()],
        "derived": derived_resources(base, located),
        "report": r.report,
        "stats": r.stats,
    }


def find_resource(located: Located, leaf: str) -> tuple[dict[str, Any], int]:
    """The resource that ``<name or index>[.<ext>]`` names; the extension must be the file's own."""
    resources = located.revision.descriptor.get("resources") or []
    for index, resource in enumerate(resources):
        path = resource.get("path")
        ext = _extension(path) if isinstance(path, str) else "json" if "data" in resource else ""
        for key in (resource.get("name"), str(index)):
            if key is None:
                continue
            if leaf == key or (ext and leaf == f"{key}.{ext}"):
                return resource, index
    raise ResourceNotFound(
        f"No resource {leaf!r} in {located.package.owner}/{located.package.name}: use"
        " r/<resource name or index>.<extension of its file>."
    )


def locate_table(db: Session, principal: Principal | None, resource_id: str) -> DatastoreTable:
    """The datastore table ``OWNER/NAME[@REV]/RESOURCE`` names (resource by name or index).

    Without ``@REV`` it is the latest successful revision's. Hidden and absent packages answer the
    same ``TableNotFound``, so a resource id reveals nothing about private packages.
    """
    parts = resource_id.split("/") if isinstance(resource_id, str) else []
    if len(parts) != 3 or not all(parts):
        raise InvalidQuery(
            f"{resource_id!r} is not a resource id: use OWNER/NAME/RESOURCE or"
            " OWNER/NAME@REVISION/RESOURCE."
        )
    owner, package, resource = parts
    name, _, ref = package.partition("@")
    try:
        located = locate(db, principal, owner, name, ref or None)
    except (PackageNotFound, RevisionNotFound, ResourceNotFound) as exc:
        raise TableNotFound(f"No datastore table {resource_id!r}: {exc}") from None
    if located.revision.state != "SUCCEEDED":
        raise TableNotFound(
            f"No datastore table {resource_id!r}: revision {located.revision.number} is"
            f" {located.revision.state}, not processed successfully."
        )
    tables = db.scalars(
        select(DatastoreTable).where(DatastoreTable.revision_id == located.revision.id)
    ).all()
    for table in tables:
        if resource in (table.resource_name, str(table.resource_index)):
            return table
    names = ", ".join(t.resource_name for t in tables) or "none"
    raise TableNotFound(f"No datastore table {resource_id!r}: this revision's tables are {names}.")
