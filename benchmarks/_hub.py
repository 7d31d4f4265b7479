"""What ingest.py and query.py share: the generated table, a push timed in its two phases, the
revision's processing steps, and a ``dphub worker`` beside the hub.

The hub itself is started with push.py's helpers (a fresh data dir, an isolated home, a publisher
logged in), so every benchmark runs it the same way.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from push import PUBLISHER, BenchmarkFailed, get_json

FIELDS = (
    ("id", "integer"),
    ("day", "date"),
    ("station", "string"),
    ("region", "string"),
    ("temperature", "number"),
    ("rainfall", "number"),
    ("visitors", "integer"),
    ("open", "boolean"),
)
RESOURCE = "data"
MATCHES = 5
"""Rows sharing each ``station`` value, so an equality filter on it matches this many rows."""
REGIONS = (
    "Atlantic Coast",
    "Baltic Lowlands",
    "Central Highlands",
    "Danube Basin",
    "Eastern Steppe",
    "Fjord Country",
    "Great Plains North",
    "Great Plains South",
    "Inland Lakes",
    "Iron Mountains",
    "Lower Valley",
    "Marsh Delta",
    "Northern Tundra",
    "Olive Hills",
    "Pine Barrens",
    "Red Desert",
    "River Forks",
    "Salt Flats",
    "Southern Capes",
    "Upper Valley",
    "Vineyard Slopes",
    "Volcanic Islands",
    "Western Ridge",
    "White Cliffs",
)
FIRST_DAY = date(2020, 1, 1)
DAYS = 1461
_SPREADERS = (7919, 104729, 1299709)
"""Primes that scatter the stations over the file (see station_of)."""
CHUNK_ROWS = 20_000
PUSH_TIMEOUT_S = 3600.0


# The table


@dataclass(frozen=True)
class Table:
    csv: Path
    rows: int
    groups: int
    spreader: int

    def station_of(self, row_id: int) -> str:
        """The station of row ``row_id`` (1-based): ``row_id * spreader mod groups`` is a bijection
        of the residues, so each of the ``groups`` values is on every ``groups``-th row, spread
        over the whole file (no row group of a columnar store holds a run of one value)."""
        return f"station-{(row_id * self.spreader) % self.groups:07d}"

    def rows_of_station(self, row_id: int) -> list[int]:
        """The ids of the rows sharing the station of ``row_id``."""
        first = row_id % self.groups or self.groups
        return list(range(first, self.rows + 1, self.groups))


def write_table(root: Path, *, rows: int, package: str, title: str) -> Table:
    """A CSV of ``rows`` rows of the eight FIELDS and a datapackage.json with its Table Schema."""
    root.mkdir(parents=True)
    groups = max(1, rows // MATCHES)
    spreader = next((p for p in _SPREADERS if math.gcd(p, groups) == 1), 1)
    table = Table(root / f"{RESOURCE}.csv", rows, groups, spreader)
    rng = random.Random(20261128)
    days = [(FIRST_DAY + timedelta(days=n)).isoformat() for n in range(DAYS)]
    with table.csv.open("w", encoding="utf-8", newline="") as out:
        out.write(",".join(name for name, _ in FIELDS) + "\n")
        for start in range(1, rows + 1, CHUNK_ROWS):
            lines = []
            for i in range(start, min(start + CHUNK_ROWS, rows + 1)):
                lines.append(
                    f"{i},{days[rng.randrange(DAYS)]},{table.station_of(i)},"
                    f"{REGIONS[rng.randrange(len(REGIONS))]},{rng.uniform(-30, 45):.3f},"
                    f"{rng.expovariate(0.2):.4f},{rng.randrange(1_000_000)},"
                    f"{'true' if rng.random() < 0.7 else 'false'}\n"
                )
            out.write("".join(lines))
    descriptor = {
        "name": package,
        "title": title,
        "licenses": [{"name": "CC0-1.0"}],
        "resources": [
            {
                "name": RESOURCE,
                "path": table.csv.name,
                "format": "csv",
                "mediatype": "text/csv",
                "schema": {"fields": [{"name": n, "type": t} for n, t in FIELDS]},
            }
        ],
    }
    (root / "datapackage.json").write_text(json.dumps(descriptor, indent=2) + "\n")
    return table


# Pushing and processing


@dataclass(frozen=True)
class PushTiming:
    seconds: float
    """The whole `dphub push` run: upload, finalize and waiting for the processing."""
    upload: float
    """Until the CLI printed the new revision (the upload and finalize are done)."""
    ended_at: float
    """time.time() when the CLI exited."""
    revision: int
    output: str

    @property
    def after_upload(self) -> float:
        return self.seconds - self.upload


def timed_push(command: list[str], env: dict[str, str]) -> PushTiming:
    """Run `dphub push` (which waits for the processing), noting when the upload ended."""
    start = time.perf_counter()
    upload: float | None = None
    lines: list[str] = []
    process = subprocess.Popen(
        command,
        env={**env, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    for line in process.stdout:
        lines.append(line)
        # "Published OWNER/NAME revision N" ends the upload phase; what follows is the waiting.
        if upload is None and line.startswith("Published "):
            upload = time.perf_counter() - start
    code = process.wait(timeout=PUSH_TIMEOUT_S)
    seconds = time.perf_counter() - start
    output = "".join(lines)
    if code != 0:
        raise BenchmarkFailed(f"`dphub push` exited with {code}:\n{output[-3000:]}")
    published = next((ln for ln in lines if ln.startswith("Published ")), "")
    words = published.split()
    if upload is None or len(words) < 4 or not words[-1].isdigit():
        raise BenchmarkFailed(f"`dphub push` printed no new revision:\n{output[-3000:]}")
    return PushTiming(seconds, upload, time.time(), int(words[-1]), output)


STEP_ORDER = ("validate", "derive", "preview", "zip", "load")


@dataclass(frozen=True)
class Processing:
    """A processed revision, as `GET /api/package/OWNER/NAME/revisions/N` describes it."""

    state: str
    steps: dict[str, float]
    """Seconds of each step, in the pipeline's order."""
    created: float
    """When finalize made the revision (a POSIX time, as the steps' start and end)."""
    started: float
    """When the first step started."""
    finished: float
    """When the last step ended."""
    modified: float
    """When the revision was last written (its state set)."""
    rows: int

    @property
    def step_seconds(self) -> float:
        return sum(self.steps.values())

    @property
    def queued(self) -> float:
        return self.started - self.created

    @property
    def finishing(self) -> float:
        return self.modified - self.finished

    def steps_line(self) -> str:
        parts = ", ".join(f"{k} {v:.2f} s" for k, v in self.steps.items())
        return f"{parts} = {self.step_seconds:.2f} s"


