"""Tags end to end on both hubs: created by editors, immutable, moved by owners only, listed, and
accepted by every read route wherever a revision number is."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path

import httpx

from tests.conftest import HubServer, Publisher, cli, fetch, write_package

_n = itertools.count(1)
V1 = b"year,value\n2020,1\n2021,2\n"
V2 = b"year,value\n2020,1\n2021,2\n2022,3\n"


def _push(publisher: Publisher, root: Path, name: str, data: bytes, *args: str) -> None:
    folder = write_package(root / f"{name}-{next(_n)}", name, files={"values.csv": data})
    pushed = cli("push", str(folder), *args, env=publisher.env)
    assert "SUCCEEDED" in pushed.stdout + pushed.stderr, pushed.stdout + pushed.stderr


def _org(hub: HubServer, boss: Publisher, editor: Publisher) -> str:
    org = f"tags-{next(_n)}-{hub.kind}"
    with boss.client() as client:
        assert client.post("/api/org", json={"name": org}).status_code == 201
        member = client.put(f"/api/org/{org}/members/{editor.username}", json={"role": "editor"})
        assert member.status_code == 200, member.text
    return org


def _error(response: httpx.Response) -> str:
    return str(response.json()["error"]["code"])


def test_tags_are_created_listed_and_read_everywhere(publisher: Publisher, tmp_path: Path) -> None:
    hub, owner = publisher.hub, publisher.username
    _push(publisher, tmp_path, "rain", V1)
    _push(publisher, tmp_path, "rain", V2)

    made = cli("tag", f"{owner}/rain", "v1.0", "--revision", "1", env=publisher.env)
    assert f"{owner}/rain@v1.0 names revision 1" in made.stdout
    with publisher.client() as client:
        latest = client.post(f"/api/package/{owner}/rain/tag", json={"version": "v2.0+build.7"})
        assert latest.status_code == 201, latest.text
        assert latest.json() == {"package": f"{owner}/rain", "tag": "v2.0+build.7", "revision": 2}
        listed = client.get(f"/api/package/{owner}/rain/tags").json()["tags"]
    assert [(t["tag"], t["revision"], t["created_by"]) for t in listed] == [
        ("v2.0+build.7", 2, owner),
        ("v1.0", 1, owner),
    ]
    assert all(t["created_at"] for t in listed)
    assert "v2.0+build.7" in cli("tags", f"{owner}/rain", env=publisher.env).stdout
    assert "v1.0" in cli("tag", f"{owner}/rain", "--list", env=publisher.env).stdout

    base = f"{hub.url}/{owner}/rain"
    api = f"{hub.url}/api/package/{owner}/rain"
    assert httpx.get(api, params={"revision": "v1.0"}).json()["revision"] == 1
    assert httpx.get(api, params={"revision": "v2.0+build.7"}).json()["revision"] == 2
    assert httpx.get(f"{api}/revisions/v1.0").json()["revision"] == 1
    descriptor = httpx.get(f"{base}/v/v1.0/datapackage.json")
    assert descriptor.status_code == 200
    assert descriptor.json()["resources"][0]["path"] == f"{base}/v/1/r/values.csv"
    assert fetch(f"{base}/v/v1.0/r/values.csv").content == V1
    assert fetch(f"{base}/v/v1.0/files/values.csv").content == V1
    assert fetch(f"{base}/v/v2.0%2Bbuild.7/files/values.csv").content == V2
    assert len(fetch(f"{base}/v/v1.0/r/values.json").json()) == 2
    search = httpx.get(
        f"{hub.url}/api/datastore/search", params={"resource_id": f"{owner}/rain@v1.0/values"}
    )
    assert search.status_code == 200, search.text
    assert search.json()["total"] == 2
    sql = httpx.get(
        f"{hub.url}/api/datastore/sql",
        params={"sql": f'SELECT count(*) AS n FROM "{owner}/rain@v2.0+build.7/values"'},
    )
    assert sql.status_code == 200, sql.text
    assert sql.json()["records"] == [{"n": 3}]
    proxied = httpx.get(
        f"{hub.url}/api/dataproxy",
        params={"url": f"{base}/v/v1.0/r/values.csv", "format": "csv"},
    )
    assert proxied.status_code == 200, proxied.text
    assert proxied.text.replace("\r\n", "\n") == V1.decode()
    proxied = httpx.get(
        f"{hub.url}/api/dataproxy",
        params={"url": f"/{owner}/rain/v/v2.0%2Bbuild.7/r/values.csv", "format": "json"},
    )
    assert proxied.status_code == 200, proxied.text
    assert len(proxied.json()["data"]) == 3
    shown = cli("info", f"{owner}/rain", "--revision", "v1.0", "--json", env=publisher.env)
    assert '"revision": 1' in shown.stdout
    status = cli("status", f"{owner}/rain@v1.0", env=publisher.env)
    assert "Revision 1" in status.stdout


def test_tag_addressed_answers_revalidate(publisher: Publisher, tmp_path: Path) -> None:
    """An owner can move a tag, so what /v/<tag>/ serves is never cached as immutable; a number's is."""
    hub, owner = publisher.hub, publisher.username
    _push(publisher, tmp_path, "cached", V1)
    with publisher.client() as client:
        assert client.post(f"/api/package/{owner}/cached/tag", json={"version": "v1"}).is_success
    base = f"{hub.url}/{owner}/cached"
    pinned = httpx.get(f"{base}/v/1/datapackage.json").headers["cache-control"]
    assert "immutable" in pinned
    answers = [
        httpx.get(f"{base}/v/v1/datapackage.json"),
        httpx.get(f"{base}/v/v1/r/values.csv"),
        httpx.get(f"{base}/v/v1/files/values.csv"),
        httpx.get(f"{base}/v/v1/r/values.json"),
        httpx.get(f"{base}/v/latest/datapackage.json"),
        httpx.get(f"{hub.url}/api/dataproxy", params={"url": f"{base}/v/v1/r/values.csv"}),
    ]
    for answer in answers:
        assert answer.status_code in (200, 302), answer.text
        assert "immutable" not in answer.headers["cache-control"], answer.request.url
        assert answer.headers["cache-control"] in ("public, no-cache", "no-store")
    proxied_pinned = httpx.get(
        f"{hub.url}/api/dataproxy", params={"url": f"{base}/v/1/r/values.csv"}
    )
    assert "immutable" in proxied_pinned.headers["cache-control"]


