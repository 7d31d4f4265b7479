"""Storage accounting and quotas on both hubs: exact usage figures, public and private apart; a
push past a limit refused with the numbers; bytes the publisher already holds cost nothing."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import HubServer, Publisher, cli, new_publisher, write_package
from tests.e2e.test_bad_input import error_code


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def admin(hub: HubServer, tmp_path: Path) -> Publisher:
    """A site admin, logged in with the CLI."""
    user = new_publisher(hub, tmp_path / "admin-home", "qadmin", site_admin=True)
    user.login()
    return user


def push(publisher: Publisher, folder: Path, *flags: str, check: bool = True) -> Any:
    result = cli("push", str(folder), *flags, env=publisher.env, check=check)
    if check:
        assert "SUCCEEDED" in result.stdout + result.stderr, result.stdout + result.stderr
    return result


def storage(publisher: Publisher, owner: str | None = None) -> dict[str, Any]:
    with publisher.client() as client:
        answer = client.get(f"/api/storage/{owner or publisher.username}")
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def set_quota(admin: Publisher, owner: str, **limits: int | None) -> dict[str, Any]:
    with admin.client() as client:
        answer = client.put(f"/api/storage/{owner}/quota", json=limits)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def revision_files(client: httpx.Client, owner: str, name: str) -> dict[str, int]:
    """SHA-256 → size of every file of every revision of the package."""
    found: dict[str, int] = {}
    revisions = client.get(f"/api/package/{owner}/{name}/revisions").json()["revisions"]
    for revision in revisions:
        show = client.get(
            f"/api/package/{owner}/{name}", params={"revision": revision["revision"]}
        ).json()
        found.update({f["sha256"]: f["size"] for f in show["files"]})
    return found


def test_usage_counts_each_blob_once_per_class(publisher: Publisher, tmp_path: Path) -> None:
    owner = publisher.username
    assert storage(publisher) == {
        "owner": owner,
        "public": {"bytes": 0, "packages": 0},
        "private": {"bytes": 0, "packages": 0},
        "quota": {"max_public_bytes": None, "max_private_bytes": None, "max_packages": None},
    }
    shared = f"name,owner\nshared,{owner}\n".encode()
    first = b"year,value\n2020,1\n"
    second = b"year,value\n2020,1\n2021,2\n"
    own = b"secret,value\nx,1\n"
    pub = write_package(tmp_path / "pub", "pub", files={"a.csv": shared, "b.csv": first})
    push(publisher, pub)
    (pub / "b.csv").write_bytes(second)
    push(publisher, pub)  # revision 2: b.csv changed, a.csv the same bytes
    push(publisher, write_package(tmp_path / "unl", "unl", files={"a.csv": shared}), "--unlisted")
    priv = write_package(tmp_path / "priv", "priv", files={"a.csv": shared, "c.csv": own})
    push(publisher, priv, "--private")

    with publisher.client() as client:
        public = revision_files(client, owner, "pub") | revision_files(client, owner, "unl")
        private = revision_files(client, owner, "priv")
    for data in (shared, first, second):
        assert sha(data) in public
    assert sha((pub / "datapackage.json").read_bytes()) in public
    assert set(private) == {
        sha(shared),
        sha(own),
        sha((priv / "datapackage.json").read_bytes()),
    }
    used = storage(publisher)
    assert used["public"] == {"bytes": sum(public.values()), "packages": 2}
    assert used["private"] == {"bytes": sum(private.values()), "packages": 1}
    # each of the public bytes counted once, though a.csv is in three revisions of two packages
    assert used["public"]["bytes"] == (
        len(shared)
        + len(first)
        + len(second)
        + len((pub / "datapackage.json").read_bytes())
        + len((tmp_path / "unl" / "datapackage.json").read_bytes())
    )

    # a deleted package still counts (its bytes are still stored); a purged one no longer does
    with publisher.client() as client:
        assert client.delete(f"/api/package/{owner}/unl").status_code == 200
        assert storage(publisher)["public"] == used["public"]
        assert client.delete(f"/api/package/{owner}/unl/purge").status_code == 200
    after = storage(publisher)
    unlisted_descriptor = len((tmp_path / "unl" / "datapackage.json").read_bytes())
    assert after["public"] == {
        "bytes": used["public"]["bytes"] - unlisted_descriptor,
        "packages": 1,
    }
    assert after["private"] == used["private"]


def test_a_push_past_the_quota_is_refused_with_the_numbers(
    publisher: Publisher, admin: Publisher, tmp_path: Path
) -> None:
    owner = publisher.username
    push(publisher, write_package(tmp_path / "base", "base", files={"a.csv": b"x,y\n1,2\n"}))
    used = storage(publisher)["public"]["bytes"]
    shown = cli("quota", "set", owner, "--public-bytes", str(used + 10), env=admin.env)
    assert f"({used + 10})" in shown.stdout
    assert storage(publisher)["quota"]["max_public_bytes"] == used + 10

    data = b"big,file\n" + b"1234567890,1\n" * 10
    folder = write_package(tmp_path / "big", "big", files={"big.csv": data})
    adding = len(data) + len((folder / "datapackage.json").read_bytes())
    refused = push(publisher, folder, check=False)
    assert refused.returncode == 1
    message = refused.stderr.replace("\n", " ")
    assert f"{owner} stores {used} bytes of public data and its quota allows {used + 10}" in message
    assert "max_public_bytes" in message
    assert f"this push adds {adding} bytes" in message
    assert "Traceback" not in refused.stderr

    with publisher.client() as client:
        answer = client.post(
            "/api/datastore/authorize",
            json={
                "metadata": {"owner": owner, "name": "big"},
                "filedata": {"big.csv": {"size": len(data), "sha256": sha(data)}},
            },
        )
    assert answer.status_code == 403
    error = answer.json()["error"]
    assert error["code"] == "quota-exceeded"
    assert (error["limit"], error["allowed"], error["used"], error["adding"]) == (
        "max_public_bytes",
        used + 10,
        used,
        len(data),
    )
    # the private class has no limit: the same push as private goes through
    push(publisher, folder, "--private")
    assert storage(publisher)["private"]["bytes"] == adding


def test_bytes_the_publisher_holds_cost_nothing(
    publisher: Publisher, admin: Publisher, tmp_path: Path
) -> None:
    owner = publisher.username
    data = f"kept,{owner}\n1,2\n".encode()
    folder = write_package(tmp_path / "one", "one", files={"data.csv": data})
    push(publisher, folder)
    used = storage(publisher)["public"]["bytes"]
    set_quota(admin, owner, max_public_bytes=used)

    push(publisher, folder)  # every byte already held: free, even at the limit

    copy = write_package(tmp_path / "two", "two", files={"data.csv": data})
    descriptor = len((copy / "datapackage.json").read_bytes())
    refused = push(publisher, copy, check=False)
    assert refused.returncode == 1
    assert f"this push adds {descriptor} bytes" in refused.stderr.replace("\n", " ")

    set_quota(admin, owner, max_public_bytes=used + descriptor)  # room for the new descriptor only
    push(publisher, copy)
    assert storage(publisher)["public"] == {"bytes": used + descriptor, "packages": 2}


def test_the_package_limit_counts_new_names_only(
    publisher: Publisher, admin: Publisher, tmp_path: Path
) -> None:
    owner = publisher.username
    folder = write_package(tmp_path / "only", "only", files={"a.csv": b"a,b\n1,2\n"})
    push(publisher, folder)
    set_quota(admin, owner, max_packages=1)
    (folder / "a.csv").write_bytes(b"a,b\n1,2\n3,4\n")
    push(publisher, folder)  # a new revision of a package it has: allowed
    refused = push(publisher, write_package(tmp_path / "more", "more"), check=False)
    assert refused.returncode == 1
    message = refused.stderr.replace("\n", " ")
    assert f"{owner} has 1 of the 1 packages its quota allows (max_packages)" in message

    shown = cli("quota", "show", owner, env=admin.env)
    assert "packages: 1 of 1" in shown.stdout
    cli("quota", "set", owner, "--packages", "none", env=admin.env)
    assert storage(publisher)["quota"]["max_packages"] is None
    push(publisher, write_package(tmp_path / "more", "more"))


def test_quota_updates_are_checked(
    publisher: Publisher, admin: Publisher, make_publisher: Callable[..., Publisher]
) -> None:
    owner = publisher.username
    path = f"/api/storage/{owner}/quota"
    with admin.client() as client:
        for body, field in (
            ({"max_public_bytes": -1}, "max_public_bytes"),
            ({"max_packages": 1.5}, "max_packages"),
            ({"max_private_bytes": "10GB"}, "max_private_bytes"),
            ({"max_packages": True}, "max_packages"),
            ({"maximum": 1}, "maximum"),
        ):
            answer = client.put(path, json=body)
            assert (answer.status_code, error_code(answer)) == (400, "invalid-request"), body
            assert answer.json()["error"]["field"] == field
        assert client.put(path, json={}).status_code == 400
        assert client.put(path, content=b"[1]").status_code == 400
        missing = client.put("/api/storage/no-such-publisher-here/quota", json={"max_packages": 1})
        assert (missing.status_code, error_code(missing)) == (404, "publisher-not-found")
        set_to = client.put(path, json={"max_private_bytes": 10 * 1000**3, "max_packages": 5})
        assert set_to.json()["quota"] == {
            "max_public_bytes": None,
            "max_private_bytes": 10 * 1000**3,
            "max_packages": 5,
        }
        kept = client.put(path, json={"max_packages": None})  # the other limits stay
        assert kept.json()["quota"]["max_private_bytes"] == 10 * 1000**3
        assert kept.json()["quota"]["max_packages"] is None
    with publisher.client() as client:
        own = client.put(path, json={"max_packages": 100})
        assert (own.status_code, error_code(own)) == (403, "forbidden")
    other = make_publisher("nosy")
    with other.client() as client:
        nosy = client.get(f"/api/storage/{owner}")
        assert (nosy.status_code, error_code(nosy)) == (403, "forbidden")
    bad = cli("quota", "set", owner, "--public-bytes", "lots", env=admin.env, check=False)
    assert bad.returncode == 2
    assert "500MB" in bad.stderr
    cli("quota", "set", owner, "--public-bytes", "1.5GiB", env=admin.env)
    assert storage(publisher)["quota"]["max_public_bytes"] == int(1.5 * 1024**3)
    with publisher.client() as client:
        audit = client.get("/api/admin/audit")
        assert audit.status_code == 403
    with admin.client() as client:
        events = client.get("/api/admin/audit", params={"event": "quota.set", "limit": "1"})
        latest = events.json()["events"][0]
        assert (latest["target"], latest["actor"]) == (owner, admin.username)
        assert latest["detail"]["after"]["max_public_bytes"] == int(1.5 * 1024**3)