def _posix(stamp: object) -> float:
    if not isinstance(stamp, str):
        raise BenchmarkFailed(
            f"The revision status has no timestamp where one was expected: {stamp}"
        )
    return datetime.fromisoformat(stamp).timestamp()


def processing(url: str, package: str, revision: int) -> Processing:
    status = get_json(f"{url}/api/package/{PUBLISHER}/{package}/revisions/{revision}")
    pipelines = status.get("pipelines") if isinstance(status, dict) else None
    if not isinstance(pipelines, dict):
        raise BenchmarkFailed(f"The revision status lists no steps: {status}")
    state = str(status.get("state"))
    if state != "SUCCEEDED":
        errors = json.dumps(status.get("errors"))[:2000]
        raise BenchmarkFailed(f"Revision {revision} is {state}, not SUCCEEDED: {errors}")
    steps: dict[str, float] = {}
    starts, ends = [], []
    for key in [*STEP_ORDER, *(k for k in pipelines if k not in STEP_ORDER)]:
        step = pipelines.get(key)
        if not isinstance(step, dict) or step.get("status") != "SUCCEEDED":
            continue
        steps[key] = float(step.get("seconds") or 0.0)
        starts.append(_posix(step.get("started")))
        ends.append(_posix(step.get("finished")))
    if not steps:
        raise BenchmarkFailed(f"No step of revision {revision} succeeded: {pipelines}")
    stats = status.get("stats") if isinstance(status.get("stats"), dict) else {}
    return Processing(
        state=state,
        steps=steps,
        created=_posix(status.get("created")),
        started=min(starts),
        finished=max(ends),
        modified=_posix(status.get("modified")),
        rows=int(stats.get("rows") or 0),
    )


