"""Organizations, roles, collaborators and findability, end to end with the real CLI and plain HTTP."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path

import httpx

from tests.conftest import HubServer, Publisher, cli, write_package

_n = itertools.count(1)
CSV = b"year,value\n2020,1\n2021,2\n"


def _org(hub: HubServer, owner: Publisher) -> str:
    name = f"acme-{next(_n)}-{hub.kind}"
    with owner.client() as client:
        made = client.post("/api/org", json={"name": name, "title": "Acme Data"})
    assert made.status_code == 201, made.text
    assert made.json()["members"] == [{"username": owner.username, "role": "owner"}]
    return name


def _push(publisher: Publisher, root: Path, name: str, *args: str, data: bytes = CSV) -> None:
    folder = write_package(root / f"{name}-{next(_n)}", name, files={"values.csv": data})
    publisher.login()
    cli("push", str(folder), *args, env=publisher.env)


def _read_paths(owner: str, name: str, base: str) -> list[str]:
    """Every read path of a package: show, revisions, files, descriptor, derived outputs, datastore,
    DataProxy."""
    return [
        f"/api/package/{owner}/{name}",
        f"/api/package/{owner}/{name}/revisions",
        f"/api/package/{owner}/{name}/revisions/1",
        f"/{owner}/{name}",
        f"/{owner}/{name}/datapackage.json",
        f"/{owner}/{name}/v/1/datapackage.json",
        f"/{owner}/{name}/r/values.csv",
        f"/{owner}/{name}/r/values.json",
        f"/{owner}/{name}/r/values_csv.csv",
        f"/{owner}/{name}/r/values_preview.json",
        f"/{owner}/{name}/r/datapackage_zip.zip",
        f"/{owner}/{name}/files/values.csv",
        f"/{owner}/{name}/v/1/files/values.csv",
        f"/api/datastore/search?resource_id={owner}/{name}/values",
        f'/api/datastore/sql?sql=SELECT count(*) FROM "{owner}/{name}/values"',
        f"/api/dataproxy?url={base}/{owner}/{name}/r/values.csv",
    ]


def _statuses(hub: HubServer, paths: list[str], token: str | None) -> dict[str, int]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with httpx.Client(base_url=hub.url, headers=headers, timeout=60) as client:
        return {path: client.get(path).status_code for path in paths}


def test_org_members_by_role(
    hub: HubServer, make_publisher: Callable[..., Publisher], tmp_path: Path
) -> None:
    boss, writer, reader, outsider = (make_publisher(p) for p in ("boss", "wr", "rd", "out"))
    org = _org(hub, boss)
    with boss.client() as client:
        for user, role in ((writer, "editor"), (reader, "viewer")):
            answer = client.put(f"/api/org/{org}/members/{user.username}", json={"role": role})
            assert answer.status_code == 200, answer.text
    _push(writer, tmp_path, "quarterly", "--owner", org, "--private")

    paths = _read_paths(org, "quarterly", hub.url)
    for who in (boss, writer, reader):
        assert set(_statuses(hub, paths, who.token()).values()) <= {200, 302}, who.username
    refused = _statuses(hub, paths, outsider.token())
    assert set(refused.values()) == {404}, refused
    assert set(_statuses(hub, paths, None).values()) == {404}

    # viewers read but do not push
    reader.login()
    folder = write_package(tmp_path / "by-reader", "quarterly", files={"values.csv": b"a\n1\n"})
    refused_push = cli("push", str(folder), "--owner", org, env=reader.env, check=False)
    assert refused_push.returncode != 0
    assert "editor role" in refused_push.stdout + refused_push.stderr

    # the package list shows private packages to members only
    with reader.client() as client:
        assert client.get(f"/api/package/{org}").json()["data"] == ["quarterly"]
    with outsider.client() as client:
        assert client.get(f"/api/package/{org}").json()["data"] == []

    # members are visible to members, not to others
    with reader.client() as client:
        members = client.get(f"/api/publisher/{org}").json()["members"]
    assert {m["username"]: m["role"] for m in members} == {
        boss.username: "owner",
        writer.username: "editor",
        reader.username: "viewer",
    }
    with outsider.client() as client:
        shown = client.get(f"/api/publisher/{org}").json()
    assert shown["kind"] == "organization"
    assert "members" not in shown

    # the CLI shows the same
    boss.login()
    listed = cli("org", "show", org, env=boss.env)
    assert writer.username in listed.stdout
    assert "editor" in listed.stdout


def test_an_editor_cannot_escalate(
    hub: HubServer, make_publisher: Callable[..., Publisher], tmp_path: Path
) -> None:
    boss, editor, other = make_publisher("boss"), make_publisher("ed"), make_publisher("x")
    org = _org(hub, boss)
    with boss.client() as client:
        client.put(f"/api/org/{org}/members/{editor.username}", json={"role": "editor"})
    _push(editor, tmp_path, "series", "--owner", org)
    with editor.client() as client:
        as_owner = client.put(f"/api/org/{org}/members/{editor.username}", json={"role": "owner"})
        add_other = client.put(f"/api/org/{org}/members/{other.username}", json={"role": "owner"})
        hide = client.patch(f"/api/package/{org}/series", json={"findability": "private"})
        collab = client.put(
            f"/api/package/{org}/series/collaborators/{other.username}", json={"role": "owner"}
        )
    for refused in (as_owner, add_other, hide, collab):
        assert refused.status_code == 403, refused.text
        assert refused.json()["error"]["code"] == "forbidden"
    # nor by pushing another findability onto the package
    folder = write_package(tmp_path / "again", "series", files={"values.csv": b"year\n1999\n"})
    pushed = cli("push", str(folder), "--owner", org, "--private", env=editor.env, check=False)
    assert pushed.returncode != 0
    assert "owner role" in pushed.stdout + pushed.stderr
    with httpx.Client(base_url=hub.url) as anonymous:
        assert anonymous.get(f"/api/package/{org}/series").json()["findability"] == "published"


def test_the_last_owner_stays(hub: HubServer, make_publisher: Callable[..., Publisher]) -> None:
    boss = make_publisher("boss")
    org = _org(hub, boss)
    with boss.client() as client:
        leave = client.delete(f"/api/org/{org}/members/{boss.username}")
        demote = client.put(f"/api/org/{org}/members/{boss.username}", json={"role": "viewer"})
        bad_role = client.put(f"/api/org/{org}/members/{boss.username}", json={"role": "god"})
        nobody = client.put(f"/api/org/{org}/members/no-such-user-x", json={"role": "viewer"})
        user_ns = client.put(f"/api/org/{boss.username}/members/x", json={"role": "viewer"})
    assert leave.status_code == demote.status_code == 409
    assert "last owner" in leave.json()["error"]["message"]
    assert bad_role.status_code == 400
    assert bad_role.json()["error"]["field"] == "role"
    assert nobody.status_code == 404
    assert nobody.json()["error"]["code"] == "user-not-found"
    assert user_ns.status_code == 409
    assert "not an organization" in user_ns.text


def test_users_and_organizations_share_one_namespace(
    hub: HubServer, make_publisher: Callable[..., Publisher]
) -> None:
    boss, other = make_publisher("boss"), make_publisher("other")
    org = _org(hub, boss)
    with boss.client() as client:
        taken_by_user = client.post("/api/org", json={"name": other.username})
        taken_by_org = client.post("/api/org", json={"name": org})
        reserved = client.post("/api/org", json={"name": "api"})
        invalid = client.post("/api/org", json={"name": "Not Valid"})
    assert taken_by_user.status_code == taken_by_org.status_code == 409
    assert reserved.status_code == invalid.status_code == 400
    made = hub.admin(
        "user", "create", org, "--email", f"{org}@example.org", "--password-stdin",
        input="password-long-enough\n", check=False,
    )  # fmt: skip
    assert made.returncode != 0
    assert "organization" in made.stdout + made.stderr
    with httpx.Client(base_url=hub.url) as anonymous:
        assert anonymous.post("/api/org", json={"name": "anon-org"}).status_code == 401
        assert anonymous.get("/api/publisher/no-such-publisher").status_code == 404


def test_collaborators_on_one_package(
    hub: HubServer, make_publisher: Callable[..., Publisher], tmp_path: Path
) -> None:
    owner, helper = make_publisher("own"), make_publisher("help")
    _push(owner, tmp_path, "notes", "--private")
    _push(owner, tmp_path, "diary", "--private")
    owner.login()
    cli("collaborator", "add", f"{owner.username}/notes", helper.username, "--role", "editor",
        env=owner.env)  # fmt: skip
    listed = cli("collaborator", "list", f"{owner.username}/notes", env=owner.env)
    assert helper.username in listed.stdout
    assert "editor" in listed.stdout

    token = helper.token()
    assert set(_statuses(hub, _read_paths(owner.username, "notes", hub.url), token).values()) <= {
        200,
        302,
    }
    assert _statuses(hub, [f"/api/package/{owner.username}/diary"], token) == {
        f"/api/package/{owner.username}/diary": 404
    }
    _push(helper, tmp_path, "notes", "--owner", owner.username, data=CSV + b"2022,3\n")
    with helper.client() as client:
        revisions = client.get(f"/api/package/{owner.username}/notes/revisions").json()
    assert len(revisions["revisions"]) == 2
    # an editor collaborator may not create packages in the owner's namespace
    folder = write_package(tmp_path / "new", "fresh", files={"values.csv": CSV})
    created = cli("push", str(folder), "--owner", owner.username, env=helper.env, check=False)
    assert created.returncode != 0
    assert "may not publish" in created.stdout + created.stderr

    cli("collaborator", "remove", f"{owner.username}/notes", helper.username, env=owner.env)
    paths = [f"/api/package/{owner.username}/notes", f"/{owner.username}/notes/r/values.csv"]
    assert set(_statuses(hub, paths, helper.token()).values()) == {404}


def test_findability_changes_reach_every_read_path(
    hub: HubServer, publisher: Publisher, make_publisher: Callable[..., Publisher], tmp_path: Path
) -> None:
    other = make_publisher("other")
    _push(publisher, tmp_path, "weather")
    paths = _read_paths(publisher.username, "weather", hub.url)
    assert set(_statuses(hub, paths, None).values()) <= {200, 302}

    changed = cli("findability", f"{publisher.username}/weather", "private", env=publisher.env)
    assert "now private" in changed.stdout
    assert set(_statuses(hub, paths, None).values()) == {404}
    assert set(_statuses(hub, paths, other.token()).values()) == {404}
    assert set(_statuses(hub, paths, publisher.token()).values()) <= {200, 302}
    with httpx.Client(base_url=hub.url, timeout=30) as anonymous:
        assert anonymous.get(f"/api/package/{publisher.username}").json()["data"] == []
        private_file = anonymous.get(
            f"/{publisher.username}/weather/r/values.csv",
            headers={"Authorization": f"Bearer {publisher.token()}"},
        )
    assert private_file.headers.get("cache-control", "").startswith("private") or (
        private_file.status_code == 302
    )

    with publisher.client() as client:
        unlisted = client.patch(
            f"/api/package/{publisher.username}/weather", json={"findability": "unlisted"}
        )
        assert unlisted.json() == {
            "owner": publisher.username,
            "name": "weather",
            "findability": "unlisted",
        }
        wrong = client.patch(
            f"/api/package/{publisher.username}/weather", json={"findability": "hidden"}
        )
        extra = client.patch(f"/api/package/{publisher.username}/weather", json={"name": "x"})
    assert wrong.status_code == extra.status_code == 400
    assert set(_statuses(hub, paths, None).values()) <= {200, 302}
    with httpx.Client(base_url=hub.url, timeout=30) as anonymous:
        assert anonymous.get(f"/api/package/{publisher.username}").json()["data"] == []
    with publisher.client() as client:
        assert client.get(f"/api/package/{publisher.username}").json()["data"] == ["weather"]


def test_other_publishers_names_and_revisions_are_not_reachable(
    hub: HubServer, make_publisher: Callable[..., Publisher], tmp_path: Path
) -> None:
    """IDOR: the same URLs with another publisher's names, revision numbers and upload ids."""
    alice, mallory = make_publisher("alice"), make_publisher("mal")
    _push(alice, tmp_path, "ledger", "--private")
    token = mallory.token()
    guesses = [
        *_read_paths(alice.username, "ledger", hub.url),
        f"/api/package/{alice.username}/ledger/revisions/latest",
        f"/api/package/{alice.username}/ledger/collaborators",
        f"/{alice.username}/ledger/v/1/r/values.csv",
        f"/{alice.username}/ledger/v/2/r/values.csv",
    ]
    assert set(_statuses(hub, guesses, token).values()) == {404}
    with mallory.client() as client:
        writes = [
            client.patch(
                f"/api/package/{alice.username}/ledger", json={"findability": "published"}
            ),
            client.put(
                f"/api/package/{alice.username}/ledger/collaborators/{mallory.username}",
                json={"role": "owner"},
            ),
            client.post(
                "/api/datastore/authorize",
                json={
                    "metadata": {"owner": alice.username, "name": "ledger"},
                    "filedata": {"a.csv": {"size": 1, "sha256": "0" * 64, "name": "a.csv"}},
                },
            ),
        ]
    assert [w.status_code for w in writes] == [404, 404, 404]
    assert all(w.json()["error"]["code"] == "package-not-found" for w in writes)
    # not found to the caller, a refusal in the hub's log
    log = hub.log_text()
    assert f"refused GET /api/package/{alice.username}/ledger from" in log
    assert f"refused PATCH /api/package/{alice.username}/ledger from" in log


