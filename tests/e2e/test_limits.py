"""The limits of docs/operations.md on a running hub: header and body caps, stalled uploads and
downloads, pushes in progress per publisher, and the security headers every answer carries."""

from __future__ import annotations

import hashlib
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import (
    HubServer,
    Publisher,
    cli,
    new_publisher,
    start_hub,
    stop_hub,
    write_package,
)

MAX_BODY = 4096
MAX_HEADERS = 4096


@pytest.fixture(scope="module")
def tight(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubServer]:
    """An embedded hub with small limits, believing X-Forwarded-Proto from loopback."""
    server = start_hub(
        tmp_path_factory.mktemp("limits"),
        {
            "DPHUB_MAX_BODY_BYTES": str(MAX_BODY),
            "DPHUB_MAX_HEADER_BYTES": str(MAX_HEADERS),
            "DPHUB_UPLOAD_IDLE_TIMEOUT": "1",
            "DPHUB_DOWNLOAD_IDLE_TIMEOUT": "1",
            "DPHUB_MAX_OPEN_UPLOADS": "2",
            "DPHUB_HSTS_MAX_AGE": "600",
            "DPHUB_REFERRER_POLICY": "strict-origin",
            "DPHUB_TRUSTED_PROXIES": "127.0.0.1",
        },
    )
    yield server
    stop_hub(server)


@pytest.fixture(scope="module")
def tight_publisher(tight: HubServer, tmp_path_factory: pytest.TempPathFactory) -> Publisher:
    publisher = new_publisher(tight, tmp_path_factory.mktemp("tight-home"))
    publisher.login()
    return publisher


def _error(answer: httpx.Response, status: int, code: str) -> str:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("application/json")
    error = answer.json()["error"]
    assert error["code"] == code
    assert error["message"].endswith(".")
    return str(error["message"])


def test_api_answers_carry_the_security_headers(hub: HubServer) -> None:
    for path in ("/api/auth/check", "/api/package/nobody/nothing", "/healthz"):
        answer = httpx.get(hub.url + path, timeout=30)
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["referrer-policy"] == "no-referrer"
        # plain HTTP with an http base URL: no HSTS (browsers would ignore it anyway)
        assert "strict-transport-security" not in answer.headers
    page = httpx.get(hub.url + "/login", timeout=30)
    assert page.headers["referrer-policy"] == "same-origin"
    assert page.headers["x-content-type-options"] == "nosniff"


def test_hsts_and_referrer_policy_follow_the_settings(tight: HubServer) -> None:
    behind_tls = httpx.get(
        tight.url + "/api/auth/check", headers={"X-Forwarded-Proto": "https"}, timeout=30
    )
    assert behind_tls.headers["strict-transport-security"] == "max-age=600"
    assert behind_tls.headers["referrer-policy"] == "strict-origin"
    plain = httpx.get(tight.url + "/api/auth/check", timeout=30)
    assert "strict-transport-security" not in plain.headers


def test_headers_past_the_cap_are_refused_with_431(tight: HubServer) -> None:
    fine = httpx.get(tight.url + "/api/auth/check", headers={"X-Pad": "a" * 1000}, timeout=30)
    assert fine.status_code == 200
    refused = httpx.get(tight.url + "/api/auth/check", headers={"X-Pad": "a" * 5000}, timeout=30)
    message = _error(refused, 431, "headers-too-large")
    assert str(MAX_HEADERS) in message
    assert refused.headers["x-request-id"]


def test_bodies_past_the_cap_are_refused_with_413_declared_or_streamed(tight: HubServer) -> None:
    big = b'{"username": "' + b"a" * (MAX_BODY + 10) + b'", "secret": "x"}'
    declared = httpx.post(tight.url + "/api/auth/token", content=big, timeout=30)
    assert str(MAX_BODY) in _error(declared, 413, "payload-too-large")

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(big), 1000):
            yield big[start : start + 1000]

    streamed = httpx.post(tight.url + "/api/auth/token", content=chunks(), timeout=30)
    assert "content-length" not in streamed.request.headers
    _error(streamed, 413, "payload-too-large")
    # a body under the cap reaches the route
    small = httpx.post(tight.url + "/api/auth/token", json={"username": "x", "secret": "y"})
    assert small.status_code == 401


