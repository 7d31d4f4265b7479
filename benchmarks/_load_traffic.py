"""The load test's traffic (see load.py): what publishers push and how, what readers read, and
the record of every request.

Every publisher and every reader is one user with connections of its own (an httpx.AsyncClient
to the hub and one to the store), as 220 browsers and CLIs would be; all of them run as tasks of
one asyncio loop. Every answer is checked as it arrives.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import random
import ssl
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx

from push import BenchmarkFailed

REQUEST_TIMEOUT_S = 120.0
KEEPALIVE_S = 2.0
"""How long a client keeps an idle connection: well below uvicorn's keep-alive timeout (5 s), so
the server does not close a connection just as a request is sent on it (a reset a browser would
retry silently; with httpx's default of 5 s, the same as the server's, a few requests a minute
met it)."""
WAIT_INTERVAL_S = 0.5
"""``Client.wait``'s default interval between two polls of a revision's state."""
LAG_TICK_S = 0.1
"""How often the driver measures its own event loop's lag."""
DRAIN_TIMEOUT_S = 600.0
"""After the run, how long the pushes in flight may take to be processed."""
MIN_ROWS, MAX_ROWS = 1000, 2000
CATEGORIES = 10
FIRST_DAY = date(2026, 1, 1)
RANGE_START_MAX = 28_000
"""Ranges start below this byte: every data file is longer (1,000 rows of at least 30 bytes)."""
RANGE_LENGTH_MAX = 16 * 1024
PINNED_SHARE = 0.25
"""Share of the range reads that name an earlier revision (``/v/<n>/``) rather than the latest."""
PAGE = 20
PROXY_ROWS = 50
OFFSET_MAX = MIN_ROWS - PROXY_ROWS
SCHEMA = [
    {"name": "id", "type": "integer"},
    {"name": "publisher", "type": "string"},
    {"name": "push", "type": "integer"},
    {"name": "category", "type": "string"},
    {"name": "value", "type": "number"},
    {"name": "day", "type": "date"},
]
REFERENCE_SCHEMA = [{"name": "code", "type": "string"}, {"name": "label", "type": "string"}]
REFERENCE_CSV = (
    "code,label\n" + "".join(f"c{i},Category {i}\n" for i in range(CATEGORIES))
).encode()
"""The same small table in every package and every push: after the first upload, authorize
answers ``exists`` for it (the hub holds those bytes), across publishers."""
MEDIA_TYPES = {"csv": "text/csv", "json": "application/json"}

# Route templates: what the percentiles and errors are grouped by.
LOGIN = "POST /api/auth/token"
AUTHORIZE = "POST /api/datastore/authorize"
UPLOAD_S3 = "PUT <store>/<staging key> (presigned by the hub)"
UPLOAD_HUB = "PUT /api/bitstore/<key>"
FINALIZE = "POST /api/package/upload"
STATUS = "GET /api/package/{owner}/{name}/revisions/{ref}"
SHOW = "GET /api/package/{owner}/{name}"
FILE = "GET /{owner}/{name}/r/{resource}.csv (Range)"
FILE_PINNED = "GET /{owner}/{name}/v/{ref}/r/{resource}.csv (Range)"
STORE_VIA_HUB = "GET <store>/<blob> (presigned by the hub, Range)"
STORE_DIRECT = "GET <store>/<blob> (presigned by boto3, Range)"
SEARCH = "GET /api/datastore/search"
DATAPROXY = "GET /api/dataproxy"
READS = (SHOW, FILE, FILE_PINNED, STORE_VIA_HUB, STORE_DIRECT, SEARCH, DATAPROXY)
ROUTE_ORDER = (*READS, AUTHORIZE, UPLOAD_S3, UPLOAD_HUB, FINALIZE, STATUS, LOGIN)
"""The order of the report's table: the readers' routes, then the publishers'."""
STORE_ROUTES = (STORE_VIA_HUB, STORE_DIRECT, UPLOAD_S3)
"""Requests sent straight to the store; every other route is the hub's."""

# Journeys: several requests that make one thing a user waits for (not counted as requests).
READ_VIA_HUB = "Range read through the hub (302 + store)"
READ_DIRECT = "Range read straight from the store"
PUSHED = "push: authorize + uploads + finalize"
PROCESSED = "push: finalize to SUCCEEDED"


# What the publishers push


