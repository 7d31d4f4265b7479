"""Push benchmark: ``dphub push`` of a large package, side by side with ``sha256sum`` + ``cp``.

    python benchmarks/push.py [--size-mib 1024] [--files 8] [--workdir DIR] [--keep]

It generates a Data Package of CSV files, starts a real hub on loopback (``python -m dphub serve``),
creates a publisher, logs in with a config and cache of its own (the user's are never touched), and
times, all as subprocesses:

- the reference: ``sha256sum`` of every file, then ``cp`` of every file to another folder on the
  same file system. It runs once before and once after the pushes; the better time counts.
- the first push of the package to the empty hub (the client hashes every file and uploads them);
- an unchanged re-push (the hash cache answers, the hub already holds every blob).

Then it reads the package back from the hub's API and checks every file's SHA-256 against the
local one. Exit code 0 when the hub holds the right bytes, 1 on any failure. The timing targets
are printed beside the figures; missing one is reported, not a failure.

This is not a test: it takes a minute and several GiB of disk, so it never runs with the suite.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import platform
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MIB = 1024 * 1024
PUBLISHER = "bench"
PACKAGE = "push-benchmark"
RATIO_TARGET = 1.5
"""First push at most this many times the reference (sha256sum + cp)."""
REPUSH_TARGET_S = 1.5
"""Unchanged re-push, whole CLI run included, in at most this many seconds."""
BLOCK_BYTES = MIB
"""Each file repeats one random block of CSV rows: generating 1 GiB takes seconds, not minutes."""
RACY_WINDOW_S = 2.5
"""The client's hash cache skips files modified in the last 2 s (as git does): wait that out."""
SERVER_START_TIMEOUT_S = 60.0
COLUMNS = ("id", "time", "station", "temperature", "pressure", "flag")


class BenchmarkFailed(Exception):
    """Something went wrong in a way that makes the figures meaningless: exit code 1."""


@dataclass(frozen=True)
class Timing:
    seconds: float
    output: str
    parts: tuple[float, ...] = ()
    """For the reference: the sha256sum and the cp seconds."""


# The package


def _csv_block(rng: random.Random, size: int) -> bytes:
    """Rows of plausible weather-station data, ``size`` bytes at most, ending at a newline."""
    rows: list[str] = []
    length = 0
    row_id = 0
    while length < size:
        chunk = [
            f"{row_id + i},2026-11-{rng.randint(1, 28):02d}T{rng.randint(0, 23):02d}:"
            f"{rng.randint(0, 59):02d}:00Z,ST{rng.randint(0, 9999):04d},"
            f"{rng.uniform(-30, 45):.2f},{rng.uniform(950, 1050):.1f},{rng.choice('ABCN')}\n"
            for i in range(1000)
        ]
        row_id += len(chunk)
        rows.extend(chunk)
        length += sum(len(r) for r in chunk)
    data = "".join(rows).encode()[:size]
    return data[: data.rindex(b"\n") + 1]


def make_package(root: Path, *, total_bytes: int, count: int) -> list[Path]:
    """Write ``count`` CSV files of ``total_bytes`` in all and a datapackage.json naming them.

    Every file has its own block, so no two share a hash and the hub cannot skip any of them.
    """
    root.mkdir(parents=True)
    header = (",".join(COLUMNS) + "\n").encode()
    per_file = total_bytes // count
    paths: list[Path] = []
    for index in range(count):
        block = _csv_block(random.Random(index), min(BLOCK_BYTES, per_file))
        path = root / f"data-{index:02d}.csv"
        with path.open("wb") as out:
            out.write(header)
            written = len(header)
            while written + len(block) <= per_file:
                out.write(block)
                written += len(block)
            tail = block[: per_file - written]
            out.write(tail[: tail.rfind(b"\n") + 1])
        paths.append(path)
    descriptor = {
        "name": PACKAGE,
        "title": "dphub push benchmark",
        "licenses": [{"name": "CC0-1.0"}],
        "resources": [
            {
                "name": path.stem,
                "path": path.name,
                "format": "csv",
                "mediatype": "text/csv",
                "schema": {
                    "fields": [
                        {"name": "id", "type": "integer"},
                        {"name": "time", "type": "datetime"},
                        {"name": "station", "type": "string"},
                        {"name": "temperature", "type": "number"},
                        {"name": "pressure", "type": "number"},
                        {"name": "flag", "type": "string"},
                    ]
                },
            }
            for path in paths
        ],
    }
    (root / "datapackage.json").write_text(json.dumps(descriptor, indent=2) + "\n")
    return paths


