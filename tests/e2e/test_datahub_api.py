"""DataHub's second-generation API: the real ``datahub-client`` (npm) pushing with Node, the same
flow step by step over plain HTTP, and the bad inputs that API answered."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.conftest import HubServer, Publisher
from tests.e2e.test_wire_contract import md5_b64

NODE_DIR = Path(__file__).parent / "node"
CLIENT_PACKAGES = ("datahub-client@0.5.8", "data.js@0.12.11")
CSV = b"city,year,population\nLyon,2020,522000\nNantes,2020,318000\nNice,2020,342000\n"


@pytest.fixture(scope="session")
def node_modules(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """DataHub's client library from the npm registry, installed once for the session."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.fail("These tests need Node.js and npm (apt-get install nodejs npm).")
    root = tmp_path_factory.mktemp("datahub-client")
    (root / "package.json").write_text('{"name": "dphub-datahub-client-test", "private": true}')
    installed = subprocess.run(
        [npm, "install", "--no-audit", "--no-fund", "--loglevel=error", *CLIENT_PACKAGES],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert installed.returncode == 0, installed.stderr
    return root / "node_modules"


def _token(hub: HubServer, publisher: Publisher) -> str:
    answer = httpx.post(
        f"{hub.url}/api/auth/token",
        json={"username": publisher.username, "secret": publisher.password},
    )
    assert answer.status_code == 200, answer.text
    return str(answer.json()["token"])


def _folder(root: Path, name: str) -> Path:
    root.mkdir(parents=True)
    (root / "cities.csv").write_bytes(CSV)
    descriptor = {
        "name": name,
        "title": "French cities",
        "resources": [{"name": "cities", "path": "cities.csv", "format": "csv"}],
    }
    (root / "datapackage.json").write_text(json.dumps(descriptor))
    return root


def _status(hub: HubServer, owner: str, name: str, token: str) -> dict[str, object]:
    deadline = time.monotonic() + 60
    while True:
        answer = httpx.get(f"{hub.url}/source/{owner}/{name}/latest", headers={"Auth-Token": token})
        assert answer.status_code == 200, answer.text
        body: dict[str, object] = answer.json()
        if body["state"] in ("SUCCEEDED", "FAILED") or time.monotonic() > deadline:
            return body
        time.sleep(0.2)


def test_datahub_client_pushes_unchanged(
    hub: HubServer, publisher: Publisher, node_modules: Path, tmp_path: Path
) -> None:
    token = _token(hub, publisher)
    checked = httpx.get(f"{hub.url}/auth/check", params={"jwt": token}).json()
    assert checked["authenticated"] is True
    ownerid = checked["profile"]["id"]
    assert ownerid == publisher.username
    folder = _folder(tmp_path / "cities", "cities")
    env = {
        **os.environ,
        "NODE_PATH": str(node_modules),
        "HUB": hub.url,
        "TOKEN": token,
        "OWNERID": ownerid,
        "OWNER": publisher.username,
    }
    pushed = subprocess.run(
        ["node", str(NODE_DIR / "datahub_push.js"), str(folder), "published"],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert pushed.returncode == 0, pushed.stderr
    answer = json.loads(pushed.stdout.strip().splitlines()[-1])
    assert answer["success"] is True
    assert answer["dataset_id"] == f"{publisher.username}/cities"
    assert answer["flow_id"] == f"{publisher.username}/cities/1"
    status = _status(hub, publisher.username, "cities", token)
    assert status["state"] == "SUCCEEDED", status
    # the pushed file, byte for byte, and its rows in the datastore
    data = httpx.get(f"{hub.url}/{publisher.username}/cities/r/cities.csv", follow_redirects=True)
    assert data.content == CSV
    rows = httpx.get(
        f"{hub.url}/api/datastore/search",
        params={"resource_id": f"{publisher.username}/cities/cities"},
    ).json()
    assert rows["total"] == 3
    assert rows["records"][0] == {"city": "Lyon", "year": 2020, "population": 522000}


def _gen2_push(
    hub: HubServer, publisher: Publisher, files: dict[str, bytes], owner: str | None = None
) -> tuple[str, dict[str, dict[str, object]]]:
    """The flow of datahub-client, step by step: service token, rawstore authorize, uploads."""
    user_token = _token(hub, publisher)
    service = httpx.get(
        f"{hub.url}/auth/authorize",
        params={"service": "rawstore"},
        headers={"Auth-Token": user_token},
    ).json()
    assert service["service"] == "rawstore"
    assert service["userid"] == publisher.username
    token = service["token"]
    filedata = {
        path: {"md5": md5_b64(data), "length": len(data), "name": path}
        for path, data in files.items()
    }
    body = {"metadata": {"owner": owner or publisher.username}, "filedata": filedata}
    granted = httpx.post(f"{hub.url}/rawstore/authorize", json=body, headers={"Auth-Token": token})
    assert granted.status_code == 200, granted.text
    entries: dict[str, dict[str, object]] = granted.json()["filedata"]
    for path, data in files.items():
        entry = entries[path]
        query = entry["upload_query"]
        assert isinstance(query, dict)
        if not entry["exists"]:
            posted = httpx.post(str(entry["upload_url"]), data=query, files={"file": (path, data)})
            assert posted.status_code == 204, posted.text
        entry["rawstore_url"] = f"{entry['upload_url']}/{query['key']}"
    return token, entries


def test_the_flow_step_by_step_and_reading_back(hub: HubServer, publisher: Publisher) -> None:
    descriptor = json.dumps(
        {"name": "steps", "title": "Step by step", "resources": [{"name": "t", "path": "t.csv"}]}
    ).encode()
    token, entries = _gen2_push(hub, publisher, {"datapackage.json": descriptor, "t.csv": CSV})
    auth = {"Auth-Token": token}
    signed = httpx.get(
        f"{hub.url}/rawstore/presign",
        params={"ownerid": publisher.username, "url": entries["datapackage.json"]["rawstore_url"]},
        headers=auth,
    )
    assert signed.status_code == 200, signed.text
    spec = {
        "meta": {
            "version": 1,
            "ownerid": publisher.username,
            "owner": publisher.username,
            "dataset": "steps",
            "findability": "published",
        },
        "inputs": [{"kind": "datapackage", "url": signed.json()["url"], "parameters": {}}],
    }
    done = httpx.post(f"{hub.url}/source/upload", json=spec, headers=auth).json()
    assert done == {
        "success": True,
        "dataset_id": f"{publisher.username}/steps",
        "flow_id": f"{publisher.username}/steps/1",
        "errors": [],
    }
    status = _status(hub, publisher.username, "steps", token)
    assert status["state"] == "SUCCEEDED"
    assert status["spec_contents"]["meta"]["dataset"] == "steps"  # type: ignore[index]
    assert status["error_log"] == []
    assert set(status) >= {
        "id",
        "state",
        "spec_contents",
        "modified",
        "error_log",
        "pipelines",
        "stats",
    }
    found = httpx.get(
        f"{hub.url}/metastore/search",
        params={"q": '"step"', "size": "10", "datahub.ownerid": json.dumps(publisher.username)},
    ).json()
    assert [r["name"] for r in found["results"]] == ["steps"]
    assert found["summary"]["total"] == 1
    assert found["summary"]["totalBytes"] == len(descriptor) + len(CSV)
    assert found["results"][0]["datahub"]["stats"]["rowcount"] == 3
    resolved = httpx.get(
        f"{hub.url}/resolver/resolve", params={"path": f"{publisher.username}/steps"}
    ).json()
    assert resolved == {"packageid": "steps", "userid": publisher.username}
    pem = httpx.get(f"{hub.url}/auth/public-key")
    assert pem.text.startswith("-----BEGIN PUBLIC KEY-----")


def test_bad_input_is_answered_as_that_api_did(
    hub: HubServer, make_publisher: Callable[..., Publisher]
) -> None:
    alice, bob = make_publisher("dha"), make_publisher("dhb")
    descriptor = json.dumps({"name": "mine", "resources": []}).encode()
    token, entries = _gen2_push(hub, alice, {"datapackage.json": descriptor})
    auth = {"Auth-Token": token}
    url = str(entries["datapackage.json"]["rawstore_url"])

    # a token of another user: refused, whatever the body says
    bob_token = _token(hub, bob)
    other = httpx.post(
        f"{hub.url}/rawstore/authorize",
        json={
            "metadata": {"owner": alice.username},
            "filedata": {"a.csv": {"md5": md5_b64(b"x"), "length": 1}},
        },
        headers={"Auth-Token": bob_token},
    )
    assert other.status_code == 403
    assert other.json()["error"]["code"] == "forbidden"
    # a presign of another user's object is absent; so is an upload that never was
    for asked in (url, url.replace(url.split("/")[-2], "nosuchsession00000000")):
        refused = httpx.get(
            f"{hub.url}/rawstore/presign",
            params={"ownerid": alice.username, "url": asked},
            headers={"Auth-Token": bob_token},
        )
        assert refused.status_code == 404, refused.text
    # another user's upload named in a flow spec: absent too
    spec = {
        "meta": {"ownerid": bob.username, "owner": bob.username, "dataset": "mine"},
        "inputs": [{"kind": "datapackage", "url": url}],
    }
    stolen = httpx.post(f"{hub.url}/source/upload", json=spec, headers={"Auth-Token": bob_token})
    assert stolen.status_code == 404

    def upload(body: object) -> dict[str, object]:
        answer = httpx.post(f"{hub.url}/source/upload", json=body, headers=auth)
        assert answer.status_code == 200, answer.text
        result: dict[str, object] = answer.json()
        assert result["success"] is False
        assert result["errors"]
        return result

    no_owner = upload(
        {"meta": {"dataset": "mine"}, "inputs": [{"kind": "datapackage", "url": url}]}
    )
    assert "meta.owner" in str(no_owner["errors"])
    kind = upload({"meta": {"ownerid": alice.username}, "inputs": [{"kind": "zenodo", "url": url}]})
    assert "Unknown input kind 'zenodo'" in str(kind["errors"])
    assert "meta is missing" in str(upload({"inputs": []})["errors"])
    wrong_owner = upload(
        {"meta": {"ownerid": bob.username}, "inputs": [{"kind": "datapackage", "url": url}]}
    )
    assert "not the owner" in str(wrong_owner["errors"])
    assert "not an upload URL" in str(
        upload(
            {
                "meta": {"ownerid": alice.username},
                "inputs": [{"kind": "datapackage", "url": "https://elsewhere.example/x"}],
            }
        )["errors"]
    )
    # nothing was published by any of it
    assert httpx.get(f"{hub.url}/api/package/{alice.username}/mine").status_code == 404

    # the other calls
    assert httpx.get(f"{hub.url}/auth/authorize", params={"service": "rawstore"}).status_code == 401
    unknown = httpx.get(f"{hub.url}/auth/authorize", params={"service": "specstore"}, headers=auth)
    assert unknown.status_code == 400
    assert httpx.get(f"{hub.url}/auth/check").json() == {
        "authenticated": False,
        "providers": {},
    }
    assert httpx.get(f"{hub.url}/metastore/search", params={"q": "not json"}).status_code == 400
    assert httpx.get(f"{hub.url}/metastore/search", params={"size": "-1"}).status_code == 400
    assert httpx.get(f"{hub.url}/resolver/resolve", params={"path": "nobody"}).status_code == 400
    assert (
        httpx.get(
            f"{hub.url}/resolver/resolve", params={"path": f"{alice.username}/none"}
        ).status_code
        == 404
    )
    assert httpx.get(f"{hub.url}/source/{alice.username}/none/latest").status_code == 404
