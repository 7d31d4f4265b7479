"""Crash tests' tools: failpoints to stop a process at a chosen line, SIGKILL, and restarts.

The hubs of these tests run with ``DPHUB_FAILPOINTS`` naming the points the tests use; every point
starts inert (its ``.paused`` marker written before the hub starts) and a scenario arms the one it
needs, waits for a process to stop there, then kills that process (or a service under it) and
checks how the hub recovers. See :mod:`dphub.failpoints`.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from dphub.bitstore import BitStore, LocalBitStore
from dphub.bitstore.s3 import S3BitStore, parse_storage_url
from dphub.bitstore.signing import UploadSigner
from tests.conftest import HubServer, Publisher, cli, fetch, write_package
from tests.services import (
    PostgresServer,
    S3Server,
    ServiceError,
    _run_as_postgres,
    _wait_for_s3,
    _weed_command,
    find_weed,
)

WAIT = 120.0
"""Seconds a process may take to reach a failpoint (generous: CI machines are slow and busy)."""
POLL = 0.02


class Failpoints:
    """The failpoint markers of one data dir (see :mod:`dphub.failpoints`)."""

    def __init__(self, data_dir: Path) -> None:
        self.folder = data_dir / "failpoints"

    @staticmethod
    def spec(names: Iterable[str]) -> str:
        return ",".join(f"{name}=pause" for name in names)

    def hold(self, names: Iterable[str]) -> None:
        """Make the points inert: as if each had fired already (call before the hub starts)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        for name in names:
            (self.folder / f"{name}.paused").write_text("0")

    def arm(self, name: str) -> None:
        """The next process to reach ``name`` stops there."""
        (self.folder / f"{name}.resume").unlink(missing_ok=True)
        (self.folder / f"{name}.paused").unlink(missing_ok=True)

    def wait(self, name: str, *, watch: Sequence[subprocess.Popen[Any]] = ()) -> int:
        """The pid of the process stopped at ``name``, once one is; fails early when a watched
        process (the client driving the scenario) ends first."""
        marker = self.folder / f"{name}.paused"
        deadline = time.monotonic() + WAIT
        while True:
            if marker.exists():
                return int(marker.read_text())
            for process in watch:
                if process.poll() is not None:
                    out, err = process.communicate()
                    raise AssertionError(
                        f"{process.args} ended ({process.returncode}) before anything reached"
                        f" {name}:\n{out}\n{err}"
                    )
            if time.monotonic() > deadline:
                raise AssertionError(f"nothing reached the failpoint {name} in {WAIT:g} s")
            time.sleep(POLL)

    def resume(self, name: str) -> None:
        (self.folder / f"{name}.resume").touch()


def kill(pid: int) -> None:
    """SIGKILL ``pid`` and wait until it is gone (or only a zombie its parent has to reap)."""
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            return
        if state in ("Z", "X"):
            return
        time.sleep(POLL)
    raise AssertionError(f"process {pid} outlived SIGKILL")


def children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


# the client side -------------------------------------------------------------------------------


def package(root: Path, name: str, files: dict[str, bytes]) -> Path:
    return write_package(root / name, name, files=files)


def push_in_background(publisher: Publisher, folder: Path) -> subprocess.Popen[str]:
    """``dphub push`` of ``folder`` as a child process the test lets run while it acts."""
    return subprocess.Popen(
        [sys.executable, "-m", "dphub", "push", str(folder), "--no-wait"],
        env=publisher.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@dataclass
class Ended:
    returncode: int
    stdout: str
    stderr: str


def ended(process: subprocess.Popen[str], timeout: float = WAIT) -> Ended:
    out, err = process.communicate(timeout=timeout)
    return Ended(process.returncode, out, err)


def check(hub: HubServer, *args: str) -> dict[str, Any]:
    """The report of ``dphub admin check --json``, its exit status under ``status``."""
    result = hub.admin("admin", "check", "--json", *args, check=False)
    assert result.returncode in (0, 1), f"{result.stdout}\n{result.stderr}"
    report: dict[str, Any] = json.loads(result.stdout)
    report["status"] = result.returncode
    return report


def assert_consistent(hub: HubServer) -> dict[str, Any]:
    report = check(hub)
    assert (report["status"], report["violations"]) == (0, []), report
    return report


def assert_not_visible(hub: HubServer, owner: str, name: str) -> None:
    """Nothing of an interrupted push answers through the API."""
    assert httpx.get(f"{hub.url}/api/package/{owner}/{name}", timeout=30).status_code == 404
    assert httpx.get(f"{hub.url}/{owner}/{name}/datapackage.json", timeout=30).status_code == 404
    listed = httpx.get(f"{hub.url}/api/package/{owner}", timeout=30)
    if listed.status_code == 200:
        assert name not in listed.json()["data"]


def push_again_and_read_back(
    hub: HubServer, publisher: Publisher, folder: Path, files: dict[str, bytes]
) -> str:
    """The interrupted push run again succeeds, and every file reads back byte for byte; the
    CLI's output is returned."""
    result = cli("push", str(folder), "--no-wait", env=publisher.env)
    name = folder.name
    status = hub.wait_processed(publisher.username, name, timeout=120)
    assert status["state"] == "SUCCEEDED", status
    for path, data in files.items():
        served = fetch(f"{hub.url}/{publisher.username}/{name}/files/{path}")
        assert served.status_code == 200, served.text
        assert served.content == data, path
    return result.stdout


# restarting what was killed ----------------------------------------------------------------------


def restart_embedded(server: HubServer, extra_args: Sequence[str] = ()) -> None:
    """Start ``dphub serve`` again on the same port and data dir (the embedded hub's restart)."""
    port = server.url.rsplit(":", 1)[1]
    with open(server.log, "ab") as out:
        server.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "dphub",
                "serve",
                "--port",
                port,
                "--data-dir",
                str(server.data_dir),
                *extra_args,
            ],
            env=server.env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    wait_ready(server)


