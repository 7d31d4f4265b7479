"""Backup and restore of a whole hub: `dphub admin export`, then `dphub admin import` into an empty
hub, which must then answer every read exactly as the first one did, to the byte.

One embedded hub is filled once (users, an organization with members, a collaborator, published,
unlisted, private and deleted packages, three revisions of one package with a tag and a failed
one, typed tables) and exported. The backup goes into a fresh embedded hub and a fresh scale hub
(PostgreSQL + S3); the scale hub is exported in turn and that backup goes into another embedded
hub. Each answers the same list of reads (JSON, web pages, every file of every revision, derived
files and zips, datastore queries) as the source did, for each kind of visitor, with the tokens
the source hub issued.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from alembic.script import ScriptDirectory

from dphub.metastore.db import MIGRATIONS
from dphub.metastore.models import Base
from tests.conftest import (
    HubServer,
    Publisher,
    new_publisher,
    start_hub,
    stop_hub,
    write_package,
)
from tests.services import PostgresServer, S3Server

Answers = dict[tuple[str, str], tuple[int, Any]]

TYPED_CSV = (
    b"id,price,ok,day,at,label,year\n"
    b'1,1.5,true,2024-01-02,2024-01-02T03:04:05,"",2020\n'
    b"2,0.30000000000000004,false,2024-02-29,2024-02-29T23:59:59.5,plain,1999\n"
    b"3,NaN,NA,NA,NA,NA,NA\n"
    b'4,-2.5e-07,true,1970-01-01,2000-01-01T00:00:00,"with ""quotes"", and comma",2001\n'
)
TYPED_SCHEMA = {
    "fields": [
        {"name": "id", "type": "integer"},
        {"name": "price", "type": "number"},
        {"name": "ok", "type": "boolean"},
        {"name": "day", "type": "date"},
        {"name": "at", "type": "datetime"},
        {"name": "label", "type": "string"},
        {"name": "year", "type": "year"},
    ],
    "missingValues": ["NA"],
}


@dataclass
class Source:
    """The filled hub, its backup, and what it answered after the backup was made."""

    hub: HubServer
    backup: Path
    people: dict[str, Publisher]
    tokens: dict[str, str]
    """A token per visitor, issued by the source hub before the export."""
    reads: list[tuple[str, str]]
    answers: Answers = field(default_factory=dict)
    read_key: str = ""
    """An API key alice made (scope read), to log in with after the import."""


def _push(person: Publisher, root: Path, name: str, files: dict[str, bytes], **kw: Any) -> None:
    from dphub.client import Client

    descriptor = kw.pop("descriptor", None)
    folder = write_package(
        root / f"{name}-{os.urandom(3).hex()}", name, files=files, descriptor=descriptor
    )
    with Client(person.hub.url, person.token(), username=person.username) as client:
        client.push(folder, **kw)


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Source]:
    root = tmp_path_factory.mktemp("backup-source")
    hub = start_hub(root)
    try:
        yield _fill(hub, root)
    finally:
        stop_hub(hub)


def _fill(hub: HubServer, root: Path) -> Source:
    people = {
        name: new_publisher(hub, root / name, name, site_admin=name == "root")
        for name in ("alice", "bob", "carol", "root")
    }
    alice, bob, carol = people["alice"], people["bob"], people["carol"]
    org = f"acme-{os.getpid()}"
    with alice.client() as client:
        assert client.post("/api/org", json={"name": org, "title": "Acme"}).status_code == 201
        for who, role in ((bob, "editor"), (carol, "viewer")):
            added = client.put(f"/api/org/{org}/members/{who.username}", json={"role": role})
            assert added.status_code == 200, added.text

    a = alice.username
    cities = {
        "data/cities.csv": b"city,pop\nParis,2100000\nLyon,500000\n",
        "README.md": b"# Cities\n",
    }
    _push(alice, root, "cities", cities)
    hub.wait_processed(a, "cities")
    cities["data/cities.csv"] += b"Nice,340000\n"
    _push(alice, root, "cities", cities)
    hub.wait_processed(a, "cities")
    bad = {
        "name": "cities",
        "resources": [
            {
                "name": "cities",
                "path": "data/cities.csv",
                "schema": {
                    "fields": [
                        {"name": "city", "type": "string"},
                        {"name": "pop", "type": "integer"},
                    ]
                },
            }
        ],
    }
    _push(alice, root, "cities", {"data/cities.csv": b"city,pop\nRome,many\n"}, descriptor=bad)
    assert hub.wait_processed(a, "cities")["state"] == "FAILED"
    typed = {
        "name": "typed",
        "title": "Every type",
        "keywords": ["types"],
        "licenses": [{"name": "CC0-1.0"}],
        "resources": [
            {"name": "values", "path": "values.csv", "schema": TYPED_SCHEMA},
            {"name": "notes", "path": "notes.txt"},
        ],
    }
    _push(
        alice,
        root,
        "typed",
        {"values.csv": TYPED_CSV, "notes.txt": b"not a table\n"},
        descriptor=typed,
        findability="unlisted",
    )
    assert hub.wait_processed(a, "typed")["state"] == "SUCCEEDED"
    _push(
        alice,
        root,
        "quarterly",
        {"q1.csv": b"quarter,amount\nQ1,10\n"},
        owner=org,
        findability="private",
    )
    with alice.client() as client:
        deadline = time.monotonic() + 60
        while client.get(f"/api/package/{org}/quarterly").status_code != 200:
            assert time.monotonic() < deadline, "the private package was not processed in time"
            time.sleep(0.1)
    _push(bob, root, "gone", {"old.csv": b"x\n1\n"})
    hub.wait_processed(bob.username, "gone")

    with alice.client() as client:
        assert client.post(
            f"/api/package/{a}/cities/tag", json={"version": "v1", "revision": 1}
        ).status_code in (200, 201)
        shared = client.put(
            f"/api/package/{a}/cities/collaborators/{bob.username}", json={"role": "viewer"}
        )
        assert shared.status_code == 200, shared.text
    with bob.client() as client:
        assert client.delete(f"/api/package/{bob.username}/gone").status_code == 200

    from dphub.client import Client

    with Client(hub.url, alice.token(), username=a) as client:
        read_key = client.create_api_key(name="reader", scope="read")["key"]

    tokens = {name: person.token() for name, person in people.items()}
    packages = [(a, "cities"), (a, "typed"), (org, "quarterly"), (bob.username, "gone")]
    owners = [a, bob.username, carol.username, org]
    found = Source(
        hub,
        root / "backup",
        people,
        tokens,
        _reads(hub, tokens["root"], owners, packages),
        read_key=read_key,
    )
    exported = hub.admin("admin", "export", str(found.backup))
    assert "keep it private" in exported.stdout
    found.answers = collect(hub, found)
    return found


def _reads(
    hub: HubServer, admin: str, owners: list[str], packages: list[tuple[str, str]]
) -> list[tuple[str, str]]:
    """Every read to compare, as (who, path): the hub-wide API for every visitor, each package's
    for an anonymous one, a member and collaborator (bob) and the site admin, the web pages (which
    know visitors by their cookie, not a token) for an anonymous one, and every file of every
    revision for the site admin, who may read them all."""
    hubwide = [
        "/api/auth/check",
        "/api/auth/keys",
        "/api/auth/public-key",
        "/.well-known/jwks.json",
        "/api/events",
        "/api/admin/audit",
        "/api/search/package?q=",
        "/api/search/package?q=cities",
        "/metastore/search?q=",
        "/api/3/action/package_list",
        "/api/3/action/package_search?q=",
        "/api/3/action/organization_list?all_fields=true",
    ]
    pages = ["/", "/search?q="]
    files: list[str] = []
    api: list[str] = []
    for owner in owners:
        hubwide += [f"/api/package/{owner}", f"/api/publisher/{owner}", f"/api/storage/{owner}"]
        hubwide.append(f"/api/3/action/organization_show?id={owner}&include_datasets=true")
        pages.append(f"/{owner}")
    with hub.client(admin) as client:
        for owner, name in packages:
            base = f"/api/package/{owner}/{name}"
            api += [base, f"{base}/revisions", f"{base}/tags", f"{base}/diff", f"{base}/events"]
            api += [f"{base}/collaborators", f"{base}/trusted-publishers", f"/{owner}/{name}"]
            api += [f"/resolver/resolve?path={owner}/{name}", f"/source/{owner}/{name}/latest"]
            pages += [f"/{owner}/{name}/history", f"/{owner}/{name}/changes"]
            revisions = client.get(f"{base}/revisions")
            if revisions.status_code != 200:
                continue  # the deleted package: its reads answer 404, compared above
            refs = [str(r["revision"]) for r in revisions.json()["revisions"]]
            refs += ["latest", "successful"]
            refs += [t["tag"] for t in client.get(f"{base}/tags").json()["tags"]]
            api += [f"{base}/revisions/{ref}" for ref in refs]
            ckan = client.get("/api/3/action/package_show", params={"id": f"{owner}/{name}"})
            if ckan.json().get("success"):
                api.append(f"/api/3/action/package_show?id={quote(ckan.json()['result']['id'])}")
                for resource in ckan.json()["result"]["resources"]:
                    ckan_id = quote(resource["id"])
                    api.append(f"/api/3/action/resource_show?id={ckan_id}")
                    api.append(f"/api/3/action/datastore_search?resource_id={ckan_id}")
            for ref in refs:
                pinned = f"/{owner}/{name}/v/{ref}"
                api.append(f"{pinned}/datapackage.json")
                pages += [pinned, f"{pinned}/processing"]
                described = client.get(f"{pinned}/datapackage.json")
                if described.status_code != 200:
                    continue  # the failed revision
                for resource in described.json()["resources"]:
                    files.append(str(resource["path"]).removeprefix(hub.url))
                stored = client.get(base, params={"revision": ref}).json()["descriptor"]
                for index, resource in enumerate(stored["resources"]):
                    files += [f"{pinned}/files/{resource['path']}", f"{pinned}/r/{index}.csv"]
                    table = quote(f"{owner}/{name}@{ref}/{resource['name']}")
                    api.append(f"/api/datastore/search?resource_id={table}&limit=100")
                    if ref == "successful":
                        sql = f'SELECT * FROM "{owner}/{name}/{resource["name"]}" ORDER BY _id'
                        api.append(f"/api/datastore/sql?sql={quote(sql)}")
                        proxied = quote(f"{{base}}{pinned}/r/{index}.csv", safe="{}/:")
                        api.append(f"/api/dataproxy?url={proxied}&format=json")
    everyone = ("anonymous", "alice", "bob", "carol", "root")
    return (
        [(who, path) for who in everyone for path in hubwide]
        + [(who, path) for who in ("anonymous", "bob", "root") for path in api]
        + [("anonymous", path) for path in pages]
        + [("root", path) for path in dict.fromkeys(files)]
    )


def collect(hub: HubServer, source: Source) -> Answers:
    """Each read's status and body, with the hub's own URL replaced by a placeholder."""
    answers: Answers = {}
    clients = {who: hub.client(token) for who, token in source.tokens.items()}
    clients["anonymous"] = hub.client()
    try:
        for who, path in source.reads:
            answer = clients[who].get(path.replace("{base}", hub.url))
            answers[(who, path)] = (answer.status_code, _body(answer, path, hub.url))
    finally:
        for client in clients.values():
            client.close()
    return answers


def _body(answer: httpx.Response, path: str, base: str) -> Any:
    """Files as bytes; the API's JSON as values (PostgreSQL does not keep the order of keys)."""
    kind = answer.headers.get("content-type", "")
    if "json" in kind and "/r/" not in path and "/files/" not in path:
        return _without(answer.json(), base)
    return answer.content.replace(base.encode(), b"{base}")


