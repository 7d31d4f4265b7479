"""A package's life cycle on both hubs: soft delete hides it from every read at once, undelete
brings it back, purge removes what only it used (never what a push is reusing), and `dphub gc`
collects what nothing references."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from botocore.exceptions import ClientError

from dphub.bitstore.local import blob_relpath
from dphub.bitstore.s3 import parse_storage_url
from tests.conftest import (
    HubServer,
    Publisher,
    cli,
    new_publisher,
    start_hub,
    stop_hub,
    write_package,
)
from tests.e2e.test_bad_input import authorize, error_code, finalize, post_form

CSV = b"year,value\n2020,1\n2021,2\n2022,3\n"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def blob_exists(hub: HubServer, sha256: str) -> bool:
    """Whether the hub's store holds the blob (looked at directly, not through the hub)."""
    if hub.kind == "embedded":
        return (hub.data_dir / "blobs" / blob_relpath(sha256)).is_file()
    bucket, prefix = parse_storage_url(hub.env["DPHUB_STORAGE_URL"])
    client = boto3.client(
        "s3",
        endpoint_url=hub.env["DPHUB_S3_ENDPOINT_URL"],
        aws_access_key_id=hub.env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=hub.env["AWS_SECRET_ACCESS_KEY"],
        region_name=hub.env["AWS_DEFAULT_REGION"],
    )
    try:
        client.head_object(Bucket=bucket, Key=prefix + blob_relpath(sha256))
    except ClientError:
        return False
    return True


def assert_readable(client: httpx.Client, owner: str, name: str) -> None:
    """Every file of the package's latest revision is served with its own bytes."""
    show = client.get(f"/api/package/{owner}/{name}").json()
    assert show["files"]
    for entry in show["files"]:
        got = client.get(entry["url"])
        assert got.status_code == 200, (entry, got.text[:200])
        assert sha(got.content) == entry["sha256"]


def in_background(work: Callable[[], Any]) -> Callable[[], Any]:
    """Start ``work`` in a thread; the returned function waits for it and gives its result."""
    result: list[Any] = []
    thread = threading.Thread(target=lambda: result.append(work()))
    thread.start()

    def wait() -> Any:
        thread.join()
        return result[0]

    return wait


def push(publisher: Publisher, folder: Path, *flags: str) -> str:
    result = cli("push", str(folder), *flags, env=publisher.env)
    assert "SUCCEEDED" in result.stdout + result.stderr, result.stdout + result.stderr
    return result.stdout


def read_paths(hub: HubServer, owner: str, name: str) -> dict[str, dict[str, str] | None]:
    """Every route that reads the package, by path (with its query, if any)."""
    table = f"{owner}/{name}/values"
    return {
        f"/api/package/{owner}/{name}": None,
        f"/api/package/{owner}/{name}/revisions": None,
        f"/api/package/{owner}/{name}/revisions/latest": None,
        f"/api/package/{owner}/{name}/revisions/1": None,
        f"/{owner}/{name}": None,
        f"/{owner}/{name}/datapackage.json": None,
        f"/{owner}/{name}/v/1/datapackage.json": None,
        f"/{owner}/{name}/r/values.csv": None,
        f"/{owner}/{name}/r/values.json": None,
        f"/{owner}/{name}/v/1/r/values.csv": None,
        f"/{owner}/{name}/files/values.csv": None,
        f"/{owner}/{name}/v/1/files/values.csv": None,
        "/api/datastore/search": {"resource_id": table},
        "/api/datastore/sql": {"sql": f'SELECT count(*) AS n FROM "{table}"'},
        "/api/dataproxy": {"url": f"{hub.url}/{owner}/{name}/r/values.csv"},
    }


def statuses(client: httpx.Client, paths: dict[str, dict[str, str] | None]) -> dict[str, int]:
    return {path: client.get(path, params=params).status_code for path, params in paths.items()}


def listed(client: httpx.Client, owner: str) -> tuple[list[str], list[str]]:
    """The owner's packages in its list and in search."""
    names = client.get(f"/api/package/{owner}").json()["data"]
    found = client.get("/api/search/package", params={"owner": owner}).json()["items"]
    return names, sorted(item["name"] for item in found)


