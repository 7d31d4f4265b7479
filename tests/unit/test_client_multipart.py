"""Multipart and resumable uploads of ``Client.push``, against a fake hub and a fake object store.

Both are real HTTP servers on loopback ports (two origins, as with S3 behind a hub). The store
records every byte of every part it is sent and keeps a part only when its whole body arrived, as
S3 does; the hub plans uploads as the real one does (every part, plus the ones the store already
holds), assembles the parts at complete and checks their SHA-256. A test breaks either on purpose:
a dropped connection, an error answer, a corrupted part, a stalled part while the client is killed.
"""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from rich.console import Console

from dphub.cli._hub import TransferBar
from dphub.client import Client, DphubError, HashCache, ProgressEvent, PushResult, _transfer
from dphub.client._multipart import parse_plan
from dphub.errors import SignatureMismatch, UploadMismatch

TOKEN = "t0k3n"
PART = 256 * 1024
THRESHOLD = 600 * 1024
"""Files above this size get a multipart plan from the fake hub."""


# The fake hub and store


@dataclass
class Upload:
    upload_id: str
    sha256: str
    size: int
    part_size: int
    parts: dict[int, bytes] = field(default_factory=dict)
    completed: bool = False

    @property
    def count(self) -> int:
        return -(-self.size // self.part_size)

    def part_bytes(self, number: int) -> int:
        return min(self.part_size, self.size - (number - 1) * self.part_size)


@dataclass
class Seen:
    role: str
    method: str
    path: str
    authorization: str | None
    headers: dict[str, str]


class FakeHub:
    """The state both servers share, and the faults a test can switch on."""

    def __init__(self, part_size: int = PART) -> None:
        self.part_size = part_size
        self.lock = threading.Lock()
        self.blobs: dict[str, bytes] = {}
        self.uploads: dict[str, Upload] = {}
        self.expected: set[str] = set()
        self.seen: list[Seen] = []
        self.part_sends: list[int] = []
        """Part numbers whose whole body arrived and was stored, in order."""
        self.part_requests: Counter[int] = Counter()
        """Requests per part number, whatever became of them."""
        self.part_log: list[tuple[str, int]] = []
        """(upload id, part number) of every part request."""
        self.completes: list[str] = []
        self.finalized = 0
        self.hub_url = ""
        self.store_url = ""
        # Faults
        self.answer_once: dict[int, tuple[int, str, str]] = {}
        """Part number → (status, content type, body) answered once instead of storing it."""
        self.drop_once: set[int] = set()
        """Part numbers whose first request is cut off after half its body."""
        self.outage_after: int | None = None
        """Once this many parts are stored, every part request is cut off after half its body."""
        self.corrupt: set[int] = set()
        """Part numbers stored with their first byte flipped."""
        self.complete_says: str | None = None
        """A SHA-256 the complete answer names instead of the real one."""
        self.gate_after: int | None = None
        """Once this many parts are stored, part requests wait for ``gate``, then are cut off."""
        self.gate = threading.Event()
        self.waiting = 0

    # Seeding and reading back

    def seed(self, data: bytes, parts: set[int]) -> Upload:
        """An unfinished upload of ``data`` holding ``parts``, as an interrupted push leaves it."""
        upload = self._upload_for(hashlib.sha256(data).hexdigest(), len(data))
        for number in parts:
            start = (number - 1) * upload.part_size
            upload.parts[number] = data[start : start + upload.part_bytes(number)]
        return upload

    def upload_of(self, data: bytes) -> Upload:
        sha256 = hashlib.sha256(data).hexdigest()
        [upload] = [u for u in self.uploads.values() if u.sha256 == sha256]
        return upload

    def stored_parts(self) -> int:
        return sum(len(u.parts) for u in self.uploads.values())

    def _upload_for(self, sha256: str, size: int) -> Upload:
        for upload in self.uploads.values():
            if (upload.sha256, upload.size) == (sha256, size) and not upload.completed:
                return upload
        upload = Upload(uuid.uuid4().hex, sha256, size, self.part_size)
        self.uploads[upload.upload_id] = upload
        return upload

    # The hub

    def authorize(self, body: dict[str, Any]) -> dict[str, Any]:
        answers: dict[str, Any] = {}
        with self.lock:
            self.expected = set()
            for path, info in body["filedata"].items():
                sha256, size = info["sha256"], info["size"]
                self.expected.add(sha256)
                entry: dict[str, Any] = {
                    "name": info.get("name"),
                    "size": size,
                    "type": info.get("type"),
                    "exists": sha256 in self.blobs,
                    "upload_url": f"{self.hub_url}/rawstore",
                    "upload_query": {"key": f"alice/{sha256}"},
                }
                if entry["exists"]:
                    pass
                elif size > THRESHOLD:
                    entry["multipart"] = self._plan(self._upload_for(sha256, size))
                else:
                    entry["put_url"] = f"{self.store_url}/blobs/{sha256}?X-Amz-Signature=s1"
                    entry["put_headers"] = {"x-amz-checksum-sha256": sha256}
                answers[path] = entry
        return {"filedata": answers}

    def _plan(self, upload: Upload) -> dict[str, Any]:
        base = f"{self.store_url}/parts/{upload.upload_id}"
        return {
            "upload_id": upload.upload_id,
            "part_size": upload.part_size,
            "parts": [
                {
                    "number": n,
                    "size": upload.part_bytes(n),
                    "url": f"{base}/{n}?X-Amz-Signature=sig{n}",
                    "headers": {"x-fake-part": str(n)},
                }
                for n in range(1, upload.count + 1)
            ],
            "uploaded": sorted(upload.parts),
            "complete_url": f"{self.hub_url}/api/bitstore/multipart/{upload.upload_id}/complete",
        }

    def complete(self, upload_id: str) -> tuple[int, dict[str, Any]]:
        with self.lock:
            self.completes.append(upload_id)
            upload = self.uploads[upload_id]
            missing = [n for n in range(1, upload.count + 1) if n not in upload.parts]
            if missing:
                return 409, _error("upload-incomplete", f"Parts {missing} are missing.")
            data = b"".join(upload.parts[n] for n in range(1, upload.count + 1))
            sha256 = hashlib.sha256(data).hexdigest()
            if sha256 != upload.sha256 or len(data) != upload.size:
                return 409, _error("upload-mismatch", "The parts do not add up to the file.")
            self.blobs[sha256] = data
            upload.completed = True
        return 200, {"sha256": self.complete_says or sha256, "size": len(data)}

    def finalize(self) -> tuple[int, dict[str, Any]]:
        with self.lock:
            if not self.expected <= set(self.blobs):
                return 409, _error("upload-incomplete", "Some files are not in storage.")
            self.finalized += 1
            revision = self.finalized
        return 200, {
            "status": "queued",
            "revision": revision,
            "status_url": f"/api/package/alice/demo/revisions/{revision}",
        }


def _error(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


def _s3_error(code: str, message: str) -> str:
    return f"<?xml version='1.0'?><Error><Code>{code}</Code><Message>{message}</Message></Error>"


class FakeServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, fake: FakeHub, role: str) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.fake = fake
        self.role = role

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that went away mid-request is what several tests do on purpose


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: FakeServer

    def log_message(self, format: str, *args: object) -> None:
        pass

    @property
    def fake(self) -> FakeHub:
        return self.server.fake

    def _record(self) -> None:
        with self.fake.lock:
            self.fake.seen.append(
                Seen(
                    self.server.role,
                    self.command,
                    urlsplit(self.path).path,
                    self.headers.get("Authorization"),
                    {k.lower(): v for k, v in self.headers.items()},
                )
            )

    def _answer(self, status: int, body: bytes = b"", content_type: str = "text/plain") -> None:
        self.send_response(status)
        if status != 204:
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if status != 204:
            self.wfile.write(body)

    def _json(self, status: int, body: dict[str, Any]) -> None:
        self._answer(status, json.dumps(body).encode(), "application/json")

    def _xml(self, status: int, code: str, message: str) -> None:
        self._answer(status, _s3_error(code, message).encode(), "application/xml")

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length", "0")))

    def _cut_off(self, length: int) -> None:
        self.rfile.read(length // 2)
        self.close_connection = True

    def do_POST(self) -> None:
        self._record()
        path = urlsplit(self.path).path
        body = self._body()
        if self.server.role != "hub":
            self._xml(405, "MethodNotAllowed", "The store takes PUTs.")
        elif self.headers.get("Authorization") != f"Bearer {TOKEN}":
            self._json(401, _error("unauthenticated", "No token."))
        elif path == "/api/datastore/authorize":
            self._json(200, self.fake.authorize(json.loads(body)))
        elif path.startswith("/api/bitstore/multipart/") and path.endswith("/complete"):
            if json.loads(body) != {}:
                self._json(400, _error("invalid-request", "complete takes {}."))
            else:
                self._json(*self.fake.complete(path.split("/")[-2]))
        elif path == "/api/package/upload":
            self._json(*self.fake.finalize())
        else:
            self._json(404, _error("not-found", path))

    def do_PUT(self) -> None:
        self._record()
        path = urlsplit(self.path).path
        length = int(self.headers.get("Content-Length", "-1"))
        if self.server.role != "store" or "chunked" in self.headers.get("Transfer-Encoding", ""):
            self._xml(400, "InvalidRequest", "A PUT goes to the store with a Content-Length.")
        elif path.startswith("/blobs/"):
            self._put_blob(path.split("/")[-1], length)
        elif path.startswith("/parts/"):
            _, _, upload_id, number = path.split("/")
            self._put_part(upload_id, int(number), length)
        else:
            self._xml(404, "NoSuchKey", path)

    def _put_blob(self, sha256: str, length: int) -> None:
        data = self.rfile.read(length)
        if hashlib.sha256(data).hexdigest() != sha256:
            self._xml(400, "BadDigest", "The SHA-256 you specified did not match.")
            return
        with self.fake.lock:
            self.fake.blobs[sha256] = data
        self._answer(204)

    def _put_part(self, upload_id: str, number: int, length: int) -> None:
        fake = self.fake
        with fake.lock:
            upload = fake.uploads[upload_id]
            fake.part_requests[number] += 1
            fake.part_log.append((upload_id, number))
            stored = fake.stored_parts()
            gated = fake.gate_after is not None and stored >= fake.gate_after
            outage = fake.outage_after is not None and stored >= fake.outage_after
            dropped = number in fake.drop_once
            fake.drop_once.discard(number)
            answer = fake.answer_once.pop(number, None)
            if gated:
                fake.waiting += 1
        if self.headers.get("x-fake-part") != str(number):
            self._xml(403, "SignatureDoesNotMatch", "The signed headers are missing.")
        elif length != upload.part_bytes(number):
            self._xml(400, "IncompleteBody", f"Part {number} is {upload.part_bytes(number)} B.")
        elif gated:
            fake.gate.wait(30)
            with fake.lock:
                fake.waiting -= 1
            self.close_connection = True
        elif dropped or outage:
            self._cut_off(length)
        elif answer is not None:
            self.rfile.read(length)
            status, content_type, text = answer
            self._answer(status, text.encode(), content_type)
        else:
            data = self.rfile.read(length)
            if len(data) != length:
                self.close_connection = True  # the client went away: S3 keeps no partial part
                return
            if number in fake.corrupt:
                data = bytes([data[0] ^ 0xFF]) + data[1:]
            with fake.lock:
                upload.parts[number] = data
                fake.part_sends.append(number)
            # S3 answers a stored part with 200, the hub's own endpoint with 204.
            self._answer(200 if number % 2 else 204)


@pytest.fixture
def fake() -> Iterator[FakeHub]:
    state = FakeHub()
    servers = [FakeServer(state, "hub"), FakeServer(state, "store")]
    threads = [
        threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        for s in servers
    ]
    for thread in threads:
        thread.start()
    state.hub_url = f"http://127.0.0.1:{servers[0].server_address[1]}"
    state.store_url = f"http://127.0.0.1:{servers[1].server_address[1]}"
    try:
        yield state
    finally:
        state.gate.set()
        for server in servers:
            server.shutdown()
            server.server_close()
        for thread in threads:
            thread.join()


@pytest.fixture(autouse=True)
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DPHUB_CONFIG", str(tmp_path / "config" / "config.json"))
    monkeypatch.setenv("DPHUB_CACHE_DIR", str(tmp_path / "cache"))
    for name in ("DPHUB_SERVER", "DPHUB_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(_transfer, "RETRY_DELAY", 0.0)


# Helpers


def random_bytes(size: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


def make_package(root: Path, files: dict[str, bytes]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    resources = [{"name": Path(p).stem, "path": p} for p in files]
    (root / "datapackage.json").write_text(json.dumps({"name": "demo", "resources": resources}))
    for path, data in files.items():
        (root / path).write_bytes(data)
    return root


def push(
    fake: FakeHub, root: Path, *, workers: int = 3, events: list[ProgressEvent] | None = None
) -> PushResult:
    lock = threading.Lock()

    def record(event: ProgressEvent) -> None:
        with lock:
            if events is not None:
                events.append(event)

    with Client(fake.hub_url, TOKEN, username="alice") as client:
        return client.push(root, progress=record, workers=workers, hash_cache=HashCache())


def upload_events(events: list[ProgressEvent]) -> list[ProgressEvent]:
    return [e for e in events if e.phase == "upload"]


def moved(events: list[ProgressEvent], path: str) -> int:
    return sum(e.bytes for e in events if e.path == path and e.kind in ("advance", "resume"))


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


BIG = 4 * PART + 12345
"""Five parts, the last one short."""


# A push in parts


@pytest.mark.parametrize("part_size", [PART, 5 * 1024 * 1024 // 2])
def test_large_files_go_in_parts_and_are_completed_on_the_hub(
    tmp_path: Path, fake: FakeHub, part_size: int
) -> None:
    fake.part_size = part_size
    big = random_bytes(BIG if part_size == PART else 6 * 1024 * 1024 + 7)
    even = random_bytes(3 * part_size, seed=1)
    small = b"id,value\n" + b"1,2\n" * 100
    root = make_package(tmp_path / "pkg", {"big.bin": big, "even.bin": even, "small.csv": small})
    events: list[ProgressEvent] = []

    result = push(fake, root, workers=3, events=events)

    for data in (big, even, small):
        assert fake.blobs[hashlib.sha256(data).hexdigest()] == data
    for data in (big, even):
        upload = fake.upload_of(data)
        assert upload.completed
        assert fake.completes.count(upload.upload_id) == 1
    expected_parts = {
        (fake.upload_of(data).upload_id, n)
        for data in (big, even)
        for n in range(1, fake.upload_of(data).count + 1)
    }
    assert set(fake.part_log) == expected_parts
    assert set(Counter(fake.part_log).values()) == {1}
    assert fake.finalized == 1
    assert result.revision == 1
    assert result.uploaded_bytes == len(big) + len(even) + len(small) + _descriptor_size(root)
    assert result.resumed_bytes == 0

    # The token goes to the hub only; the part's signed headers and exact length reach the store.
    parts = [s for s in fake.seen if s.path.startswith("/parts/")]
    assert parts
    assert all(s.role == "store" and s.authorization is None for s in parts)
    assert all(s.headers["x-fake-part"] == s.path.split("/")[-1] for s in parts)
    completes = [s for s in fake.seen if s.path.endswith("/complete")]
    assert [s.role for s in completes] == ["hub", "hub"]
    assert all(s.authorization == f"Bearer {TOKEN}" for s in completes)

    # Progress: every byte once, in chunks of at most 1 MiB, each file done after its bytes.
    phase = upload_events(events)
    assert phase[0].kind == "start"
    assert phase[0].bytes == result.uploaded_bytes
    assert not [e for e in phase if e.kind == "resume"]
    for path, data in (("big.bin", big), ("even.bin", even), ("small.csv", small)):
        assert moved(phase, path) == len(data)
        assert [e.bytes for e in phase if e.kind == "done" and e.path == path] == [len(data)]
    assert max(e.bytes for e in phase if e.kind == "advance") <= 1024 * 1024


def _descriptor_size(root: Path) -> int:
    return (root / "datapackage.json").stat().st_size


def test_parts_the_store_already_holds_are_not_sent_again(tmp_path: Path, fake: FakeHub) -> None:
    big = random_bytes(BIG)
    root = make_package(tmp_path / "pkg", {"big.bin": big})
    upload = fake.seed(big, {1, 2, 4})
    events: list[ProgressEvent] = []

    result = push(fake, root, workers=2, events=events)

    assert sorted(fake.part_sends) == [3, 5]
    assert set(fake.part_requests) == {3, 5}
    assert fake.blobs[upload.sha256] == big
    assert result.resumed_bytes == 3 * PART
    assert result.uploaded_bytes == len(big) - 3 * PART + _descriptor_size(root)
    # A resumed bar starts where the last push left off.
    upload_phase = upload_events(events)
    assert [e.kind for e in upload_phase[:2]] == ["start", "resume"]
    assert upload_phase[1].path == "big.bin"
    assert upload_phase[1].bytes == 3 * PART
    assert sum(e.bytes for e in upload_phase if e.kind == "advance") == result.uploaded_bytes
    assert moved(upload_phase, "big.bin") == len(big)


def test_a_file_whose_parts_are_all_stored_is_only_completed(tmp_path: Path, fake: FakeHub) -> None:
    big = random_bytes(BIG)
    root = make_package(tmp_path / "pkg", {"big.bin": big})
    upload = fake.seed(big, set(range(1, 6)))

    result = push(fake, root)

    assert fake.part_requests == Counter()
    assert fake.completes == [upload.upload_id]
    assert fake.blobs[upload.sha256] == big
    assert result.uploaded_bytes == _descriptor_size(root)
    assert result.resumed_bytes == len(big)


def test_a_push_of_stored_bytes_sends_nothing(tmp_path: Path, fake: FakeHub) -> None:
    big = random_bytes(BIG)
    root = make_package(tmp_path / "pkg", {"big.bin": big})
    push(fake, root)
    requests = sum(fake.part_requests.values())

    again = push(fake, root)

    assert sum(fake.part_requests.values()) == requests
    assert again.skipped_files == ("datapackage.json", "big.bin")
    assert (again.uploaded_bytes, again.resumed_bytes) == (0, 0)


# Faults and resuming


def test_a_part_cut_off_once_is_sent_again(tmp_path: Path, fake: FakeHub) -> None:
    big = random_bytes(BIG)
    root = make_package(tmp_path / "pkg", {"big.bin": big})
    fake.drop_once = {2}
    events: list[ProgressEvent] = []

    result = push(fake, root, workers=2, events=events)

    assert fake.part_requests[2] == 2
    assert sorted(fake.part_sends) == [1, 2, 3, 4, 5]
    assert fake.blobs[hashlib.sha256(big).hexdigest()] == big
    # The retry took back the progress of the attempt that was cut off.
    assert moved(upload_events(events), "big.bin") == len(big)
    assert result.uploaded_bytes == len(big) + _descriptor_size(root)


def test_a_lost_network_fails_the_push_and_the_next_push_sends_only_the_rest(
    tmp_path: Path, fake: FakeHub
) -> None:
    big = random_bytes(BIG)
    root = make_package(tmp_path / "pkg", {"big.bin": big})
    fake.outage_after = 2

    with pytest.raises(httpx.TransportError):
        push(fake, root, workers=1)

    upload = fake.upload_of(big)
    assert sorted(upload.parts) == [1, 2]
    assert fake.part_requests[3] == 1 + _transfer.RETRIES
    assert fake.completes == []
    assert fake.finalized == 0
    fake.outage_after = None
    fake.part_sends.clear()
    events: list[ProgressEvent] = []

    result = push(fake, root, workers=1, events=events)

    assert fake.part_sends == [3, 4, 5]
    assert fake.blobs[upload.sha256] == big
    assert result.resumed_bytes == 2 * PART
    # Biggest work first: the small descriptor was still queued when the first run failed.
    assert result.uploaded_bytes == len(big) - 2 * PART + _descriptor_size(root)
    assert fake.finalized == 1


def test_a_store_error_on_one_part_fails_the_push_and_the_rerun_resumes(
    tmp_path: Path, fake: FakeHub
) -> None:
    big = random_bytes(BIG)
    root = make_package(tmp_path / "pkg", {"big.bin": big})
    fake.answer_once = {
        3: (500, "application/xml", _s3_error("InternalError", "We encountered an error."))
    }

    with pytest.raises(DphubError, match="We encountered an error"):
        push(fake, root, workers=1)

    upload = fake.upload_of(big)
    assert sorted(upload.parts) == [1, 2]  # an HTTP error is an answer, not retried
    first_run = set(fake.part_sends)
    fake.part_sends.clear()

    result = push(fake, root, workers=2)

    assert sorted(fake.part_sends) == [3, 4, 5]
    assert not first_run & set(fake.part_sends)
    assert fake.blobs[upload.sha256] == big
    assert result.uploaded_bytes == 2 * PART + 12345 + _descriptor_size(root)


def test_an_s3_error_on_a_part_is_the_typed_error(tmp_path: Path, fake: FakeHub) -> None:
    root = make_package(tmp_path / "pkg", {"big.bin": random_bytes(BIG)})
    fake.answer_once = {
        1: (403, "application/xml", _s3_error("SignatureDoesNotMatch", "Bad signature."))
    }
    with pytest.raises(SignatureMismatch, match="Bad signature"):
        push(fake, root, workers=1)
    assert fake.finalized == 0


def test_parts_that_do_not_add_up_raise_upload_mismatch(tmp_path: Path, fake: FakeHub) -> None:
    big = random_bytes(BIG)
    root = make_package(tmp_path / "pkg", {"big.bin": big})
    fake.corrupt = {4}

    with pytest.raises(UploadMismatch, match="do not add up"):
        push(fake, root)

    assert len(fake.completes) == 1
    assert hashlib.sha256(big).hexdigest() not in fake.blobs
    assert fake.finalized == 0


def test_a_complete_answer_naming_other_bytes_raises_upload_mismatch(
    tmp_path: Path, fake: FakeHub
) -> None:
    root = make_package(tmp_path / "pkg", {"big.bin": random_bytes(BIG)})
    fake.complete_says = "0" * 64
    with pytest.raises(UploadMismatch, match=r"big\.bin") as caught:
        push(fake, root)
    assert caught.value.details["path"] == "big.bin"
    assert fake.finalized == 0


# Interrupted pushes, in a process of their own


def _env(tmp_path: Path, fake: FakeHub) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DPHUB_CONFIG=str(tmp_path / "child" / "config.json"),
        DPHUB_CACHE_DIR=str(tmp_path / "child" / "cache"),
        DPHUB_SERVER=fake.hub_url,
        DPHUB_TOKEN=TOKEN,
        DPHUB_DEBUG="0",
    )
    return env


def test_a_killed_push_resumes_where_it_stopped(tmp_path: Path, fake: FakeHub) -> None:
    big = random_bytes(BIG)
    root = make_package(tmp_path / "pkg", {"big.bin": big})
    fake.gate_after = 2
    script = textwrap.dedent(
        f"""
        from dphub.client import Client
        with Client({fake.hub_url!r}, {TOKEN!r}, username="alice") as client:
            client.push({str(root)!r}, workers=2)
        """
    )
    child = subprocess.Popen(
        [sys.executable, "-c", script],
        env=_env(tmp_path, fake),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for(lambda: fake.waiting == 2 or child.poll() is not None, "two stalled parts")
        assert child.poll() is None, child.stderr.read() if child.stderr else ""
    finally:
        child.kill()
        child.wait()
        if child.stderr:
            child.stderr.close()
    fake.gate.set()  # the stalled parts never arrive whole: their client is gone
    wait_for(lambda: fake.waiting == 0, "the stalled requests to end")
    upload = fake.upload_of(big)
    stored = set(upload.parts)
    assert len(stored) >= 2
    fake.gate_after = None
    fake.part_sends.clear()

    result = push(fake, root, workers=2)

    assert sorted(fake.part_sends) == sorted(set(range(1, 6)) - stored)
    assert hashlib.sha256(fake.blobs[upload.sha256]).hexdigest() == hashlib.sha256(big).hexdigest()
    resumed = sum(upload.part_bytes(n) for n in stored)
    assert result.resumed_bytes == resumed
    assert result.uploaded_bytes == len(big) - resumed + _descriptor_size(root)


def test_ctrl_c_stops_the_push_at_once_and_the_rerun_resumes(tmp_path: Path, fake: FakeHub) -> None:
    big = random_bytes(BIG)
    root = make_package(tmp_path / "pkg", {"big.bin": big})
    fake.gate_after = 1
    child = subprocess.Popen(
        [sys.executable, "-m", "dphub", "push", str(root), "--owner", "alice", "--workers", "2"],
        env=_env(tmp_path, fake),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: fake.waiting == 2 or child.poll() is not None, "two stalled parts")
        assert child.poll() is None
        requests = sum(fake.part_requests.values())
        child.send_signal(signal.SIGINT)
        time.sleep(1.0)  # the interrupt is handled while both parts are still in flight
        fake.gate.set()
        _, stderr = child.communicate(timeout=20)
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()
    assert child.returncode == 130, stderr
    assert "Interrupted" in stderr
    assert "dphub push again" in stderr
    upload = fake.upload_of(big)
    stored = set(upload.parts)
    # Nothing started after Ctrl-C: no queued part, and no retry of the two that were cut off.
    assert sum(fake.part_requests.values()) == requests == len(stored) + 2
    assert fake.completes == []
    assert fake.finalized == 0
    fake.gate_after = None
    fake.part_sends.clear()

    result = push(fake, root)

    assert sorted(fake.part_sends) == sorted(set(range(1, 6)) - stored)
    assert fake.blobs[upload.sha256] == big
    assert result.resumed_bytes == sum(upload.part_bytes(n) for n in stored)


# Plans the client cannot follow


def _plan(**changes: Any) -> dict[str, Any]:
    plan: dict[str, Any] = {
        "upload_id": "u1",
        "part_size": PART,
        "parts": [
            {"number": n, "size": PART, "url": f"http://store/{n}", "headers": {}}
            for n in range(1, 4)
        ],
        "uploaded": [],
        "complete_url": "/api/bitstore/multipart/u1/complete",
    }
    plan.update(changes)
    return plan


def test_a_good_plan_is_read() -> None:
    plan = parse_plan("big.bin", _plan(uploaded=[2]), size=3 * PART)
    assert [(p.number, p.offset, p.size) for p in plan.parts] == [
        (1, 0, PART),
        (2, PART, PART),
        (3, 2 * PART, PART),
    ]
    assert [p.number for p in plan.missing] == [1, 3]
    assert plan.resumed_bytes == PART


@pytest.mark.parametrize(
    ("plan", "reason"),
    [
        (_plan(upload_id=""), "no upload_id"),
        (_plan(part_size=0), "no positive part_size"),
        (_plan(parts=[]), "no parts"),
        (_plan(complete_url=None), "no complete_url"),
        (_plan(parts=_plan()["parts"][:2]), "hold 524288 bytes, not 786432"),
        (_plan(part_size=PART - 1), "part sizes do not match"),
        (_plan(parts=[_plan()["parts"][0], _plan()["parts"][2]]), "numbered 1 to N"),
        (_plan(uploaded=["1"]), "uploaded"),
    ],
)
def test_a_plan_that_does_not_cover_the_file_is_refused(plan: dict[str, Any], reason: str) -> None:
    with pytest.raises(DphubError, match=reason):
        parse_plan("big.bin", plan, size=3 * PART)


def test_a_broken_plan_fails_before_any_part_is_sent(
    tmp_path: Path, fake: FakeHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_package(tmp_path / "pkg", {"big.bin": random_bytes(BIG)})
    original = fake._plan

    def overrun(upload: Upload) -> dict[str, Any]:
        plan = original(upload)
        plan["parts"][-1]["size"] += 1
        return plan

    monkeypatch.setattr(fake, "_plan", overrun)
    with pytest.raises(DphubError, match="cannot be followed"):
        push(fake, root)
    assert fake.part_requests == Counter()


# The progress bar


def test_the_bar_of_a_resumed_push_starts_where_the_last_one_stopped() -> None:
    bar = TransferBar(Console(file=io.StringIO(), force_terminal=True))
    assert bar._progress is not None
    bar(ProgressEvent("upload", "start", bytes=1000, files=1))
    bar(ProgressEvent("upload", "resume", path="big.bin", bytes=600))
    [task] = bar._progress.tasks
    assert task.completed == 600
    assert task.speed is None  # resumed bytes were not sent now: they make no speed
    bar(ProgressEvent("upload", "advance", path="big.bin", bytes=100))
    assert task.completed == 700
