"""A worker killed in the middle of a job: nothing half-made is served, and the next worker takes the
job over once its heartbeat is stale and finishes it.

The hub runs embedded (SQLite metastore, DuckDB datastore) without its in-process worker; `dphub
worker` processes do the processing, with a 2 s job timeout so a dead worker's job is free soon.
Each scenario pushes a package whose CSV takes a few seconds to process, starts a worker, waits for
one step to be under way, SIGKILLs the worker, looks at what the hub serves, then starts a second
worker and waits for the revision to succeed.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import (
    HubServer,
    Publisher,
    cli,
    new_publisher,
    start_hub,
    start_worker,
    stop_hub,
)

JOB_TIMEOUT = "2"
POLL = 0.05
STEP_TIMEOUT = 120.0
"""Seconds a worker may take to reach the step it is to be killed in (generous: CI machines are
slow and busy)."""

BLOCK_ROWS = 10_000
CSV_BYTES = 64 * 1024 * 1024
SCHEMA = {
    "fields": [
        {"name": "id", "type": "integer"},
        {"name": "name", "type": "string"},
        {"name": "value", "type": "number"},
        {"name": "flag", "type": "boolean"},
        {"name": "day", "type": "date"},
    ]
}


@dataclass
class BigCsv:
    path: Path
    rows: int
    first: dict[str, Any]


@dataclass
class Outcome:
    """What one kill-and-recover scenario saw, for the tests to check."""

    step: str
    owner: str
    name: str
    at_kill: dict[str, Any]
    """The revision's status when the worker was killed."""
    state_after_kill: str
    killed_returncode: int | None
    search_at_kill: httpx.Response
    pinned_search_at_kill: httpx.Response
    sql_at_kill: httpx.Response
    derived_at_kill: dict[str, int]
    datastore_at_kill: list[str]
    final: dict[str, Any]
    search_after: httpx.Response
    sql_after: httpx.Response
    derived_after: dict[str, int]
    job: dict[str, Any]
    second_log: str
    leftovers: list[str]


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubServer]:
    server = start_hub(
        tmp_path_factory.mktemp("faults"),
        {"DPHUB_JOB_TIMEOUT": JOB_TIMEOUT},
        serve_args=("--no-worker",),
    )
    yield server
    stop_hub(server)


@pytest.fixture(scope="module")
def owner(hub: HubServer, tmp_path_factory: pytest.TempPathFactory) -> Publisher:
    publisher = new_publisher(hub, tmp_path_factory.mktemp("publisher"))
    publisher.login()
    return publisher


@pytest.fixture(scope="module")
def big_csv(tmp_path_factory: pytest.TempPathFactory) -> BigCsv:
    """About 64 MB of CSV (loaded in a fraction of a second the kill has to hit), made in a blink
    by repeating one block of rows."""
    lines = [
        f"{i},name {i % 977},{i * 0.25},{'true' if i % 3 else 'false'},"
        f"2020-{1 + i % 12:02d}-{1 + i % 28:02d}\n"
        for i in range(BLOCK_ROWS)
    ]
    block = "".join(lines).encode()
    repeats = CSV_BYTES // len(block) + 1
    path = tmp_path_factory.mktemp("csv") / "big.csv"
    with path.open("wb") as out:
        out.write(b"id,name,value,flag,day\n")
        for _ in range(repeats):
            out.write(block)
    first = {"id": 0, "name": "name 0", "value": 0.0, "flag": False, "day": "2020-01-01"}
    return BigCsv(path, repeats * BLOCK_ROWS, first)


def push(publisher: Publisher, csv: BigCsv, name: str, root: Path) -> None:
    folder = root / name
    (folder / "data").mkdir(parents=True)
    shutil.copyfile(csv.path, folder / "data" / "big.csv")
    descriptor = {
        "name": name,
        "resources": [{"name": "big", "path": "data/big.csv", "schema": SCHEMA}],
    }
    (folder / "datapackage.json").write_text(json.dumps(descriptor))
    cli("push", str(folder), "--no-wait", env=publisher.env)


