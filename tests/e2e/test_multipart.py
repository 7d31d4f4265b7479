"""Large files in parts, over plain HTTP, on both setups: plan, resume, complete, refuse, clean up.

The test hubs split files above 8 MiB into parts of 5 MiB (see ``start_hub``)."""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

import httpx

from tests.conftest import Publisher, fetch
from tests.e2e.test_bad_input import finalize, md5_b64, post_form

PART = 5 * 1024 * 1024


def big_bytes(size: int = 2 * PART + 1234) -> bytes:
    return os.urandom(size)


def authorize(publisher: Publisher, name: str, files: dict[str, bytes]) -> dict[str, Any]:
    filedata = {
        path: {"size": len(data), "sha256": hashlib.sha256(data).hexdigest(), "md5": md5_b64(data)}
        for path, data in files.items()
    }
    with publisher.client() as client:
        answer = client.post(
            "/api/datastore/authorize",
            json={"metadata": {"owner": publisher.username, "name": name}, "filedata": filedata},
        )
    assert answer.status_code == 200, answer.text
    granted: dict[str, Any] = answer.json()["filedata"]
    return granted


def put_part(plan: dict[str, Any], number: int, data: bytes) -> httpx.Response:
    part = plan["parts"][number - 1]
    start = (number - 1) * plan["part_size"]
    body = data[start : start + part["size"]]
    return httpx.put(part["url"], content=body, headers=part["headers"])


def descriptor(name: str) -> bytes:
    return json.dumps({"name": name, "resources": [{"name": "big", "path": "big.bin"}]}).encode()


def test_a_large_file_goes_in_parts_and_is_served_whole(publisher: Publisher) -> None:
    data = big_bytes()
    meta = descriptor("parted")
    granted = authorize(publisher, "parted", {"datapackage.json": meta, "big.bin": data})
    entry = granted["big.bin"]
    assert "put_url" not in entry
    plan = entry["multipart"]
    assert [p["size"] for p in plan["parts"]] == [PART, PART, 1234]
    assert plan["uploaded"] == []
    for number in (1, 2, 3):
        assert put_part(plan, number, data).status_code in (200, 204)
    with publisher.client() as client:
        done = client.post(plan["complete_url"], json={})
        assert done.status_code == 200, done.text
        assert done.json()["sha256"] == hashlib.sha256(data).hexdigest()
        assert post_form(granted["datapackage.json"], meta).status_code == 204
        final = finalize(client, granted["datapackage.json"])
        assert final.status_code == 200, final.text
    served = fetch(f"{publisher.hub.url}/{publisher.username}/parted/r/big.bin")
    assert hashlib.sha256(served.content).hexdigest() == hashlib.sha256(data).hexdigest()


def test_a_rerun_resumes_with_the_parts_already_sent(publisher: Publisher) -> None:
    data = big_bytes()
    first = authorize(publisher, "resumed", {"big.bin": data})["big.bin"]["multipart"]
    assert put_part(first, 1, data).status_code in (200, 204)
    # the push is interrupted here; a re-run authorizes again
    again = authorize(publisher, "resumed", {"big.bin": data})["big.bin"]["multipart"]
    assert again["upload_id"] == first["upload_id"]
    assert again["uploaded"] == [1]
    with publisher.client() as client:
        status = client.get(f"/api/bitstore/multipart/{first['upload_id']}").json()
        assert status["parts"] == [{"number": 1, "size": PART}]
        for number in (2, 3):
            assert put_part(again, number, data).status_code in (200, 204)
        assert client.post(again["complete_url"], json={}).status_code == 200


def test_complete_with_a_missing_part_is_409(publisher: Publisher) -> None:
    data = big_bytes()
    plan = authorize(publisher, "holey", {"big.bin": data})["big.bin"]["multipart"]
    for number in (1, 3):
        assert put_part(plan, number, data).status_code in (200, 204)
    with publisher.client() as client:
        answer = client.post(plan["complete_url"], json={})
    assert answer.status_code == 409
    error = answer.json()["error"]
    assert error["code"] == "upload-incomplete"
    assert error["parts"] == [2]


def test_wrong_bytes_in_a_part_are_refused_and_never_filed(publisher: Publisher) -> None:
    data = big_bytes()
    forged = bytearray(data)
    forged[PART + 10] ^= 0xFF
    plan = authorize(publisher, "forged", {"big.bin": data})["big.bin"]["multipart"]
    for number in (1, 2, 3):
        assert put_part(plan, number, bytes(forged)).status_code in (200, 204)
    with publisher.client() as client:
        answer = client.post(plan["complete_url"], json={})
        assert answer.status_code == 409
        assert answer.json()["error"]["code"] == "upload-mismatch"
    # the bytes were not filed: the same file is still offered for upload, not as existing
    again = authorize(publisher, "forged", {"big.bin": data})["big.bin"]
    assert again["exists"] is False
    assert again["multipart"]["uploaded"] == []


def test_another_user_cannot_see_or_complete_an_upload(
    publisher: Publisher, make_publisher: Any
) -> None:
    data = big_bytes()
    plan = authorize(publisher, "mine", {"big.bin": data})["big.bin"]["multipart"]
    other = make_publisher()
    with other.client() as client:
        assert client.get(f"/api/bitstore/multipart/{plan['upload_id']}").status_code == 404
        assert client.post(plan["complete_url"], json={}).status_code == 404
    assert httpx.post(plan["complete_url"], json={}).status_code == 401


def test_cleanup_aborts_stale_uploads(publisher: Publisher) -> None:
    data = big_bytes()
    plan = authorize(publisher, "stale", {"big.bin": data})["big.bin"]["multipart"]
    assert put_part(plan, 1, data).status_code in (200, 204)
    result = publisher.hub.admin("bitstore", "cleanup", "--older-than-hours", "0")
    assert "Aborted" in result.stdout
    with publisher.client() as client:
        gone = client.get(f"/api/bitstore/multipart/{plan['upload_id']}")
    assert gone.status_code == 404
    fresh = authorize(publisher, "stale", {"big.bin": data})["big.bin"]["multipart"]
    assert fresh["upload_id"] != plan["upload_id"]
    assert fresh["uploaded"] == []
