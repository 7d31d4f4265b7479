"""Consumers read hub packages by URL with the tools they already have: frictionless (command line
and Python), pandas and DuckDB, on both setups, and the hub answers them with the content types and
byte ranges those tools rely on."""

from __future__ import annotations

import datetime
import json
import subprocess
import sys
from pathlib import Path
from urllib.error import HTTPError

import duckdb
import frictionless
import httpx
import pandas
import pytest
from fsspec.implementations.http import HTTPFileSystem

from tests.conftest import HubServer, Publisher, cli, fetch, new_publisher, write_package

CITIES = b"city,country,population\nParis,FR,2102650\nLyon,FR,522250\nBerlin,DE,3596999\n"
CITIES_ROWS = [
    {"city": "Paris", "country": "FR", "population": 2102650},
    {"city": "Lyon", "country": "FR", "population": 522250},
    {"city": "Berlin", "country": "DE", "population": 3596999},
]
CITIES_SCHEMA = {
    "fields": [
        {"name": "city", "type": "string"},
        {"name": "country", "type": "string"},
        {"name": "population", "type": "integer"},
    ]
}
# No schema: processing infers one (integer for km).
ROUTES = b"origin,destination,km\nParis,Lyon,465\nLyon,Berlin,1150\n"
ROUTES_ROWS = [
    {"origin": "Paris", "destination": "Lyon", "km": 465},
    {"origin": "Lyon", "destination": "Berlin", "km": 1150},
]


class DuckDBHTTP(HTTPFileSystem):  # type: ignore[misc]
    """fsspec's HTTP filesystem, through which DuckDB reads http:// URLs without its httpfs
    extension (which it downloads on first use, so not offline). DuckDB asks each file for its
    modification time, which fsspec leaves unimplemented for HTTP."""

    def modified(self, path: str) -> datetime.datetime:
        return datetime.datetime.now(datetime.UTC)


def cities_package(root: Path, name: str, cities: bytes = CITIES) -> Path:
    return write_package(
        root,
        name,
        files={"data/cities.csv": cities, "data/routes.csv": ROUTES},
        descriptor={
            "name": name,
            "title": "European cities",
            "resources": [
                {"name": "cities", "path": "data/cities.csv", "schema": CITIES_SCHEMA},
                {"name": "routes", "path": "data/routes.csv"},
            ],
        },
    )


