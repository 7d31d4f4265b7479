"""A browser app on another origin calls the hub in real Chromium: it reads a file (a byte range
too, with its exposed headers), logs in with an API key and queries the datastore when its origin is
listed in DPHUB_CORS_ORIGINS, and the browser refuses every answer to an origin that is not."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from playwright.sync_api import Browser

from tests.browser.conftest import open_tab
from tests.conftest import (
    HubServer,
    Publisher,
    cli,
    free_port,
    new_publisher,
    start_hub,
    stop_hub,
    write_package,
)

CSV = b"city,population\nParis,2102650\nLyon,522250\n"

# The app's page: every call a browser app makes to the hub, results written to the page.
APP_PAGE = """<!doctype html><html><body><script type="module">
const params = new URLSearchParams(location.search);
const hub = params.get("hub"), owner = params.get("owner");
const out = {};
try {
  out.rows = await (await fetch(`${hub}/${owner}/cities/r/cities.json`)).json();
  const part = await fetch(`${hub}/${owner}/cities/r/cities.csv`, {headers: {Range: "bytes=0-3"}});
  out.range = [part.status, await part.text(), part.headers.get("Content-Range")];
  out.etag = part.headers.get("ETag");
  const login = await fetch(`${hub}/api/auth/token`, {
    method: "POST",
    headers: {"Content-Type": "application/json"},
    body: JSON.stringify({username: owner, secret: params.get("key")}),
  });
  const {token} = await login.json();
  const answer = await fetch(`${hub}/api/datastore/sql`, {
    method: "POST",
    headers: {"Authorization": `Bearer ${token}`, "Content-Type": "application/json"},
    body: JSON.stringify({sql: `SELECT count(*) AS n FROM "${owner}/cities/cities"`}),
  });
  out.sql = (await answer.json()).records;
} catch (error) {
  out.error = String(error);
}
document.body.dataset.result = JSON.stringify(out);
</script></body></html>
"""


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture(scope="module")
def app_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """A static web server for the app's page, on a port of its own (so another origin)."""
    root = tmp_path_factory.mktemp("app")
    (root / "index.html").write_text(APP_PAGE)
    handler = partial(QuietHandler, directory=str(root))
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def cors_hub(app_port: int, tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubServer]:
    """A hub that lets the app in from http://localhost:<port>, and no other origin."""
    origin = f"http://localhost:{app_port}"
    server = start_hub(tmp_path_factory.mktemp("cors-hub"), {"DPHUB_CORS_ORIGINS": origin})
    yield server
    stop_hub(server)


@pytest.fixture(scope="module")
def owner(cors_hub: HubServer, tmp_path_factory: pytest.TempPathFactory) -> Publisher:
    publisher = new_publisher(cors_hub, tmp_path_factory.mktemp("cors-owner"), "app")
    publisher.login()
    folder = write_package(tmp_path_factory.mktemp("cities"), "cities", files={"cities.csv": CSV})
    cli("push", str(folder), env=publisher.env)
    return publisher


def run_app(browser: Browser, origin: str, hub: HubServer, owner: Publisher) -> dict[str, Any]:
    tab = open_tab(browser)
    try:
        page = tab.page
        page.goto(f"{origin}/index.html?hub={hub.url}&owner={owner.username}&key={owner.secret}")
        page.wait_for_selector("body[data-result]", state="attached")
        result: dict[str, Any] = json.loads(page.get_attribute("body", "data-result") or "{}")
        return result
    finally:
        tab.context.close()


def test_a_listed_origin_reads_and_queries_the_hub(
    browser: Browser, app_port: int, cors_hub: HubServer, owner: Publisher
) -> None:
    result = run_app(browser, f"http://localhost:{app_port}", cors_hub, owner)
    assert "error" not in result, result
    assert result["rows"] == [
        {"city": "Paris", "population": 2102650},
        {"city": "Lyon", "population": 522250},
    ]
    assert result["range"] == [206, "city", f"bytes 0-3/{len(CSV)}"]
    assert result["etag"].startswith('"')
    assert result["sql"] == [{"n": 2}]


def test_the_browser_refuses_an_origin_not_listed(
    browser: Browser, app_port: int, cors_hub: HubServer, owner: Publisher
) -> None:
    result = run_app(browser, f"http://127.0.0.1:{app_port}", cors_hub, owner)
    assert result == {"error": "TypeError: Failed to fetch"}
