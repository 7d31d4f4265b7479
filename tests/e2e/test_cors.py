"""Browser apps on other origins call the hub when the operator lists their origins in
DPHUB_CORS_ORIGINS: preflights are answered, answers are readable by those origins alone, and
without the setting the hub sends no CORS header at all."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from dphub.config import load_settings
from dphub.errors import ConfigurationError
from tests.conftest import (
    HubServer,
    Publisher,
    cli,
    new_publisher,
    start_hub,
    stop_hub,
    write_package,
)

APP = "https://app.example"
OTHER = "https://elsewhere.example"
CSV = b"city,population\nParis,2102650\nLyon,522250\n"


@pytest.fixture(scope="module")
def cors_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubServer]:
    server = start_hub(tmp_path_factory.mktemp("cors"), {"DPHUB_CORS_ORIGINS": APP})
    yield server
    stop_hub(server)


@pytest.fixture(scope="module")
def cors_owner(cors_hub: HubServer, tmp_path_factory: pytest.TempPathFactory) -> Publisher:
    publisher = new_publisher(cors_hub, tmp_path_factory.mktemp("cors-home"), "cors")
    publisher.login()
    folder = write_package(tmp_path_factory.mktemp("cities"), "cities", files={"cities.csv": CSV})
    cli("push", str(folder), env=publisher.env)
    return publisher


def preflight(url: str, origin: str, method: str, headers: str) -> httpx.Response:
    return httpx.options(
        url,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": headers,
        },
        timeout=30,
    )


def listed(header: str) -> set[str]:
    return {item.strip().lower() for item in header.split(",")}


def cors_headers(response: httpx.Response) -> dict[str, str]:
    return {k: v for k, v in response.headers.items() if k.lower().startswith("access-control-")}


def test_a_preflight_from_a_listed_origin_is_answered(cors_hub: HubServer) -> None:
    answer = preflight(
        f"{cors_hub.url}/api/datastore/sql", APP, "POST", "authorization, content-type"
    )
    assert answer.status_code == 200
    assert answer.headers["access-control-allow-origin"] == APP
    assert listed(answer.headers["access-control-allow-methods"]) == {
        "get",
        "head",
        "post",
        "put",
        "patch",
        "delete",
        "options",
    }
    assert {"authorization", "auth-token", "content-type", "range", "if-none-match"} <= listed(
        answer.headers["access-control-allow-headers"]
    )
    assert "access-control-allow-credentials" not in answer.headers
    assert "origin" in listed(answer.headers["vary"])
    ranged = preflight(f"{cors_hub.url}/someone/cities/r/0.csv", APP, "GET", "range, auth-token")
    assert ranged.status_code == 200
    assert ranged.headers["access-control-allow-origin"] == APP


def test_answers_are_readable_by_a_listed_origin(
    cors_hub: HubServer, cors_owner: Publisher
) -> None:
    base = f"{cors_hub.url}/{cors_owner.username}/cities"
    descriptor = httpx.get(f"{base}/datapackage.json", headers={"Origin": APP}, timeout=30)
    assert descriptor.status_code == 200
    assert descriptor.headers["access-control-allow-origin"] == APP
    assert "access-control-allow-credentials" not in descriptor.headers
    assert "origin" in listed(descriptor.headers["vary"])
    exposed = listed(descriptor.headers["access-control-expose-headers"])
    assert {"etag", "content-range", "content-length", "accept-ranges", "retry-after"} <= exposed
    part = httpx.get(
        f"{base}/r/cities.csv", headers={"Origin": APP, "Range": "bytes=0-3"}, timeout=30
    )
    assert part.status_code == 206
    assert part.content == b"city"
    assert part.headers["access-control-allow-origin"] == APP
    check = httpx.get(
        f"{cors_hub.url}/api/auth/check",
        headers={"Origin": APP, "Authorization": f"Bearer {cors_owner.token()}"},
        timeout=30,
    )
    assert check.json()["authenticated"] is True
    assert check.headers["access-control-allow-origin"] == APP
    refused = httpx.get(f"{base}/r/nothing.csv", headers={"Origin": APP}, timeout=30)
    assert refused.status_code == 404
    assert refused.json()["error"]["code"] == "resource-not-found"
    assert refused.headers["access-control-allow-origin"] == APP


def test_an_origin_not_listed_gets_no_access(cors_hub: HubServer, cors_owner: Publisher) -> None:
    answer = preflight(f"{cors_hub.url}/api/datastore/sql", OTHER, "POST", "authorization")
    assert answer.status_code == 400
    assert "access-control-allow-origin" not in answer.headers
    read = httpx.get(
        f"{cors_hub.url}/{cors_owner.username}/cities/datapackage.json",
        headers={"Origin": OTHER},
        timeout=30,
    )
    # Served (the browser is the one that enforces CORS), but not marked readable by that origin.
    assert read.status_code == 200
    assert "access-control-allow-origin" not in read.headers
    assert "access-control-allow-credentials" not in read.headers


def test_the_default_hub_sends_no_cors_headers(hub: HubServer) -> None:
    asked = preflight(f"{hub.url}/api/datastore/sql", APP, "POST", "authorization")
    assert cors_headers(asked) == {}
    read = httpx.get(f"{hub.url}/api/auth/check", headers={"Origin": APP}, timeout=30)
    assert read.status_code == 200
    assert cors_headers(read) == {}


def test_any_origin_with_a_star(tmp_path: Path) -> None:
    server = start_hub(tmp_path, {"DPHUB_CORS_ORIGINS": "*"})
    try:
        asked = preflight(f"{server.url}/api/auth/token", OTHER, "POST", "content-type")
        assert asked.status_code == 200
        assert asked.headers["access-control-allow-origin"] == "*"
        read = httpx.get(f"{server.url}/api/auth/check", headers={"Origin": OTHER}, timeout=30)
        assert read.headers["access-control-allow-origin"] == "*"
        assert "access-control-allow-credentials" not in read.headers
    finally:
        stop_hub(server)


@pytest.mark.parametrize(
    "value",
    ["https://app.example/", "https://app.example/path", "app.example", "*, https://app.example"],
)
def test_what_is_not_an_origin_is_refused(value: str, tmp_path: Path) -> None:
    environ = {"DPHUB_DATA_DIR": str(tmp_path), "DPHUB_CORS_ORIGINS": value}
    with pytest.raises(ConfigurationError, match="DPHUB_CORS_ORIGINS"):
        load_settings(environ)


def test_origins_are_listed_as_browsers_send_them(tmp_path: Path) -> None:
    environ = {
        "DPHUB_DATA_DIR": str(tmp_path),
        "DPHUB_CORS_ORIGINS": " https://App.Example , http://localhost:5173",
    }
    assert load_settings(environ).cors_origins_list == (APP, "http://localhost:5173")