@pytest.fixture(scope="module")
def cities(hub: HubServer, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The URL of a pushed and processed package, read by every test of the module."""
    publisher = new_publisher(hub, tmp_path_factory.mktemp("consumer-home"), "consumer")
    publisher.login()
    cli("push", str(cities_package(tmp_path_factory.mktemp("cities"), "cities")), env=publisher.env)
    return f"{hub.url}/{publisher.username}/cities"


def frictionless_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """The real ``frictionless`` command line of this environment."""
    return subprocess.run(
        [sys.executable, "-m", "frictionless", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_frictionless_validates_the_package_by_url(cities: str) -> None:
    result = frictionless_cli("validate", f"{cities}/datapackage.json", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["valid"] is True
    tasks = {task["name"]: task for task in report["tasks"]}
    assert tasks["cities"]["stats"]["rows"] == 3
    assert tasks["routes"]["stats"]["rows"] == 2
    # Frictionless opens the derived zip as compressed data: the archive's own size and hash are
    # left out of the descriptor (they would fail the check of the file it unpacks).
    assert tasks["datapackage_zip"]["valid"] is True


def test_frictionless_reports_the_errors_of_a_failed_revision(
    publisher: Publisher, tmp_path: Path
) -> None:
    broken = CITIES + b"Lille,FR,many\n"
    folder = cities_package(tmp_path / "broken", "broken", cities=broken)
    assert cli("push", str(folder), env=publisher.env, check=False).returncode == 1
    hub, owner = publisher.hub, publisher.username
    assert hub.wait_processed(owner, "broken", 1)["state"] == "FAILED"
    result = frictionless_cli(
        "validate", f"{hub.url}/{owner}/broken/v/1/datapackage.json", "--json"
    )
    assert result.returncode == 1, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["valid"] is False
    errors = [e for task in report["tasks"] for e in task["errors"]]
    assert [(e["type"], e["rowNumber"], e["fieldName"], e["cell"]) for e in errors] == [
        ("type-error", 5, "population", "many")
    ]


def test_frictionless_reads_every_resource_by_url(cities: str) -> None:
    package = frictionless.Package(f"{cities}/datapackage.json")
    by_name = {resource.name: resource for resource in package.resources}
    assert all(resource.path.startswith(f"{cities}/v/1/r/") for resource in package.resources)
    assert [row.to_dict() for row in by_name["cities"].read_rows()] == CITIES_ROWS
    assert [row.to_dict() for row in by_name["routes"].read_rows()] == ROUTES_ROWS


def test_pandas_reads_a_resource_by_url(cities: str) -> None:
    frame = pandas.read_csv(f"{cities}/r/cities.csv")
    assert frame.to_dict("records") == CITIES_ROWS
    assert pandas.read_json(f"{cities}/r/routes.json").to_dict("records") == ROUTES_ROWS


def test_duckdb_queries_resources_by_url(cities: str) -> None:
    db = duckdb.connect()
    db.register_filesystem(DuckDBHTTP())
    rows = db.sql(
        f"SELECT country, sum(population) AS people FROM read_csv('{cities}/r/cities.csv')"
        " GROUP BY country ORDER BY people DESC"
    ).fetchall()
    assert rows == [("DE", 3596999), ("FR", 2624900)]
    routes = db.sql(f"SELECT origin, km FROM read_json('{cities}/r/routes.json') ORDER BY km")
    assert routes.fetchall() == [("Paris", 465), ("Lyon", 1150)]


def test_duckdb_httpfs_queries_resources_by_url(cities: str) -> None:
    db = duckdb.connect()
    db.sql("SET autoinstall_known_extensions = false")
    try:
        db.sql("LOAD httpfs")
    except duckdb.Error as exc:
        pytest.skip(f"DuckDB's httpfs extension is not installed here: {exc}")
    rows = db.sql(f"SELECT city FROM read_csv('{cities}/r/cities.csv') ORDER BY population")
    assert rows.fetchall() == [("Lyon",), ("Paris",), ("Berlin",)]


def _media_type(response: httpx.Response) -> str:
    return response.headers["content-type"].split(";")[0].strip()


def test_content_types(cities: str) -> None:
    descriptor = fetch(f"{cities}/datapackage.json")
    assert _media_type(descriptor) == "application/json"
    paths = {r["name"]: r["path"] for r in descriptor.json()["resources"]}
    assert paths["cities"].startswith("http")
    assert _media_type(fetch(f"{cities}/r/cities.csv")) == "text/csv"
    assert _media_type(fetch(f"{cities}/r/cities.json")) == "application/json"
    assert _media_type(fetch(f"{cities}/r/cities_csv.csv")) == "text/csv"
    assert _media_type(fetch(paths["cities_json"])) == "application/json"
    assert _media_type(fetch(paths["datapackage_zip"])) == "application/zip"
    head = httpx.head(f"{cities}/r/cities.csv", follow_redirects=True, timeout=30)
    assert head.status_code == 200
    assert int(head.headers["content-length"]) == len(CITIES)
    assert _media_type(head) == "text/csv"
    assert head.content == b""


def test_byte_ranges_of_a_csv(cities: str) -> None:
    whole = fetch(f"{cities}/r/cities.csv")
    assert whole.headers["accept-ranges"] == "bytes"
    part = fetch(f"{cities}/r/cities.csv", headers={"Range": "bytes=5-11"})
    assert part.status_code == 206
    assert part.content == CITIES[5:12] == b"country"
    assert part.headers["content-range"] == f"bytes 5-11/{len(CITIES)}"
    tail = fetch(f"{cities}/r/cities.csv", headers={"Range": "bytes=-8"})
    assert tail.content == CITIES[-8:]


def test_pandas_reads_a_private_resource_with_a_token(publisher: Publisher, tmp_path: Path) -> None:
    folder = cities_package(tmp_path / "hidden", "hidden")
    cli("push", str(folder), "--private", env=publisher.env)
    url = f"{publisher.hub.url}/{publisher.username}/hidden/r/cities.csv"
    token = publisher.token()
    frame = pandas.read_csv(url, storage_options={"Authorization": f"Bearer {token}"})
    assert frame.to_dict("records") == CITIES_ROWS
    assert pandas.read_csv(f"{url}?jwt={token}").to_dict("records") == CITIES_ROWS
    with pytest.raises(HTTPError) as refused:
        pandas.read_csv(url)
    refused.value.close()
    assert refused.value.code == 404