def datastore_total(url: str, resource_id: str) -> Any:
    """The ``total`` of a one-row search of the table: the number of rows the datastore holds."""
    query = f"resource_id={resource_id}&limit=1"
    answer = get_json(f"{url}/api/datastore/search?{query}")
    return answer.get("total") if isinstance(answer, dict) else None


@contextlib.contextmanager
def running_worker(data_dir: Path, env: dict[str, str], log: Path) -> Iterator[None]:
    """`python -m dphub worker` on the hub's data dir and metastore; stopped (SIGTERM) after."""
    with log.open("wb") as out:
        worker = subprocess.Popen(
            [sys.executable, "-m", "dphub", "worker", "--data-dir", str(data_dir)],
            env={**env, "DPHUB_LOG_LEVEL": "warning"},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        time.sleep(0.5)
        if worker.poll() is not None:
            raise BenchmarkFailed(f"`dphub worker` exited with {worker.returncode}:\n{_tail(log)}")
        yield
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=15)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()


def _tail(log: Path) -> str:
    try:
        return log.read_text(errors="replace")[-3000:]
    except OSError:
        return "(no log)"


def postgres_missing(services: Any) -> str | None:
    """Why no PostgreSQL can be had here (tests/services.py's message), or None when one can."""
    if os.environ.get(services.DATABASE_URL_ENV):
        return None
    try:
        services.find_postgres_bindir()
    except services.ServiceError as exc:
        return str(exc)
    return None


# How quiet the machine was


def _machine_busy() -> float:
    """CPU seconds all processes of the machine have used since boot (/proc/stat)."""
    try:
        words = Path("/proc/stat").read_text().splitlines()[0].split()
    except (OSError, IndexError):
        return math.nan
    # user nice system idle iowait irq softirq steal: everything but idle and iowait
    busy = sum(int(w) for i, w in enumerate(words[1:9]) if i not in (3, 4))
    return busy / os.sysconf("SC_CLK_TCK")


def _own() -> float:
    """CPU seconds of this process and of its children that have ended (and were waited for)."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def postmaster_cpu(server: Any) -> float:
    """CPU seconds of a throwaway PostgreSQL (tests/services.py) so far: the postmaster's own and
    that of the backends it has reaped; 0 for a server this run did not start."""
    root = getattr(server, "root", None)
    if root is None:
        return 0.0
    try:
        pid = int((Path(root) / "data" / "postmaster.pid").read_text().split()[0])
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, ValueError, IndexError):
        return math.nan
    return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")


class Quiet:
    """How much CPU other processes used while the benchmark ran: the machine's busy time less
    this process's, its waited-for children's and any CPU credited with ``add``. Call ``line``
    once every child has ended."""

    def __init__(self) -> None:
        self.began = time.monotonic()
        self.busy = _machine_busy()
        self.own = _own()
        self.credited = 0.0

    def add(self, seconds: float) -> None:
        self.credited += seconds

    def line(self) -> str:
        wall = time.monotonic() - self.began
        ours = _own() - self.own + self.credited
        other = max(0.0, _machine_busy() - self.busy - ours)
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
        return (
            f"other processes:        {other:.1f} CPU s during the run's {wall:.0f} s"
            f" ({other / (wall * cores):.0%} of the machine; this run used {ours:.1f} CPU s)"
        )


def rate(rows: int, seconds: float) -> str:
    return f"{rows / seconds:>9,.0f} rows/s" if seconds > 0 else "        - rows/s"


def verdict(ok: bool) -> str:
    return "OK" if ok else "MISSED"
