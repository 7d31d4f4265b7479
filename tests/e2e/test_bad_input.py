"""Bad input gets a clear error and loses nothing: each case against the real server or CLI."""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import (
    HubServer,
    Publisher,
    base_env,
    cli,
    fetch,
    start_hub,
    stop_hub,
    write_package,
)

CSV = b"a,b\n1,2\n"


def md5_b64(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data, usedforsecurity=False).digest()).decode()


def authorize(
    client: httpx.Client, owner: str, name: str, files: dict[str, bytes], *, sha256: bool = True
) -> dict[str, Any]:
    filedata = {}
    for path, data in files.items():
        entry: dict[str, Any] = {"md5": md5_b64(data), "size": len(data)}
        if sha256:
            entry["sha256"] = hashlib.sha256(data).hexdigest()
        filedata[path] = entry
    answer = client.post(
        "/api/datastore/authorize",
        json={"metadata": {"owner": owner, "name": name}, "filedata": filedata},
    )
    assert answer.status_code == 200, answer.text
    granted: dict[str, Any] = answer.json()["filedata"]
    return granted


def post_form(entry: dict[str, Any], data: bytes, **changes: str) -> httpx.Response:
    fields = {**entry["upload_query"], **changes}
    return httpx.post(entry["upload_url"], data=fields, files={"file": ("f", data)})


def finalize(client: httpx.Client, entry: dict[str, Any]) -> httpx.Response:
    """Finalize, then wait until the new revision is processed (and so served)."""
    url = entry["upload_url"] + "/" + entry["upload_query"]["key"]
    answer = client.post("/api/package/upload", json={"datapackage": url})
    if answer.status_code == 200:
        wait_processed(client, str(answer.json()["status_url"]))
    return answer


def wait_processed(client: httpx.Client, status_url: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        status: dict[str, Any] = client.get(status_url).json()
        if status.get("state") in ("SUCCEEDED", "FAILED") or time.monotonic() > deadline:
            return status
        time.sleep(0.1)


def error_code(answer: httpx.Response) -> str:
    return str(answer.json()["error"]["code"])


def descriptor_bytes(name: str, path: str = "data.csv") -> bytes:
    return json.dumps({"name": name, "resources": [{"name": "data", "path": path}]}).encode()


def tmp_blobs(hub: HubServer) -> list[Path]:
    return list((hub.data_dir / "blobs" / "tmp").iterdir())


# the local side: problems are found before any network call


def closed_server_env(tmp_path: Path) -> dict[str, str]:
    env = base_env(tmp_path / "home")
    env["DPHUB_SERVER"] = "http://127.0.0.1:9"
    return env


@pytest.mark.parametrize(
    ("descriptor", "pointer"),
    [
        ({"name": "x"}, "/resources"),
        ({"name": "x", "resources": [{"name": "a", "path": "/etc/passwd"}]}, "/resources/0/path"),
        ({"name": "x", "resources": [{"name": "a", "path": "../up.csv"}]}, "/resources/0/path"),
        ({"name": "x", "resources": [{"name": "a", "path": "dir\\a.csv"}]}, "/resources/0/path"),
        ({"name": "x", "resources": [{"name": "a", "path": 5}]}, "/resources/0/path"),
        ({"name": "Bad Name", "resources": [{"name": "a", "path": "a.csv"}]}, "/name"),
    ],
)
def test_descriptor_problems_name_the_pointer(
    tmp_path: Path, descriptor: dict[str, Any], pointer: str
) -> None:
    folder = write_package(tmp_path / "pkg", "x", files={"a.csv": CSV}, descriptor=descriptor)
    env = closed_server_env(tmp_path)
    for command in ("validate", "push"):
        result = cli(command, str(folder), env=env, check=False)
        assert result.returncode != 0
        assert "datapackage.json" in result.stderr + result.stdout
        assert pointer in result.stderr + result.stdout
        assert "Traceback" not in result.stderr
        assert "could not reach" not in result.stderr  # failed before any network call


def test_invalid_json_descriptor(tmp_path: Path) -> None:
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "datapackage.json").write_text('{"name": "x", "resources": [')
    result = cli("push", str(folder), env=closed_server_env(tmp_path), check=False)
    assert result.returncode != 0
    assert "datapackage.json" in result.stderr
    assert "line 1" in result.stderr