def test_delete_hides_every_read_at_once_and_undelete_restores(
    publisher: Publisher, make_publisher: Callable[..., Publisher], tmp_path: Path
) -> None:
    hub, owner = publisher.hub, publisher.username
    push(publisher, write_package(tmp_path / "kept", "kept", files={"values.csv": CSV}))
    push(publisher, write_package(tmp_path / "gone", "gone", files={"values.csv": CSV}))
    paths = read_paths(hub, owner, "gone")
    everyone = [publisher.client(), hub.client(), make_publisher("reader").client()]
    own = everyone[0]
    try:
        for client in everyone:
            assert set(statuses(client, paths).values()) == {200}, statuses(client, paths)
            assert listed(client, owner) == (["gone", "kept"], ["gone", "kept"])

        deleted = cli("delete", f"{owner}/gone", env=publisher.env)
        assert f"dphub undelete {owner}/gone" in deleted.stdout

        for client in everyone:
            assert set(statuses(client, paths).values()) == {404}, statuses(client, paths)
            assert listed(client, owner) == (["kept"], ["kept"])
        codes = {error_code(own.get(p, params=q)) for p, q in paths.items()}
        assert codes <= {"package-not-found", "table-not-found"}, codes
        # the package that shared the deleted one's bytes reads on
        kept = own.get(f"/{owner}/kept/r/values.csv")
        assert (kept.status_code, kept.content) == (200, CSV)

        # deleting again changes nothing
        again = own.delete(f"/api/package/{owner}/gone")
        assert again.status_code == 200
        assert again.json()["deleted"] is True

        cli("undelete", f"{owner}/gone", env=publisher.env)
        for client in everyone:
            assert set(statuses(client, paths).values()) == {200}, statuses(client, paths)
            assert listed(client, owner) == (["gone", "kept"], ["gone", "kept"])
        revisions = own.get(f"/api/package/{owner}/gone/revisions").json()
        assert [r["revision"] for r in revisions["revisions"]] == [1]
        events = own.get(f"/api/package/{owner}/gone/events").json()["events"]
        assert [e["kind"] for e in events][:2] == ["undeleted", "deleted"]
    finally:
        for client in everyone:
            client.close()


def test_a_deleted_package_is_known_only_to_its_owners(
    publisher: Publisher, make_publisher: Callable[..., Publisher], tmp_path: Path
) -> None:
    hub, owner = publisher.hub, publisher.username
    org = f"gone-org-{owner}"
    editor = make_publisher("editor")
    with publisher.client() as client:
        assert client.post("/api/org", json={"name": org}).status_code == 201
        member = client.put(f"/api/org/{org}/members/{editor.username}", json={"role": "editor"})
        assert member.status_code == 200
    push(
        publisher,
        write_package(tmp_path / "p", "secret", files={"values.csv": CSV}),
        "--owner",
        org,
    )
    base = f"/api/package/{org}/secret"
    with publisher.client() as client:
        assert client.delete(base).status_code == 200
    stranger = make_publisher("stranger")
    for caller in (stranger, editor):
        with caller.client() as client:
            for method, path in (("POST", "/undelete"), ("DELETE", "/purge"), ("DELETE", "")):
                answer = client.request(method, base + path)
                assert (answer.status_code, error_code(answer)) == (404, "package-not-found")
    with hub.client() as anonymous:
        assert anonymous.post(base + "/undelete").status_code == 401
    # an editor may push to the organization, and is told why this name is taken
    with editor.client() as client:
        refused = client.post(
            "/api/datastore/authorize",
            json={
                "metadata": {"owner": org, "name": "secret"},
                "filedata": {"values.csv": {"size": len(CSV), "sha256": sha(CSV)}},
            },
        )
    assert (refused.status_code, error_code(refused)) == (409, "package-deleted")
    assert "undelete" in refused.json()["error"]["message"]
    with publisher.client() as client:
        back = client.post(base + "/undelete")
        assert back.status_code == 200
        assert back.json() == {
            "owner": org,
            "name": "secret",
            "findability": "published",
            "deleted": False,
            "deleted_at": None,
        }
        assert client.post(base + "/undelete").status_code == 409