def status(hub: HubServer, owner: str, name: str) -> dict[str, Any]:
    answer = httpx.get(f"{hub.url}/api/package/{owner}/{name}/revisions/1", timeout=30)
    answer.raise_for_status()
    result: dict[str, Any] = answer.json()
    return result


def wait_for_step(
    hub: HubServer, worker: subprocess.Popen[bytes], log: Path, package: str, step: str
) -> dict[str, Any]:
    """Poll fast until ``step`` of revision 1 of ``package`` is under way; the status seen then."""
    owner, name = package.split("/")
    deadline = time.monotonic() + STEP_TIMEOUT
    while True:
        seen = status(hub, owner, name)
        if (seen.get("pipelines") or {}).get(step, {}).get("status") == "INPROGRESS":
            return seen
        problem = None
        if seen["state"] in ("SUCCEEDED", "FAILED"):
            problem = f"the revision was {seen['state']} before {step} was seen under way"
        elif worker.poll() is not None:
            problem = f"the worker exited with {worker.returncode}"
        elif time.monotonic() > deadline:
            problem = f"{step} did not start in {STEP_TIMEOUT:g} s"
        if problem:
            raise AssertionError(f"{problem}: {seen}\nworker log:\n{log.read_text()[-3000:]}")
        time.sleep(POLL)


def search(hub: HubServer, resource_id: str, **params: Any) -> httpx.Response:
    return httpx.get(
        f"{hub.url}/api/datastore/search",
        params={"resource_id": resource_id, **params},
        timeout=30,
    )


def sql(hub: HubServer, statement: str) -> httpx.Response:
    return httpx.post(f"{hub.url}/api/datastore/sql", json={"sql": statement}, timeout=30)


def derived(hub: HubServer, owner: str, name: str) -> dict[str, int]:
    """The status each derived file of the package answers with (streamed: only the head is read)."""
    codes = {}
    for leaf in ("big_csv.csv", "big_json.json", "big_preview.json", "datapackage_zip.zip"):
        url = f"{hub.url}/{owner}/{name}/r/{leaf}"
        with httpx.stream("GET", url, follow_redirects=True, timeout=30) as answer:
            codes[leaf] = answer.status_code
    return codes


def job_row(hub: HubServer, owner: str, name: str) -> dict[str, Any]:
    """The package's job, read straight from the SQLite metastore file (read-only)."""
    uri = f"file:{hub.data_dir / 'metastore.db'}?mode=ro"
    with sqlite3.connect(uri, uri=True, timeout=30) as db:
        db.row_factory = sqlite3.Row
        row = db.execute(
            "SELECT jobs.* FROM jobs JOIN revisions ON revisions.id = jobs.revision_id"
            " JOIN packages ON packages.id = revisions.package_id"
            " WHERE packages.owner = ? AND packages.name = ? AND revisions.number = 1",
            (owner, name),
        ).fetchone()
    assert row is not None
    return dict(row)


def leftovers(hub: HubServer) -> list[str]:
    """Work files a finished or dead worker left in the data dir."""
    data = hub.data_dir
    found = [*(data / "work").glob("*"), *(data / "datastore").glob(".*.tmp*")]
    found += (data / "blobs" / "tmp").glob("*")
    return sorted(str(p.relative_to(data)) for p in found)