def data_csv(publisher: int, push: int) -> bytes:
    """A table of 1,000-2,000 rows of its own for each push of each publisher."""
    rng = random.Random(publisher * 1_000_003 + push)
    lines = ["id,publisher,push,category,value,day"]
    for row in range(1, rng.randint(MIN_ROWS, MAX_ROWS) + 1):
        day = FIRST_DAY + timedelta(days=rng.randrange(365))
        lines.append(
            f"{row},pub{publisher:02d},{push},c{rng.randrange(CATEGORIES)},"
            f"{rng.uniform(-1000, 1000):.3f},{day.isoformat()}"
        )
    return ("\n".join(lines) + "\n").encode()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def package_files(name: str, publisher: int, push: int) -> dict[str, bytes]:
    """data.csv, reference.csv and a datapackage.json declaring both with their size and hash."""
    data = data_csv(publisher, push)

    def resource(path: str, body: bytes, fields: list[dict[str, str]]) -> dict[str, Any]:
        return {
            "name": path.removesuffix(".csv"),
            "path": path,
            "format": "csv",
            "mediatype": "text/csv",
            "bytes": len(body),
            "hash": f"sha256:{sha256(body)}",
            "schema": {"fields": fields},
        }

    descriptor = {
        "name": name,
        "title": f"Load test package {name}",
        "licenses": [{"name": "CC0-1.0"}],
        "resources": [
            resource("data.csv", data, SCHEMA),
            resource("reference.csv", REFERENCE_CSV, REFERENCE_SCHEMA),
        ],
    }
    return {
        "data.csv": data,
        "reference.csv": REFERENCE_CSV,
        "datapackage.json": (json.dumps(descriptor, indent=2) + "\n").encode(),
    }


# Recording


def quantile(samples: Sequence[float], q: float) -> float:
    """Nearest rank: the smallest sample at or above the share ``q`` of all samples."""
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


@dataclass
class Stats:
    """Every request's latency by route, and every error by route and status."""

    latency: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    finished: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    """monotonic() at which each request ended, by route (for the rates)."""
    journeys: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: Counter[tuple[str, str]] = field(default_factory=Counter)
    examples: dict[tuple[str, str], str] = field(default_factory=dict)

    def record(self, route: str, seconds: float) -> None:
        self.latency[route].append(seconds)
        self.finished[route].append(time.monotonic())

    def error(self, route: str, status: str, message: str) -> None:
        self.errors[(route, status)] += 1
        self.examples.setdefault((route, status), message[:500])

    def journey(self, name: str, seconds: float) -> None:
        self.journeys[name].append(seconds)


@dataclass
class Pushed:
    """One finalized push: who sent it and the SHA-256 of each file it sent."""

    publisher: int
    files: dict[str, str]
    state: str = "QUEUED"


@dataclass
class Package:
    owner: str
    name: str
    revisions: dict[int, Pushed] = field(default_factory=dict)
    """Every revision number finalize answered for this package, and what was pushed."""
    latest: int = 0
    """The newest revision a publisher saw SUCCEEDED."""
    data_sha256: str = ""
    """Its data.csv."""

    @property
    def ref(self) -> str:
        return f"{self.owner}/{self.name}"


@dataclass
class Publisher:
    index: int
    """1-based: pub01 ... pubNN."""
    username: str
    secret: str
    package: Package
    token: str = ""
    pushes: int = 0


@dataclass
class Agent:
    """One user: its own connections to the hub and to the store, and its own dice."""

    api: httpx.AsyncClient
    store: httpx.AsyncClient
    rng: random.Random

    async def close(self) -> None:
        await self.api.aclose()
        await self.store.aclose()


# The load


