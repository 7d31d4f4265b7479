"""The client's local side: hashing and its cache, the config file, and checks made before any
request. Nothing here needs a hub: a client pointed at a closed port proves no request was made."""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import os
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer import Typer
from typer.testing import CliRunner

from dphub.cli import validate as validate_command
from dphub.client import (
    ChecksumMismatch,
    Client,
    ClientConfig,
    HashCache,
    InvalidDescriptor,
    InvalidPath,
    LocalPackage,
    PackageNotFound,
    Unauthenticated,
    hash_file,
    load_config,
    raise_for_status,
    save_config,
)
from dphub.client._get import RemoteFile, download_files, remote_files
from dphub.client._progress import ProgressEvent, Reporter

CLOSED = "http://127.0.0.1:9"
DAY_AGO_NS = 86_400 * 10**9


@pytest.fixture(autouse=True)
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DPHUB_CONFIG", str(tmp_path / "config" / "dphub" / "config.json"))
    monkeypatch.setenv("DPHUB_CACHE_DIR", str(tmp_path / "cache"))
    for name in ("DPHUB_SERVER", "DPHUB_TOKEN"):
        monkeypatch.delenv(name, raising=False)


def make_package(root: Path, descriptor: dict[str, object], files: dict[str, str]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "datapackage.json").write_text(json.dumps(descriptor))
    for path, content in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(content)
    return root


def age(path: Path, ns: int = DAY_AGO_NS) -> None:
    """Make ``path`` look modified a while ago, out of the cache's racy window."""
    when = path.stat().st_mtime_ns - ns
    os.utime(path, ns=(when, when))


