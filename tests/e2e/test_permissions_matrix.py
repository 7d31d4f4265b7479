"""The authorization matrix: every route, every kind of caller, every findability, against the
table in docs/permissions.md, on the embedded hub (SQLite) and the scale hub (PostgreSQL)."""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import HubServer, Publisher, cli, new_publisher, write_package
from tests.e2e.test_bad_input import finalize, md5_b64, post_form
from tests.routes import FINDABILITIES, PRINCIPALS, Route, app_routes, expected

_unique = itertools.count(1)
EMPTY_SHA = hashlib.sha256(b"{}").hexdigest()
CSV = b"year,value\n2020,1\n2021,2\n"
BIG = 9 * 1024 * 1024
"""Above the test hubs' multipart threshold: authorizing it starts a multipart upload."""


@dataclass
class World:
    hub: HubServer
    org: str
    users: dict[str, Publisher]
    tokens: dict[str, str | None]
    packages: dict[str, str]
    """Package name by findability, all published by ``org``."""
    guest: Publisher
    upload_key: str = ""
    multipart_id: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def as_org_owner(self) -> httpx.Client:
        return self.hub.client(self.tokens["org owner"])


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    json: Any = None
    params: dict[str, str] | None = None
    content: bytes | None = None
    headers: dict[str, str] | None = None
    ok: tuple[int, ...] = (200,)
    """Statuses that show the route did its work for an allowed caller."""


Prepare = Callable[[World, str, str], Call]
"""Builds the request for (world, findability, principal); may set state up first."""


def _package(world: World, findability: str) -> tuple[str, str]:
    return world.org, world.packages[findability]


def _read(suffix: str, **kwargs: Any) -> Prepare:
    def build(world: World, findability: str, principal: str) -> Call:
        owner, name = _package(world, findability)
        path = suffix.format(owner=owner, name=name, base=world.hub.url)
        return Call("GET", path, ok=(200, 302), **kwargs)

    return build


def _params(**params: str) -> Prepare:
    def build(world: World, findability: str, principal: str) -> Call:
        owner, name = _package(world, findability)
        values = {
            k: v.format(owner=owner, name=name, base=world.hub.url) for k, v in params.items()
        }
        path = values.pop("path")
        return Call("GET", path, params=values, ok=(200,))

    return build


def _authorize(world: World, findability: str, principal: str) -> Call:
    return _authorize_at("/api/datastore/authorize")(world, findability, principal)


def _authorize_at(path: str) -> Prepare:
    def build(world: World, findability: str, principal: str) -> Call:
        owner, name = _package(world, findability)
        body = {
            "metadata": {"owner": owner, "name": name},
            "filedata": {
                "datapackage.json": {
                    "length": 2,
                    "sha256": EMPTY_SHA,
                    "name": "datapackage.json",
                }
            },
        }
        return Call("POST", path, json=body)

    return build


def _finalize(world: World, findability: str, principal: str) -> Call:
    body = {"datapackage": _upload_url(world)}
    return Call("POST", "/api/package/upload", json=body, ok=(409,))


def _upload_url(world: World) -> str:
    return f"{world.hub.url}/api/bitstore/upload/{world.upload_key}"


def _presign(world: World, findability: str, principal: str) -> Call:
    return Call(
        "GET", "/rawstore/presign", params={"ownerid": world.org, "url": _upload_url(world)}
    )


def _source_upload(world: World, findability: str, principal: str) -> Call:
    """The org owner's own upload, not complete yet: answered ``success: false`` to its owner."""
    spec = {
        "meta": {"version": 1, "ownerid": world.org, "owner": world.org, "dataset": "x"},
        "inputs": [{"kind": "datapackage", "url": _upload_url(world), "parameters": {}}],
    }
    return Call("POST", "/source/upload", json=spec)


def _set_guest_membership(world: World) -> None:
    with world.as_org_owner() as client:
        path = f"/api/org/{world.org}/members/{world.guest.username}"
        assert client.put(path, json={"role": "viewer"}).status_code == 200


def _set_guest_collaborator(world: World, findability: str) -> None:
    owner, name = _package(world, findability)
    with world.as_org_owner() as client:
        path = f"/api/package/{owner}/{name}/collaborators/{world.guest.username}"
        assert client.put(path, json={"role": "viewer"}).status_code == 200