def _without(value: Any, base: str) -> Any:
    if isinstance(value, str):
        return value.replace(base, "{base}")
    if isinstance(value, list):
        return [_without(v, base) for v in value]
    if isinstance(value, dict):
        return {k: _without(v, base) for k, v in value.items()}
    return value


def assert_same_answers(source: Source, hub: HubServer) -> None:
    found = collect(hub, source)
    different = [key for key, answer in source.answers.items() if found[key] != answer]
    shown = "\n".join(
        f"{who} GET {path}: {_difference(source.answers[(who, path)], found[(who, path)])}"
        for who, path in different[:10]
    )
    assert not different, f"{len(different)} of {len(found)} answers differ:\n{shown}"
    assert sum(1 for status, _ in found.values() if status == 200) > len(found) // 2


def _difference(before: Any, after: Any, where: str = "") -> str:
    """Where two answers first differ, shortly."""
    if isinstance(before, tuple | list) and isinstance(after, tuple | list):
        if len(before) != len(after):
            return f"{where}: {len(before)} items, then {len(after)}"
        for index, (b, a) in enumerate(zip(before, after, strict=True)):
            if b != a:
                return _difference(b, a, f"{where}[{index}]")
    if isinstance(before, dict) and isinstance(after, dict):
        if before.keys() != after.keys():
            return f"{where}: keys {sorted(before)} then {sorted(after)}"
        for key in before:
            if before[key] != after[key]:
                return _difference(before[key], after[key], f"{where}.{key}")
    if isinstance(before, str | bytes) and isinstance(after, str | bytes):
        at = next((i for i, (b, a) in enumerate(zip(before, after, strict=False)) if b != a), None)
        at = min(len(before), len(after)) if at is None else at
        return f"{where} at {at}: {before[max(0, at - 80) : at + 80]!r} then {after[max(0, at - 80) : at + 80]!r}"
    return f"{where}: {before!r} then {after!r}"