def test_a_private_blob_is_not_reachable_by_its_content_key(
    hub: HubServer, publisher: Publisher, make_publisher: Callable[..., Publisher], tmp_path: Path
) -> None:
    """Bytes are stored under their SHA-256: knowing it must not be enough to read them."""
    import hashlib

    secret = b"id,secret\n1,the launch code is 0000\n"
    digest = hashlib.sha256(secret).hexdigest()
    folder = write_package(tmp_path / "vault", "vault", files={"secret.csv": secret})
    cli("push", str(folder), "--private", env=publisher.env)
    thief = make_publisher("thief")
    token = thief.token()
    with httpx.Client(base_url=hub.url, timeout=30) as client:
        for path in (
            f"/api/bitstore/upload/{digest}",
            f"/api/bitstore/{digest}",
            f"/bitstore/{digest}",
            f"/blobs/{digest}",
            f"/api/bitstore/upload/sha256/{digest}",
        ):
            for headers in ({}, {"Authorization": f"Bearer {token}"}):
                answer = client.get(path, headers=headers)
                assert answer.status_code in (404, 405), (path, answer.status_code)
                assert secret not in answer.content
    # naming the hash in a push does not make the hub treat the bytes as held by the thief
    with thief.client() as client:
        answer = client.post(
            "/api/datastore/authorize",
            json={
                "metadata": {"name": "stolen"},
                "filedata": {
                    "secret.csv": {"size": len(secret), "sha256": digest, "name": "secret.csv"}
                },
            },
        )
    assert answer.status_code == 200
    assert answer.json()["filedata"]["secret.csv"]["exists"] is False
    if hub.kind == "scale":
        # the object store itself does not serve the blob without a signature
        from dphub.bitstore.local import blob_relpath
        from dphub.bitstore.s3 import parse_storage_url

        bucket, prefix = parse_storage_url(hub.env["DPHUB_STORAGE_URL"])
        key = prefix + blob_relpath(digest)
        with httpx.Client(timeout=30) as plain:
            got = plain.get(f"{hub.env['DPHUB_S3_ENDPOINT_URL']}/{bucket}/{key}")
        assert got.status_code == 403
        assert secret not in got.content


