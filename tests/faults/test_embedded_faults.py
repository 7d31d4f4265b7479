"""Crashes and a full disk on the embedded hub (one process: SQLite, blobs on local disk).

The hub is killed with SIGKILL mid-upload and inside finalize, and `dphub gc` mid-collection, each
at a failpoint; after a restart `dphub admin check` passes, nothing of the interrupted work is
visible, and the interrupted command run again succeeds. The hub keeps its blobs on a small tmpfs
of their own (when the tests may mount one), so the disk-full test can fill it: an upload that
does not fit is refused with `507 insufficient-storage` and leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from dphub.bitstore import LocalBitStore
from dphub.bitstore.signing import UploadSigner
from dphub.errors import InsufficientStorage
from tests.conftest import HubServer, Publisher, cli, new_publisher, start_hub, stop_hub
from tests.e2e.test_bad_input import authorize
from tests.faults.conftest import (
    Failpoints,
    assert_consistent,
    assert_not_visible,
    bitstore_of,
    ended,
    kill,
    package,
    push_again_and_read_back,
    push_in_background,
    restart_embedded,
    run_gc,
    store_garbage,
)

POINTS = ("upload.in_flight", "finalize.before_commit", "gc.blob_deleted")
BLOB_DISK = 48 * 1024 * 1024
MiB = 1024 * 1024


@dataclass
class Embedded:
    hub: HubServer
    points: Failpoints
    blob_disk: Path | None
    """The tmpfs the blobs are on, ``None`` when it could not be mounted."""
    no_disk: str
    """Why it could not be mounted."""


def mount_tmpfs(folder: Path, size: int) -> str:
    """Mount a tmpfs of ``size`` bytes on ``folder``; the reason it failed, or ``""``."""
    if os.geteuid() != 0:
        return "mounting a small tmpfs needs root"
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
        capture_output=True,
        text=True,
        check=False,
    )
    return "" if mounted.returncode == 0 else f"mount refused: {mounted.stderr.strip()}"


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Embedded]:
    root = tmp_path_factory.mktemp("embedded-faults")
    blobs = root / "data" / "blobs"
    blobs.mkdir(parents=True)
    no_disk = mount_tmpfs(blobs, BLOB_DISK)
    points = Failpoints(root / "data")
    points.hold(POINTS)
    try:
        hub = start_hub(root, {"DPHUB_FAILPOINTS": Failpoints.spec(POINTS)})
        try:
            yield Embedded(hub, points, None if no_disk else blobs, no_disk)
        finally:
            stop_hub(hub)
    finally:
        if not no_disk:
            subprocess.run(["umount", "--lazy", str(blobs)], check=False)


@pytest.fixture(scope="module")
def owner(embedded: Embedded, tmp_path_factory: pytest.TempPathFactory) -> Publisher:
    publisher = new_publisher(embedded.hub, tmp_path_factory.mktemp("owner"))
    publisher.login()
    return publisher


def csv_of(size: int, label: str) -> bytes:
    """A CSV of about ``size`` bytes (distinct per label, so each test has blobs of its own)."""
    row = f"{label},{'x' * 40}\n".encode()
    return b"name,filler\n" + row * (size // len(row))


def blob(hub: HubServer, data: bytes) -> Path:
    sha256 = hashlib.sha256(data).hexdigest()
    return hub.data_dir / "blobs" / "sha256" / sha256[:2] / sha256[2:4] / sha256


def spools(hub: HubServer) -> set[str]:
    return {p.name for p in (hub.data_dir / "blobs" / "tmp").iterdir()}


def test_the_hub_killed_mid_upload(embedded: Embedded, owner: Publisher, tmp_path: Path) -> None:
    hub = embedded.hub
    data = csv_of(3 * MiB, "upload")  # one PUT (below the multipart threshold), sent in batches
    files = {"data/big.csv": data}
    folder = package(tmp_path, "killed-upload", files)
    before = spools(hub)
    embedded.points.arm("upload.in_flight")
    push = push_in_background(owner, folder)
    pid = embedded.points.wait("upload.in_flight", watch=[push])
    assert pid == hub.process.pid
    kill(pid)
    hub.process.wait()
    interrupted = ended(push)  # its retries meet a hub that is down
    assert interrupted.returncode == 1
    assert "Run the same dphub push again" in interrupted.stderr, interrupted.stderr
    assert "Traceback" not in interrupted.stderr

    restart_embedded(hub)
    # what was half received stays in spool files, out of sight, until gc takes them (an hour on)
    assert spools(hub) - before
    assert not blob(hub, data).exists()
    assert_consistent(hub)
    assert_not_visible(hub, owner.username, "killed-upload")
    push_again_and_read_back(hub, owner, folder, files)


def test_the_hub_killed_inside_finalize(
    embedded: Embedded, owner: Publisher, tmp_path: Path
) -> None:
    hub = embedded.hub
    files = {"data/towns.csv": csv_of(20_000, "finalize")}
    folder = package(tmp_path, "killed-finalize", files)
    embedded.points.arm("finalize.before_commit")
    push = push_in_background(owner, folder)
    assert embedded.points.wait("finalize.before_commit", watch=[push]) == hub.process.pid
    kill(hub.process.pid)
    hub.process.wait()
    interrupted = ended(push)
    assert interrupted.returncode == 1
    assert "Run the same dphub push again" in interrupted.stderr, interrupted.stderr

    restart_embedded(hub)  # SQLite rolls the killed transaction back
    assert_consistent(hub)
    assert_not_visible(hub, owner.username, "killed-finalize")
    out = push_again_and_read_back(hub, owner, folder, files)
    assert f"Published {owner.username}/killed-finalize revision 1" in out


def test_gc_killed_mid_collection(embedded: Embedded, owner: Publisher, tmp_path: Path) -> None:
    hub = embedded.hub
    store = bitstore_of(hub)
    garbage = store_garbage(store, 4)
    embedded.points.arm("gc.blob_deleted")
    gc = run_gc(hub)
    assert embedded.points.wait("gc.blob_deleted", watch=[gc]) == gc.pid
    kill(gc.pid)  # holding the metastore's write lock
    assert ended(gc).returncode == -9
    assert len([sha for sha in garbage if store.size(sha) is not None]) >= len(garbage) - 1

    assert_consistent(hub)
    again = ended(run_gc(hub))
    assert again.returncode == 0, again.stderr
    assert [sha for sha in garbage if store.size(sha) is not None] == []
    assert_consistent(hub)
    files = {"data/after.csv": csv_of(10_000, "after-gc")}
    push_again_and_read_back(hub, owner, package(tmp_path, "after-gc", files), files)


@pytest.fixture
def full_disk(embedded: Embedded) -> Iterator[Path]:
    """The blobs' tmpfs filled up to its last half MiB; emptied again after the test."""
    if embedded.blob_disk is None:
        pytest.skip(f"needs a small tmpfs for the blobs: {embedded.no_disk}")
    ballast = embedded.blob_disk / "ballast"
    with ballast.open("wb") as out:
        left = shutil.disk_usage(embedded.blob_disk).free - MiB // 2
        while left > 0:
            out.write(b"\0" * min(left, MiB))
            left -= MiB
    try:
        yield ballast
    finally:
        ballast.unlink(missing_ok=True)


