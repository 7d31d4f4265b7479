"""`exists: true` only as DESIGN §3 allows: SHA-256 sent, and bytes the requester could already read."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from tests.conftest import Publisher, cli, fetch, write_package
from tests.e2e.test_bad_input import authorize, finalize, md5_b64, post_form


def unique_bytes(label: str) -> bytes:
    return f"label,value\n{label},{hashlib.sha256(label.encode()).hexdigest()}\n".encode()


def exists_for(publisher: Publisher, data: bytes, *, sha256: bool = True) -> bool:
    with publisher.client() as client:
        granted = authorize(client, publisher.username, "probe", {"x.csv": data}, sha256=sha256)
    return bool(granted["x.csv"]["exists"])


def test_private_bytes_of_another_publisher_are_never_offered(
    publisher: Publisher, make_publisher: Any, tmp_path: Path
) -> None:
    secret = unique_bytes(f"private-{tmp_path.name}")
    folder = write_package(tmp_path / "priv", "priv", files={"data.csv": secret})
    cli("push", str(folder), "--private", env=publisher.env)
    other = make_publisher()
    assert exists_for(other, secret) is False
    assert exists_for(publisher, secret) is True  # its own bytes


def test_published_bytes_are_reused_without_upload(
    publisher: Publisher, make_publisher: Any, tmp_path: Path
) -> None:
    shared = unique_bytes(f"public-{tmp_path.name}")
    folder = write_package(tmp_path / "pub", "pub", files={"data.csv": shared})
    cli("push", str(folder), env=publisher.env)

    other = make_publisher()
    descriptor = json.dumps({"name": "reuse", "resources": [{"name": "d", "path": "d.csv"}]})
    with other.client() as client:
        granted = authorize(
            client,
            other.username,
            "reuse",
            {"datapackage.json": descriptor.encode(), "d.csv": shared},
        )
        assert granted["d.csv"]["exists"] is True
        assert granted["datapackage.json"]["exists"] is False
        assert post_form(granted["datapackage.json"], descriptor.encode()).status_code == 204
        assert finalize(client, granted["datapackage.json"]).status_code == 200
    served = fetch(f"{publisher.hub.url}/{other.username}/reuse/r/d.csv")
    assert served.content == shared


def test_md5_alone_never_decides_identity(publisher: Publisher, tmp_path: Path) -> None:
    data = unique_bytes(f"md5-{tmp_path.name}")
    folder = write_package(tmp_path / "m", "m", files={"data.csv": data})
    cli("push", str(folder), env=publisher.env)
    assert exists_for(publisher, data, sha256=False) is False
    assert exists_for(publisher, data, sha256=True) is True


def test_a_hash_with_another_size_is_not_reused(publisher: Publisher, tmp_path: Path) -> None:
    data = unique_bytes(f"size-{tmp_path.name}")
    folder = write_package(tmp_path / "s", "s", files={"data.csv": data})
    cli("push", str(folder), env=publisher.env)
    with publisher.client() as client:
        answer = client.post(
            "/api/datastore/authorize",
            json={
                "metadata": {"owner": publisher.username, "name": "s"},
                "filedata": {
                    "data.csv": {
                        "md5": md5_b64(data),
                        "size": len(data) + 1,
                        "sha256": hashlib.sha256(data).hexdigest(),
                    }
                },
            },
        )
    assert answer.json()["filedata"]["data.csv"]["exists"] is False