def _collaborator(method: str) -> Prepare:
    def build(world: World, findability: str, principal: str) -> Call:
        owner, name = _package(world, findability)
        path = f"/api/package/{owner}/{name}/collaborators/{world.guest.username}"
        if method == "DELETE":
            _set_guest_collaborator(world, findability)
            return Call("DELETE", path)
        return Call("PUT", path, json={"role": "viewer"})

    return build


def _member(method: str) -> Prepare:
    def build(world: World, findability: str, principal: str) -> Call:
        path = f"/api/org/{world.org}/members/{world.guest.username}"
        if method == "DELETE":
            _set_guest_membership(world)
            return Call("DELETE", path)
        return Call("PUT", path, json={"role": "viewer"})

    return build


def _findability(world: World, findability: str, principal: str) -> Call:
    owner, name = _package(world, findability)
    return Call("PATCH", f"/api/package/{owner}/{name}", json={"findability": findability})


def _new_org(world: World, findability: str, principal: str) -> Call:
    return Call("POST", "/api/org", json={"name": f"mx-made-{next(_unique)}"}, ok=(201,))


def _fixed(method: str, path: str, **kwargs: Any) -> Prepare:
    def build(world: World, findability: str, principal: str) -> Call:
        return Call(method, path.format(org=world.org, mp=world.multipart_id), **kwargs)

    return build


def _own_key(world: World, findability: str, principal: str) -> Call:
    """Revoke a key of the caller's own (made first); anonymous callers name any id."""
    token = world.tokens[principal]
    if token is None:
        return Call("DELETE", "/api/auth/keys/1")
    with world.hub.client(token) as client:
        made = client.post("/api/auth/keys", json={"name": "mx-revoked"})
        assert made.status_code == 201, made.text
    return Call("DELETE", f"/api/auth/keys/{made.json()['id']}")


def _trust(method: str) -> Prepare:
    """Trusted publishers of a package: a new one to add, or one the org owner added to remove."""

    def build(world: World, findability: str, principal: str) -> Call:
        owner, name = _package(world, findability)
        path = f"/api/package/{owner}/{name}/trusted-publishers"
        body = {
            "issuer": "https://token.actions.githubusercontent.com",
            "subject": f"repo:mx/repo-{next(_unique)}:*",
        }
        if method == "POST":
            return Call("POST", path, json=body, ok=(201,))
        with world.as_org_owner() as client:
            made = client.post(path, json=body)
            assert made.status_code == 201, made.text
        return Call("DELETE", f"{path}/{made.json()['id']}", ok=(204,))

    return build


def _tag(world: World, findability: str, principal: str) -> Call:
    """A fresh tag of the latest successful revision on every call."""
    owner, name = _package(world, findability)
    body = {"version": f"mx-{next(_unique)}"}
    return Call("POST", f"/api/package/{owner}/{name}/tag", json=body, ok=(201,))


def _webhook_body() -> dict[str, Any]:
    """A fresh URL on a closed loopback port (the shared hubs allow private addresses), for the
    one kind of event the matrix never causes on its packages: nothing is ever delivered."""
    return {"url": f"http://127.0.0.1:9/mx-hook-{next(_unique)}", "kinds": ["undeleted"]}


def _standing_webhook(world: World) -> int:
    """A webhook of the org, made again when an allowed caller has removed it."""
    path = f"/api/publisher/{world.org}/webhooks"
    with world.as_org_owner() as client:
        listed = client.get(path)
        assert listed.status_code == 200, listed.text
        hook = world.extra.get("webhook")
        if hook not in {h["id"] for h in listed.json()["webhooks"]}:
            made = client.post(path, json=_webhook_body())
            assert made.status_code == 201, made.text
            hook = world.extra["webhook"] = made.json()["id"]
    return int(hook)


def _webhook(method: str) -> Prepare:
    def build(world: World, findability: str, principal: str) -> Call:
        path = f"/api/publisher/{world.org}/webhooks"
        if method == "POST":
            return Call("POST", path, json=_webhook_body(), ok=(201,))
        hook = _standing_webhook(world)
        if method == "DELETE":
            return Call("DELETE", f"{path}/{hook}", ok=(204,))
        return Call("GET", f"{path}/{hook}/deliveries")

    return build