def assert_accounts_work(source: Source, hub: HubServer) -> None:
    """Passwords, API keys and the source hub's tokens all still work."""
    alice = source.people["alice"]
    for secret in (alice.password, alice.secret, source.read_key):
        login = httpx.post(
            f"{hub.url}/api/auth/token",
            json={"username": alice.username, "secret": secret},
            timeout=30,
        )
        assert login.status_code == 200, login.text
    wrong = httpx.post(
        f"{hub.url}/api/auth/token",
        json={"username": alice.username, "secret": "not-it"},
        timeout=30,
    )
    assert wrong.status_code == 401
    with hub.client(source.tokens["alice"]) as client:
        assert client.get("/api/auth/check").json()["profile"]["username"] == alice.username


def _import(hub: HubServer, backup: Path, *flags: str, refused: bool = False) -> Any:
    done = hub.admin("admin", "import", str(backup), *flags, check=not refused)
    assert done.returncode == (1 if refused else 0)
    return done


def _assert_empty(hub: HubServer, source: Source) -> None:
    alice = source.people["alice"]
    assert (
        httpx.get(f"{hub.url}/api/package/{alice.username}/cities", timeout=30).status_code == 404
    )
    assert httpx.get(f"{hub.url}/api/search/package?q=", timeout=30).json()["total_count"] == 0
    login = httpx.post(
        f"{hub.url}/api/auth/token",
        json={"username": alice.username, "secret": alice.password},
        timeout=30,
    )
    assert login.status_code == 401


