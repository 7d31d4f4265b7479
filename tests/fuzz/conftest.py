"""The hub the fuzz tests call, with packages to reach, and the callers they call it as."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.cookiejar import DefaultCookiePolicy
from pathlib import Path

import httpx
import pytest
import requests
import schemathesis
from schemathesis.config import SchemathesisConfig
from schemathesis.schemas import BaseSchema

from dphub.auth.sso import COOKIE_NAME as SESSION_COOKIE
from dphub.client import Client, HashCache
from tests.conftest import (
    HubServer,
    Publisher,
    new_publisher,
    start_hub,
    stop_hub,
    write_package,
)
from tests.fuzz.described import API, PAGES

SEED = 20240611
KNOWN_VALUE_SHARE = 0.5
"""How often a path or query parameter takes one of the known values instead of a generated one."""
BINDINGS = {
    "path.owner": "owners",
    "path.ownerid": "owners",
    "path.org": "owners",
    "query.owner": "owners",
    "path.name": "names",
    "path.dataset": "names",
    "query.package": "names",
    "path.username": "usernames",
    "path.ref": "refs",
    "query.revision": "refs",
    "query.from": "refs",
    "query.to": "refs",
    "path.leaf": "leaves",
    "path.path": "paths",
    "query.resource_id": "resources",
    "query.url": "urls",
    "query.sql": "sql",
    "path.action": "actions",
}
"""Which known values each parameter may take (see ``World.values``)."""

CITIES_V1 = b"city,pop,area,updated\nParis,2100000,105.4,2024-01-02T03:04:05\n"
CITIES = CITIES_V1 + b"Lyon,500000,47.87,2024-02-03T04:05:06\n"
SECRETS = b"code,count\nx,1\n"


@dataclass
class World:
    hub: HubServer
    publisher: Publisher
    admin: Publisher
    org: str

    def values(self) -> dict[str, list[str]]:
        """Known values of path and query parameters, mixed into the generated ones."""
        pub, base = self.publisher.username, self.hub.url
        return {
            "owners": [pub, self.org],
            "names": ["cities", "hidden", pub, self.org],
            "usernames": [pub, self.admin.username],
            "refs": ["1", "2", "latest", "successful", "v1"],
            "leaves": ["cities", "cities.csv", "cities.json", "cities.ndjson", "0", "1"],
            "paths": ["data/cities.csv", "README.md", "datapackage.json"],
            "resources": [f"{pub}/cities/cities", f"{pub}/hidden/secrets", f"{pub}/cities@1/0"],
            "urls": [
                f"{base}/{pub}/cities/r/cities.csv",
                f"{base}/{pub}/cities/files/data/cities.csv",
                f"{base}/{pub}/hidden/r/0",
            ],
            "sql": [
                f'SELECT * FROM "{pub}/cities/cities"',
                f'SELECT city, sum(pop) FROM "{pub}/cities/cities" GROUP BY 1',
            ],
            "actions": [
                "status_show",
                "package_list",
                "package_show",
                "package_search",
                "resource_show",
                "organization_list",
                "organization_show",
                "datastore_search",
                "datastore_search_sql",
            ],
        }


def _push(
    client: Client, root: Path, name: str, files: dict[str, bytes], findability: str | None = None
) -> None:
    resources = [{"name": Path(p).stem, "path": p} for p in files if p.endswith(".csv")]
    folder = write_package(
        root / name, name, files=files, descriptor={"name": name, "resources": resources}
    )
    client.push(folder, findability=findability, hash_cache=HashCache(root / "hashes.json"))


def _processed(http: httpx.Client, status_url: str) -> bool:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        state = http.get(status_url).json()["state"]
        if state in ("SUCCEEDED", "FAILED"):
            return bool(state == "SUCCEEDED")
        time.sleep(0.1)
    return False


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """A hub of its own (the fuzzer deletes, rotates and reconfigures what it reaches), with a
    published package of two revisions and a tag, a private package, and an organization."""
    root = tmp_path_factory.mktemp("fuzz")
    # webhooks only to public https URLs, as in production: the fuzzer registers some
    hub = start_hub(root, {"DPHUB_WEBHOOK_ALLOW_HTTP": "0", "DPHUB_WEBHOOK_ALLOW_PRIVATE": "0"})
    try:
        publisher = new_publisher(hub, root / "publisher", "fuzz")
        admin = new_publisher(hub, root / "admin", "fuzzadmin", site_admin=True)
        owner = publisher.username
        readme = b"# Cities\n"
        with Client(hub.url, publisher.token(), username=owner) as client:
            _push(
                client, root / "v1", "cities", {"data/cities.csv": CITIES_V1, "README.md": readme}
            )
            _push(client, root / "v2", "cities", {"data/cities.csv": CITIES, "README.md": readme})
            _push(client, root, "hidden", {"data/secrets.csv": SECRETS}, "private")
            _push(client, root, "regress", {"data/cities.csv": CITIES})
        org = f"fuzzorg-{owner}"
        with publisher.client() as http:
            for name in ("cities", "hidden", "regress"):
                assert _processed(http, f"/api/package/{owner}/{name}/revisions/latest")
            assert http.post("/api/org", json={"name": org}).status_code == 201
            tagged = http.post(
                f"/api/package/{owner}/cities/tag", json={"version": "v1", "revision": 1}
            )
            assert tagged.status_code == 201, tagged.text
        yield World(hub, publisher, admin, org)
    finally:
        stop_hub(hub)


def _token(who: Publisher) -> str:
    """A token from the password: one made with the API key would end if the fuzzer revoked the
    key (key ids are small numbers)."""
    answer = httpx.post(
        f"{who.hub.url}/api/auth/token",
        json={"username": who.username, "secret": who.password},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    return str(answer.json()["token"])


@dataclass
class Fuzzer:
    api: BaseSchema
    pages: BaseSchema
    base_url: str
    tokens: dict[str, str]
    session: requests.Session

    def headers(self, caller: str) -> dict[str, str]:
        token = self.tokens.get(caller)
        return {"Authorization": f"Bearer {token}"} if token else {}

    def cookies(self, caller: str) -> dict[str, str]:
        token = self.tokens.get(caller)
        return {SESSION_COOKIE: token} if token else {}


def _config(world: World) -> SchemathesisConfig:
    values = world.values()
    return SchemathesisConfig.from_dict(
        {
            "seed": SEED,
            "base-url": world.hub.url,
            "request-timeout": 60,
            "generation": {"deterministic": True, "database": "none"},
            # the constants it would read from the loaded modules come in a different order in
            # every process: the known values below take their place
            "analysis": {"constants": {"enabled": False}},
            "dictionaries": {name: {"values": entries} for name, entries in values.items()},
            "parameters": {
                key: {"dictionary": name, "probability": KNOWN_VALUE_SHARE}
                for key, name in BINDINGS.items()
            },
        }
    )


@pytest.fixture(scope="module")
def fuzzer(world: World) -> Iterator[Fuzzer]:
    """The description the running hub serves, loaded once it runs, and the callers' tokens."""
    served = httpx.get(f"{world.hub.url}/openapi.json", timeout=30)
    assert served.status_code == 200
    assert served.json() == API, "the hub serves another description than the app built here"
    tokens = {"publisher": _token(world.publisher), "site-admin": _token(world.admin)}
    with requests.Session() as session:
        # every request stands alone: no cookie an answer sets is sent with the next one
        session.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))
        yield Fuzzer(
            api=schemathesis.openapi.from_dict(served.json(), config=_config(world)),
            pages=schemathesis.openapi.from_dict(PAGES, config=_config(world)),
            base_url=world.hub.url,
            tokens=tokens,
            session=session,
        )