def expected(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# Hashing


@pytest.mark.parametrize("size", [0, 1, 3 * 1024 * 1024 + 12345])
def test_hash_file_matches_hashlib(tmp_path: Path, size: int) -> None:
    data = os.urandom(size)
    path = tmp_path / "blob"
    path.write_bytes(data)
    seen: list[int] = []
    hashes = hash_file(path, on_bytes=seen.append)
    assert hashes.sha256 == expected(data)
    assert hashes.size == size == sum(seen)
    assert all(n <= 1024 * 1024 for n in seen)


def test_hash_cache_is_hit_on_the_second_run(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_bytes(b"a,b\n1,2\n")
    age(path)
    first = HashCache()
    hashes = first.hash(path)
    assert (first.hits, first.misses) == (0, 1)
    first.save()
    cache_file = tmp_path / "cache" / "hashes.json"
    assert stat.S_IMODE(cache_file.stat().st_mode) == 0o600

    second = HashCache()
    assert second.hash(path) == hashes
    assert (second.hits, second.misses) == (1, 0)


def test_hash_cache_notices_a_changed_mtime(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_bytes(b"one")
    age(path)
    cache = HashCache()
    cache.hash(path)
    cache.save()
    path.write_bytes(b"two")
    age(path, DAY_AGO_NS // 2)
    again = HashCache()
    assert again.hash(path).sha256 == expected(b"two")
    assert (again.hits, again.misses) == (0, 1)


def test_hash_cache_notices_a_changed_size_with_the_same_mtime(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_bytes(b"short")
    age(path)
    mtime = path.stat().st_mtime_ns
    cache = HashCache()
    cache.hash(path)
    cache.save()
    path.write_bytes(b"much longer")
    os.utime(path, ns=(mtime, mtime))
    again = HashCache()
    assert again.hash(path).sha256 == expected(b"much longer")
    assert again.misses == 1


def test_hash_cache_does_not_trust_a_file_modified_just_now(tmp_path: Path) -> None:
    path = tmp_path / "fresh.csv"
    path.write_bytes(b"just written")
    cache = HashCache()
    cache.hash(path)
    cache.hash(path)
    assert (cache.hits, cache.misses) == (0, 2)


def test_a_damaged_cache_is_ignored(tmp_path: Path) -> None:
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "hashes.json").write_text("{not json")
    path = tmp_path / "x"
    path.write_bytes(b"x")
    assert HashCache().hash(path).sha256 == expected(b"x")


# Config


def test_config_is_written_private_and_read_back(tmp_path: Path) -> None:
    config = ClientConfig(server="http://hub.example", username="alice", token="t0k3n")
    path = save_config(config)
    assert path == tmp_path / "config" / "dphub" / "config.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert json.loads(path.read_text()) == {
        "server": "http://hub.example",
        "username": "alice",
        "token": "t0k3n",
    }
    assert load_config() == config
    save_config(ClientConfig(server="http://hub.example", username="bob", token="new"))
    assert load_config().username == "bob"
    assert [p.name for p in path.parent.iterdir()] == ["config.json"]


def test_missing_config_means_defaults() -> None:
    assert load_config() == ClientConfig()


def test_the_saved_token_only_goes_to_its_own_server() -> None:
    save_config(ClientConfig(server="http://hub.example/", username="alice", token="secret"))
    with Client.from_config() as same:
        assert (same.server, same.token, same.username) == ("http://hub.example", "secret", "alice")
    with Client.from_config(server="http://other.example") as other:
        assert other.token is None
        assert other.username is None


# Checks before any request


def test_a_missing_file_is_reported_before_any_request(tmp_path: Path) -> None:
    root = make_package(
        tmp_path / "pkg",
        {
            "name": "demo",
            "resources": [
                {"name": "here", "path": "data/here.csv"},
                {"name": "gone", "path": "data/missing.csv"},
            ],
        },
        {"data/here.csv": "a\n1\n"},
    )
    with Client(CLOSED, token="anything") as client, pytest.raises(InvalidDescriptor) as caught:
        client.push(root)
    [problem] = caught.value.details["problems"]
    assert problem["pointer"] == "/resources/1/path"
    assert problem["file"] == "data/missing.csv"
    assert "data/missing.csv" in caught.value.message
    assert "/resources/1/path" in caught.value.message


def test_an_invalid_descriptor_is_reported_before_any_request(tmp_path: Path) -> None:
    root = make_package(tmp_path / "pkg", {"name": "demo", "resources": []}, {})
    with Client(CLOSED, token="anything") as client, pytest.raises(InvalidDescriptor) as caught:
        client.push(root)
    assert caught.value.details["problems"][0]["pointer"] == "/resources"


def test_push_needs_a_package_name(tmp_path: Path) -> None:
    root = make_package(tmp_path / "pkg", {"resources": [{"name": "a", "data": [[1]]}]}, {})
    with Client(CLOSED, token="anything") as client, pytest.raises(InvalidDescriptor) as caught:
        client.push(root)
    assert caught.value.details["problems"][0]["pointer"] == "/name"


def test_push_without_login_says_so_before_any_request(tmp_path: Path) -> None:
    root = make_package(
        tmp_path / "pkg", {"name": "demo", "resources": [{"name": "a", "data": []}]}, {}
    )
    with Client(CLOSED) as client, pytest.raises(Unauthenticated) as caught:
        client.push(root)
    assert "not logged in" in caught.value.message
    assert caught.value.hint is not None
    assert "dphub login" in caught.value.hint


def test_a_valid_push_hashes_then_reaches_for_the_hub(tmp_path: Path) -> None:
    root = make_package(
        tmp_path / "pkg",
        {"name": "demo", "resources": [{"name": "a", "path": "a.csv"}]},
        {"a.csv": "x\n1\n"},
    )
    events: list[ProgressEvent] = []
    with Client(CLOSED, token="t", username="alice") as client, pytest.raises(httpx.ConnectError):
        client.push(root, progress=events.append)
    assert {e.phase for e in events} == {"hash"}
    assert sum(e.bytes for e in events if e.kind == "advance") == sum(
        f.stat().st_size for f in (root / "datapackage.json", root / "a.csv")
    )


def test_local_package_lists_each_file_once(tmp_path: Path) -> None:
    root = make_package(
        tmp_path / "pkg",
        {
            "name": "demo",
            "resources": [
                {"name": "a", "path": "a.csv", "schema": "schema.json"},
                {"name": "again", "path": ["a.csv", "b.csv"]},
                {"name": "readme", "path": "README.md"},
                {"name": "web", "path": "https://example.org/x.csv"},
            ],
        },
        {"a.csv": "1", "b.csv": "2", "schema.json": '{"fields": []}', "README.md": "# Demo"},
    )
    package = LocalPackage.load(root)
    assert [f.path for f in package.files] == [
        "datapackage.json",
        "a.csv",
        "schema.json",
        "b.csv",
        "README.md",
    ]
    assert package.files[0].mimetype == "application/json"
    assert package.files[1].mimetype == "text/csv"


# Error answers


def test_raise_for_status_rebuilds_the_typed_error() -> None:
    request = httpx.Request("GET", "http://hub.example/api/package/a/b")
    body = {"error": {"code": "package-not-found", "message": "No package a/b."}}
    with pytest.raises(PackageNotFound, match="No package a/b"):
        raise_for_status(httpx.Response(404, json=body, request=request))
    raise_for_status(httpx.Response(200, json={}, request=request))


def test_raise_for_status_reads_s3_errors() -> None:
    request = httpx.Request("PUT", "https://bucket.example/key?X-Amz-Signature=abc")
    xml = "<Error><Code>BadDigest</Code><Message>The Content-MD5 did not match.</Message></Error>"
    with pytest.raises(ChecksumMismatch, match="Content-MD5"):
        raise_for_status(httpx.Response(400, text=xml, request=request))


def test_raise_for_status_never_prints_a_signed_query() -> None:
    request = httpx.Request("GET", "https://bucket.example/key?X-Amz-Signature=abc")
    with pytest.raises(Exception, match=r"bucket\.example/key") as caught:
        raise_for_status(httpx.Response(502, text="<html>bad gateway</html>", request=request))
    assert "abc" not in str(caught.value)


# Downloads


def test_remote_files_refuse_paths_that_escape() -> None:
    show = {"files": [{"path": "../outside.csv", "url": "http://hub/x", "size": 1}]}
    with pytest.raises(InvalidPath):
        remote_files(show)


@pytest.fixture
def file_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    served = tmp_path / "served"
    served.mkdir()
    handler = functools.partial(QuietHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", served
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def test_downloads_are_verified_before_they_land(
    tmp_path: Path, file_server: tuple[str, Path]
) -> None:
    base, served = file_server
    good, bad = b"id\n1\n" * 1000, b"tampered"
    (served / "good.csv").write_bytes(good)
    (served / "bad.csv").write_bytes(bad)
    dest = tmp_path / "dest"
    (dest / "data").mkdir(parents=True)
    (dest / "data" / "bad.csv").write_bytes(b"previous")
    files = [
        RemoteFile("data/good.csv", f"{base}/good.csv", len(good), expected(good)),
        RemoteFile("data/bad.csv", f"{base}/bad.csv", len(bad), expected(b"original")),
    ]
    with httpx.Client() as http_client, pytest.raises(ChecksumMismatch):
        download_files(
            http_client, server=base, files=files, dest=dest, workers=1, report=Reporter(None)
        )
    assert (dest / "data" / "good.csv").read_bytes() == good
    assert (dest / "data" / "bad.csv").read_bytes() == b"previous"
    assert sorted(p.name for p in (dest / "data").iterdir()) == ["bad.csv", "good.csv"]


# The validate command


def test_validate_command_lists_problems_one_per_line(tmp_path: Path) -> None:
    root = make_package(
        tmp_path / "pkg",
        {"name": "demo", "resources": [{"name": "a", "path": "a.csv"}, {"name": "a", "data": []}]},
        {},
    )
    app = Typer()
    validate_command.register(app)
    app.command("noop")(lambda: None)
    result = CliRunner().invoke(app, ["validate", str(root)])
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert lines[0] == f"a.csv /resources/0/path: a.csv does not exist in {root}"
    assert lines[1].startswith("datapackage.json /resources/1/name: resource name 'a' is already")
    assert "2 problems" in lines[2]

    (root / "a.csv").write_text("x\n1\n")
    (root / "datapackage.json").write_text(
        json.dumps({"name": "demo", "resources": [{"name": "a", "path": "a.csv"}]})
    )
    result = CliRunner().invoke(app, ["validate", str(root), "--data"])
    assert result.exit_code == 0, result.output
    assert "valid" in result.output