def _throwaway(world: World, findability: str, principal: str) -> str:
    """A package of its own for one call that deletes it: pushed (and processed) by the org owner
    with ``findability``, the caller given their role on it when they are a collaborator."""
    name = f"mx-gone-{next(_unique)}"
    resources = [{"name": "values", "data": [{"year": 2020, "value": 1}]}]
    descriptor = json.dumps({"name": name, "resources": resources}).encode()
    filedata = {
        "datapackage.json": {
            "size": len(descriptor),
            "md5": md5_b64(descriptor),
            "sha256": hashlib.sha256(descriptor).hexdigest(),
        }
    }
    metadata = {"owner": world.org, "name": name, "findability": findability}
    with world.as_org_owner() as client:
        answer = client.post(
            "/api/datastore/authorize", json={"metadata": metadata, "filedata": filedata}
        )
        assert answer.status_code == 200, answer.text
        entry = answer.json()["filedata"]["datapackage.json"]
        assert post_form(entry, descriptor).status_code == 204
        done = finalize(client, entry)
        assert done.status_code == 200, done.text
        if principal in ("viewer", "editor", "owner"):
            user = world.users[principal].username
            path = f"/api/package/{world.org}/{name}/collaborators/{user}"
            assert client.put(path, json={"role": principal}).status_code == 200
    return name


def _delete(suffix: str) -> Prepare:
    """Delete or purge a package pushed for this call alone."""

    def build(world: World, findability: str, principal: str) -> Call:
        name = _throwaway(world, findability, principal)
        return Call("DELETE", f"/api/package/{world.org}/{name}{suffix}")

    return build


def _undelete(world: World, findability: str, principal: str) -> Call:
    owner, name = _package(world, findability)
    return Call("POST", f"/api/package/{owner}/{name}/undelete", ok=(409,))


def _token(world: World, findability: str, principal: str) -> Call:
    body = {"username": world.guest.username, "secret": world.guest.secret}
    return Call("POST", "/api/auth/token", json=body)


