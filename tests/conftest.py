"""Real servers and factories: the hub runs as a `dphub serve` process on a free loopback port."""

from __future__ import annotations

import itertools
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.backends import postgres_server, postgres_url, s3_bucket, s3_server  # noqa: F401
from tests.services import PostgresServer, S3Server

LONGEST_FILES = (
    "test_delete.py",
    "test_permissions_matrix.py",
    "test_access.py",
    "test_trusted_publishing.py",
    "test_api_keys.py",
    "test_webhooks.py",
    "test_processing.py",
    "test_publish_cli.py",
    "test_ckan.py",
)
"""The test files that take longest (measured with --durations), started first."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the longest files first: the processes share the files out one at a time, and a long
    file handed out last would keep the whole run waiting for it alone."""
    rank = {name: index for index, name in enumerate(LONGEST_FILES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


_names = itertools.count(1)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cli(
    *args: str,
    env: dict[str, str],
    input: str | None = None,
    check: bool = True,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """Run the real `dphub` command line in a child process."""
    result = subprocess.run(
        [sys.executable, "-m", "dphub", *args],
        env=env,
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"dphub {' '.join(args)} exited {result.returncode}\n"
            f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
        )
    return result


def base_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DPHUB_")}
    env.update(
        HOME=str(home),
        DPHUB_CONFIG=str(home / "config.json"),
        DPHUB_CACHE_DIR=str(home / "cache"),
        NO_COLOR="1",
        COLUMNS="200",
    )
    return env


def fetch(url: str, **kwargs: Any) -> httpx.Response:
    """GET as a browser would: following the hub's redirects to presigned store URLs."""
    return httpx.get(url, follow_redirects=True, timeout=60, **kwargs)


@dataclass
class HubServer:
    url: str
    data_dir: Path
    log: Path
    process: subprocess.Popen[bytes]
    env: dict[str, str] = field(default_factory=dict)
    kind: str = "embedded"
    """``embedded`` (SQLite, blobs on disk) or ``scale`` (PostgreSQL, S3 on SeaweedFS)."""
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    """``dphub worker`` processes beside the server (the embedded hub processes in-process)."""

    def wait_processed(
        self, owner: str, name: str, revision: int | str = "latest", timeout: float = 60
    ) -> dict[str, Any]:
        """Poll a revision's status until processing ends; returns the last status."""
        deadline = time.monotonic() + timeout
        while True:
            answer = httpx.get(
                f"{self.url}/api/package/{owner}/{name}/revisions/{revision}", timeout=30
            )
            status: dict[str, Any] = answer.json()
            if status.get("state") in ("SUCCEEDED", "FAILED"):
                return status
            if time.monotonic() > deadline:
                raise AssertionError(f"revision not processed in {timeout} s: {status}")
            time.sleep(0.1)

    def client(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60, follow_redirects=True)

    def only_embedded(self, why: str) -> None:
        """Skip the rest of a test that looks inside the embedded bitstore."""
        if self.kind != "embedded":
            pytest.skip(f"embedded bitstore only: {why}")

    def admin(
        self, *args: str, input: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """A server-side command (user, db) against this hub's data dir."""
        return cli(*args, "--data-dir", str(self.data_dir), env=self.env, input=input, check=check)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def start_hub(
    root: Path,
    extra_env: dict[str, str] | None = None,
    *,
    kind: str = "embedded",
    serve_args: tuple[str, ...] = (),
    workers: int = 0,
) -> HubServer:
    port = free_port()
    data_dir = root / "data"
    log = root / "server.log"
    env = base_env(root / "server-home")
    # Small parts, so that multipart uploads are tested on files of a few MiB.
    env.update(
        DPHUB_MULTIPART_THRESHOLD=str(8 * 1024 * 1024),
        DPHUB_MULTIPART_PART_SIZE=str(5 * 1024 * 1024),
        DPHUB_QUERY_TIMEOUT="2",
        # A failed processing attempt is retried at once (tests/unit/test_jobs.py checks the wait).
        DPHUB_JOB_RETRY_DELAY="0",
        # Every test logs in from 127.0.0.1: per-address limits high enough for a whole session.
        # tests/e2e/test_rate_limits.py starts hubs of its own with low ones.
        DPHUB_LOGIN_IP_LIMIT="1000000",
        DPHUB_EXCHANGE_IP_LIMIT="1000000",
        # Webhooks to receivers the tests run on loopback, retried within seconds.
        # tests/e2e/test_webhooks.py starts a hub of its own with private addresses refused.
        DPHUB_WEBHOOK_ALLOW_HTTP="1",
        DPHUB_WEBHOOK_ALLOW_PRIVATE="1",
        DPHUB_WEBHOOK_ATTEMPTS="4",
        DPHUB_WEBHOOK_RETRY_DELAY="0.25",
        DPHUB_WEBHOOK_TIMEOUT="5",
    )
    env.update(extra_env or {})
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "dphub",
                "serve",
                "--port",
                str(port),
                "--data-dir",
                str(data_dir),
                *serve_args,
            ],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    server = HubServer(url=url, data_dir=data_dir, log=log, process=process, env=env, kind=kind)
    deadline = time.monotonic() + 60
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"dphub serve exited early:\n{server.log_text()}")
        try:
            if httpx.get(f"{url}/api/auth/check", timeout=2).status_code == 200:
                for index in range(workers):
                    server.workers.append(start_worker(server, root / f"worker-{index}.log"))
                return server
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"dphub serve did not answer in time:\n{server.log_text()}")
        time.sleep(0.1)


def start_worker(server: HubServer, log: Path) -> subprocess.Popen[bytes]:
    """A ``dphub worker`` process on the hub's metastore, datastore and bitstore, knowing the
    hub's public URL (for the links its webhook deliveries carry)."""
    with open(log, "wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "dphub", "worker", "--data-dir", str(server.data_dir)],
            env={"DPHUB_BASE_URL": server.url, **server.env},
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def stop_hub(server: HubServer) -> None:
    for process in [*server.workers, server.process]:
        process.terminate()
    for process in [*server.workers, server.process]:
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(params=["sqlite", "postgres"])
def metastore_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty metastore database on each backend: a SQLite file, and a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'metastore.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture(scope="session")
def _hub_pool(request: pytest.FixtureRequest) -> Iterator[dict[str, HubServer]]:
    """The shared hubs of this test process, started on first use and stopped at the end.

    ``hub`` below is parametrised; pytest keeps one instance of a parametrised session fixture at a
    time and would start the hubs again for every test file that uses both. The pool keeps both
    running for the whole session instead. It depends on the database and S3 servers so that
    they stop after the hubs using them.
    """
    request.getfixturevalue("postgres_server")
    request.getfixturevalue("s3_server")
    pool: dict[str, HubServer] = {}
    yield pool
    for server in pool.values():
        stop_hub(server)


@pytest.fixture(scope="session", params=["embedded", "scale"])
def hub(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    _hub_pool: dict[str, HubServer],
) -> HubServer:
    """The hub as a real process: on embedded defaults, and on PostgreSQL + S3 (SeaweedFS)."""
    kind = str(request.param)
    if kind in _hub_pool:
        return _hub_pool[kind]
    extra: dict[str, str] = {}
    if kind == "scale":
        postgres: PostgresServer = request.getfixturevalue("postgres_server")
        s3: S3Server = request.getfixturevalue("s3_server")
        extra = {
            "DPHUB_DATABASE_URL": postgres.create_database(),
            **s3.storage_env(s3.create_bucket(), prefix="hub"),
        }
    # The scale setup runs two API processes behind one port and two `dphub worker` processes:
    # every test also checks that no request depends on state kept in one process's memory.
    server = start_hub(
        tmp_path_factory.mktemp(f"hub-{kind}"),
        extra,
        kind=kind,
        serve_args=("--workers", "2") if kind == "scale" else (),
        workers=2 if kind == "scale" else 0,
    )
    _hub_pool[kind] = server
    return server


@dataclass
class Publisher:
    username: str
    email: str
    secret: str
    password: str
    hub: HubServer
    home: Path

    @property
    def env(self) -> dict[str, str]:
        """Environment for this publisher's CLI runs (its own config file and hash cache)."""
        return base_env(self.home)

    def token(self) -> str:
        answer = httpx.post(
            f"{self.hub.url}/api/auth/token",
            json={"username": self.username, "secret": self.secret},
            timeout=30,
        )
        answer.raise_for_status()
        return str(answer.json()["token"])

    def client(self) -> httpx.Client:
        return self.hub.client(self.token())

    def login(self) -> None:
        cli(
            "login",
            "--server",
            self.hub.url,
            "--username",
            self.username,
            "--secret",
            self.secret,
            env=self.env,
        )


def new_publisher(
    server: HubServer, home: Path, prefix: str = "user", *, site_admin: bool = False
) -> Publisher:
    username = f"{prefix}{next(_names)}-{os.getpid()}"
    email = f"{username}@example.org"
    password = f"pw-{username}-long-enough"
    flags = ("--admin",) if site_admin else ()
    result = server.admin(
        "user",
        "create",
        username,
        "--email",
        email,
        *flags,
        "--password-stdin",
        input=password + "\n",
    )
    secret = result.stdout.strip().splitlines()[-1]
    home.mkdir(parents=True, exist_ok=True)
    return Publisher(username, email, secret, password, server, home)


@pytest.fixture
def publisher(hub: HubServer, tmp_path: Path) -> Publisher:
    """A fresh user of the shared hub, logged in with the CLI."""
    p = new_publisher(hub, tmp_path / "home")
    p.login()
    return p


@pytest.fixture
def make_publisher(hub: HubServer, tmp_path: Path) -> Callable[..., Publisher]:
    def make(prefix: str = "user") -> Publisher:
        return new_publisher(hub, tmp_path / f"home-{next(_names)}", prefix)

    return make


def write_package(
    root: Path,
    name: str,
    *,
    files: dict[str, bytes] | None = None,
    descriptor: dict[str, object] | None = None,
) -> Path:
    """A package folder: a CSV resource and a README unless told otherwise."""
    import json

    root.mkdir(parents=True, exist_ok=True)
    files = files if files is not None else {"data/cities.csv": b"city,pop\nParis,2100000\n"}
    for path, content in files.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
    if descriptor is None:
        resources = [
            {"name": Path(p).stem.lower(), "path": p}
            for p in files
            if not p.lower().startswith("readme")
        ]
        descriptor = {"name": name, "title": f"The {name} package", "resources": resources}
    (root / "datapackage.json").write_text(json.dumps(descriptor, indent=2))
    return root