def test_a_push_to_a_deleted_name_is_refused_until_undeleted_or_purged(
    publisher: Publisher, tmp_path: Path
) -> None:
    owner = publisher.username
    folder = write_package(tmp_path / "p", "again", files={"values.csv": CSV})
    push(publisher, folder)
    cli("delete", f"{owner}/again", env=publisher.env)
    refused = cli("push", str(folder), env=publisher.env, check=False)
    assert refused.returncode == 1
    assert f"{owner}/again was deleted" in refused.stderr
    assert "dphub undelete" in refused.stderr
    assert "dphub purge" in refused.stderr
    assert "Traceback" not in refused.stderr

    purged = cli("purge", f"{owner}/again", "--yes", env=publisher.env)
    assert f"Purged {owner}/again: 1 revision" in purged.stdout
    push(publisher, folder)  # a new package of that name
    with publisher.client() as client:
        show = client.get(f"/api/package/{owner}/again").json()
    assert show["revision"] == 1


def test_purge_asks_first(publisher: Publisher, tmp_path: Path) -> None:
    owner = publisher.username
    push(publisher, write_package(tmp_path / "p", "asked", files={"values.csv": CSV}))
    declined = cli("purge", f"{owner}/asked", env=publisher.env, input="n\n", check=False)
    assert declined.returncode == 1
    assert "Nothing was purged" in declined.stderr
    with publisher.client() as client:
        assert client.get(f"/api/package/{owner}/asked").status_code == 200


def test_purge_removes_what_only_the_package_used(
    publisher: Publisher, make_publisher: Callable[..., Publisher], tmp_path: Path
) -> None:
    hub, owner = publisher.hub, publisher.username
    unique = f"only,{owner}\n1,2\n".encode()
    shared = f"shared,{owner}\n3,4\n".encode()
    push(
        publisher,
        write_package(tmp_path / "a", "purged", files={"values.csv": unique, "shared.csv": shared}),
    )
    other = make_publisher("other")
    other.login()
    push(other, write_package(tmp_path / "b", "keeper", files={"shared.csv": shared}))
    with publisher.client() as client:
        show = client.get(f"/api/package/{owner}/purged").json()
        derived = {d["hash"].removeprefix("sha256:") for d in show["derived"]}
        files = {f["path"]: f["sha256"] for f in show["files"]}
        assert derived
        assert all(blob_exists(hub, s) for s in [*derived, *files.values()])

        answer = client.delete(f"/api/package/{owner}/purged/purge")
        assert answer.status_code == 200, answer.text
        summary = answer.json()
        assert summary["revisions"] == 1
        assert summary["tables"] == 2  # values and shared were loaded
        assert client.get(f"/api/package/{owner}/purged").status_code == 404
        assert client.delete(f"/api/package/{owner}/purged/purge").status_code == 404
        events = client.get("/api/events", params={"owner": owner}).json()["events"]
        assert events[0]["kind"] == "purged"

    assert not blob_exists(hub, sha(unique))
    assert not blob_exists(hub, files["datapackage.json"])
    assert blob_exists(hub, sha(shared))
    # the derived files of shared.csv are the other package's too; the rest were only this one's
    with other.client() as client:
        kept = client.get(f"/api/package/{other.username}/keeper").json()
        kept_derived = {d["hash"].removeprefix("sha256:") for d in kept["derived"]}
        assert_readable(client, other.username, "keeper")
        rows = client.get(
            "/api/datastore/search", params={"resource_id": f"{other.username}/keeper/shared"}
        ).json()
        assert rows["total"] == 1
    still_used = {f["sha256"] for f in kept["files"]} | kept_derived
    candidates = set(files.values()) | derived
    for digest in candidates:
        assert blob_exists(hub, digest) == (digest in still_used)
    # and the previews, which the package answer does not list
    assert summary["blobs"]["removed"] >= len(candidates - still_used)
    assert summary["blobs"]["kept"] >= len(candidates & still_used)