def wait_ready(server: HubServer) -> None:
    deadline = time.monotonic() + 60
    while True:
        if server.process.poll() is not None:
            raise AssertionError(f"dphub serve exited:\n{server.log_text()[-3000:]}")
        try:
            if httpx.get(f"{server.url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"the hub is not ready again:\n{server.log_text()[-3000:]}")
        time.sleep(0.1)


def kill_postgres(postgres: PostgresServer) -> None:
    """SIGKILL the postmaster and every server process: what a crash of its machine leaves."""
    assert postgres.root is not None, "a PostgreSQL of our own"
    postmaster = int((postgres.root / "data" / "postmaster.pid").read_text().split()[0])
    backends = children(postmaster)
    kill(postmaster)
    for pid in backends:
        with contextlib.suppress(ProcessLookupError):
            kill(pid)


def restart_postgres(postgres: PostgresServer) -> None:
    """Start the killed cluster again on its port; it recovers from its write-ahead log."""
    assert postgres.root is not None
    assert postgres.bindir is not None
    options = " ".join(
        [
            f"-p {postgres.port}",
            f"-k {postgres.root / 'sock'}",
            "-c listen_addresses=127.0.0.1",
            "-c fsync=off",
            "-c synchronous_commit=off",
            "-c full_page_writes=off",
            "-c max_connections=200",
        ]
    )
    command = [
        str(postgres.bindir / "pg_ctl"),
        "-D",
        str(postgres.root / "data"),
        "-l",
        str(postgres.root / "postgres.log"),
        "-o",
        options,
        "-w",
        "start",
    ]
    deadline = time.monotonic() + 60
    while True:  # a backend still exiting holds the old shared memory for a moment
        started = _run_as_postgres(command, check=False)
        if started.returncode == 0:
            return
        if time.monotonic() > deadline:
            raise ServiceError(f"PostgreSQL did not start again:\n{started.stdout}{started.stderr}")
        time.sleep(0.2)


def kill_seaweedfs(s3: S3Server) -> None:
    kill(s3.process.pid)
    s3.process.wait()


def restart_seaweedfs(s3: S3Server) -> None:
    """Start ``weed mini`` again on the same ports and data."""
    for leftover in (s3.root / "filer.sock", s3.root / "s3.sock"):
        leftover.unlink(missing_ok=True)
    for port in s3.ports.values():
        for path in Path("/tmp").glob(f"seaweedfs-*-grpc-{port}.sock"):
            path.unlink(missing_ok=True)
    env = dict(os.environ, TMPDIR=str(s3.root / "tmp"))
    with open(s3.log, "ab") as out:
        s3.process = subprocess.Popen(
            _weed_command(find_weed(), s3.root, s3.ports, s3.root / "identities.json"),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=s3.root,
            env=env,
        )
    _wait_for_s3(s3, timeout=60)


# garbage for dphub gc -----------------------------------------------------------------------------


def bitstore_of(hub: HubServer, s3: S3Server | None = None) -> BitStore:
    """The hub's bitstore, opened from the test (blobs written here are referenced by nothing)."""
    if s3 is None:
        return LocalBitStore(
            hub.data_dir / "blobs", signer=UploadSigner("t" * 32), base_url=hub.url
        )
    bucket, prefix = parse_storage_url(hub.env["DPHUB_STORAGE_URL"])
    return S3BitStore(client=s3.client(), bucket=bucket, prefix=prefix)


def store_garbage(store: BitStore, count: int) -> list[str]:
    """``count`` small blobs nothing references; their SHA-256s."""
    made = []
    for index in range(count):
        data = f"garbage {index} {time.time_ns()}\n".encode()
        writer = store.writer(expected_size=len(data))
        writer.write(data)
        made.append(writer.commit().sha256)
    return made


def run_gc(hub: HubServer) -> subprocess.Popen[str]:
    """``dphub gc`` with no grace period, as a child process."""
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dphub",
            "gc",
            "--grace-hours",
            "0",
            "--data-dir",
            str(hub.data_dir),
        ],
        env=hub.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