def test_missing_file_on_disk(tmp_path: Path) -> None:
    folder = write_package(
        tmp_path / "pkg",
        "x",
        files={},
        descriptor={"name": "x", "resources": [{"name": "gone", "path": "data/gone.csv"}]},
    )
    result = cli("validate", str(folder), env=closed_server_env(tmp_path), check=False)
    assert result.returncode != 0
    assert "data/gone.csv" in result.stderr + result.stdout
    assert "/resources/0/path" in result.stderr + result.stdout


# the server side: the same rules hold for any client


def test_authorize_refuses_unsafe_paths_and_names(publisher: Publisher) -> None:
    with publisher.client() as client:
        for path in ("/abs.csv", "../up.csv", "a\\b.csv", "a//b.csv"):
            answer = client.post(
                "/api/datastore/authorize",
                json={
                    "metadata": {"owner": publisher.username, "name": "p"},
                    "filedata": {path: {"md5": md5_b64(CSV), "size": len(CSV)}},
                },
            )
            assert answer.status_code == 400, path
            assert error_code(answer) == "invalid-path"
        for owner, name in (("Upper", "p"), (publisher.username, "-p"), ("api", "p")):
            answer = client.post(
                "/api/datastore/authorize",
                json={
                    "metadata": {"owner": owner, "name": name},
                    "filedata": {"a.csv": {"md5": md5_b64(CSV), "size": len(CSV)}},
                },
            )
            assert answer.status_code == 400, (owner, name)
            assert error_code(answer) == "invalid-name"
        long_name = "a" * 101
        answer = client.post(
            "/api/datastore/authorize",
            json={
                "metadata": {"owner": publisher.username, "name": long_name},
                "filedata": {"a.csv": {"md5": md5_b64(CSV), "size": len(CSV)}},
            },
        )
        assert error_code(answer) == "invalid-name"


def test_no_or_bad_token_is_401(hub: HubServer, publisher: Publisher) -> None:
    body = {"metadata": {"owner": publisher.username}, "filedata": {}}
    for headers in ({}, {"Authorization": "Bearer not.a.token"}, {"Auth-Token": "garbage"}):
        for path in ("/api/datastore/authorize", "/api/package/upload"):
            answer = httpx.post(f"{hub.url}{path}", json=body, headers=headers)
            assert answer.status_code == 401, (path, headers)
            assert error_code(answer) in ("unauthenticated", "invalid-token")
    forged = publisher.token()[:-4] + "AAAA"
    answer = fetch(f"{hub.url}/api/package/{publisher.username}", params={"jwt": forged})
    assert answer.status_code == 401
    bad_login = httpx.post(
        f"{hub.url}/api/auth/token", json={"username": publisher.username, "secret": "wrong"}
    )
    assert bad_login.status_code == 401
    assert error_code(bad_login) == "invalid-credentials"


def test_pushing_into_another_namespace_is_403(
    publisher: Publisher, make_publisher: Any, tmp_path: Path
) -> None:
    other = make_publisher()
    with publisher.client() as client:
        answer = client.post(
            "/api/datastore/authorize",
            json={
                "metadata": {"owner": other.username, "name": "intrusion"},
                "filedata": {"a.csv": {"md5": md5_b64(CSV), "size": len(CSV)}},
            },
        )
    assert answer.status_code == 403
    assert error_code(answer) == "forbidden"
    folder = write_package(tmp_path / "intrusion", "intrusion")
    result = cli("push", str(folder), "--owner", other.username, env=publisher.env, check=False)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "may not publish" in result.stderr