# The machine


def machine_line(workdir: Path) -> str:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (
        f"machine: {cores} cores, {_memory()}, Python {platform.python_version()},"
        f" {_filesystem(workdir)}"
    )


def _memory() -> str:
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB RAM"
    return "RAM unknown"


def _filesystem(path: Path) -> str:
    found = _run_text(["findmnt", "-n", "-o", "FSTYPE,SOURCE", "-T", str(path)])
    if found:
        fstype, _, source = found.partition(" ")
        return f"{fstype} on {source.strip()}"
    return _run_text(["stat", "-f", "-c", "%T", str(path)]) or "file system unknown"


def _run_text(command: Sequence[str]) -> str:
    try:
        done = subprocess.run(command, capture_output=True, text=True, check=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout.strip()


# Running things


def run_timed(command: Sequence[str], *, env: dict[str, str] | None = None) -> Timing:
    """Run ``command``; its wall-clock time and standard output. Fails loudly on a non-zero exit."""
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise BenchmarkFailed(
            f"{' '.join(command[:3])} ... exited with {done.returncode}:\n"
            f"{done.stdout[-2000:]}{done.stderr[-2000:]}"
        )
    return Timing(seconds, done.stdout)


def warm_page_cache(files: list[Path], scratch: Path) -> None:
    """Copy the files and delete the copy again, untimed, right before a timed step.

    On a virtual machine whose balloon driver hands free memory back to the host, the first write
    to a page the guest has not used for a few seconds costs far more than a write to a page it
    just freed: here a ``cp`` of 1 GiB took 0.3 s right after an earlier copy was deleted, 1.5 s
    twenty seconds later and 2.7 s on fresh memory. Both sides of the comparison fill the page
    cache with 1 GiB (the copy, the hub's blobs); this makes them find the same warm memory,
    as they would on a machine whose page cache is simply full.
    """
    scratch.mkdir()
    try:
        run_timed(["cp", "--", *map(str, files), str(scratch)])
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def settle() -> None:
    """Flush dirty pages (untimed), so no step pays for the previous step's writeback."""
    os.sync()


def reference(files: list[Path], scratch: Path) -> Timing:
    """``sha256sum`` of every file, then ``cp`` of every file; the copies are removed after."""
    scratch.mkdir()
    try:
        digests = run_timed(["sha256sum", "--", *map(str, files)])
        copy = run_timed(["cp", "--", *map(str, files), str(scratch)])
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    settle()
    parts = (digests.seconds, copy.seconds)
    return Timing(sum(parts), digests.output, parts)


def parse_sha256sum(output: str) -> dict[str, str]:
    """``sha256sum`` lines as {file name: hex digest}."""
    found: dict[str, str] = {}
    for line in output.splitlines():
        digest, _, name = line.partition("  ")
        found[Path(name.lstrip("*")).name] = digest.lstrip("\\")
    return found


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def dphub_command() -> list[str]:
    """The installed ``dphub`` script beside this Python, else ``python -m dphub``."""
    script = Path(sys.executable).parent / "dphub"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "dphub"]