def test_purge_keeps_a_blob_a_push_holds_in_its_upload_session(
    publisher: Publisher, tmp_path: Path
) -> None:
    """Authorize offers the blob as held; the purge comes before finalize: the push wins."""
    hub, owner = publisher.hub, publisher.username
    data = f"reused,{owner}\n1,2\n".encode()
    push(publisher, write_package(tmp_path / "a", "first", files={"values.csv": data}))
    descriptor = b'{"name": "second", "resources": [{"name": "values", "path": "values.csv"}]}'
    with publisher.client() as client:
        granted = authorize(
            client, owner, "second", {"datapackage.json": descriptor, "values.csv": data}
        )
        assert granted["values.csv"]["exists"] is True
        purged = client.delete(f"/api/package/{owner}/first/purge").json()
        assert purged["blobs"]["kept"] >= 1
        assert blob_exists(hub, sha(data))
        assert post_form(granted["datapackage.json"], descriptor).status_code == 204
        done = finalize(client, granted["datapackage.json"])
        assert done.status_code == 200, done.text
        got = client.get(f"/{owner}/second/r/values.csv")
        assert (got.status_code, got.content) == (200, data)


def test_a_push_after_the_purge_uploads_the_bytes_again(
    publisher: Publisher, tmp_path: Path
) -> None:
    hub, owner = publisher.hub, publisher.username
    data = f"again,{owner}\n1,2\n".encode()
    push(publisher, write_package(tmp_path / "a", "before", files={"values.csv": data}))
    with publisher.client() as client:
        assert client.delete(f"/api/package/{owner}/before/purge").status_code == 200
    assert not blob_exists(hub, sha(data))
    out = push(publisher, write_package(tmp_path / "b", "after", files={"values.csv": data}))
    assert "Uploading" in out or blob_exists(hub, sha(data))
    with publisher.client() as client:
        got = client.get(f"/{owner}/after/r/values.csv")
        assert (got.status_code, got.content) == (200, data)


def test_purge_racing_pushes_that_reuse_its_blobs(publisher: Publisher, tmp_path: Path) -> None:
    """Purges and pushes of the same bytes at once, in whatever interleaving the timing gives:
    every push succeeds with every file of its revision readable."""
    owner = publisher.username
    for attempt in range(4):
        data = f"race,{owner}\n{attempt},0\n".encode() + b"1,2\n" * 200
        old = write_package(tmp_path / f"old{attempt}", f"old{attempt}", files={"values.csv": data})
        push(publisher, old)
        new = write_package(tmp_path / f"new{attempt}", f"new{attempt}", files={"values.csv": data})

        def purge(index: int = attempt) -> httpx.Response:
            time.sleep(0.4 * index)  # from before the push's authorize to past its finalize
            with publisher.client() as client:
                return client.delete(f"/api/package/{owner}/old{index}/purge")

        purged = in_background(purge)
        pushed = cli("push", str(new), env=publisher.env, check=False)
        assert purged().status_code == 200
        assert pushed.returncode == 0, pushed.stderr
        with publisher.client() as client:
            assert_readable(client, owner, f"new{attempt}")
            got = client.get(f"/{owner}/new{attempt}/r/values.csv")
            assert (got.status_code, got.content) == (200, data)


# dphub gc runs on a hub of its own, whose upload sessions expire within seconds


SESSION_TTL = 4