def test_wrong_md5_wrong_size_tampering_and_wrong_key(publisher: Publisher) -> None:
    hub = publisher.hub
    hub.only_embedded("the hub's own upload endpoint (the S3 store's answers: test_bitstore_s3)")
    with publisher.client() as client:
        granted = authorize(client, publisher.username, "tamper", {"data.csv": CSV}, sha256=False)
    entry = granted["data.csv"]
    wrong = b"a,b\n9,9\n"  # same size, other bytes: the MD5 does not match
    answer = post_form(entry, wrong)
    assert answer.status_code == 400
    assert error_code(answer) == "checksum-mismatch"
    short = post_form(entry, CSV[:-1])
    assert short.status_code == 400
    assert error_code(short) == "size-mismatch"
    long = post_form(entry, CSV + b"3,4\n")
    assert error_code(long) == "size-mismatch"
    tampered_md5 = post_form(entry, wrong, **{"Content-MD5": md5_b64(wrong)})
    assert tampered_md5.status_code == 403
    assert error_code(tampered_md5) == "signature-mismatch"
    policy = json.loads(base64.b64decode(entry["upload_query"]["policy"]))
    policy["conditions"][-1] = ["content-length-range", 0, 10**9]
    forged = base64.b64encode(json.dumps(policy).encode()).decode()
    assert error_code(post_form(entry, CSV, policy=forged)) == "signature-mismatch"
    other_key = entry["upload_query"]["key"].rsplit("/", 1)[0] + "/other.csv"
    assert error_code(post_form(entry, CSV, key=other_key)) == "signature-mismatch"
    assert tmp_blobs(hub) == []
    assert not list((hub.data_dir / "blobs" / "sha256").rglob(hashlib.sha256(wrong).hexdigest()))
    # after all that, the right bytes still go through
    assert post_form(entry, CSV).status_code == 204


def test_put_checks_checksum_size_and_signature(publisher: Publisher) -> None:
    publisher.hub.only_embedded(
        "the hub's own upload endpoint (the S3 store's answers: test_bitstore_s3)"
    )
    with publisher.client() as client:
        granted = authorize(client, publisher.username, "putcheck", {"data.csv": CSV})
    entry = granted["data.csv"]
    url, headers = entry["put_url"], entry["put_headers"]
    wrong = httpx.put(url, content=b"a,b\n9,9\n", headers=headers)
    assert wrong.status_code == 400
    assert error_code(wrong) == "checksum-mismatch"
    short = httpx.put(url, content=CSV[:-1], headers=headers)
    assert error_code(short) == "size-mismatch"
    other_hash = {**headers, "x-amz-checksum-sha256": base64.b64encode(b"x" * 32).decode()}
    assert error_code(httpx.put(url, content=CSV, headers=other_hash)) == "signature-mismatch"
    moved = url.replace("/data.csv?", "/elsewhere.csv?")
    assert error_code(httpx.put(moved, content=CSV, headers=headers)) == "signature-mismatch"
    assert tmp_blobs(publisher.hub) == []
    assert httpx.put(url, content=CSV, headers=headers).status_code == 204


def test_finalize_before_all_files_is_409_and_shows_nothing(publisher: Publisher) -> None:
    descriptor = descriptor_bytes("incomplete")
    with publisher.client() as client:
        granted = authorize(
            client,
            publisher.username,
            "incomplete",
            {"datapackage.json": descriptor, "data.csv": CSV},
        )
        dp = granted["datapackage.json"]
        assert httpx.put(dp["put_url"], content=descriptor, headers=dp["put_headers"]).is_success
        answer = finalize(client, dp)
        assert answer.status_code == 409
        assert error_code(answer) == "upload-incomplete"
        assert answer.json()["error"]["missing"] == ["data.csv"]
        shown = client.get(f"/api/package/{publisher.username}/incomplete")
        assert shown.status_code == 404
        assert client.get(f"/api/package/{publisher.username}").json() == {"data": []}


def test_failed_finalize_keeps_the_previous_revision(publisher: Publisher, tmp_path: Path) -> None:
    folder = write_package(tmp_path / "kept", "kept", files={"data.csv": CSV})
    cli("push", str(folder), env=publisher.env)
    bad = json.dumps({"name": "kept", "resources": [{"name": "data", "path": "nothere.csv"}]})
    with publisher.client() as client:
        granted = authorize(
            client, publisher.username, "kept", {"datapackage.json": bad.encode(), "data.csv": CSV}
        )
        for entry, data in (
            (granted["datapackage.json"], bad.encode()),
            (granted["data.csv"], CSV),
        ):
            if not entry["exists"]:
                assert post_form(entry, data).status_code == 204
        answer = finalize(client, granted["datapackage.json"])
        assert answer.status_code == 400
        error = answer.json()["error"]
        assert error["code"] == "invalid-descriptor"
        assert error["problems"][0]["pointer"] == "/resources/0/path"
        show = client.get(f"/api/package/{publisher.username}/kept").json()
    assert show["revision"] == 1
    assert show["latest_revision"] == 1
    base = f"{publisher.hub.url}/{publisher.username}/kept"
    assert fetch(f"{base}/r/data.csv").content == CSV