class Load:
    """The publishers' and readers' tasks, and what they share: the packages, the stats."""

    def __init__(
        self,
        *,
        hub_url: str,
        s3: Any,
        bucket: str,
        packages: list[Package],
    ) -> None:
        self.hub_url = hub_url
        self.bucket = bucket
        self.packages = packages
        self.stats = Stats()
        self.blobs: dict[str, bytes] = {}
        """Every data file pushed, by SHA-256: each range read is checked against it."""
        self.presigned: dict[str, str] = {}
        self.signer = s3.client()
        self.tls = ssl.create_default_context()
        self.deadline = math.inf
        self.drain_deadline = math.inf
        self.lag: list[float] = []
        """Seconds the event loop woke a sleeping task late, every LAG_TICK_S during the load."""

    def agent(self, seed: int) -> Agent:
        options: dict[str, Any] = {
            "limits": httpx.Limits(keepalive_expiry=KEEPALIVE_S),
            "timeout": httpx.Timeout(REQUEST_TIMEOUT_S, connect=30.0),
            # Every URL is http:// on loopback; a client builds (and loads the system's CA
            # certificates into) a TLS context of its own otherwise, 440 times over.
            "verify": self.tls,
        }
        return Agent(
            httpx.AsyncClient(base_url=self.hub_url, **options),
            httpx.AsyncClient(**options),
            random.Random(seed),
        )

    # One request, timed and checked

    async def call(
        self,
        client: httpx.AsyncClient,
        route: str,
        method: str,
        url: str,
        *,
        expect: tuple[int, ...] = (200,),
        **options: Any,
    ) -> httpx.Response | None:
        """Send one request; its latency under ``route``; None (and an error) unless its status
        is one of ``expect``."""
        start = time.perf_counter()
        try:
            response = await client.request(method, url, **options)
        except httpx.HTTPError as exc:
            self.stats.record(route, time.perf_counter() - start)
            self.stats.error(route, type(exc).__name__, f"{method} {_bare(url)}: {exc!r}")
            return None
        self.stats.record(route, time.perf_counter() - start)
        if response.status_code not in expect:
            self.stats.error(
                route, str(response.status_code), f"{method} {_bare(url)}: {response.text[:400]}"
            )
            return None
        return response

    def wrong(self, route: str, message: str) -> None:
        self.stats.error(route, "wrong answer", message)

    # Publishers

    async def login(self, agent: Agent, publisher: Publisher) -> None:
        body = {"username": publisher.username, "secret": publisher.secret}
        response = await self.call(agent.api, LOGIN, "POST", "/api/auth/token", json=body)
        token = response.json().get("token") if response is not None else None
        if not isinstance(token, str):
            raise BenchmarkFailed(f"{publisher.username} could not log in: {self.stats.examples}")
        publisher.token = token

    async def push(self, agent: Agent, publisher: Publisher) -> bool:
        """One push of a new revision and the wait for its processing, as ``dphub push`` does
        (``dphub.client``'s phases: authorize, upload what is missing, finalize, wait); True
        when the revision SUCCEEDED."""
        publisher.pushes += 1
        package = publisher.package
        files = package_files(package.name, publisher.index, publisher.pushes)
        hashes = {path: sha256(body) for path, body in files.items()}
        self.blobs[hashes["data.csv"]] = files["data.csv"]
        auth = {"Authorization": f"Bearer {publisher.token}"}
        began = time.perf_counter()
        filedata = {
            path: {
                "size": len(body),
                "sha256": hashes[path],
                "type": MEDIA_TYPES[path.rsplit(".", 1)[-1]],
                "name": path,
            }
            for path, body in files.items()
        }
        metadata = {"owner": package.owner, "name": package.name}
        response = await self.call(
            agent.api,
            AUTHORIZE,
            "POST",
            "/api/datastore/authorize",
            json={"metadata": metadata, "filedata": filedata},
            headers=auth,
        )
        if response is None:
            return False
        answers = response.json().get("filedata") or {}
        uploads = [
            self.upload(agent, path, body, answers.get(path) or {})
            for path, body in files.items()
            if not (answers.get(path) or {}).get("exists")
        ]
        if not all(await asyncio.gather(*uploads)):
            return False
        entry = answers.get("datapackage.json") or {}
        key = (entry.get("upload_query") or {}).get("key")
        datapackage = f"{str(entry.get('upload_url', '')).rstrip('/')}/{key}"
        response = await self.call(
            agent.api,
            FINALIZE,
            "POST",
            "/api/package/upload",
            json={"datapackage": datapackage},
            headers=auth,
        )
        if response is None:
            return False
        finalized = time.perf_counter()
        self.stats.journey(PUSHED, finalized - began)
        answer = response.json()
        number = answer.get("revision")
        if not isinstance(number, int) or answer.get("unchanged"):
            self.wrong(FINALIZE, f"{package.ref}: finalize answered {answer}")
            return False
        if number in package.revisions:
            self.wrong(
                FINALIZE,
                f"{package.ref}: revision {number} handed out twice (to pub"
                f"{package.revisions[number].publisher:02d} and pub{publisher.index:02d})",
            )
            return False
        pushed = Pushed(publisher.index, hashes)
        package.revisions[number] = pushed
        pushed.state = await self.wait_processed(agent, package, number, auth)
        if pushed.state != "SUCCEEDED":
            return False
        self.stats.journey(PROCESSED, time.perf_counter() - finalized)
        if number > package.latest:
            package.latest, package.data_sha256 = number, hashes["data.csv"]
        return True

    async def upload(self, agent: Agent, path: str, body: bytes, answer: dict[str, Any]) -> bool:
        """PUT the raw bytes to the presigned URL authorize gave (the CLI's fast path)."""
        put_url = answer.get("put_url")
        if not isinstance(put_url, str):
            self.wrong(AUTHORIZE, f"no put_url for {path}: {answer}")
            return False
        headers = {str(k): str(v) for k, v in (answer.get("put_headers") or {}).items()}
        headers.setdefault("Content-Type", MEDIA_TYPES[path.rsplit(".", 1)[-1]])
        to_hub = put_url.startswith(("/", self.hub_url))
        client, route = (agent.api, UPLOAD_HUB) if to_hub else (agent.store, UPLOAD_S3)
        response = await self.call(
            client, route, "PUT", put_url, content=body, headers=headers, expect=(200, 204)
        )
        return response is not None

    async def wait_processed(
        self, agent: Agent, package: Package, number: int, auth: dict[str, str]
    ) -> str:
        """Poll the revision as ``Client.wait`` does for ``dphub push`` (after 0.2 s, then twice
        as long each time up to its 0.5 s interval) until it is SUCCEEDED or FAILED; its last
        state."""
        pause = 0.2
        url = f"/api/package/{package.ref}/revisions/{number}"
        while True:
            response = await self.call(agent.api, STATUS, "GET", url, headers=auth)
            answer = response.json() if response is not None else {}
            state = str(answer.get("state"))
            if state == "FAILED":
                errors = json.dumps(answer.get("errors"))[:400]
                self.wrong(STATUS, f"{package.ref} revision {number} FAILED: {errors}")
                return state
            if state == "SUCCEEDED":
                return state
            if time.monotonic() > self.drain_deadline:
                self.wrong(STATUS, f"{package.ref} revision {number} still {state} at the end")
                return state
            await asyncio.sleep(pause)
            pause = min(WAIT_INTERVAL_S, pause * 2)

    async def publisher(self, publisher: Publisher, seed: int) -> int:
        """Push again and again until the deadline; the pushes that SUCCEEDED."""
        agent = self.agent(seed)
        done = 0
        try:
            while time.monotonic() < self.deadline:
                if await self.push(agent, publisher):
                    done += 1
                else:
                    await asyncio.sleep(1.0)  # a failed push: do not spin on the error
        finally:
            await agent.close()
        return done

    # Readers

    def readable(self, rng: random.Random) -> Package:
        return rng.choice([p for p in self.packages if p.latest])

    @staticmethod
    def byte_range(rng: random.Random) -> tuple[int, int]:
        start = rng.randrange(RANGE_START_MAX)
        return start, start + rng.randint(1, RANGE_LENGTH_MAX) - 1

    def check_range(self, route: str, sha: str, start: int, end: int, body: bytes) -> None:
        expected = self.blobs.get(sha)
        if expected is None:
            self.wrong(route, f"the store served blob {sha[:12]}, which no publisher pushed")
        elif body != expected[start : end + 1]:
            self.wrong(route, f"bytes {start}-{end} of {sha[:12]} differ from those pushed")

    async def show(self, agent: Agent) -> None:
        package = self.readable(agent.rng)
        response = await self.call(agent.api, SHOW, "GET", f"/api/package/{package.ref}")
        if response is None:
            return
        answer = response.json()
        if answer.get("name") != package.name or not isinstance(answer.get("revision"), int):
            self.wrong(SHOW, f"{package.ref}: {str(answer)[:300]}")

    def data_file(self, package: Package, rng: random.Random) -> tuple[int | None, str]:
        """The data.csv a range read asks for: mostly the latest revision's (as far as the
        publishers know), sometimes a random earlier revision's; (its number or None for the
        latest, its SHA-256)."""
        if rng.random() >= PINNED_SHARE:
            return None, package.data_sha256
        done = [n for n, p in package.revisions.items() if p.state == "SUCCEEDED"]
        number = rng.choice(done)
        return number, package.revisions[number].files["data.csv"]

    async def range_via_hub(self, agent: Agent) -> None:
        package = self.readable(agent.rng)
        number, expected = self.data_file(package, agent.rng)
        start, end = self.byte_range(agent.rng)
        headers = {"Range": f"bytes={start}-{end}"}
        began = time.perf_counter()
        route = FILE if number is None else FILE_PINNED
        path = f"/{package.ref}{'' if number is None else f'/v/{number}'}/r/data.csv"
        redirect = await self.call(agent.api, route, "GET", path, headers=headers, expect=(302,))
        if redirect is None:
            return
        location = redirect.headers.get("location", "")
        sha = urlsplit(location).path.rsplit("/", 1)[-1]
        if number is not None and sha != expected:
            self.wrong(route, f"{path} sent to blob {sha[:12]}, not {expected[:12]}")
        response = await self.call(
            agent.store, STORE_VIA_HUB, "GET", location, headers=headers, expect=(206,)
        )
        if response is None:
            return
        self.stats.journey(READ_VIA_HUB, time.perf_counter() - began)
        self.check_range(STORE_VIA_HUB, sha, start, end, response.content)

    def presigned_url(self, sha: str) -> str:
        """A GET URL of the blob, signed here with boto3 (once per blob, valid for hours)."""
        url = self.presigned.get(sha)
        if url is None:
            key = f"sha256/{sha[:2]}/{sha[2:4]}/{sha}"
            url = str(
                self.signer.generate_presigned_url(
                    "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=3 * 3600
                )
            )
            self.presigned[sha] = url
        return url

    async def range_direct(self, agent: Agent) -> None:
        """The reference: the same kind of range of the same files, straight from the store."""
        package = self.readable(agent.rng)
        _, sha = self.data_file(package, agent.rng)
        start, end = self.byte_range(agent.rng)
        url = self.presigned_url(sha)
        headers = {"Range": f"bytes={start}-{end}"}
        began = time.perf_counter()
        response = await self.call(
            agent.store, STORE_DIRECT, "GET", url, headers=headers, expect=(206,)
        )
        if response is None:
            return
        self.stats.journey(READ_DIRECT, time.perf_counter() - began)
        self.check_range(STORE_DIRECT, sha, start, end, response.content)

    @staticmethod
    def search_params(rng: random.Random) -> dict[str, Any]:
        """A page at an offset, an equality filter (the total is counted) or a sorted page."""
        kind = rng.randrange(3)
        if kind == 0:
            return {"limit": PAGE, "offset": rng.randrange(OFFSET_MAX)}
        if kind == 1:
            category = f"c{rng.randrange(CATEGORIES)}"
            return {"limit": PAGE, "filters": json.dumps({"category": category})}
        return {"limit": PAGE, "sort": "value desc"}

    async def search(self, agent: Agent) -> None:
        package = self.readable(agent.rng)
        params = {"resource_id": f"{package.ref}/data", **self.search_params(agent.rng)}
        response = await self.call(agent.api, SEARCH, "GET", "/api/datastore/search", params=params)
        if response is None:
            return
        answer = response.json()
        records = answer.get("records") or []
        category = json.loads(params.get("filters", "{}")).get("category")
        total = answer.get("total")
        if (
            len(records) != PAGE
            or not isinstance(total, int)
            or total < PAGE
            or (category is not None and any(r.get("category") != category for r in records))
        ):
            self.wrong(SEARCH, f"{params}: {len(records)} records, total {total}")

    async def dataproxy(self, agent: Agent) -> None:
        package = self.readable(agent.rng)
        offset = agent.rng.randrange(OFFSET_MAX)
        params = {
            "url": f"/{package.ref}/r/data.csv",
            "format": "json",
            "limit": PROXY_ROWS,
            "offset": offset,
        }
        response = await self.call(agent.api, DATAPROXY, "GET", "/api/dataproxy", params=params)
        if response is None:
            return
        rows = response.json().get("data") or []
        if len(rows) != PROXY_ROWS or rows[0][0] != offset + 1:
            self.wrong(DATAPROXY, f"offset {offset}: {len(rows)} rows, first {rows[:1]}")

    async def watch_lag(self) -> None:
        """How late this loop wakes a task up: a request's latency includes that much of the
        driver's own scheduling, on top of the servers' time."""
        while time.monotonic() < self.deadline:
            began = time.perf_counter()
            await asyncio.sleep(LAG_TICK_S)
            self.lag.append(time.perf_counter() - began - LAG_TICK_S)

    async def reader(self, seed: int) -> None:
        """One reader: the next request as soon as the last one answered, until the deadline."""
        agent = self.agent(seed)
        actions: list[Callable[[Agent], Awaitable[None]]] = [
            self.show,
            self.range_via_hub,
            self.range_direct,
            self.search,
            self.dataproxy,
        ]
        try:
            while time.monotonic() < self.deadline:
                await agent.rng.choice(actions)(agent)
        finally:
            await agent.close()


def _bare(url: str) -> str:
    """A URL without its query (a presigned URL's signature is no business of a report)."""
    return url.split("?", 1)[0]
