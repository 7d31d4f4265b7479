"""DataHub's second-generation API, as the ``data`` command line speaks it through
``datahub-client``, mapped onto dphub's own services.

The flow there: ``/auth/authorize?service=rawstore|source`` trades the user's token for a service
token; ``/rawstore/authorize`` hands out presigned upload forms (dphub's own authorize, with the
publisher named by ``metadata.owner``); the client uploads; ``/rawstore/presign`` names each
uploaded object; ``/source/upload`` sends a "flow spec" whose first input is the uploaded
``datapackage.json`` (dphub's finalize); ``/source/<owner>/<dataset>/<n>`` follows its processing.

An owner id (``ownerid``, ``userid``, ``profile.id``) is the publisher's name here: DataHub's were
opaque ids, and a name is one the user already knows and that works for organizations too.
Spec problems are answered as that API did, HTTP 200 with ``{"success": false, "errors": [...]}``;
authentication and permission failures stay HTTP errors, like everywhere else in dphub.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import orjson
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from dphub.api import readers
from dphub.auth.principal import Principal
from dphub.bitstore import BitStore
from dphub.errors import InvalidQuery, InvalidRequest, UploadSessionNotFound
from dphub.findability.search import MAX_LIMIT, SearchRequest, search_packages
from dphub.ingest.uploads import split_key
from dphub.metastore.models import DatastoreTable, Package, Revision, UploadSession
from dphub.names import is_valid_name
from dphub.pipeline import steps

SERVICES = ("rawstore", "source")
INPUT_KINDS = ("datapackage",)


def service_permissions(principal: Principal, service: str) -> dict[str, Any]:
    """What a service token may do, as ``/auth/authorize`` lists it."""
    if service not in SERVICES:
        raise InvalidRequest(
            f"service must be one of {', '.join(SERVICES)}, not {service!r}.", field="service"
        )
    writes = principal.has_scope("publish")
    return {"read": True, "write": writes, "scope": principal.scope}


# Presign: the uploaded object's URL, for the caller's own uploads only


def upload_of(db: Session, bitstore: BitStore, url: object) -> tuple[UploadSession, str]:
    """The upload session and path that an uploaded object's URL (``upload_url/key``) names."""
    if not isinstance(url, str) or not url:
        raise InvalidRequest("Send url=<upload_url>/<key> of an uploaded file.", field="url")
    try:
        path = urlsplit(url).path
    except ValueError:  # http://[ : a bracket that opens no IPv6 address
        path = ""
    key = bitstore.session_key(unquote(path)) if path else None
    if key is None:
        raise InvalidRequest(f"{url[:200]!r} is not an upload URL of this hub.", field="url")
    session_id, path = split_key(key)
    upload = db.get(UploadSession, session_id)
    if upload is None:
        raise UploadSessionNotFound(f"No upload session for {url[:200]!r}.")
    return upload, path


def presign(
    db: Session, bitstore: BitStore, principal: Principal, ownerid: str | None, url: object
) -> str:
    """The object's URL, once it is certain to be the caller's own upload for ``ownerid``.

    Another user's upload is answered as absent, whoever the owner is: a presign never
    confirms that someone else's (maybe private) object exists.
    """
    upload, _ = upload_of(db, bitstore, url)
    if upload.user_id != principal.user_id or (ownerid and ownerid != upload.owner):
        raise UploadSessionNotFound("No upload of yours has that URL.")
    assert isinstance(url, str)
    return url


# The flow spec of /source/upload


@dataclass(frozen=True)
class FlowSpec:
    ownerid: str
    owner: str | None
    dataset: str | None
    findability: str | None
    datapackage_url: str


def parse_flow_spec(body: object) -> tuple[FlowSpec | None, list[str]]:
    """The spec, or the list of what is wrong with it (answered as ``errors``)."""
    if not isinstance(body, dict):
        return None, ["The flow spec must be a JSON object with meta and inputs."]
    errors = []
    meta = body.get("meta")
    if not isinstance(meta, dict):
        meta = {}
        errors.append("meta is missing: send meta.ownerid, meta.owner and meta.dataset.")
    ownerid = meta.get("ownerid") or meta.get("owner")
    if meta and not isinstance(ownerid, str):
        errors.append("meta.owner (and meta.ownerid) is missing: say whose dataset this is.")
    inputs = body.get("inputs")
    url = None
    if not isinstance(inputs, list) or not inputs or not isinstance(inputs[0], dict):
        errors.append('inputs must list one input: {"kind": "datapackage", "url": ...}.')
    else:
        kind = inputs[0].get("kind")
        if kind not in INPUT_KINDS:
            errors.append(f"Unknown input kind {kind!r}: this hub takes {', '.join(INPUT_KINDS)}.")
        url = inputs[0].get("url")
        if not isinstance(url, str) or not url:
            errors.append("inputs[0].url must be the presigned URL of the datapackage.json.")
    for key in ("processing", "outputs"):
        if body.get(key) is not None and not isinstance(body.get(key), list):
            errors.append(f"{key} must be a list.")
    if errors:
        return None, errors
    assert isinstance(ownerid, str)
    assert isinstance(url, str)
    return (
        FlowSpec(
            ownerid=ownerid,
            owner=_text(meta.get("owner")),
            dataset=_text(meta.get("dataset")),
            findability=_text(meta.get("findability")),
            datapackage_url=url,
        ),
        [],
    )


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def spec_problems(
    db: Session, bitstore: BitStore, principal: Principal, spec: FlowSpec
) -> list[str]:
    """What stops this spec before anything is written: another owner's name, another user's upload."""
    try:
        upload, path = upload_of(db, bitstore, spec.datapackage_url)
    except InvalidRequest as exc:
        return [exc.message]
    if upload.user_id != principal.user_id:
        # someone else's upload: absent, as everywhere (its existence is not confirmed)
        raise UploadSessionNotFound("inputs[0].url is not an upload of yours.")
    problems = []
    if spec.ownerid != upload.owner or (spec.owner and spec.owner != upload.owner):
        problems.append(
            f"meta.ownerid {spec.ownerid!r} is not the owner the files were uploaded for"
            f" ({upload.owner!r})."
        )
    if path != "datapackage.json":
        problems.append("inputs[0].url must name the uploaded datapackage.json.")
    return problems