def test_the_backup_is_private_and_complete(source: Source) -> None:
    backup = source.backup
    assert stat.S_IMODE(backup.stat().st_mode) == 0o700
    modes = {stat.S_IMODE(p.stat().st_mode) for p in backup.rglob("*")}
    assert modes <= {0o700, 0o600}
    assert not list(backup.parent.glob(f".{backup.name}.partial-*"))
    manifest = json.loads((backup / "manifest.json").read_text())
    assert manifest["format"] == "dphub-backup"
    head = ScriptDirectory(str(MIGRATIONS)).get_current_head()
    assert manifest["alembic_revision"] == head
    rows = {t["name"]: t["rows"] for t in manifest["tables"]}
    assert set(rows) == set(Base.metadata.tables)  # every table of the schema, none named here
    assert rows["users"] == 4
    assert rows["packages"] == 4
    assert rows["revisions"] == 6
    assert rows["package_tags"] == 1
    assert rows["memberships"] == 3
    assert rows["datastore_tables"] == 5
    blobs = [json.loads(line) for line in (backup / "blobs.jsonl").read_text().splitlines()]
    assert len(blobs) == manifest["blobs"]["count"]
    assert sum(b["size"] for b in blobs) == manifest["blobs"]["bytes"]
    assert {p.name for p in (backup / "blobs").rglob("*") if p.is_file()} == {
        b["sha256"] for b in blobs
    }
    # a second export into the same folder is refused, and the first backup is left as it was
    again = source.hub.admin("admin", "export", str(backup), check=False)
    assert again.returncode == 1
    assert "already exists" in again.stderr