@pytest.fixture(scope="module", params=["validate", "load"])
def outcome(
    request: pytest.FixtureRequest,
    hub: HubServer,
    owner: Publisher,
    big_csv: BigCsv,
    tmp_path_factory: pytest.TempPathFactory,
) -> Outcome:
    step: str = request.param
    name = f"killed-in-{step}"
    root = tmp_path_factory.mktemp(name)
    already = set(leftovers(hub))  # the other scenario's
    push(owner, big_csv, name, root)
    user = owner.username
    resource = f"{user}/{name}/big"

    first = start_worker(hub, root / "worker-1.log")
    second: subprocess.Popen[bytes] | None = None
    try:
        at_kill = wait_for_step(hub, first, root / "worker-1.log", f"{user}/{name}", step)
        first.kill()
        first.wait(timeout=30)
        # what the hub serves once the worker is dead, before anyone takes the job over
        after_kill = status(hub, user, name)
        search_at_kill = search(hub, resource)
        pinned_search_at_kill = search(hub, f"{user}/{name}@1/big")
        sql_at_kill = sql(hub, f'SELECT count(*) FROM "{resource}"')
        derived_at_kill = derived(hub, user, name)
        datastore = hub.data_dir / "datastore"
        datastore_at_kill = (
            sorted(p.name for p in datastore.iterdir()) if datastore.exists() else []
        )

        second = start_worker(hub, root / "worker-2.log")
        final = hub.wait_processed(user, name, 1, timeout=240)
        result = Outcome(
            step=step,
            owner=user,
            name=name,
            at_kill=at_kill,
            state_after_kill=after_kill["state"],
            killed_returncode=first.returncode,
            search_at_kill=search_at_kill,
            pinned_search_at_kill=pinned_search_at_kill,
            sql_at_kill=sql_at_kill,
            derived_at_kill=derived_at_kill,
            datastore_at_kill=datastore_at_kill,
            final=final,
            search_after=search(hub, resource, limit=2),
            sql_after=sql(hub, f'SELECT count(*) AS n, max(_id) AS last FROM "{resource}"'),
            derived_after=derived(hub, user, name),
            job=job_row(hub, user, name),
            second_log=(root / "worker-2.log").read_text(errors="replace"),
            leftovers=[p for p in leftovers(hub) if p not in already],
        )
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
    return result


def test_a_dead_workers_revision_is_not_served(outcome: Outcome) -> None:
    assert outcome.killed_returncode == -9
    assert outcome.at_kill["state"] == "INPROGRESS"
    assert outcome.state_after_kill == "INPROGRESS"
    for answer in (outcome.search_at_kill, outcome.pinned_search_at_kill, outcome.sql_at_kill):
        assert answer.status_code == 404, answer.text
    assert outcome.pinned_search_at_kill.json()["error"]["code"] == "table-not-found"
    # the files it derived before it died are not served either
    assert 200 not in outcome.derived_at_kill.values(), outcome.derived_at_kill
    if outcome.step == "validate":  # killed before its table was begun
        table = f"r{outcome.job['revision_id']}_0"
        mine = [n for n in outcome.datastore_at_kill if n.startswith((f"{table}.", f".{table}."))]
        assert mine == [], outcome.datastore_at_kill


def test_the_next_worker_takes_the_job_over_and_finishes_it(
    outcome: Outcome, big_csv: BigCsv
) -> None:
    final = outcome.final
    assert final["state"] == "SUCCEEDED", final
    assert {s["status"] for s in final["pipelines"].values()} == {"SUCCEEDED"}
    assert final["pipelines"]["load"]["stats"]["rows"] == big_csv.rows
    assert (outcome.job["state"], outcome.job["attempts"]) == ("done", 2)
    assert "attempt 2" in outcome.second_log

    assert outcome.search_after.status_code == 200, outcome.search_after.text
    page = outcome.search_after.json()
    assert page["total"] == big_csv.rows
    assert page["records"][0] == big_csv.first
    assert outcome.sql_after.status_code == 200, outcome.sql_after.text
    assert outcome.sql_after.json()["records"] == [{"n": big_csv.rows, "last": big_csv.rows}]
    assert set(outcome.derived_after.values()) == {200}, outcome.derived_after


def test_a_dead_worker_leaves_no_work_files_behind(
    request: pytest.FixtureRequest, outcome: Outcome
) -> None:
    """Once the job is done, the data dir holds no work files of either worker: a crash loop must
    not fill the disk with copies of the data."""
    assert outcome.leftovers == []


def test_the_table_of_a_package_never_processed_is_table_not_found(
    request: pytest.FixtureRequest, outcome: Outcome
) -> None:
    """docs/datastore.md: a table that is not there answers ``404 table-not-found``, whatever the
    reason; a client maps that slug to ``TableNotFound``."""
    for answer in (outcome.search_at_kill, outcome.sql_at_kill):
        assert answer.json()["error"]["code"] == "table-not-found", answer.text