# Reading back


def flow_status(
    db: Session, principal: Principal | None, owner: str, dataset: str, ref: str
) -> dict[str, Any]:
    """``/source/<owner>/<dataset>/<n|latest|successful>`` as that API answered it."""
    located = readers.locate(db, principal, owner, dataset, ref)
    package, revision = located.package, located.revision
    errors = revision.errors or {}
    error_log = [
        f"{key}: {line}"
        for key, lines in errors.items()
        for line in (lines if isinstance(lines, list) else [lines])
    ]
    return {
        "id": f"{package.owner}/{package.name}/{revision.number}",
        "flow_id": f"{package.owner}/{package.name}/{revision.number}",
        "dataset_id": f"{package.owner}/{package.name}",
        "state": revision.state,
        "spec_contents": {
            "meta": {
                "version": 1,
                "ownerid": package.owner,
                "owner": package.owner,
                "dataset": package.name,
                "findability": package.findability,
            },
            "inputs": [{"kind": "datapackage", "parameters": {"descriptor": revision.descriptor}}],
        },
        "modified": revision.modified_at.isoformat(),
        "error_log": error_log,
        "pipelines": steps.in_order(revision.pipelines),
        "stats": revision.stats,
    }


def resolve(db: Session, principal: Principal | None, path: object) -> dict[str, str]:
    """``owner/dataset`` → the ids that API used; absent and hidden packages alike are 404."""
    parts = path.strip("/").split("/") if isinstance(path, str) else []
    if len(parts) < 2 or not all(is_valid_name(p) for p in parts[:2]):
        raise InvalidRequest("Send path=<owner>/<dataset>.", field="path")
    located = readers.locate(db, principal, parts[0], parts[1], "latest")
    package = located.package
    return {"packageid": package.name, "userid": package.owner}


# Search, with each parameter JSON-encoded as that API took them


def _decoded(raw: str, name: str) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise InvalidQuery(
            f'{name} must be JSON-encoded, e.g. {name}="words" or {name}=10.'
        ) from None


def _whole(value: Any, name: str, *, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidQuery(f"{name} must be a whole number from {low} to {high}.")
    return value


def search(
    db: Session, principal: Principal | None, params: dict[str, str], *, base_url: str
) -> dict[str, Any]:
    """``/metastore/search``: ``q``, ``size``, ``from`` and ``datahub.ownerid`` /
    ``datahub.owner`` / ``datahub.findability`` filters → ``{results, summary}``."""
    q = _decoded(params["q"], "q") if "q" in params else None
    if q is not None and not isinstance(q, str):
        raise InvalidQuery("q must be a JSON string.")
    size = _whole(_decoded(params.get("size", "20"), "size"), "size", low=0, high=MAX_LIMIT)
    start = _whole(_decoded(params.get("from", "0"), "from"), "from", low=0, high=10**6)
    owners = [
        _decoded(params[key], key) for key in ("datahub.ownerid", "datahub.owner") if key in params
    ]
    findability = (
        _decoded(params["datahub.findability"], "datahub.findability")
        if "datahub.findability" in params
        else None
    )
    if not all(isinstance(o, str) for o in owners) or not isinstance(findability, str | None):
        raise InvalidQuery('Filters take JSON strings, e.g. datahub.ownerid="alice".')
    wanted = SearchRequest(
        q=q or None,
        owner=tuple(owners),
        findability=(findability,) if findability else (),
        limit=size,
        offset=start,
        facet_limit=0,
    )
    found = search_packages(db, principal, wanted, base_url=base_url)
    results = [_result(db, item) for item in found["items"]]
    return {
        "results": results,
        "summary": {
            "total": found["total_count"],
            "totalBytes": sum(r["datahub"]["stats"]["bytes"] for r in results),
        },
    }


def _result(db: Session, item: dict[str, Any]) -> dict[str, Any]:
    package = db.scalar(
        select(Package).where(Package.owner == item["owner"], Package.name == item["name"])
    )
    assert package is not None
    revision = db.scalar(
        select(Revision).where(
            Revision.package_id == package.id, Revision.number == package.successful_revision
        )
    )
    descriptor = revision.descriptor if revision is not None else {}
    size = sum(f.size for f in revision.files) if revision is not None else 0
    rows = 0
    if revision is not None:
        rows = int(
            db.scalar(
                select(func.coalesce(func.sum(DatastoreTable.rows), 0)).where(
                    DatastoreTable.revision_id == revision.id
                )
            )
            or 0
        )
    return {
        "id": f"{package.owner}/{package.name}",
        "name": package.name,
        "title": item["title"],
        "description": item["description"],
        "datahub": {
            "owner": package.owner,
            "ownerid": package.owner,
            "findability": package.findability,
            "flowid": f"{package.owner}/{package.name}/{package.successful_revision}",
            "stats": {"bytes": size, "rowcount": rows},
        },
        "datapackage": descriptor,
        "url": item["url"],
    }