def test_a_full_disk_refuses_the_upload_with_507_and_keeps_nothing(
    embedded: Embedded, owner: Publisher, full_disk: Path, tmp_path: Path
) -> None:
    hub = embedded.hub
    data = csv_of(2 * MiB, "full")
    files = {"data/full.csv": data}
    folder = package(tmp_path, "disk-full", files)
    before = spools(hub)

    refused = cli("push", str(folder), env=owner.env, check=False)
    assert refused.returncode == 1
    assert "The hub has run out of storage space" in refused.stderr, refused.stderr
    assert "ask its operator to free space" in refused.stderr
    assert "dphub push again" in refused.stderr
    assert "Traceback" not in refused.stderr

    # the answer itself, to a presigned PUT and to a form upload
    with owner.client() as client:
        granted = authorize(client, owner.username, "disk-full", {"full.csv": data})
    entry = granted["full.csv"]
    put = httpx.put(entry["put_url"], content=data, headers=entry["put_headers"], timeout=60)
    assert put.status_code == 507, put.text
    error = put.json()["error"]
    assert error["code"] == "insufficient-storage"
    assert error["message"].startswith("The hub has run out of storage space")
    assert "Nothing of the file was kept" in error["message"]
    form = httpx.post(
        entry["upload_url"],
        data=entry["upload_query"],
        files={"file": ("full.csv", data)},
        timeout=60,
    )
    assert form.status_code == 507, form.text
    assert form.json()["error"]["code"] == "insufficient-storage"

    assert spools(hub) == before  # no temporary file
    assert not blob(hub, data).exists()
    assert_not_visible(hub, owner.username, "disk-full")
    assert_consistent(hub)

    full_disk.unlink()  # space freed: the same push goes through
    push_again_and_read_back(hub, owner, folder, files)


def test_a_disk_that_fills_up_during_a_write_keeps_nothing(embedded: Embedded) -> None:
    """The room is there when the upload starts and gone halfway: the writer stops with
    InsufficientStorage and removes its spool file."""
    if embedded.blob_disk is None:
        pytest.skip(f"needs a small tmpfs for the blobs: {embedded.no_disk}")
    store = LocalBitStore(
        embedded.blob_disk / "aside", signer=UploadSigner("t" * 32), base_url="http://hub"
    )
    data = os.urandom(2 * MiB)
    writer = store.writer(expected_size=len(data))
    ballast = embedded.blob_disk / "ballast-during"
    try:
        with ballast.open("wb") as out:
            left = shutil.disk_usage(embedded.blob_disk).free - MiB // 2
            while left > 0:
                out.write(b"\0" * min(left, MiB))
                left -= MiB

        def send() -> None:
            for start in range(0, len(data), 256 * 1024):
                writer.write(data[start : start + 256 * 1024])
            writer.commit()

        with pytest.raises(InsufficientStorage) as refused:
            send()
        assert refused.value.status == 507
        assert list((store.root / "tmp").iterdir()) == []
        assert store.size(hashlib.sha256(data).hexdigest()) is None
    finally:
        writer.abort()
        ballast.unlink(missing_ok=True)
        shutil.rmtree(store.root, ignore_errors=True)
