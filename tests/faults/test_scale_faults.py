"""Crashes on the scale setup: PostgreSQL, SeaweedFS, two API processes and two workers.

Each scenario stops a process at a failpoint, SIGKILLs it (or the database or the object store
under it), lets the hub recover, and then checks that `dphub admin check` passes, that nothing of
the interrupted work is visible through the API, and that the interrupted `dphub push` (or
`dphub gc`) run again succeeds, with every file read back byte for byte.

The module starts a PostgreSQL cluster and a SeaweedFS of its own (the session's shared ones must
not be killed) and one hub on them, shared by the scenarios; uvicorn's supervisor restarts a
killed API process, the test restarts a killed worker, database or store. Uploads go from the
client straight to the store here, so no API process is ever in the middle of one: the embedded
hub's test kills an API process mid-upload.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import HubServer, Publisher, cli, new_publisher, start_hub, start_worker
from tests.conftest import stop_hub as stop_hub_processes
from tests.faults.conftest import (
    Failpoints,
    assert_consistent,
    assert_not_visible,
    bitstore_of,
    ended,
    kill,
    kill_postgres,
    kill_seaweedfs,
    package,
    push_again_and_read_back,
    push_in_background,
    restart_postgres,
    restart_seaweedfs,
    run_gc,
    store_garbage,
    wait_ready,
)
from tests.services import PostgresServer, S3Server, start_postgres, start_seaweedfs

POINTS = ("finalize.files_held", "finalize.before_commit", "datastore.loading", "gc.blob_deleted")


@dataclass
class Scale:
    hub: HubServer
    postgres: PostgresServer
    s3: S3Server
    points: Failpoints


@pytest.fixture(scope="module")
def scale(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scale]:
    root = tmp_path_factory.mktemp("scale-faults")
    points = Failpoints(root / "data")
    points.hold(POINTS)
    with ThreadPoolExecutor(2) as starting:  # a few seconds each: side by side
        postgres_starting = starting.submit(start_postgres)
        s3_starting = starting.submit(start_seaweedfs)
    postgres = postgres_starting.result()
    s3: S3Server | None = None
    hub: HubServer | None = None
    try:
        s3 = s3_starting.result()
        hub = start_hub(
            root,
            {
                "DPHUB_DATABASE_URL": postgres.create_database(),
                **s3.storage_env(prefix="hub"),
                "DPHUB_JOB_TIMEOUT": "2",
                "DPHUB_FAILPOINTS": Failpoints.spec(POINTS),
            },
            kind="scale",
            serve_args=("--workers", "2"),
            workers=2,
        )
        yield Scale(hub, postgres, s3, points)
    finally:
        if hub is not None:
            stop_hub_processes(hub)
        if s3 is not None:
            s3.stop()
        postgres.stop()


@pytest.fixture(scope="module")
def owner(scale: Scale, tmp_path_factory: pytest.TempPathFactory) -> Publisher:
    publisher = new_publisher(scale.hub, tmp_path_factory.mktemp("owner"))
    publisher.login()
    return publisher


def table_csv(name: str, rows: int) -> bytes:
    lines = [f"{i},{name} {i},{i * 0.5}" for i in range(rows)]
    return ("id,label,value\n" + "\n".join(lines) + "\n").encode()


def test_an_api_process_killed_inside_finalize(
    scale: Scale, owner: Publisher, tmp_path: Path
) -> None:
    hub = scale.hub
    files = {"data/cities.csv": table_csv("city", 500)}
    folder = package(tmp_path, "killed-finalize", files)
    scale.points.arm("finalize.before_commit")
    push = push_in_background(owner, folder)
    pid = scale.points.wait("finalize.before_commit", watch=[push])
    assert pid != hub.process.pid  # one of the API processes, not their supervisor
    kill(pid)
    interrupted = ended(push)
    assert interrupted.returncode == 1
    assert "connection to the hub broke off" in interrupted.stderr, interrupted.stderr
    assert "Run the same dphub push again" in interrupted.stderr
    assert "Traceback" not in interrupted.stderr

    wait_ready(hub)
    assert_consistent(hub)
    assert_not_visible(hub, owner.username, "killed-finalize")
    assert f"Child process [{pid}] died" in hub.log_text()  # and uvicorn started another
    out = push_again_and_read_back(hub, owner, folder, files)
    # the killed finalize took no revision number
    assert f"Published {owner.username}/killed-finalize revision 1" in out


def test_a_worker_killed_mid_load(scale: Scale, owner: Publisher, tmp_path: Path) -> None:
    hub = scale.hub
    rows = 2000
    files = {"data/loads.csv": table_csv("load", rows)}
    folder = package(tmp_path, "killed-load", files)
    scale.points.arm("datastore.loading")
    cli("push", str(folder), "--no-wait", env=owner.env)
    pid = scale.points.wait("datastore.loading", watch=hub.workers)
    victim = next(w for w in hub.workers if w.pid == pid)
    kill(pid)
    victim.wait()

    user = owner.username
    table = httpx.get(
        f"{hub.url}/api/datastore/search",
        params={"resource_id": f"{user}/killed-load/loads"},
        timeout=30,
    )
    assert table.status_code == 404, table.text
    assert table.json()["error"]["code"] == "table-not-found"
    state = httpx.get(f"{hub.url}/api/package/{user}/killed-load/revisions/1", timeout=30).json()
    assert state["state"] in ("INPROGRESS", "SUCCEEDED")  # taken over within a lease of 2 s

    # the other worker takes the job over once its lease is out; the killed one comes back
    hub.workers[hub.workers.index(victim)] = start_worker(hub, tmp_path / "worker-again.log")
    final = hub.wait_processed(user, "killed-load", 1, timeout=120)
    assert final["state"] == "SUCCEEDED", final
    assert final["pipelines"]["load"]["stats"]["rows"] == rows
    counted = httpx.post(
        f"{hub.url}/api/datastore/sql",
        json={"sql": f'SELECT count(*) AS n FROM "{user}/killed-load/loads"'},
        timeout=30,
    )
    assert counted.json()["records"] == [{"n": rows}], counted.text
    assert_consistent(hub)
    out = push_again_and_read_back(hub, owner, folder, files)
    assert "Unchanged" in out


def test_postgresql_killed_inside_finalize(scale: Scale, owner: Publisher, tmp_path: Path) -> None:
    hub = scale.hub
    files = {"data/rivers.csv": table_csv("river", 300)}
    folder = package(tmp_path, "killed-database", files)
    scale.points.arm("finalize.before_commit")
    push = push_in_background(owner, folder)
    scale.points.wait("finalize.before_commit", watch=[push])
    kill_postgres(scale.postgres)
    try:
        scale.points.resume("finalize.before_commit")  # its commit meets a dead database
        interrupted = ended(push)
    finally:
        restart_postgres(scale.postgres)
    assert interrupted.returncode == 1
    assert "database cannot be reached" in interrupted.stderr
    assert "Traceback" not in interrupted.stderr

    wait_ready(hub)
    assert_consistent(hub)
    assert_not_visible(hub, owner.username, "killed-database")
    out = push_again_and_read_back(hub, owner, folder, files)
    assert f"Published {owner.username}/killed-database revision 1" in out


def test_the_object_store_killed_inside_finalize(
    scale: Scale, owner: Publisher, tmp_path: Path
) -> None:
    hub = scale.hub
    files = {"data/lakes.csv": table_csv("lake", 300), "notes.txt": os.urandom(4096)}
    folder = package(tmp_path, "killed-store", files)
    scale.points.arm("finalize.files_held")
    push = push_in_background(owner, folder)
    scale.points.wait("finalize.files_held", watch=[push])
    kill_seaweedfs(scale.s3)
    try:
        scale.points.resume("finalize.files_held")  # it checks the store, which is gone
        interrupted = ended(push)
    finally:
        restart_seaweedfs(scale.s3)
    assert interrupted.returncode == 1
    assert "object storage cannot be reached" in interrupted.stderr
    assert "Traceback" not in interrupted.stderr

    wait_ready(hub)
    assert_consistent(hub)  # reads every blob back: the store kept them across its crash
    assert_not_visible(hub, owner.username, "killed-store")
    out = push_again_and_read_back(hub, owner, folder, files)
    assert f"Published {owner.username}/killed-store revision 1" in out


def test_gc_killed_mid_collection(scale: Scale, owner: Publisher, tmp_path: Path) -> None:
    hub = scale.hub
    store = bitstore_of(hub, scale.s3)
    garbage = store_garbage(store, 4)
    scale.points.arm("gc.blob_deleted")
    gc = run_gc(hub)
    pid = scale.points.wait("gc.blob_deleted", watch=[gc])
    assert pid == gc.pid
    kill(pid)
    assert ended(gc).returncode == -9
    # killed holding its first delete (of these blobs or another nothing used), uncommitted
    left = [sha for sha in garbage if store.size(sha) is not None]
    assert len(left) >= len(garbage) - 1

    assert_consistent(hub)  # nothing any revision uses went
    again = ended(run_gc(hub))
    assert again.returncode == 0, again.stderr
    assert [sha for sha in garbage if store.size(sha) is not None] == []
    assert_consistent(hub)
    files = {"data/after.csv": table_csv("after", 50)}
    push_again_and_read_back(hub, owner, package(tmp_path, "after-gc", files), files)