@pytest.fixture(scope="module")
def embedded_target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubServer]:
    hub = start_hub(tmp_path_factory.mktemp("backup-embedded"))
    yield hub
    stop_hub(hub)


def test_a_damaged_backup_changes_nothing(
    source: Source, embedded_target: HubServer, tmp_path: Path
) -> None:
    hub = embedded_target
    damaged = tmp_path / "damaged"
    shutil.copytree(source.backup, damaged)
    blobs = [json.loads(line) for line in (damaged / "blobs.jsonl").read_text().splitlines()]
    last = blobs[-1]["sha256"]  # imported after every other blob
    target = damaged / "blobs" / "sha256" / last[:2] / last[2:4] / last
    content = bytearray(target.read_bytes())
    content[0] ^= 1
    target.write_bytes(bytes(content))
    refused = _import(hub, damaged, refused=True)
    assert f"Blob {last}" in refused.stderr
    assert "does not match its SHA-256" in refused.stderr
    _assert_empty(hub, source)
    # the blobs that went in before are referenced by nothing, and gc removes them
    removed = hub.admin("gc", "--grace-hours", "0")
    assert f"Removed {len(blobs) - 1} blobs" in removed.stdout

    users = damaged / "tables" / "users.jsonl"
    users.write_text("".join(users.read_text().splitlines(keepends=True)[1:]))
    short = _import(hub, damaged, refused=True)
    assert "tables/users.jsonl (rows of users) does not match the manifest" in short.stderr
    _assert_empty(hub, source)


def test_embedded_to_embedded(source: Source, embedded_target: HubServer, tmp_path: Path) -> None:
    hub = embedded_target
    checked = _import(hub, source.backup, "--check")
    assert "verifies" in checked.stdout
    _assert_empty(hub, source)
    imported = _import(hub, source.backup)
    assert "Imported" in imported.stdout
    assert_same_answers(source, hub)
    assert_accounts_work(source, hub)
    again = _import(hub, source.backup, refused=True)
    assert "This hub is not empty (4 users, 5 publishers, 4 packages)" in again.stderr

    # the deleted package came along whole: its owner can bring it back
    bob = source.people["bob"].username
    with hub.client(source.tokens["bob"]) as client:
        assert client.post(f"/api/package/{bob}/gone/undelete").status_code == 200
        assert client.get(f"/{bob}/gone/r/0.csv").content == b"x\n1\n"
        counted = client.get(
            "/api/datastore/sql", params={"sql": f'SELECT sum(x) FROM "{bob}/gone/old"'}
        )
        assert counted.json()["records"] == [{"sum(x)": 1}], counted.text

    # an export that cannot finish (a blob the store lost) leaves no folder behind
    lost = next(p for p in (hub.data_dir / "blobs" / "sha256").rglob("*") if p.is_file())
    aside = lost.rename(lost.with_name("aside"))
    failed = hub.admin("admin", "export", str(tmp_path / "broken"), check=False)
    aside.rename(lost)
    assert failed.returncode == 1
    assert f"Blob {lost.name}" in failed.stderr
    assert "is not in the bitstore" in failed.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.fixture(scope="module")
def scale_target(
    tmp_path_factory: pytest.TempPathFactory, postgres_server: PostgresServer, s3_server: S3Server
) -> Iterator[HubServer]:
    extra = {
        "DPHUB_DATABASE_URL": postgres_server.create_database(),
        **s3_server.storage_env(s3_server.create_bucket(), prefix="restored"),
    }
    hub = start_hub(tmp_path_factory.mktemp("backup-scale"), extra, kind="scale")
    yield hub
    stop_hub(hub)


def test_embedded_to_scale_and_back(
    source: Source, scale_target: HubServer, tmp_path_factory: pytest.TempPathFactory
) -> None:
    _import(scale_target, source.backup)
    assert_same_answers(source, scale_target)
    # exported before the accounts are tried, which writes to the hub (audit events, key use)
    backup = tmp_path_factory.mktemp("backup-of-scale") / "backup"
    scale_target.admin("admin", "export", str(backup))
    assert_accounts_work(source, scale_target)

    hub = start_hub(tmp_path_factory.mktemp("backup-embedded-again"))
    try:
        _import(hub, backup)
        assert_same_answers(source, hub)
        assert_accounts_work(source, hub)
    finally:
        stop_hub(hub)
