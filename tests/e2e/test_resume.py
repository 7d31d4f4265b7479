"""A `dphub push` killed in the middle of a 200 MB file resumes: the re-run sends only the missing
parts, and the hub then serves the file with its SHA-256."""

from __future__ import annotations

import hashlib
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.conftest import Publisher, cli, fetch, write_package

SIZE = 200 * 1000 * 1000
PART = 5 * 1024 * 1024


def upload_id_of(publisher: Publisher, sha256: str) -> str | None:
    """The open multipart upload of these bytes, as the hub would hand it to a re-run."""
    with publisher.client() as client:
        answer = client.post(
            "/api/datastore/authorize",
            json={
                "metadata": {"owner": publisher.username, "name": "probe"},
                "filedata": {"big.bin": {"size": SIZE, "sha256": sha256}},
            },
        )
    plan = answer.json()["filedata"]["big.bin"].get("multipart")
    return str(plan["upload_id"]) if plan else None


def parts_held(publisher: Publisher, upload_id: str) -> int:
    with publisher.client() as client:
        status = client.get(f"/api/bitstore/multipart/{upload_id}")
    return len(status.json().get("parts", [])) if status.status_code == 200 else 0


def test_a_killed_push_resumes_with_the_missing_parts(publisher: Publisher, tmp_path: Path) -> None:
    data = os.urandom(SIZE)
    sha256 = hashlib.sha256(data).hexdigest()
    folder = write_package(tmp_path / "big", "big", files={"big.bin": data})
    first = subprocess.Popen(
        [sys.executable, "-m", "dphub", "push", str(folder), "--workers", "1"],
        env=publisher.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        upload_id = None
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and first.poll() is None:
            upload_id = upload_id or upload_id_of(publisher, sha256)
            if upload_id and parts_held(publisher, upload_id) >= 10:
                break
            time.sleep(0.05)
        assert first.poll() is None, "the push ended before it could be interrupted"
        first.send_signal(signal.SIGKILL)
    finally:
        if first.poll() is None:
            first.kill()
        first.wait(timeout=30)
    assert upload_id is not None
    # a part the killed push had in flight may still land in the store: count once it settles
    held = parts_held(publisher, upload_id)
    while True:
        time.sleep(0.5)
        again = parts_held(publisher, upload_id)
        if again == held:
            break
        held = again
    total_parts = -(-SIZE // PART)
    assert 10 <= held < total_parts

    second = cli("push", str(folder), env=publisher.env)
    found = re.search(r"\(([\d.]+) MiB sent, ([\d.]+) MiB already there", second.stdout)
    assert found is not None, second.stdout
    sent, resumed = (float(v) * 1024 * 1024 for v in found.groups())
    # only the missing parts (and the small descriptor) went again; to the 0.1 MiB printed
    assert abs(resumed - held * PART) < 0.1 * 1024 * 1024
    assert sent <= (total_parts - held) * PART + 0.1 * 1024 * 1024
    show = fetch(f"{publisher.hub.url}/api/package/{publisher.username}/big").json()
    files = {f["path"]: f for f in show["files"]}
    assert files["big.bin"]["sha256"] == sha256
    served = hashlib.sha256()
    with httpx.stream(
        "GET", f"{publisher.hub.url}/{publisher.username}/big/r/big.bin", follow_redirects=True
    ) as answer:
        for chunk in answer.iter_bytes():
            served.update(chunk)
    assert served.hexdigest() == sha256