@pytest.fixture(scope="module", params=["embedded", "scale"])
def gc_hub(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[HubServer]:
    extra = {"DPHUB_SESSION_TTL": str(SESSION_TTL)}
    if request.param == "scale":
        postgres = request.getfixturevalue("postgres_server")
        s3 = request.getfixturevalue("s3_server")
        extra.update(
            DPHUB_DATABASE_URL=postgres.create_database(),
            **s3.storage_env(s3.create_bucket(), prefix="hub"),
        )
    server = start_hub(
        tmp_path_factory.mktemp(f"gc-{request.param}"),
        extra,
        kind=request.param,
        workers=1 if request.param == "scale" else 0,
    )
    yield server
    stop_hub(server)


@pytest.fixture
def gc_publisher(gc_hub: HubServer, tmp_path: Path) -> Publisher:
    p = new_publisher(gc_hub, tmp_path / "home", "gc")
    p.login()
    return p


def orphan(publisher: Publisher, data: bytes, *, sha256: bool = True) -> dict[str, Any]:
    """Upload ``data`` in a push that is never finalized; returns its authorize answer."""
    with publisher.client() as client:
        granted = authorize(client, publisher.username, "never", {"o.csv": data}, sha256=sha256)
    assert post_form(granted["o.csv"], data).status_code == 204
    return granted


def expire_sessions() -> None:
    time.sleep(SESSION_TTL + 1)


def gc(hub: HubServer, *args: str) -> str:
    return hub.admin("gc", *args).stdout


def test_gc_lists_in_a_dry_run_and_collects_an_orphan(gc_publisher: Publisher) -> None:
    hub = gc_publisher.hub
    data = f"orphan,{gc_publisher.username}\n1,2\n".encode()
    orphan(gc_publisher, data)
    assert blob_exists(hub, sha(data))

    spared = gc(hub, "--dry-run", "--grace-hours", "0")
    assert sha(data) not in spared  # its upload session is still open
    expire_sessions()

    young = gc(hub)  # the default grace of 24 hours spares it
    assert sha(data) not in young
    assert blob_exists(hub, sha(data))

    listed = gc(hub, "--dry-run", "--grace-hours", "0")
    line = next(line for line in listed.splitlines() if sha(data) in line)
    assert line.startswith(f"Would remove blob {blob_relpath(sha(data))} ({len(data)} bytes")
    assert blob_exists(hub, sha(data))

    removed = gc(hub, "--grace-hours", "0")
    assert f"Removed blob {blob_relpath(sha(data))} ({len(data)} bytes" in removed
    assert "Removed " in removed.splitlines()[-1]
    assert " bytes)" in removed.splitlines()[-1]
    assert not blob_exists(hub, sha(data))
    assert sha(data) not in gc(hub, "--dry-run", "--grace-hours", "0")


def test_gc_keeps_every_referenced_blob(gc_publisher: Publisher, tmp_path: Path) -> None:
    hub, owner = gc_publisher.hub, gc_publisher.username
    data = f"kept,{owner}\n1,2\n".encode()
    push(gc_publisher, write_package(tmp_path / "p", "kept", files={"values.csv": data}))
    with gc_publisher.client() as client:
        show = client.get(f"/api/package/{owner}/kept").json()
    digests = {f["sha256"] for f in show["files"]}
    digests |= {d["hash"].removeprefix("sha256:") for d in show["derived"]}
    gc(hub, "--grace-hours", "0")
    assert all(blob_exists(hub, d) for d in digests)
    with gc_publisher.client() as client:
        for entry in show["files"]:
            assert client.get(entry["url"]).status_code == 200


def test_gc_collects_staged_uploads_of_expired_sessions(gc_publisher: Publisher) -> None:
    hub = gc_publisher.hub
    data = f"staged,{gc_publisher.username}\n1,2\n".encode()
    granted = orphan(gc_publisher, data, sha256=False)
    expire_sessions()
    out = gc(hub, "--grace-hours", "0")
    if hub.kind == "scale":
        key = granted["o.csv"]["upload_query"]["key"].split("staging/", 1)[1]
        assert f"Removed staged staging/{key} ({len(data)} bytes" in out
        assert f"and 1 staged upload ({len(data)} bytes)" in out
    else:  # uploads through the hub are filed under their hash at once
        assert f"Removed blob {blob_relpath(sha(data))}" in out


def test_gc_racing_a_push_that_reuses_an_orphan(gc_publisher: Publisher, tmp_path: Path) -> None:
    """A gc with no grace at all, running while pushes reuse the very blobs it collects: every
    push completes with all of its files."""
    hub, owner = gc_publisher.hub, gc_publisher.username
    for attempt in range(3):
        data = f"reuse,{owner}\n{attempt},0\n".encode() + b"5,6\n" * 100
        orphan(gc_publisher, data)
        expire_sessions()
        folder = write_package(
            tmp_path / f"p{attempt}", f"reuse{attempt}", files={"values.csv": data}
        )

        def collect(delay: float = 0.5 * attempt) -> str:
            time.sleep(delay)
            return gc(hub, "--grace-hours", "0")

        collected = in_background(collect)
        pushed = cli("push", str(folder), env=gc_publisher.env, check=False)
        collected()
        assert pushed.returncode == 0, pushed.stderr
        with gc_publisher.client() as client:
            assert_readable(client, owner, f"reuse{attempt}")
        assert blob_exists(hub, sha(data))
