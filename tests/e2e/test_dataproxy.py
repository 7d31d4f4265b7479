"""The DataProxy over HTTP: hub files of every format as JSON, NDJSON and CSV, streamed, cached,
permission-checked, and outside URLs refused unless allowed."""

from __future__ import annotations

import csv
import gzip
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import (
    HubServer,
    Publisher,
    cli,
    new_publisher,
    start_hub,
    stop_hub,
    write_package,
)

CITIES = "city;population;founded\nCréteil;92000;1000-01-01\nSète;44000;1666-07-29\n"


def _xlsx() -> bytes:
    from openpyxl import Workbook

    book = Workbook()
    first = book.active
    assert first is not None
    first.title = "years"
    for row in (["year", "value"], [2020, 1.5], [2021, 2.5]):
        first.append(row)
    second = book.create_sheet("names")
    for row in (["name"], ["ada"], ["alan"]):
        second.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


FILES = {
    "data/cities.csv": CITIES.encode("cp1252"),
    "data/book.xlsx": _xlsx(),
    "data/rows.json": json.dumps([{"k": "x", "n": 1}, {"k": "y", "n": 2}]).encode(),
    "data/lines.ndjson": b'{"k": "x", "n": 1}\n{"k": "y", "n": 2}\n',
}


@pytest.fixture(scope="module")
def owner(hub: HubServer, tmp_path_factory: pytest.TempPathFactory) -> Publisher:
    publisher = new_publisher(hub, tmp_path_factory.mktemp("proxy-home"), "proxy")
    publisher.login()
    folder = write_package(
        tmp_path_factory.mktemp("formats"),
        "formats",
        files=FILES,
        descriptor={
            "name": "formats",
            "resources": [
                {"name": "cities", "path": "data/cities.csv"},
                {"name": "book", "path": "data/book.xlsx"},
                {"name": "rows", "path": "data/rows.json"},
                {"name": "lines", "path": "data/lines.ndjson"},
            ],
        },
    )
    cli("push", str(folder), env=publisher.env)
    secret = write_package(
        tmp_path_factory.mktemp("secret"), "secret", files={"data.csv": b"a\n1\n"}
    )
    cli("push", str(secret), "--private", env=publisher.env)
    return publisher


def proxy(hub: HubServer, path: str, **params: Any) -> httpx.Response:
    return httpx.get(f"{hub.url}/api/dataproxy", params={"url": path, **params}, timeout=60)


def test_csv_as_typed_json(owner: Publisher) -> None:
    hub, user = owner.hub, owner.username
    answer = proxy(hub, f"/{user}/formats/r/cities.csv")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["fields"] == [
        {"name": "city", "type": "string"},
        {"name": "population", "type": "integer"},
        {"name": "founded", "type": "date"},
    ]
    assert body["data"] == [["Créteil", 92000, "1000-01-01"], ["Sète", 44000, "1666-07-29"]]
    assert body["offset"] == 0


def test_every_format_and_every_output(owner: Publisher) -> None:
    hub, user = owner.hub, owner.username
    book = proxy(hub, f"{hub.url}/{user}/formats/r/book.xlsx").json()
    assert book["data"] == [[2020, 1.5], [2021, 2.5]]
    names = proxy(hub, f"/{user}/formats/r/book.xlsx", sheet="names").json()
    assert names["data"] == [["ada"], ["alan"]]
    assert proxy(hub, f"/{user}/formats/r/book.xlsx", sheet="2").json()["data"] == names["data"]
    for resource in ("rows.json", "lines.ndjson"):
        rows = proxy(hub, f"/{user}/formats/r/{resource}").json()
        assert [f["name"] for f in rows["fields"]] == ["k", "n"]
        assert rows["data"] == [["x", 1], ["y", 2]]
    lines = proxy(hub, f"/{user}/formats/r/cities.csv", format="ndjson").text.splitlines()
    assert [json.loads(line) for line in lines] == [
        {"city": "Créteil", "population": 92000, "founded": "1000-01-01"},
        {"city": "Sète", "population": 44000, "founded": "1666-07-29"},
    ]
    as_csv = proxy(hub, f"/{user}/formats/files/data/cities.csv", format="csv")
    assert as_csv.headers["content-type"].startswith("text/csv")
    assert list(csv.reader(io.StringIO(as_csv.text))) == [
        ["city", "population", "founded"],
        ["Créteil", "92000", "1000-01-01"],
        ["Sète", "44000", "1666-07-29"],
    ]


def test_limit_offset_fields_and_the_old_parameter_name(owner: Publisher) -> None:
    hub, path = owner.hub, f"/{owner.username}/formats/r/cities.csv"
    page = proxy(hub, path, limit=1, offset=1, fields="population,city").json()
    assert page["fields"] == [
        {"name": "population", "type": "integer"},
        {"name": "city", "type": "string"},
    ]
    assert page["data"] == [[44000, "Sète"]]
    assert page["limit"] == 1
    assert proxy(hub, path, **{"max-results": 1}).json()["data"] == [
        ["Créteil", 92000, "1000-01-01"]
    ]
    assert proxy(hub, path, offset=10).json()["data"] == []