def test_a_role_taken_away_stops_the_push_at_finalize(
    hub: HubServer, make_publisher: Callable[..., Publisher]
) -> None:
    import hashlib

    boss, editor = make_publisher("boss"), make_publisher("ed")
    org = _org(hub, boss)
    with boss.client() as client:
        client.put(f"/api/org/{org}/members/{editor.username}", json={"role": "editor"})
    descriptor = b'{"name": "late", "resources": [{"name": "a", "data": [{"x": 1}]}]}'
    with editor.client() as client:
        answer = client.post(
            "/api/datastore/authorize",
            json={
                "metadata": {"owner": org, "name": "late"},
                "filedata": {
                    "datapackage.json": {
                        "size": len(descriptor),
                        "sha256": hashlib.sha256(descriptor).hexdigest(),
                        "name": "datapackage.json",
                    }
                },
            },
        )
        assert answer.status_code == 200, answer.text
        entry = answer.json()["filedata"]["datapackage.json"]
        put = httpx.put(
            entry["put_url"], content=descriptor, headers=entry.get("put_headers"), timeout=30
        )
        assert put.status_code in (200, 201, 204), put.text
        with boss.client() as owner_client:
            owner_client.put(f"/api/org/{org}/members/{editor.username}", json={"role": "viewer"})
        finalized = client.post(
            "/api/package/upload",
            json={"datapackage": entry["upload_url"] + "/" + entry["upload_query"]["key"]},
        )
    assert finalized.status_code == 403, finalized.text
    with boss.client() as client:
        assert client.get(f"/api/package/{org}/late").status_code == 404
