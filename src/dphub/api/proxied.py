"""Which bytes a DataProxy URL names: a hub file or resource (after the read permission check), or
an outside URL on the allow-list (fetched with the SSRF guards of ``dataproxy.remote``)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from dphub.api import readers
from dphub.auth.principal import Principal
from dphub.errors import Forbidden, InvalidRequest, ResourceNotFound
from dphub.hub import Hub
from dphub.metastore.packages import pins_revision

HUB_PATH = re.compile(
    r"^/(?P<owner>[^/]+)/(?P<name>[^/]+)(?:/v/(?P<ref>[^/]+))?/(?P<kind>r|files)/(?P<rest>.+)$"
)


@dataclass(frozen=True)
class HubSource:
    """A blob of a package revision the caller may read."""

    sha256: str
    size: int
    filename: str
    resource: dict[str, Any] | None
    private: bool
    pinned: bool


def hub_path(hub: Hub, url: str) -> str | None:
    """The path of ``url`` when it names this hub (absolute with its base URL, or a bare path)."""
    try:
        parts = urlsplit(url)
    except ValueError:  # http://[ : a bracket that opens no IPv6 address
        raise InvalidRequest(f"url {url[:200]!r} is not a valid URL.", field="url") from None
    if url.startswith("/") and not url.startswith("//"):
        return parts.path
    base = urlsplit(hub.settings.base_url)
    if (parts.scheme, parts.netloc) == (base.scheme, base.netloc) and parts.path.startswith(
        base.path
    ):
        return parts.path[len(base.path.rstrip("/")) :]
    return None


def locate_source(hub: Hub, principal: Principal | None, path: str) -> HubSource:
    match = HUB_PATH.match(path)
    if match is None:
        raise InvalidRequest(
            f"{path!r} is not a file of this hub: use a URL like /OWNER/NAME/r/RESOURCE.csv or"
            " /OWNER/NAME/v/REVISION/files/PATH."
        )
    owner, name = match["owner"], match["name"]
    ref = unquote(match["ref"]) if match["ref"] is not None else None
    rest = unquote(match["rest"])
    with hub.sessions() as db:
        located = readers.locate(db, principal, owner, name, ref)
    private = located.package.findability == "private"
    if match["kind"] == "files":
        stored = located.files.get(rest)
        if stored is None:
            raise ResourceNotFound(f"No file {rest!r} in this revision.")
        resource = next(
            (
                r
                for r in located.revision.descriptor.get("resources") or []
                if r.get("path") == rest
            ),
            None,
        )
        return HubSource(stored.sha256, stored.size, rest, resource, private, pins_revision(ref))
    try:
        resource, _ = readers.find_resource(located, rest)
    except ResourceNotFound:
        output = readers.find_output(located, rest)
        if output is None:
            # r/<resource>.json|ndjson|csv of a resource stored in another format
            stem = rest.rsplit(".", 1)[0]
            resource, _ = readers.find_resource(located, stem)
        else:
            leaf = readers.output_leaf(output)
            return HubSource(output.sha256, output.size, leaf, None, private, pins_revision(ref))
    stored_path = resource.get("path")
    if not isinstance(stored_path, str) or stored_path not in located.files:
        raise ResourceNotFound(f"Resource {rest!r} is not one stored file.")
    stored = located.files[stored_path]
    return HubSource(stored.sha256, stored.size, stored_path, resource, private, pins_revision(ref))


def check_outside(allowed_hosts: tuple[str, ...]) -> None:
    if not allowed_hosts:
        raise Forbidden(
            "This hub converts only its own files: the url must name a file of this hub"
            " (DPHUB_DATAPROXY_ALLOWED_HOSTS lists outside hosts it may fetch)."
        )
