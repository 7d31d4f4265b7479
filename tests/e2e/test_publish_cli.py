"""A publisher's whole session with the real CLI against a real `dphub serve`, read back over HTTP."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections.abc import Callable
from pathlib import Path

import httpx

from tests.conftest import HubServer, Publisher, cli, fetch, write_package

CSV = b"city,population\nParis,2102650\nLyon,522250\n"
README = b"# Cities\n\nPopulation of French cities.\n"


def push(publisher: Publisher, folder: Path, *args: str) -> str:
    result = cli("push", str(folder), *args, env=publisher.env)
    return result.stdout


def test_user_create_prints_the_key_alone_on_its_last_line(hub: HubServer, tmp_path: Path) -> None:
    result = hub.admin(
        "user", "create", "keyline", "--email", "keyline@example.org", "--password-stdin",
        input="a-long-password\n",
    )  # fmt: skip
    last = result.stdout.rstrip("\n").splitlines()[-1]
    assert last.startswith("dph_")
    assert last.strip() == last
    # the key works, and so does the password read from stdin
    for secret in (last, "a-long-password"):
        answer = httpx.post(
            f"{hub.url}/api/auth/token", json={"username": "keyline", "secret": secret}
        )
        assert answer.status_code == 200, answer.text


def test_login_saves_a_private_config(publisher: Publisher) -> None:
    config = Path(publisher.env["DPHUB_CONFIG"])
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    saved = json.loads(config.read_text())
    assert saved["server"] == publisher.hub.url
    assert saved["username"] == publisher.username
    assert saved["token"].count(".") == 2


def test_push_then_read_everything_back(publisher: Publisher, tmp_path: Path) -> None:
    folder = write_package(
        tmp_path / "cities",
        "cities",
        files={"data/cities.csv": CSV, "README.md": README, "empty.csv": b""},
    )
    out = push(publisher, folder)
    assert f"{publisher.username}/cities" in out
    base = f"{publisher.hub.url}/{publisher.username}/cities"
    assert base in out

    show = fetch(f"{publisher.hub.url}/api/package/{publisher.username}/cities").json()
    assert show["revision"] == 1
    assert show["readme"] == README.decode()
    assert show["descriptor"]["resources"][0]["path"] == "data/cities.csv"
    files = {f["path"]: f for f in show["files"]}
    assert set(files) == {"datapackage.json", "data/cities.csv", "README.md", "empty.csv"}
    assert files["data/cities.csv"]["sha256"] == hashlib.sha256(CSV).hexdigest()
    assert files["empty.csv"]["size"] == 0

    descriptor = fetch(f"{base}/datapackage.json").json()
    assert descriptor["resources"][0]["path"] == f"{base}/v/1/r/cities.csv"
    assert fetch(descriptor["resources"][0]["path"]).content == CSV
    assert fetch(f"{base}/r/cities.csv").content == CSV
    assert fetch(f"{base}/r/0.csv").content == CSV
    assert fetch(f"{base}/v/1/r/cities.csv").content == CSV
    empty = fetch(f"{base}/r/empty.csv")
    assert empty.status_code == 200
    assert empty.content == b""
    # processing derived a JSON copy of the table; other extensions name nothing
    assert fetch(f"{base}/r/cities.json").json() == [
        {"city": "Paris", "population": 2102650},
        {"city": "Lyon", "population": 522250},
    ]
    assert fetch(f"{base}/r/cities.xml").json()["error"]["code"] == "resource-not-found"
    listed = fetch(f"{publisher.hub.url}/api/package/{publisher.username}").json()
    assert listed == {"data": ["cities"]}

    head = httpx.head(f"{base}/r/cities.csv")
    assert head.status_code == 200
    assert head.headers["content-length"] == str(len(CSV))
    assert head.headers["content-type"] == "text/csv"
    assert head.content == b""


def test_ranges_and_etags(publisher: Publisher, tmp_path: Path) -> None:
    folder = write_package(tmp_path / "ranged", "ranged", files={"data.csv": CSV})
    push(publisher, folder)
    url = f"{publisher.hub.url}/{publisher.username}/ranged/r/data.csv"
    part = fetch(url, headers={"Range": "bytes=5-14"})
    assert part.status_code == 206
    assert part.content == CSV[5:15]
    assert part.headers["content-range"] == f"bytes 5-14/{len(CSV)}"
    tail = fetch(url, headers={"Range": "bytes=-6"})
    assert tail.content == CSV[-6:]
    etag = f'"{hashlib.sha256(CSV).hexdigest()}"'
    assert httpx.get(url, headers={"If-None-Match": etag}).status_code == 304

    if publisher.hub.kind == "scale":
        redirect = httpx.get(url)
        assert redirect.status_code == 302
        assert redirect.headers["etag"] == etag
        assert redirect.headers["cache-control"] == "no-store"
    publisher.hub.only_embedded("the S3 store serves the bytes and their headers itself")
    full = httpx.get(url)
    assert full.headers["etag"] == etag
    assert full.headers["accept-ranges"] == "bytes"
    beyond = httpx.get(url, headers={"Range": f"bytes={len(CSV) + 10}-"})
    assert beyond.status_code == 416
    assert beyond.json()["error"]["code"] == "range-not-satisfiable"
    pinned = httpx.get(f"{publisher.hub.url}/{publisher.username}/ranged/v/1/r/data.csv")
    assert "immutable" in pinned.headers["cache-control"]


def test_second_push_makes_a_new_revision_and_keeps_the_old(
    publisher: Publisher, tmp_path: Path
) -> None:
    folder = write_package(tmp_path / "evolving", "evolving", files={"data.csv": CSV})
    push(publisher, folder)
    (folder / "data.csv").write_bytes(CSV + b"Nice,342669\n")
    push(publisher, folder)
    base = f"{publisher.hub.url}/{publisher.username}/evolving"
    assert fetch(f"{base}/r/data.csv").content.endswith(b"Nice,342669\n")
    assert fetch(f"{base}/v/1/r/data.csv").content == CSV
    revisions = fetch(
        f"{publisher.hub.url}/api/package/{publisher.username}/evolving/revisions"
    ).json()["revisions"]
    assert [r["revision"] for r in revisions] == [2, 1]
    assert all(r["state"] == "SUCCEEDED" for r in revisions)
    old = fetch(
        f"{publisher.hub.url}/api/package/{publisher.username}/evolving", params={"revision": 1}
    ).json()
    assert old["revision"] == 1


def test_unchanged_repush_uploads_nothing_and_makes_no_revision(
    publisher: Publisher, tmp_path: Path
) -> None:
    folder = write_package(tmp_path / "same", "same", files={"data.csv": CSV})
    push(publisher, folder)
    out = push(publisher, folder)
    assert "0 files uploaded" in out
    show = fetch(f"{publisher.hub.url}/api/package/{publisher.username}/same").json()
    assert show["latest_revision"] == 1


def test_private_package_is_hidden_from_others(
    publisher: Publisher, make_publisher: Callable[..., Publisher], tmp_path: Path
) -> None:
    folder = write_package(tmp_path / "secret", "secret", files={"data.csv": CSV})
    push(publisher, folder, "--private")
    api = f"{publisher.hub.url}/api/package/{publisher.username}/secret"
    assert fetch(api).status_code == 404
    assert fetch(api).json()["error"]["code"] == "package-not-found"
    raw = f"{publisher.hub.url}/{publisher.username}/secret/r/data.csv"
    assert fetch(raw).status_code == 404
    other = make_publisher()
    with other.client() as client:
        assert client.get(api).status_code == 404
    with publisher.client() as client:
        assert client.get(api).json()["findability"] == "private"
        assert client.get(raw).content == CSV
    assert fetch(f"{publisher.hub.url}/api/package/{publisher.username}").json() == {"data": []}


def test_get_downloads_and_verifies(publisher: Publisher, tmp_path: Path) -> None:
    folder = write_package(
        tmp_path / "fetched", "fetched", files={"data/cities.csv": CSV, "README.md": README}
    )
    push(publisher, folder)
    dest = tmp_path / "download"
    cli("get", f"{publisher.username}/fetched", str(dest), env=publisher.env)
    assert (dest / "data" / "cities.csv").read_bytes() == CSV
    assert (dest / "README.md").read_bytes() == README
    local = json.loads((dest / "datapackage.json").read_text())
    assert local["resources"][0]["path"] == "data/cities.csv"
    # the downloaded folder is itself a valid package
    cli("validate", str(dest), env=publisher.env)


def test_info_shows_the_package(publisher: Publisher, tmp_path: Path) -> None:
    folder = write_package(tmp_path / "shown", "shown", files={"data.csv": CSV})
    push(publisher, folder)
    out = cli("info", f"{publisher.username}/shown", env=publisher.env).stdout
    assert "shown" in out
    assert "data.csv" in out
    raw = cli("info", f"{publisher.username}/shown", "--json", env=publisher.env).stdout
    assert json.loads(raw)["revision"] == 1


def test_errors_are_one_line_without_traceback(publisher: Publisher) -> None:
    result = cli("info", f"{publisher.username}/does-not-exist", env=publisher.env, check=False)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "No such package" in result.stderr
    debug_env = {**publisher.env, "DPHUB_DEBUG": "1"}
    debug = cli("info", f"{publisher.username}/does-not-exist", env=debug_env, check=False)
    assert "Traceback" in debug.stderr


def test_secrets_never_reach_the_server_log(hub: HubServer, publisher: Publisher) -> None:
    token = publisher.token()
    fetch(f"{hub.url}/api/auth/check", params={"jwt": token})
    log = hub.log_text()
    assert "jwt=[REDACTED]" in log
    assert token not in log
    assert publisher.secret not in log
    assert "X-Dphub-Signature=" not in log or "X-Dphub-Signature=[REDACTED]" in log


def test_not_logged_in_points_to_login(tmp_path: Path, hub: HubServer) -> None:
    from tests.conftest import base_env

    env = base_env(tmp_path)
    folder = write_package(tmp_path / "anon", "anon")
    result = cli("push", str(folder), "--server", hub.url, env=env, check=False)
    assert result.returncode != 0
    assert "dphub login" in result.stderr
    assert not os.path.exists(tmp_path / "config.json")