def test_server_rejects_a_descriptor_that_breaks_the_spec(publisher: Publisher) -> None:
    descriptor = json.dumps({"name": "spec", "resources": [{"path": 7}]}).encode()
    with publisher.client() as client:
        granted = authorize(client, publisher.username, "spec", {"datapackage.json": descriptor})
        assert post_form(granted["datapackage.json"], descriptor).status_code == 204
        answer = finalize(client, granted["datapackage.json"])
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["code"] == "invalid-descriptor"
    assert {p["pointer"] for p in error["problems"]} >= {"/resources/0/path"}


def test_invalid_json_bodies(publisher: Publisher) -> None:
    with publisher.client() as client:
        for path in ("/api/datastore/authorize", "/api/package/upload"):
            answer = client.post(
                path, content=b"{not json", headers={"content-type": "application/json"}
            )
            assert answer.status_code == 400
            assert error_code(answer) == "invalid-json"
        answer = client.post("/api/package/upload", json={"datapackage": "http://elsewhere/x"})
        assert error_code(answer) == "invalid-request"
        answer = client.post(
            "/api/datastore/authorize",
            json={"metadata": {}, "filedata": {"a.csv": {"size": -1, "md5": md5_b64(CSV)}}},
        )
        assert error_code(answer) == "invalid-request"


@pytest.fixture(scope="module")
def short_lived_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubServer]:
    server = start_hub(tmp_path_factory.mktemp("shortlived"), {"DPHUB_UPLOAD_TTL": "1"})
    yield server
    stop_hub(server)


def test_expired_forms_are_refused(short_lived_hub: HubServer, tmp_path: Path) -> None:
    from tests.conftest import new_publisher

    publisher = new_publisher(short_lived_hub, tmp_path / "home")
    with publisher.client() as client:
        granted = authorize(client, publisher.username, "late", {"data.csv": CSV})
    time.sleep(2.2)
    entry = granted["data.csv"]
    answer = post_form(entry, CSV)
    assert answer.status_code == 403
    assert error_code(answer) == "policy-expired"
    put = httpx.put(entry["put_url"], content=CSV, headers=entry["put_headers"])
    assert error_code(put) == "policy-expired"


def test_odd_revision_references_are_404(publisher: Publisher, tmp_path: Path) -> None:
    folder = write_package(tmp_path / "refs", "refs", files={"data.csv": CSV})
    cli("push", str(folder), env=publisher.env)
    api = f"{publisher.hub.url}/api/package/{publisher.username}/refs"
    raw = f"{publisher.hub.url}/{publisher.username}/refs"
    for ref in ("99999999999999999999999", "0", "-1", "1.0", "\u0661", "%00", "latest2"):
        for url in (f"{api}?revision={ref}", f"{api}/revisions/{ref}", f"{raw}/v/{ref}/r/0.csv"):
            answer = fetch(url)
            assert answer.status_code == 404, url
            assert error_code(answer) == "revision-not-found", url
    assert fetch(f"{api}/revisions/latest").json()["revision"] == 1
    assert fetch(f"{raw}/v/successful/r/0.csv").content == CSV


def test_md5_only_upload_of_other_bytes_is_409_at_finalize(publisher: Publisher) -> None:
    """An old client's upload (MD5 only) of other bytes: the hub's endpoint refuses it at once,
    an S3 store (which does not check MD5 in forms) takes it, and finalize then refuses it. Either
    way finalize answers 409 naming the file, and nothing becomes visible."""
    meta = descriptor_bytes("md5only")
    with publisher.client() as client:
        granted = authorize(
            client,
            publisher.username,
            "md5only",
            {"datapackage.json": meta, "data.csv": CSV},
            sha256=False,
        )
        assert post_form(granted["datapackage.json"], meta).status_code == 204
        sent = post_form(granted["data.csv"], b"a,b\n9,9\n")
        assert sent.status_code == (400 if publisher.hub.kind == "embedded" else 204)
        answer = finalize(client, granted["datapackage.json"])
        assert answer.status_code == 409
        error = answer.json()["error"]
        assert error["code"] in ("upload-incomplete", "upload-mismatch")
        assert "data.csv" in error["message"]
        assert client.get(f"/api/package/{publisher.username}/md5only").status_code == 404