def test_tags_are_immutable_and_only_owners_move_them(
    hub: HubServer, make_publisher: Callable[..., Publisher], tmp_path: Path
) -> None:
    boss, editor = make_publisher("boss"), make_publisher("ed")
    org = _org(hub, boss, editor)
    editor.login()
    _push(editor, tmp_path, "series", V1, "--owner", org)
    _push(editor, tmp_path, "series", V2, "--owner", org)
    path = f"/api/package/{org}/series/tag"

    with editor.client() as client:
        made = client.post(path, json={"version": "stable", "revision": 1})
        assert made.status_code == 201, made.text
        again = client.post(path, json={"version": "stable", "revision": 1})
        assert again.status_code == 200
        assert again.json()["revision"] == 1
        clash = client.post(path, json={"version": "stable", "revision": 2})
        assert clash.status_code == 409
        assert clash.json()["error"]["code"] == "tag-exists"
        assert clash.json()["error"]["revision"] == 1
        forced = client.post(path, json={"version": "stable", "revision": 2, "force": True})
        assert forced.status_code == 403, forced.text
        assert "owner role" in forced.json()["error"]["message"]
    refused = cli("tag", f"{org}/series", "stable", "-r", "2", env=editor.env, check=False)
    assert refused.returncode == 1
    assert "already names revision 1" in refused.stderr
    assert fetch(f"{hub.url}/{org}/series/v/stable/r/values.csv").content == V1

    boss.login()
    moved = cli("tag", f"{org}/series", "stable", "-r", "2", "--force", env=boss.env)
    assert "names revision 2 (moved from revision 1)" in moved.stdout
    assert fetch(f"{hub.url}/{org}/series/v/stable/r/values.csv").content == V2
    with boss.client() as client:
        tags = client.get(f"/api/package/{org}/series/tags").json()["tags"]
    assert [(t["tag"], t["revision"], t["created_by"]) for t in tags] == [
        ("stable", 2, boss.username)
    ]


def test_bad_tags_and_refs_are_refused(
    publisher: Publisher, make_publisher: Callable[..., Publisher], tmp_path: Path
) -> None:
    hub, owner = publisher.hub, publisher.username
    _push(publisher, tmp_path, "checked", V1)
    _push(publisher, tmp_path, "secret", V1, "--private")
    path = f"/api/package/{owner}/checked/tag"
    with publisher.client() as client:
        for tag in ("12", "007", "latest", "Successful", "v 1", "a/b", "-x", "x" * 101, ""):
            answer = client.post(path, json={"version": tag})
            assert answer.status_code == 400, (tag, answer.text)
            assert _error(answer) == "invalid-tag"
        for body in (
            {},
            {"version": 1},
            {"version": "ok", "revision": True},
            {"version": "ok", "revision": [1]},
            {"version": "ok", "force": "yes"},
            {"version": "ok", "colour": "red"},
            ["version"],
        ):
            answer = client.post(path, json=body)
            assert answer.status_code == 400, (body, answer.text)
        not_json = client.post(path, content=b"{", headers={"Content-Type": "application/json"})
        assert _error(not_json) == "invalid-json"
        missing = client.post(path, json={"version": "v9", "revision": 99})
        assert missing.status_code == 404
        assert _error(missing) == "revision-not-found"
        unknown = client.post(f"/api/package/{owner}/nothing-here/tag", json={"version": "v1"})
        assert _error(unknown) == "package-not-found"
        assert client.get(f"/api/package/{owner}/checked/tags").json() == {"tags": []}
    anonymous = httpx.post(f"{hub.url}{path}", json={"version": "v1"})
    assert anonymous.status_code == 401
    stranger = make_publisher("stranger")
    with stranger.client() as client:
        assert client.post(path, json={"version": "v1"}).status_code == 403
        hidden = client.post(f"/api/package/{owner}/secret/tag", json={"version": "v1"})
        assert hidden.status_code == 404
        assert _error(hidden) == "package-not-found"
        assert client.get(f"/api/package/{owner}/secret/tags").status_code == 404
    local = cli("tag", f"{owner}/checked", "12", env=publisher.env, check=False)
    assert local.returncode == 1
    assert "revision number" in local.stderr

    for url in (
        f"{hub.url}/{owner}/checked/v/nope/datapackage.json",
        f"{hub.url}/api/package/{owner}/checked/revisions/nope",
        f"{hub.url}/api/package/{owner}/checked?revision=nope",
        f"{hub.url}/{owner}/checked/v/{'x' * 300}/r/values.csv",
    ):
        answer = httpx.get(url)
        assert answer.status_code == 404, url
        assert _error(answer) == "revision-not-found"
    table = httpx.get(
        f"{hub.url}/api/datastore/search", params={"resource_id": f"{owner}/checked@nope/values"}
    )
    assert _error(table) == "table-not-found"