def test_etags_cache_and_gzip(owner: Publisher) -> None:
    hub, path = owner.hub, f"/{owner.username}/formats/v/1/r/cities.csv"
    first = proxy(hub, path)
    etag = first.headers["etag"]
    assert "immutable" in first.headers["cache-control"]
    again = httpx.get(
        f"{hub.url}/api/dataproxy", params={"url": path}, headers={"If-None-Match": etag}
    )
    assert again.status_code == 304
    assert proxy(hub, path, limit=1).headers["etag"] != etag
    packed = httpx.get(
        f"{hub.url}/api/dataproxy",
        params={"url": path},
        headers={"Accept-Encoding": "gzip"},
    )
    assert packed.headers["content-encoding"] == "gzip"
    assert packed.json() == first.json()  # httpx unpacks it
    with (
        httpx.Client() as client,
        client.stream(
            "GET",
            f"{hub.url}/api/dataproxy",
            params={"url": path},
            headers={"Accept-Encoding": "gzip"},
        ) as raw,
    ):
        packed_bytes = b"".join(raw.iter_raw())
    assert json.loads(gzip.decompress(packed_bytes))["data"] == first.json()["data"]


def test_private_files_stay_private(owner: Publisher) -> None:
    hub, path = owner.hub, f"/{owner.username}/secret/r/data.csv"
    assert proxy(hub, path).status_code == 404
    mine = httpx.get(
        f"{hub.url}/api/dataproxy",
        params={"url": path},
        headers={"Authorization": f"Bearer {owner.token()}"},
    )
    assert mine.status_code == 200
    assert mine.json()["data"] == [[1]]
    assert "private" in mine.headers["cache-control"]


@pytest.mark.parametrize(
    ("params", "status"),
    [
        ({"format": "xml"}, 400),
        ({"limit": "-1"}, 400),
        ({"limit": "ten"}, 400),
        ({"offset": "-5"}, 400),
        ({"fields": "nope"}, 400),
        ({"url": "/nobody/nothing/r/x.csv"}, 404),
        ({"url": "/not/a/hub/path"}, 400),
        ({"url": "http://127.0.0.1:1/data.csv"}, 403),
        ({"url": "http://[::1]/data.csv"}, 403),
        ({"url": "http://169.254.169.254/latest/meta-data/"}, 403),
        ({"url": "http://2130706433/data.csv"}, 403),
        ({"url": "file:///etc/passwd"}, 403),
    ],
)
def test_bad_requests_are_clear_errors(
    owner: Publisher, params: dict[str, str], status: int
) -> None:
    hub = owner.hub
    query = {"url": f"/{owner.username}/formats/r/cities.csv", **params}
    answer = httpx.get(f"{hub.url}/api/dataproxy", params=query, timeout=30)
    assert answer.status_code == status, answer.text
    assert len(answer.json()["error"]["message"]) > 10


@pytest.fixture(scope="module")
def idle_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubServer]:
    """A hub that processes nothing: its revisions stay QUEUED."""
    server = start_hub(tmp_path_factory.mktemp("idle"), serve_args=("--no-worker",))
    yield server
    stop_hub(server)


def test_resource_links_work_before_processing(idle_hub: HubServer, tmp_path: Path) -> None:
    publisher = new_publisher(idle_hub, tmp_path / "home", "early")
    publisher.login()
    folder = write_package(
        tmp_path / "early", "early", files={"data/values.csv": b"x,y\n1,a\n2,b\n"}
    )
    cli("push", str(folder), "--no-wait", env=publisher.env)
    base = f"{idle_hub.url}/{publisher.username}/early/v/1"
    status = httpx.get(f"{idle_hub.url}/api/package/{publisher.username}/early/revisions/1").json()
    assert status["state"] == "QUEUED"
    as_json = httpx.get(f"{base}/r/values.json")
    assert as_json.status_code == 200, as_json.text
    assert as_json.json() == [{"x": 1, "y": "a"}, {"x": 2, "y": "b"}]
    lines = httpx.get(f"{base}/r/values.ndjson").text.splitlines()
    assert [json.loads(line) for line in lines] == [{"x": 1, "y": "a"}, {"x": 2, "y": "b"}]


def test_cat_streams_a_resource(owner: Publisher) -> None:
    user = owner.username
    as_csv = cli("cat", f"{user}/formats/cities", env=owner.env).stdout
    assert as_csv.splitlines() == [
        "city,population,founded",
        "Créteil,92000,1000-01-01",
        "Sète,44000,1666-07-29",
    ]
    first = cli("cat", f"{user}/formats", "--format", "ndjson", "--limit", "1", env=owner.env)
    assert [json.loads(line) for line in first.stdout.splitlines()] == [
        {"city": "Créteil", "population": 92000, "founded": "1000-01-01"}
    ]
    missing = cli("cat", f"{user}/formats/nothing", env=owner.env, check=False)
    assert missing.returncode == 1
    assert "nothing" in missing.stderr