CALLS: dict[tuple[tuple[str, ...], str], Prepare] = {
    (("GET",), "/api"): _fixed("GET", "/api"),
    (("GET",), "/healthz"): _fixed("GET", "/healthz"),
    (("GET",), "/readyz"): _fixed("GET", "/readyz"),
    (("GET",), "/metrics"): _fixed("GET", "/metrics"),
    (("POST",), "/api/auth/token"): _token,
    (("GET",), "/api/auth/check"): _fixed("GET", "/api/auth/check"),
    (("GET",), "/api/auth/oidc/{provider}/login"): _fixed(
        "GET", "/api/auth/oidc/none-here/login", ok=(404,)
    ),
    (("GET",), "/api/auth/oidc/{provider}/callback"): _fixed(
        "GET", "/api/auth/oidc/none-here/callback", ok=(404,)
    ),
    (("POST",), "/api/auth/oidc/redeem"): _fixed(
        "POST", "/api/auth/oidc/redeem", json={"code": "made-up"}, ok=(401,)
    ),
    (("POST",), "/api/auth/oidc/exchange"): _fixed(
        "POST", "/api/auth/oidc/exchange", json={"token": "a.b.c"}, ok=(401,)
    ),
    (("GET",), "/api/auth/public-key"): _fixed("GET", "/api/auth/public-key"),
    (("GET",), "/auth/check"): _fixed("GET", "/auth/check"),
    # no token, nothing to trade: 401 (as a wrong password is at /api/auth/token)
    (("GET",), "/auth/authorize"): _fixed("GET", "/auth/authorize?service=source", ok=(200, 401)),
    (("GET",), "/auth/public-key"): _fixed("GET", "/auth/public-key"),
    (("POST",), "/rawstore/authorize"): _authorize_at("/rawstore/authorize"),
    (("GET",), "/rawstore/presign"): _presign,
    (("POST",), "/source/upload"): _source_upload,
    (("GET",), "/source/{ownerid}/{dataset}/{ref}"): _read("/source/{owner}/{name}/latest"),
    (("GET",), "/metastore/search"): _fixed("GET", '/metastore/search?q="pkg"'),
    (("GET",), "/resolver/resolve"): _read("/resolver/resolve?path={owner}/{name}"),
    (("GET",), "/.well-known/jwks.json"): _fixed("GET", "/.well-known/jwks.json"),
    (("POST",), "/api/auth/keys"): _fixed("POST", "/api/auth/keys", json={}, ok=(201,)),
    (("GET",), "/api/auth/keys"): _fixed("GET", "/api/auth/keys"),
    (("DELETE",), "/api/auth/keys/{key_id}"): _own_key,
    (("POST",), "/api/admin/signing-keys/rotate"): _fixed("POST", "/api/admin/signing-keys/rotate"),
    (("GET",), "/api/admin/audit"): _fixed("GET", "/api/admin/audit", params={"limit": "1"}),
    (("POST",), "/api/datastore/authorize"): _authorize,
    (("POST",), "/api/package/upload"): _finalize,
    (("POST",), "/api/bitstore/upload"): _fixed(
        "POST",
        "/api/bitstore/upload",
        content=b"--x\r\n",
        headers={"Content-Type": "multipart/form-data; boundary=x"},
        ok=(),
    ),
    (("PUT",), "/api/bitstore/upload/{key}"): _fixed(
        "PUT", "/api/bitstore/upload/nosuchsession/data.csv", content=b"abc", ok=()
    ),
    (("PUT",), "/api/bitstore/multipart/{upload_id}/{number}"): _fixed(
        "PUT", "/api/bitstore/multipart/{mp}/1", content=b"abc", ok=()
    ),
    (("GET",), "/api/bitstore/multipart/{upload_id}"): _fixed(
        "GET", "/api/bitstore/multipart/{mp}"
    ),
    (("POST",), "/api/bitstore/multipart/{upload_id}/complete"): _fixed(
        "POST", "/api/bitstore/multipart/{mp}/complete", ok=(400, 409)
    ),
    (("GET",), "/api/package/{owner}"): _fixed("GET", "/api/package/{org}"),
    (("GET",), "/api/package/{owner}/{name}"): _read("/api/package/{owner}/{name}"),
    (("PATCH",), "/api/package/{owner}/{name}"): _findability,
    (("DELETE",), "/api/package/{owner}/{name}"): _delete(""),
    (("DELETE",), "/api/package/{owner}/{name}/purge"): _delete("/purge"),
    # The shared packages are not deleted: an allowed caller hears that there is nothing to
    # undelete (a deleted package is known only to its owners; see tests/e2e/test_delete.py).
    (("POST",), "/api/package/{owner}/{name}/undelete"): _undelete,
    (("GET",), "/api/package/{owner}/{name}/revisions"): _read(
        "/api/package/{owner}/{name}/revisions"
    ),
    (("GET",), "/api/package/{owner}/{name}/revisions/{ref}"): _read(
        "/api/package/{owner}/{name}/revisions/latest"
    ),
    (("POST",), "/api/package/{owner}/{name}/tag"): _tag,
    (("GET",), "/api/package/{owner}/{name}/tags"): _read("/api/package/{owner}/{name}/tags"),
    (("GET",), "/api/package/{owner}/{name}/diff"): _read(
        "/api/package/{owner}/{name}/diff", params={"from": "1", "to": "successful"}
    ),
    (("GET",), "/api/package/{owner}/{name}/events"): _read("/api/package/{owner}/{name}/events"),
    (("GET",), "/api/package/{owner}/{name}/collaborators"): _read(
        "/api/package/{owner}/{name}/collaborators"
    ),
    (("PUT",), "/api/package/{owner}/{name}/collaborators/{username}"): _collaborator("PUT"),
    (("DELETE",), "/api/package/{owner}/{name}/collaborators/{username}"): _collaborator("DELETE"),
    (("GET",), "/api/package/{owner}/{name}/trusted-publishers"): _read(
        "/api/package/{owner}/{name}/trusted-publishers"
    ),
    (("POST",), "/api/package/{owner}/{name}/trusted-publishers"): _trust("POST"),
    (("DELETE",), "/api/package/{owner}/{name}/trusted-publishers/{trust_id}"): _trust("DELETE"),
    (("GET",), "/api/publisher/{name}"): _fixed("GET", "/api/publisher/{org}"),
    (("POST",), "/api/org"): _new_org,
    (("PUT",), "/api/org/{org}/members/{username}"): _member("PUT"),
    (("DELETE",), "/api/org/{org}/members/{username}"): _member("DELETE"),
    (("GET",), "/api/storage/{owner}"): _fixed("GET", "/api/storage/{org}"),
    (("PUT",), "/api/storage/{owner}/quota"): _fixed(
        "PUT", "/api/storage/{org}/quota", json={"max_packages": None}
    ),
    (("POST",), "/api/publisher/{name}/webhooks"): _webhook("POST"),
    (("GET",), "/api/publisher/{name}/webhooks"): _fixed("GET", "/api/publisher/{org}/webhooks"),
    (("DELETE",), "/api/publisher/{name}/webhooks/{hook_id}"): _webhook("DELETE"),
    (("GET",), "/api/publisher/{name}/webhooks/{hook_id}/deliveries"): _webhook("GET"),
    (("GET",), "/api/events"): _fixed("GET", "/api/events?owner={org}"),
    (("GET",), "/api/search/package"): _fixed("GET", "/api/search/package?owner={org}&q=values"),
    (("GET",), "/api/datastore/search"): _params(
        path="/api/datastore/search", resource_id="{owner}/{name}/values"
    ),
    (("GET", "POST"), "/api/datastore/sql"): _params(
        path="/api/datastore/sql", sql='SELECT count(*) AS n FROM "{owner}/{name}/values"'
    ),
    (("GET",), "/api/dataproxy"): _params(
        path="/api/dataproxy", url="{base}/{owner}/{name}/r/values.csv"
    ),
    # CKAN's Action API: every action reads through the services, which decide per package
    (("GET", "POST"), "/api/action/{action}"): _fixed("POST", "/api/action/status_show", json={}),
    (("GET", "POST"), "/api/3/action/{action}"): _fixed(
        "GET", "/api/3/action/package_search?fq=organization:{org}&include_private=true"
    ),
    (("GET",), "/{owner}/{name}/datapackage.json"): _read("/{owner}/{name}/datapackage.json"),
    (("GET",), "/{owner}/{name}/v/{ref}/datapackage.json"): _read(
        "/{owner}/{name}/v/1/datapackage.json"
    ),
    (("GET",), "/{owner}/{name}/r/{leaf}"): _read("/{owner}/{name}/r/values.csv"),
    (("GET",), "/{owner}/{name}/v/{ref}/r/{leaf}"): _read("/{owner}/{name}/v/1/r/values.csv"),
    (("GET",), "/{owner}/{name}/files/{path}"): _read("/{owner}/{name}/files/values.csv"),
    (("GET",), "/{owner}/{name}/v/{ref}/files/{path}"): _read(
        "/{owner}/{name}/v/1/files/values.csv"
    ),
    (("GET",), "/{owner}/{name}"): _read("/{owner}/{name}"),
}