def test_a_stalled_body_ends_with_408(tight: HubServer) -> None:
    host, port = tight.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as conn:
        conn.sendall(
            b"POST /api/auth/token HTTP/1.1\r\nHost: hub\r\nContent-Type: application/json\r\n"
            b"Content-Length: 100\r\n\r\n" + b'{"username": '
        )
        started = time.monotonic()
        answer = _read_answer(conn)
        waited = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert b'"code":"body-stalled"' in answer
    assert 0.9 < waited < 20


def _read_answer(conn: socket.socket) -> bytes:
    received = b""
    while b"\r\n\r\n" not in received or not received.rstrip().endswith(b"}"):
        chunk = conn.recv(65536)
        if not chunk:
            break
        received += chunk
    return received


def test_files_are_bounded_by_their_grant_not_the_body_cap(
    tight: HubServer, tight_publisher: Publisher, tmp_path: Path
) -> None:
    content = bytes(range(256)) * 64  # 16 KiB, four times the body cap
    folder = write_package(
        tmp_path / "big",
        "big-file",
        files={"data/blob.bin": content},
        descriptor={"name": "big-file", "resources": [{"name": "blob", "path": "data/blob.bin"}]},
    )
    cli("push", str(folder), env=tight_publisher.env)
    answer = httpx.get(
        f"{tight.url}/{tight_publisher.username}/big-file/r/blob.bin",
        follow_redirects=True,
        timeout=30,
    )
    assert answer.status_code == 200
    assert hashlib.sha256(answer.content).hexdigest() == hashlib.sha256(content).hexdigest()


def test_a_reader_that_takes_nothing_is_cut_off(
    tight: HubServer, tight_publisher: Publisher, tmp_path: Path
) -> None:
    size = 24 * 1024 * 1024  # far more than the loopback socket buffers hold
    folder = tmp_path / "huge"
    (folder / "data").mkdir(parents=True)
    with open(folder / "data" / "huge.bin", "wb") as out:
        block = bytes(range(256)) * 4096
        for _ in range(size // len(block)):
            out.write(block)
    write_package(
        folder,
        "huge-file",
        files={},
        descriptor={"name": "huge-file", "resources": [{"name": "huge", "path": "data/huge.bin"}]},
    )
    cli("push", str(folder), env=tight_publisher.env, timeout=300)
    host, port = tight.url.removeprefix("http://").split(":")
    path = f"/{tight_publisher.username}/huge-file/r/huge.bin"
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as conn:
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        conn.connect((host, int(port)))
        conn.sendall(f"GET {path} HTTP/1.1\r\nHost: hub\r\n\r\n".encode())
        time.sleep(4)  # take nothing for longer than the idle timeout
        conn.settimeout(30)
        received = 0
        while chunk := conn.recv(1 << 20):
            received += len(chunk)
    assert 0 < received < size
    deadline = time.monotonic() + 10
    while "the client took no byte for 1 seconds" not in tight.log_text():
        assert time.monotonic() < deadline, tight.log_text()[-2000:]
        time.sleep(0.1)


def test_pushes_in_progress_are_capped_per_publisher(
    tight: HubServer, tight_publisher: Publisher, tmp_path: Path
) -> None:
    owner = new_publisher(tight, tmp_path / "owner")
    other = new_publisher(tight, tmp_path / "other")

    def authorize(publisher: Publisher, name: str) -> httpx.Response:
        with publisher.client() as client:
            return client.post(
                "/api/datastore/authorize",
                json={
                    "metadata": {"owner": publisher.username, "name": name},
                    "filedata": {"datapackage.json": {"length": 10, "sha256": "ab" * 32}},
                },
            )

    assert authorize(owner, "one").status_code == 200
    assert authorize(owner, "two").status_code == 200
    refused = authorize(owner, "three")
    message = _error(refused, 429, "too-many-uploads")
    assert "2 pushes in progress" in message
    assert refused.headers["retry-after"] == "60"
    # other publishers are not held back
    assert authorize(other, "one").status_code == 200
    # the real CLI shows the refusal to the publisher
    folder = write_package(tmp_path / "pkg", "four")
    owner.login()
    result = cli("push", str(folder), env=owner.env, check=False)
    assert result.returncode != 0
    assert "pushes in progress" in result.stderr + result.stdout
