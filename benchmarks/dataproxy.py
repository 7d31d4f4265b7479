"""DataProxy benchmark: hub CSV files converted to JSON on the fly over HTTP, side by side with
DuckDB writing the same CSV out as a JSON array.

    python benchmarks/dataproxy.py [--rows 1000000] [--big-mib 1024 | --no-big] [--rounds 2]
                                   [--workdir DIR] [--keep]

It generates a CSV of ``--rows`` rows and 8 columns with a Table Schema (the table of ingest.py)
and, unless ``--no-big``, a CSV of about ``--big-mib`` MiB made of the first file's rows repeated.
It starts a real hub on loopback with ``--no-worker`` (so no processing of the pushed revisions
competes with the conversions), pushes each file with ``dphub push --no-wait`` and then, for each
file:

1. **Full conversion**: ``GET /api/dataproxy?url=/bench/<package>/r/data.csv&format=json``,
   streamed with httpx and read to the end (discarded; the rows are counted), in MB/s of the
   source file (1 MB = 10^6 bytes).
2. **Reference**: DuckDB's ``COPY (SELECT * FROM read_csv(<file>)) TO <tmp>.json (FORMAT JSON,
   ARRAY true)`` in a fresh Python process, timed around the statement. Both sides run
   ``--rounds`` times, alternating, and the best time of each counts. **Target: ratio >= 0.8x.**
3. **Peak RSS** of the ``dphub serve`` process (and any children) while its conversions run,
   sampled from /proc every 50 ms. **Target: <= 300 MB.**
4. **Time to first byte** of ``limit=100`` on the big file (the 1M-row file with ``--no-big``):
   the first request for it (cold), then one warm-up and the median of 5. **Target: <= 100 ms.**

Exit code 0 when every conversion answered every row, 1 otherwise. A missed target is printed as
MISSED and does not change the exit code. This is not a test, and never runs with the suite.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import httpx

import _hub
import push as bench
from push import MIB, PUBLISHER, BenchmarkFailed

MB = 1_000_000
RATIO_TARGET = 0.8
RSS_TARGET_MB = 300
TTFB_TARGET_MS = 100
TTFB_RUNS = 5
SAMPLE_S = 0.05
BYTES_PER_ROW = 80
REQUEST_TIMEOUT_S = 1800.0

REFERENCE = r"""
import json, re, sys, time
from pathlib import Path
import duckdb
source, target = sys.argv[1], sys.argv[2]
start = time.perf_counter()
con = duckdb.connect()
con.execute("SET enable_progress_bar = false")
con.execute(
    f"COPY (SELECT * FROM read_csv('{source}')) TO '{target}' (FORMAT JSON, ARRAY true)"
)
con.close()
seconds = time.perf_counter() - start
# VmHWM is this process's own peak (ru_maxrss would carry over the forking parent's)
rss = int(re.search(r"VmHWM:\s+(\d+)", Path("/proc/self/status").read_text()).group(1)) / 1024
print(json.dumps({"seconds": seconds, "rss_mb": rss}))
"""


# The files


@dataclass
class Source:
    label: str
    package: str
    csv: Path
    rows: int
    revision: int = 0
    """Set by the push: the unprocessed revision, named in the URL (the bare ``/r/`` form
    names the latest successfully processed one, and with --no-worker there is none)."""

    @property
    def size(self) -> int:
        return self.csv.stat().st_size

    def path(self) -> str:
        return f"/{PUBLISHER}/{self.package}/v/{self.revision}/r/{_hub.RESOURCE}.csv"


def write_big(small: Path, root: Path, package: str, target_bytes: int) -> Source:
    """A CSV of about ``target_bytes``: the header of ``small``, then its data rows over and over
    (the last copy cut at a line end), with the same Table Schema."""
    root.mkdir(parents=True)
    data = small.read_bytes()
    header_end = data.index(b"\n") + 1
    header, body = data[:header_end], data[header_end:]
    csv = root / small.name
    rows = 0
    with csv.open("wb") as out:
        out.write(header)
        written = len(header)
        while written < target_bytes:
            chunk = body[: target_bytes - written]
            last = len(chunk) < len(body)
            if last:
                chunk = chunk[: chunk.rfind(b"\n") + 1]
            out.write(chunk)
            written += len(chunk)
            rows += chunk.count(b"\n")
            if last:
                break
    descriptor = json.loads((small.parent / "datapackage.json").read_text())
    descriptor.update(name=package, title="dphub dataproxy benchmark, big")
    (root / "datapackage.json").write_text(json.dumps(descriptor, indent=2) + "\n")
    return Source("big", package, csv, rows)


# The hub, with its process id


@dataclass
class Hub:
    url: str
    pid: int


@contextlib.contextmanager
def running_hub(data_dir: Path, env: dict[str, str], log: Path) -> Iterator[Hub]:
    """``dphub serve --no-worker`` on a free loopback port (push.py's ``running_hub`` plus the
    flag, and the process id for the memory figures); stopped after."""
    port = bench.free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "dphub", "serve", "--port", str(port), "--no-worker"]
    with log.open("wb") as out:
        server = subprocess.Popen(
            [*command, "--data-dir", str(data_dir)],
            env={**env, "DPHUB_LOG_LEVEL": "warning"},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        bench._wait_until_ready(server, url, log)
        yield Hub(url, server.pid)
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


# Memory of the server


def _status_kib(pid: int, key: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _tree(pid: int) -> list[int]:
    """``pid`` and its descendants (from /proc/<pid>/task/*/children)."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        for task in Path(f"/proc/{current}/task").glob("*"):
            with contextlib.suppress(OSError, ValueError):
                todo.extend(int(c) for c in (task / "children").read_text().split())
    return found


def rss_mb(pid: int) -> float:
    return sum(_status_kib(p, "VmRSS") for p in _tree(pid)) / 1024


@dataclass
class RssSampler:
    """The server's RSS (with any children) every 50 ms, from a thread, while active."""

    pid: int
    peak: float = 0.0
    samples: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> RssSampler:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_mb(self.pid))
            self.samples += 1
            self._stop.wait(SAMPLE_S)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.peak = max(self.peak, rss_mb(self.pid))


# The measurements


def convert(client: httpx.Client, url: str, source: Source) -> tuple[float, int, int]:
    """The whole JSON answer read and discarded: seconds, bytes and rows. The answer is
    ``{"url": ..., "fields": [...], "data": [`` and then one row a line as a JSON array."""
    params = {"url": source.path(), "format": "json"}
    start = time.perf_counter()
    received = rows = 0
    with client.stream("GET", f"{url}/api/dataproxy", params=params) as response:
        if response.status_code != 200:
            response.read()
            raise BenchmarkFailed(f"dataproxy answered {response.status_code}: {response.text}")
        last = b""
        for chunk in response.iter_raw():
            received += len(chunk)
            # one row per line, a JSON array: count the line starts "\n[", also across chunks
            rows += chunk.count(b"\n[") + (last == b"\n" and chunk[:1] == b"[")
            last = chunk[-1:] or last
    return time.perf_counter() - start, received, rows


def first_byte(client: httpx.Client, url: str, source: Source) -> float:
    """Seconds from sending ``limit=100`` until the first byte of the body arrives."""
    params = {"url": source.path(), "format": "json", "limit": "100"}
    start = time.perf_counter()
    with client.stream("GET", f"{url}/api/dataproxy", params=params) as response:
        if response.status_code != 200:
            response.read()
            raise BenchmarkFailed(f"dataproxy answered {response.status_code}: {response.text}")
        seconds = None
        for chunk in response.iter_raw():
            if chunk and seconds is None:
                seconds = time.perf_counter() - start
    if seconds is None:
        raise BenchmarkFailed("dataproxy answered an empty body for limit=100.")
    return seconds


def duckdb_reference(source: Source, scratch: Path) -> tuple[float, float]:
    """DuckDB's COPY ... TO JSON in a fresh process: seconds of the statement, its peak RSS."""
    target = scratch / "reference.json"
    done = subprocess.run(
        [sys.executable, "-c", REFERENCE, str(source.csv), str(target)],
        capture_output=True,
        text=True,
        check=False,
    )
    target.unlink(missing_ok=True)
    if done.returncode != 0:
        raise BenchmarkFailed(f"DuckDB's COPY exited with {done.returncode}:\n{done.stderr}")
    found = json.loads(done.stdout)
    bench.settle()
    return float(found["seconds"]), float(found["rss_mb"])


@dataclass
class Result:
    source: Source
    ours: list[float] = field(default_factory=list)
    theirs: list[float] = field(default_factory=list)
    their_rss: float = 0.0
    out_bytes: int = 0
    peak_rss: float = 0.0
    rss_before: float = 0.0
    ttfb: tuple[float, list[float]] | None = None


def measure(
    hub: Hub, source: Source, scratch: Path, rounds: int, with_ttfb: bool, progress: TextIO
) -> Result:
    result = Result(source)
    headers = {"Accept-Encoding": "identity"}
    with httpx.Client(headers=headers, timeout=REQUEST_TIMEOUT_S) as client:
        result.rss_before = rss_mb(hub.pid)
        with RssSampler(hub.pid) as sampler:
            if with_ttfb:
                print(f"{source.label}: first byte of limit=100 ...", file=progress)
                cold = first_byte(client, hub.url, source)
                first_byte(client, hub.url, source)  # warm-up
                warm = [first_byte(client, hub.url, source) for _ in range(TTFB_RUNS)]
                result.ttfb = (cold, warm)
            for n in range(rounds):
                print(f"{source.label}: round {n + 1}/{rounds}: DuckDB COPY ...", file=progress)
                seconds, their_rss = duckdb_reference(source, scratch)
                result.theirs.append(seconds)
                result.their_rss = max(result.their_rss, their_rss)
                print(f"{source.label}: round {n + 1}/{rounds}: dataproxy ...", file=progress)
                seconds, received, rows = convert(client, hub.url, source)
                if rows != source.rows:
                    raise BenchmarkFailed(
                        f"dataproxy answered {rows:,} rows for {source.label}, not {source.rows:,}."
                    )
                result.ours.append(seconds)
                result.out_bytes = received
        result.peak_rss = sampler.peak
    return result


# The run


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--rows", type=int, default=1_000_000, help="rows of the first CSV (default 1000000)"
    )
    parser.add_argument(
        "--big-mib", type=int, default=1024, help="size of the big CSV in MiB (default 1024)"
    )
    parser.add_argument("--no-big", action="store_true", help="only the first CSV (quick run)")
    parser.add_argument(
        "--rounds", type=int, default=2, help="runs of each side per file (default 2)"
    )
    parser.add_argument(
        "--workdir", type=Path, default=None, help="where to put the files (default: temp dir)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args(argv)
    if args.rows < 10:
        parser.error("--rows must be at least 10")
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    # Each CSV, its blob and DuckDB's JSON (about three times the CSV), plus some room.
    small = args.rows * BYTES_PER_ROW
    big = 0 if args.no_big else args.big_mib * MIB
    needed = 6 * (small + big) + 256 * MIB
    return bench.in_workdir(args, prefix="dphub-dataproxy-bench-", needed=needed, run=run)


def run(args: argparse.Namespace, work: Path) -> None:
    home = work / "home"
    home.mkdir()
    env = bench.isolated_env(home)
    progress = sys.stderr
    quiet = _hub.Quiet()

    print(f"generating {args.rows:,} rows ...", file=progress)
    table = _hub.write_table(
        work / "small", rows=args.rows, package="dataproxy-small", title="dphub dataproxy bench"
    )
    sources = [
        Source(
            "1M rows" if args.rows == 1_000_000 else "small",
            "dataproxy-small",
            table.csv,
            table.rows,
        )
    ]
    if not args.no_big:
        print(f"generating the {args.big_mib} MiB CSV ...", file=progress)
        sources.append(write_big(table.csv, work / "big", "dataproxy-big", args.big_mib * MIB))
    bench.settle()

    results: list[Result] = []
    with running_hub(work / "hub", env, work / "server.log") as hub:
        bench.create_publisher(work / "hub", env, hub.url)
        for source in sources:
            print(f"dphub push --no-wait {source.csv.parent.name} ...", file=progress)
            source.revision = _hub.timed_push(
                [*bench.dphub_command(), "push", "--no-wait", str(source.csv.parent)], env
            ).revision
        bench.settle()
        idle = rss_mb(hub.pid)
        for source in sources:
            results.append(measure(hub, source, work, args.rounds, source is sources[-1], progress))
        hwm = sum(_status_kib(p, "VmHWM") for p in _tree(hub.pid)) / 1024

    print(bench.machine_line(work))
    print(quiet.line())
    print(
        "setup:                  `dphub serve --no-worker` (SQLite metastore, local bitstore):"
        " the pushed revisions are not processed, so nothing competes with the conversions"
    )
    report(results, idle, hwm, args.rounds)


def report(results: list[Result], idle: float, hwm: float, rounds: int) -> None:
    for r in results:
        size = r.source.size
        ours, theirs = min(r.ours), min(r.theirs)
        ratio = theirs / ours
        print(
            f"{r.source.label + ':':<23} {size / MIB:.1f} MiB ({size / MB:.0f} MB) of CSV,"
            f" {r.source.rows:,} rows x {len(_hub.FIELDS)} columns"
        )
        print(
            f"  dataproxy CSV->JSON:  {ours:6.2f} s {size / MB / ours:6.1f} MB/s"
            f"  (best of {rounds}: {', '.join(f'{s:.2f}' for s in r.ours)} s;"
            f" {r.out_bytes / MB:.0f} MB of JSON over HTTP)"
        )
        print(
            f"  DuckDB COPY TO JSON:  {theirs:6.2f} s {size / MB / theirs:6.1f} MB/s"
            f"  (best of {rounds}: {', '.join(f'{s:.2f}' for s in r.theirs)} s;"
            f" its process peaked at {r.their_rss:.0f} MB RSS)"
        )
        print(
            f"  dataproxy / DuckDB:   {ratio:.2f}x  (target >= {RATIO_TARGET}x)"
            f" {_hub.verdict(ratio >= RATIO_TARGET)}"
        )
        print(
            f"  server peak RSS:      {r.peak_rss:.0f} MB  (sampled every {SAMPLE_S * 1000:.0f} ms;"
            f" {r.rss_before:.0f} MB before)  (target <= {RSS_TARGET_MB} MB)"
            f" {_hub.verdict(r.peak_rss <= RSS_TARGET_MB)}"
        )
        if r.ttfb is not None:
            cold, warm = r.ttfb
            median = statistics.median(warm) * 1000
            print(
                f"  first byte limit=100: median {median:.1f} ms of {len(warm)} after a warm-up"
                f" ({', '.join(f'{s * 1000:.1f}' for s in warm)}); cold first {cold * 1000:.1f} ms"
                f"  (target <= {TTFB_TARGET_MS} ms) {_hub.verdict(median <= TTFB_TARGET_MS)}"
            )
    print(
        f"server memory:          {idle:.0f} MB RSS idle after the pushes;"
        f" VmHWM {hwm:.0f} MB over its whole life (pushes included)"
    )


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
