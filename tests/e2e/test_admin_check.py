"""`dphub admin check`: a consistent hub passes; a damaged blob, a lost blob, a lost table and an
unfinished job are each reported with the package, the revision and the file.

One embedded hub for the module, started without its in-process worker, so that the test decides
when processing happens (`dphub worker --once`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import HubServer, Publisher, cli, new_publisher, start_hub, stop_hub
from tests.conftest import write_package as make_package

CSV = b"city,population\nParis,2100000\nLyon,516000\nLille,232000\n"


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubServer]:
    server = start_hub(tmp_path_factory.mktemp("check"), serve_args=("--no-worker",))
    yield server
    stop_hub(server)


@pytest.fixture(scope="module")
def owner(hub: HubServer, tmp_path_factory: pytest.TempPathFactory) -> Publisher:
    publisher = new_publisher(hub, tmp_path_factory.mktemp("owner"))
    publisher.login()
    return publisher


def check(hub: HubServer, *args: str) -> tuple[int, dict[str, Any]]:
    result = hub.admin("admin", "check", "--json", *args, check=False)
    assert result.returncode in (0, 1), result.stderr
    report: dict[str, Any] = json.loads(result.stdout)
    return result.returncode, report


def blob_path(hub: HubServer, data: bytes) -> Path:
    sha256 = hashlib.sha256(data).hexdigest()
    return hub.data_dir / "blobs" / "sha256" / sha256[:2] / sha256[2:4] / sha256


@pytest.fixture(scope="module")
def pushed(hub: HubServer, owner: Publisher, tmp_path_factory: pytest.TempPathFactory) -> str:
    """``cities`` pushed, its job still queued (no worker runs yet)."""
    folder = make_package(
        tmp_path_factory.mktemp("cities") / "cities", "cities", files={"data/cities.csv": CSV}
    )
    cli("push", str(folder), "--no-wait", env=owner.env)
    return f"{owner.username}/cities"


@pytest.fixture(scope="module")
def processed(hub: HubServer, pushed: str) -> str:
    hub.admin("worker", "--once")
    return pushed


def test_an_unfinished_job_fails_the_check_unless_the_hub_is_live(
    hub: HubServer, pushed: str
) -> None:
    status, report = check(hub)
    assert status == 1
    assert [(v["code"], v["package"], v["revision"]) for v in report["violations"]] == [
        ("job-queued", pushed, 1)
    ]
    status, live = check(hub, "--live")
    assert (status, live["ok"], live["violations"]) == (0, True, [])


def test_a_processed_hub_passes(hub: HubServer, processed: str) -> None:
    status, report = check(hub)
    assert (status, report["ok"], report["violations"]) == (0, True, [])
    assert report["format"] == 1
    checked = report["checked"]
    assert (checked["packages"], checked["revisions"], checked["files"]) == (1, 1, 2)
    assert (checked["jobs"], checked["tables"]) == (1, 1)
    assert checked["derived_files"] == 4  # CSV, JSON, preview, zip
    assert checked["bytes_read"] >= len(CSV)
    human = hub.admin("admin", "check")
    assert "No violation found." in human.stdout


def test_a_flipped_byte_is_reported_with_its_package_revision_and_path(
    hub: HubServer, processed: str
) -> None:
    pushed = processed
    blob = blob_path(hub, CSV)
    original = blob.read_bytes()
    damaged = bytearray(original)
    damaged[5] ^= 0x01
    blob.write_bytes(bytes(damaged))
    try:
        status, report = check(hub)
        human = hub.admin("admin", "check", check=False)
        sizes_only = check(hub, "--sizes-only")[0]
    finally:
        blob.write_bytes(original)
    assert status == 1
    violations = report["violations"]
    # every reference to the blob is reported: the pushed file, and the derived CSV that
    # normalising left byte for byte the same
    assert {(v["check"], v["code"], v["sha256"]) for v in violations} == {
        ("blobs", "blob-corrupt", blob.name)
    }
    assert [(v["package"], v["revision"], v["path"]) for v in violations] == [
        (pushed, 1, "data/cities.csv"),
        (pushed, 1, "cities_csv"),
    ]
    assert human.returncode == 1
    assert f"blob-corrupt: {pushed} revision 1 data/cities.csv: " in human.stdout
    assert "2 violations found." in human.stdout
    assert sizes_only == 0  # the size alone does not show it


def test_a_lost_blob_is_reported_with_its_package_revision_and_path(
    hub: HubServer, processed: str
) -> None:
    pushed = processed
    blob = blob_path(hub, CSV)
    kept = blob.with_name(blob.name + ".aside")
    blob.rename(kept)
    try:
        status, report = check(hub, "--sizes-only")
    finally:
        kept.rename(blob)
    assert status == 1
    assert report["read_blobs"] is False
    assert [
        (v["check"], v["code"], v["package"], v["revision"], v["path"])
        for v in report["violations"]
    ] == [
        ("blobs", "blob-missing", pushed, 1, "data/cities.csv"),
        ("blobs", "blob-missing", pushed, 1, "cities_csv"),
    ]


def test_a_lost_table_is_reported(hub: HubServer, processed: str) -> None:
    (table,) = (hub.data_dir / "datastore").glob("r*_0.duckdb")
    kept = table.with_name(table.name + ".aside")
    table.rename(kept)
    try:
        status, report = check(hub, "--sizes-only")
    finally:
        kept.rename(table)
    assert status == 1
    assert [
        (v["check"], v["code"], v["package"], v["revision"], v["path"])
        for v in report["violations"]
    ] == [("tables", "table-missing", processed, 1, table.stem)]