def _login(hub: HubServer, user: Publisher) -> str:
    answer = httpx.post(
        f"{hub.url}/api/auth/token",
        json={"username": user.username, "secret": user.password},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    return str(answer.json()["token"])


@pytest.fixture(scope="module")
def world(hub: HubServer, tmp_path_factory: pytest.TempPathFactory) -> World:
    root = tmp_path_factory.mktemp("matrix")
    users = {
        principal: new_publisher(hub, root / principal.replace(" ", "-"), "mx")
        for principal in PRINCIPALS
        if principal not in ("anonymous", "site admin")
    }
    admin_name = f"mx-admin-{next(_unique)}-{hub.kind}"
    created = hub.admin(
        "user",
        "create",
        admin_name,
        "--email",
        f"{admin_name}@example.org",
        "--admin",
        "--password-stdin",
        input="admin-password-long\n",
    )
    admin_key = created.stdout.strip().splitlines()[-1]
    admin = Publisher(
        admin_name,
        f"{admin_name}@example.org",
        admin_key,
        "admin-password-long",
        hub,
        root / "admin",
    )
    users["site admin"] = admin
    guest = new_publisher(hub, root / "guest", "mx-guest")
    tokens: dict[str, str | None] = {"anonymous": None}
    tokens.update({principal: _login(hub, user) for principal, user in users.items()})
    org = f"mx-org-{next(_unique)}-{hub.kind}"
    with hub.client(tokens["org owner"]) as client:
        made = client.post("/api/org", json={"name": org, "title": "Matrix"})
        assert made.status_code == 201, made.text
    owner = users["org owner"]
    owner.login()
    packages = {}
    for findability in FINDABILITIES:
        name = f"pkg-{findability}"
        folder = write_package(root / name, name, files={"values.csv": CSV})
        pushed = cli("push", str(folder), "--owner", org, f"--{findability}", env=owner.env)
        assert "SUCCEEDED" in pushed.stdout + pushed.stderr
        packages[findability] = name
        with hub.client(tokens["org owner"]) as client:
            for role in ("viewer", "editor", "owner"):
                path = f"/api/package/{org}/{name}/collaborators/{users[role].username}"
                assert client.put(path, json={"role": role}).status_code == 200
    world = World(hub, org, users, tokens, packages, guest)
    with world.as_org_owner() as client:
        answer = client.post(
            "/api/datastore/authorize",
            json={
                "metadata": {"owner": org, "name": "pkg-published"},
                "filedata": {
                    "datapackage.json": {
                        "length": 2,
                        "sha256": EMPTY_SHA,
                        "name": "datapackage.json",
                    },
                    "big.bin": {"size": BIG, "sha256": "ab" * 32, "name": "big.bin"},
                },
            },
        )
        assert answer.status_code == 200, answer.text
        entries = answer.json()["filedata"]
        world.upload_key = entries["datapackage.json"]["upload_query"]["key"]
        world.multipart_id = entries["big.bin"]["multipart"]["upload_id"]
    return world


def _send(world: World, call: Call, principal: str) -> httpx.Response:
    token = world.tokens[principal]
    headers = dict(call.headers or {})
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return httpx.request(
        call.method,
        world.hub.url + call.path,
        json=call.json,
        params=call.params,
        content=call.content,
        headers=headers,
        timeout=60,
        follow_redirects=False,
    )


def _answer(response: httpx.Response, call: Call, documented: str) -> str:
    """The response in the matrix's terms: ✓, or the refusal's status."""
    if documented == "sig" or response.status_code in call.ok:
        return "✓" if documented != "sig" else "sig"
    return str(response.status_code)


def test_every_route_is_exercised(world: World, tmp_path: Path) -> None:
    routes = {(r.methods, r.path) for r in app_routes(tmp_path)}
    assert routes == set(CALLS), "every route needs a request in CALLS"


@pytest.mark.parametrize("findability", FINDABILITIES)
def test_authorization_matrix(world: World, findability: str, tmp_path: Path) -> None:
    mismatches = []
    for route in app_routes(tmp_path):
        assert route.action is not None
        build = CALLS.get((route.methods, route.path))
        if build is None:
            continue
        signed_answers: set[tuple[int, bytes]] = set()
        for principal in PRINCIPALS:
            documented = expected(route.action, findability, principal)
            call = build(world, findability, principal)
            response = _send(world, call, principal)
            assert response.status_code < 500, (route, principal, response.text)
            if response.status_code >= 400:
                body = response.json()
                assert set(body["error"]) >= {"code", "message"}
            if documented == "sig":
                signed_answers.add((response.status_code, response.content))
                continue
            got = _answer(response, call, documented)
            if got != documented:
                mismatches.append(_describe(route, findability, principal, documented, response))
        assert len(signed_answers) <= 1, f"{route.path} answers differ by caller: {signed_answers}"
    assert mismatches == []


def _describe(
    route: Route, findability: str, principal: str, documented: str, response: httpx.Response
) -> str:
    return (
        f"{'/'.join(route.methods)} {route.path} [{route.action}] {findability} as {principal}:"
        f" documented {documented}, got {response.status_code} {response.text[:160]}"
    )
