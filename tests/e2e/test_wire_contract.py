"""The wire API of DESIGN §2 exactly as the original DataHub clients use it, over plain HTTP."""

from __future__ import annotations

import base64
import hashlib
import json

import httpx

from tests.conftest import HubServer, Publisher, fetch


def md5_b64(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data, usedforsecurity=False).digest()).decode()


def original_client_push(
    hub: HubServer, username: str, secret: str, files: dict[str, bytes], name: str
) -> dict[str, object]:
    """What an original DataHub client does: JSON login, MD5-only authorize, POST forms, finalize."""
    token = httpx.post(
        f"{hub.url}/api/auth/token", json={"username": username, "secret": secret}
    ).json()["token"]
    auth = {"Auth-Token": token}
    filedata = {
        path: {"md5": md5_b64(data), "length": len(data), "name": path.rsplit("/", 1)[-1]}
        for path, data in files.items()
    }
    answer = httpx.post(
        f"{hub.url}/api/datastore/authorize",
        json={"metadata": {"owner": username, "name": name}, "filedata": filedata},
        headers=auth,
    )
    assert answer.status_code == 200, answer.text
    granted = answer.json()["filedata"]
    for path, data in files.items():
        entry = granted[path]
        assert "put_url" not in entry  # no SHA-256 sent, so only the POST form
        if not entry["exists"]:
            posted = httpx.post(
                entry["upload_url"],
                data=entry["upload_query"],
                files={"file": (entry["name"], data)},
            )
            assert posted.status_code == 204, posted.text
    descriptor_entry = granted["datapackage.json"]
    url = descriptor_entry["upload_url"] + "/" + descriptor_entry["upload_query"]["key"]
    final = httpx.post(f"{hub.url}/api/package/upload", json={"datapackage": url}, headers=auth)
    assert final.status_code == 200, final.text
    body: dict[str, object] = final.json()
    return body


def test_token_from_json_username_secret(hub: HubServer, publisher: Publisher) -> None:
    answer = httpx.post(
        f"{hub.url}/api/auth/token",
        json={"username": publisher.username, "secret": publisher.secret},
    )
    assert answer.status_code == 200
    body = answer.json()
    assert set(body) >= {"token"}
    assert body["token"].count(".") == 2  # a JWT
    assert body["expires_at"] > 0


def test_token_from_email_and_password_and_basic_auth(hub: HubServer, publisher: Publisher) -> None:
    by_email = httpx.post(
        f"{hub.url}/api/auth/token",
        json={"email": publisher.email, "secret": publisher.password},
    )
    assert by_email.status_code == 200, by_email.text
    basic = httpx.post(f"{hub.url}/api/auth/token", auth=(publisher.username, publisher.secret))
    assert basic.status_code == 200, basic.text


def test_token_accepted_from_every_place(hub: HubServer, publisher: Publisher) -> None:
    token = publisher.token()
    for kwargs in (
        {"headers": {"Auth-Token": token}},
        {"headers": {"Authorization": f"Bearer {token}"}},
        {"params": {"jwt": token}},
    ):
        body = fetch(f"{hub.url}/api/auth/check", **kwargs).json()  # type: ignore[arg-type]
        assert body["authenticated"] is True
        assert body["profile"]["username"] == publisher.username
    anonymous = fetch(f"{hub.url}/api/auth/check").json()
    assert anonymous == {"authenticated": False, "providers": {}}


def test_original_client_publishes_unchanged(hub: HubServer, publisher: Publisher) -> None:
    name = "wire-original"
    csv = b"year,value\n2020,1\n2021,2\n"
    descriptor = json.dumps(
        {"name": name, "resources": [{"name": "values", "path": "data/values.csv"}]}
    ).encode()
    final = original_client_push(
        hub,
        publisher.username,
        publisher.secret,
        {"datapackage.json": descriptor, "data/values.csv": csv},
        name,
    )
    assert final["status"] == "queued"
    assert final["revision"] == 1
    assert str(final["status_url"]).endswith(
        f"/api/package/{publisher.username}/{name}/revisions/1"
    )

    status = hub.wait_processed(publisher.username, name, 1)
    assert status["state"] == "SUCCEEDED"
    assert set(status) >= {"state", "pipelines", "errors", "stats", "created", "modified"}

    show = fetch(f"{hub.url}/api/package/{publisher.username}/{name}").json()
    assert set(show) >= {
        "id",
        "name",
        "publisher",
        "descriptor",
        "readme",
        "revision",
        "findability",
        "bitstore_url",
    }
    assert show["revision"] == 1
    assert show["findability"] == "published"
    served = fetch(f"{hub.url}/{publisher.username}/{name}/r/values.csv")
    assert served.content == csv
    by_index = fetch(f"{hub.url}/{publisher.username}/{name}/r/0.csv")
    assert by_index.content == csv


def test_authorize_answer_has_the_contract_fields(hub: HubServer, publisher: Publisher) -> None:
    data = b"x\n1\n"
    with publisher.client() as client:
        answer = client.post(
            "/api/datastore/authorize",
            json={
                "metadata": {"owner": publisher.username, "name": "fields"},
                "filedata": {
                    "data.csv": {
                        "md5": md5_b64(data),
                        "size": len(data),
                        "type": "text/csv",
                        "sha256": hashlib.sha256(data).hexdigest(),
                    }
                },
            },
        )
    assert answer.status_code == 200, answer.text
    entry = answer.json()["filedata"]["data.csv"]
    assert set(entry) >= {"name", "md5", "size", "type", "exists", "upload_url", "upload_query"}
    assert entry["md5"] == md5_b64(data)
    assert entry["size"] == len(data)
    assert entry["type"] == "text/csv"
    assert entry["exists"] is False
    query = entry["upload_query"]
    assert {"key", "policy", "Content-Type"} <= set(query)
    if publisher.hub.kind == "embedded":  # the hub's own endpoint, keyed by upload session
        assert query["key"].endswith("/data.csv")
        assert query["Content-MD5"] == md5_b64(data)
    else:  # straight to the S3 store, at the content address
        assert query["key"].endswith(hashlib.sha256(data).hexdigest())
    assert entry["put_url"].startswith(entry["upload_url"] + "/")
    assert (
        entry["put_headers"]["x-amz-checksum-sha256"]
        == base64.b64encode(hashlib.sha256(data).digest()).decode()
    )


def test_error_bodies_are_json_with_code_and_message(hub: HubServer) -> None:
    for method, path in (
        ("GET", "/api/package/nobody-here/nothing"),
        ("GET", "/api/no/such/route/at/all"),
        ("POST", "/api/datastore/authorize"),
        ("DELETE", "/api/auth/token"),
    ):
        answer = httpx.request(method, f"{hub.url}{path}")
        assert answer.headers["content-type"].startswith("application/json"), path
        error = answer.json()["error"]
        assert error["code"]
        assert error["message"].endswith(".")
        assert 400 <= answer.status_code < 500


def test_openapi_lists_the_routes(hub: HubServer) -> None:
    paths = fetch(f"{hub.url}/openapi.json").json()["paths"]
    for path in (
        "/api/auth/token",
        "/api/auth/check",
        "/api/datastore/authorize",
        "/api/package/upload",
        "/api/package/{owner}/{name}",
        "/api/package/{owner}/{name}/revisions/{ref}",
        "/{owner}/{name}/datapackage.json",
    ):
        assert path in paths