def isolated_env(home: Path) -> dict[str, str]:
    """The environment minus any DPHUB_* setting, with a home, config and cache of its own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DPHUB_")}
    env.update(
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / ".config"),
        XDG_CACHE_HOME=str(home / ".cache"),
        DPHUB_CONFIG=str(home / "dphub-config.json"),
        DPHUB_CACHE_DIR=str(home / "dphub-cache"),
        NO_COLOR="1",
    )
    return env


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=30) as response:  # noqa: S310 - our own loopback hub
        return json.loads(response.read())


@contextlib.contextmanager
def running_hub(data_dir: Path, env: dict[str, str], log: Path) -> Iterator[str]:
    """A hub serving ``data_dir`` on a free loopback port; yields its URL, stops it after."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "dphub", "serve", "--port", str(port)]
    with log.open("wb") as out:
        server = subprocess.Popen(
            [*command, "--data-dir", str(data_dir)],
            env={**env, "DPHUB_LOG_LEVEL": "warning"},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_until_ready(server, url, log)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def _wait_until_ready(server: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while True:
        if server.poll() is not None:
            raise BenchmarkFailed(f"The hub exited with {server.returncode}:\n{_tail(log)}")
        try:
            get_json(f"{url}/api/auth/check")
        except (OSError, ValueError):
            if time.monotonic() > deadline:
                raise BenchmarkFailed(f"The hub did not answer in time:\n{_tail(log)}") from None
            time.sleep(0.1)
        else:
            return


def _tail(log: Path) -> str:
    try:
        return log.read_text(errors="replace")[-3000:]
    except OSError:
        return "(no server log)"


def create_publisher(data_dir: Path, env: dict[str, str], url: str) -> None:
    created = run_timed(
        [
            *(sys.executable, "-m", "dphub", "user", "create", PUBLISHER),
            *("--email", f"{PUBLISHER}@example.org", "--data-dir", str(data_dir)),
        ],
        env=env,
    )
    lines = [line.strip() for line in created.output.splitlines() if line.strip()]
    if not lines:
        raise BenchmarkFailed("`dphub user create` printed no API key.")
    # The key goes through the environment, not the command line other users can read.
    run_timed(
        [*dphub_command(), "login", "--server", url, "--username", PUBLISHER],
        env={**env, "DPHUB_SECRET": lines[-1]},
    )


# Checking


def verify(url: str, expected: dict[str, str]) -> None:
    """Every local file is on the hub, in the latest revision, with the same SHA-256."""
    try:
        show = get_json(f"{url}/api/package/{PUBLISHER}/{PACKAGE}")
    except (OSError, ValueError) as exc:
        raise BenchmarkFailed(f"Reading the package back failed: {exc}") from exc
    listed = show.get("files") if isinstance(show, dict) else None
    if not isinstance(listed, list):
        raise BenchmarkFailed("The hub's package answer lists no files.")
    held = {str(f.get("path")): f.get("sha256") for f in listed if isinstance(f, dict)}
    wrong = [
        f"{name}: local {digest[:12]}, hub {str(held.get(name))[:12]}"
        for name, digest in sorted(expected.items())
        if held.get(name) != digest
    ]
    if wrong:
        raise BenchmarkFailed("The hub holds other bytes than pushed:\n  " + "\n  ".join(wrong))


# The run


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--size-mib", type=int, default=1024, help="package size in MiB (default 1024)"
    )
    parser.add_argument("--files", type=int, default=8, help="number of data files (default 8)")
    parser.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="where to put the package, the copies and the hub (default: the temp dir)",
    )
    parser.add_argument(
        "--workers", type=int, default=None, help="passed to `dphub push --workers`"
    )
    parser.add_argument(
        "--no-warmup",
        action="store_true",
        help="skip the untimed copy before each timed step (see warm_page_cache)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work folder afterwards")
    args = parser.parse_args(argv)
    if args.size_mib < 1 or args.files < 1:
        parser.error("--size-mib and --files must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    total = args.size_mib * MIB
    parent = args.workdir or Path(tempfile.gettempdir())
    parent.mkdir(parents=True, exist_ok=True)
    # The package, one copy of it and the hub's blobs, plus some room.
    needed = 3 * total + 256 * MIB
    free = shutil.disk_usage(parent).free
    if free < needed:
        print(
            f"FAIL: {parent} has {free / MIB:.0f} MiB free, the run needs about"
            f" {needed / MIB:.0f} MiB: choose another --workdir.",
            file=sys.stderr,
        )
        return 1
    work = Path(tempfile.mkdtemp(prefix="dphub-push-bench-", dir=parent))
    try:
        run(args, work, total)
    except BenchmarkFailed as exc:
        print(f"FAIL: {exc}", file=sys.stderr)
        return 1
    finally:
        if args.keep:
            print(f"kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


def run(args: argparse.Namespace, work: Path, total: int) -> None:
    package = work / "package"
    home = work / "home"
    home.mkdir()
    env = isolated_env(home)
    progress = sys.stderr

    print(f"generating {args.size_mib} MiB in {args.files} files ...", file=progress)
    files = make_package(package, total_bytes=total, count=args.files)
    settle()
    generated = time.time()
    pushed_bytes = sum(p.stat().st_size for p in package.iterdir() if p.is_file())

    def warm() -> None:
        if not args.no_warmup:
            warm_page_cache(files, work / "warm")

    push = [*dphub_command(), "push", str(package)]
    if args.workers is not None:
        push += ["--workers", str(args.workers)]

    with running_hub(work / "hub", env, work / "server.log") as url:
        create_publisher(work / "hub", env, url)

        print("reference 1/2: sha256sum + cp ...", file=progress)
        warm()
        before = reference(files, work / "copy")
        time.sleep(max(0.0, generated + RACY_WINDOW_S - time.time()))

        print("first push ...", file=progress)
        warm()
        first = run_timed(push, env=env)
        settle()
        print("unchanged re-push ...", file=progress)
        again = run_timed(push, env=env)
        if "0 files uploaded" not in again.output:
            raise BenchmarkFailed(f"The unchanged re-push uploaded files:\n{again.output}")

        print("reference 2/2: sha256sum + cp ...", file=progress)
        warm()
        after = reference(files, work / "copy")

        expected = parse_sha256sum(before.output)
        descriptor = (package / "datapackage.json").read_bytes()
        expected["datapackage.json"] = hashlib.sha256(descriptor).hexdigest()
        if parse_sha256sum(after.output) != parse_sha256sum(before.output):
            raise BenchmarkFailed("The local files changed during the run.")
        verify(url, expected)

    best = min(before, after, key=lambda t: t.seconds)
    ratio = first.seconds / best.seconds
    rate = pushed_bytes / MIB / first.seconds
    print(machine_line(work))
    warmed = "no warm-up" if args.no_warmup else "page cache warmed before each timed step"
    print(
        f"package:                {pushed_bytes / MIB:.0f} MiB in {args.files} CSV files"
        f" + datapackage.json ({warmed})"
    )
    print(
        f"reference sha256sum+cp: {best.seconds:.2f} s (best of 2: {before.seconds:.2f} s before,"
        f" {after.seconds:.2f} s after the pushes; sha256sum {best.parts[0]:.2f} s"
        f" + cp {best.parts[1]:.2f} s)"
    )
    print(
        f"first push:             {first.seconds:.2f} s  {rate:4.0f} MiB/s  ratio {ratio:.2f}x"
        f"  (target <= {RATIO_TARGET}x){_miss(ratio > RATIO_TARGET)}"
    )
    print(
        f"unchanged re-push:      {again.seconds:.2f} s{'':27}(target <= {REPUSH_TARGET_S} s)"
        f"{_miss(again.seconds > REPUSH_TARGET_S)}"
    )
    print(f"hub holds every file with its SHA-256: OK ({len(expected)} files)")


def _miss(missed: bool) -> str:
    return "  MISSED" if missed else ""


if __name__ == "__main__":
    sys.exit(main())
