"""What an operator does: migrate, configure by environment, start, and keep pushes consistent."""

from __future__ import annotations

import hashlib
import json
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.conftest import (
    HubServer,
    Publisher,
    base_env,
    cli,
    fetch,
    new_publisher,
    start_hub,
    stop_hub,
    write_package,
)
from tests.e2e.test_bad_input import authorize, finalize, post_form


def test_db_upgrade_is_idempotent(tmp_path: Path) -> None:
    env = base_env(tmp_path)
    first = cli("db", "upgrade", "--data-dir", str(tmp_path / "data"), env=env)
    assert "0006" in first.stdout
    again = cli("db", "upgrade", "--data-dir", str(tmp_path / "data"), env=env)
    assert "0006" in again.stdout
    current = cli("db", "current", "--data-dir", str(tmp_path / "data"), env=env)
    assert current.stdout.strip() == "0006"
    assert (tmp_path / "data" / "metastore.db").exists()


def test_settings_come_from_the_environment(tmp_path: Path) -> None:
    database = tmp_path / "elsewhere" / "meta.db"
    database.parent.mkdir()
    server = start_hub(
        tmp_path,
        {
            "DPHUB_DATABASE_URL": f"sqlite:///{database}",
            "DPHUB_BASE_URL": "https://data.example.org/",
            "DPHUB_DEFAULT_FINDABILITY": "unlisted",
        },
    )
    try:
        assert database.exists()
        assert not (server.data_dir / "metastore.db").exists()
        result = cli(
            "user", "create", "envuser", "--email", "env@example.org",
            env={**server.env, "DPHUB_DATABASE_URL": f"sqlite:///{database}"},
        )  # fmt: skip
        secret = result.stdout.strip().splitlines()[-1]
        token = httpx.post(
            f"{server.url}/api/auth/token", json={"username": "envuser", "secret": secret}
        ).json()["token"]
        with httpx.Client(base_url=server.url, headers={"Auth-Token": token}) as client:
            granted = authorize(client, "envuser", "p", {"a.csv": b"x\n"})
        assert granted["a.csv"]["upload_url"] == "https://data.example.org/api/bitstore/upload"
    finally:
        stop_hub(server)


def test_a_placeholder_secret_stops_the_server(tmp_path: Path) -> None:
    env = {**base_env(tmp_path), "DPHUB_SECRET_KEY": "changeme"}
    result = cli("serve", "--port", "9", "--data-dir", str(tmp_path / "d"), env=env, check=False)
    assert result.returncode != 0
    assert "DPHUB_SECRET_KEY" in result.stderr
    assert "Traceback" not in result.stderr


def test_concurrent_finalizes_number_revisions_without_gaps(publisher: Publisher) -> None:
    """Eight pushes of one package at once: revisions 1..8, each with its own bytes."""
    pushes = 8
    prepared = []
    with publisher.client() as client:
        for i in range(pushes):
            data = f"n\n{i}\n".encode()
            descriptor = json.dumps(
                {"name": "racing", "resources": [{"name": "n", "path": "n.csv"}]}
            ).encode()
            granted = authorize(
                client,
                publisher.username,
                "racing",
                {"datapackage.json": descriptor, "n.csv": data},
            )
            for path, body in (("datapackage.json", descriptor), ("n.csv", data)):
                if not granted[path]["exists"]:
                    assert post_form(granted[path], body).status_code == 204
            prepared.append(granted["datapackage.json"])

    def run(entry: dict[str, object]) -> int:
        with publisher.client() as client:
            answer = finalize(client, entry)  # type: ignore[arg-type]
            assert answer.status_code == 200, answer.text
            return int(answer.json()["revision"])

    with ThreadPoolExecutor(pushes) as pool:
        numbers = sorted(pool.map(run, prepared))
    assert numbers == list(range(1, pushes + 1))
    base = f"{publisher.hub.url}/{publisher.username}/racing"
    contents = {fetch(f"{base}/v/{n}/r/n.csv").content for n in numbers}
    assert contents == {f"n\n{i}\n".encode() for i in range(pushes)}


def test_a_dropped_upload_leaves_nothing_behind(hub: HubServer, publisher: Publisher) -> None:
    hub.only_embedded("uploads through the hub's own endpoint")
    data = b"0123456789" * 100_000
    with publisher.client() as client:
        granted = authorize(client, publisher.username, "dropped", {"big.bin": data})
    entry = granted["big.bin"]
    url = httpx.URL(entry["put_url"])
    head = (
        f"PUT {url.raw_path.decode()} HTTP/1.1\r\nHost: {url.host}:{url.port}\r\n"
        f"Content-Type: {entry['put_headers']['Content-Type']}\r\n"
        f"x-amz-checksum-sha256: {entry['put_headers']['x-amz-checksum-sha256']}\r\n"
        f"Content-Length: {len(data)}\r\n\r\n"
    ).encode()
    with socket.create_connection((url.host, url.port)) as conn:
        conn.sendall(head + data[: len(data) // 2])
    with publisher.client() as client:
        again = authorize(client, publisher.username, "dropped", {"big.bin": data})
    assert again["big.bin"]["exists"] is False
    # the first attempt's partial file is gone once the server notices the dropped connection
    deadline = 50
    while list((hub.data_dir / "blobs" / "tmp").iterdir()) and deadline:
        time.sleep(0.1)
        deadline -= 1
    assert list((hub.data_dir / "blobs" / "tmp").iterdir()) == []
    digest = hashlib.sha256(data).hexdigest()
    assert not list((hub.data_dir / "blobs" / "sha256").rglob(digest))
    retried = again["big.bin"]
    assert httpx.put(retried["put_url"], content=data, headers=retried["put_headers"]).is_success


@pytest.mark.parametrize("path", ["/", "/api"])
def test_the_root_says_what_it_is(hub: HubServer, path: str) -> None:
    answer = fetch(f"{hub.url}{path}")
    assert answer.status_code == 200
    body = answer.json()
    assert body["name"] == "dphub"
    assert body["openapi"].endswith("/openapi.json")


def test_reprocess_queues_a_revision_again(hub: HubServer, tmp_path: Path) -> None:
    owner = new_publisher(hub, tmp_path / "home", "again")
    owner.login()
    folder = write_package(tmp_path / "pkg", "again", files={"data.csv": b"a,b\n1,2\n"})
    cli("push", str(folder), env=owner.env)
    status_url = f"{hub.url}/api/package/{owner.username}/again/revisions/1"
    first = httpx.get(status_url).json()
    queued = hub.admin("reprocess", f"{owner.username}/again@1")
    assert "Queued 1 revision." in queued.stdout
    # a successful revision stays served (and SUCCEEDED) while it is processed again
    deadline = time.monotonic() + 60
    while True:
        again = httpx.get(status_url).json()
        assert again["state"] == "SUCCEEDED"
        load = again["pipelines"]["load"]
        if load.get("finished", "") > first["pipelines"]["load"]["finished"]:
            break
        assert time.monotonic() < deadline, again
        time.sleep(0.1)
    rows = httpx.get(
        f"{hub.url}/api/datastore/search", params={"resource_id": f"{owner.username}/again/0"}
    ).json()
    assert rows["records"] == [{"a": 1, "b": 2}]
    nothing = hub.admin("reprocess", "--unprocessed")
    assert "Queued 0 revisions." in nothing.stdout
    missing = hub.admin("reprocess", "nobody/nothing", check=False)
    assert missing.returncode == 1
