"""Browser tests: the web pages in real headless Chromium (Debian's ``chromium``, driven by
Playwright), on a hub whose processing the tests hold back and release."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Dialog,
    Page,
    sync_playwright,
)

from tests.conftest import (
    HubServer,
    Publisher,
    cli,
    new_publisher,
    start_hub,
    start_worker,
    stop_hub,
)

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    executable = shutil.which("chromium") or CHROMIUM
    if not Path(executable).exists():
        pytest.fail(
            "The browser tests need Chromium at /usr/bin/chromium (apt-get install chromium);"
            " scripts/test installs it."
        )
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=FLAGS, headless=True)
        yield launched
        launched.close()


@dataclass
class Tab:
    """A browser context with one page, remembering every console error and alert it saw."""

    context: BrowserContext
    errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)

    @property
    def page(self) -> Page:
        return self.context.pages[0]


def open_tab(browser: Browser) -> Tab:
    context = browser.new_context(accept_downloads=True, viewport={"width": 1200, "height": 900})
    tab = Tab(context)
    page = context.new_page()

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            tab.errors.append(message.text)

    page.on("console", on_console)
    page.on("pageerror", lambda error: tab.errors.append(f"page error: {error}"))

    def on_dialog(dialog: Dialog) -> None:
        tab.dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    page.set_default_timeout(30_000)
    return tab


@pytest.fixture
def tab(browser: Browser) -> Iterator[Tab]:
    opened = open_tab(browser)
    yield opened
    opened.context.close()


@dataclass
class WebHub:
    """A hub started with ``--no-worker``: pushes wait in the queue until ``process`` runs a
    worker, so a test can watch a revision go from QUEUED to SUCCEEDED."""

    server: HubServer
    root: Path
    worker: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return self.server.url

    def start_worker(self) -> None:
        if self.worker is None:
            self.worker = start_worker(self.server, self.root / f"worker-{time.monotonic_ns()}.log")

    def stop_worker(self) -> None:
        if self.worker is not None:
            self.worker.terminate()
            self.worker.wait(timeout=30)
            self.worker = None

    def processed(self, publisher: Publisher, name: str) -> None:
        """Run a worker until ``publisher``'s package ``name`` is processed, then stop it."""
        self.start_worker()
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                status = httpx.get(
                    f"{self.url}/api/package/{publisher.username}/{name}/revisions/latest",
                    headers={"Authorization": f"Bearer {publisher.token()}"},
                    timeout=30,
                ).json()
                if status.get("state") in ("SUCCEEDED", "FAILED"):
                    assert status["state"] == "SUCCEEDED", status
                    return
                time.sleep(0.2)
            raise AssertionError(f"{name} was not processed in time")
        finally:
            self.stop_worker()


@pytest.fixture(scope="module")
def web_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebHub]:
    root = tmp_path_factory.mktemp("web")
    server = start_hub(root, serve_args=("--no-worker",))
    hub = WebHub(server, root)
    yield hub
    hub.stop_worker()
    stop_hub(server)


@pytest.fixture(scope="module")
def web_publisher(web_hub: WebHub, tmp_path_factory: pytest.TempPathFactory) -> Publisher:
    publisher = new_publisher(web_hub.server, tmp_path_factory.mktemp("web-publisher"))
    publisher.login()
    return publisher


def push_package(
    publisher: Publisher, folder: Path, descriptor: dict[str, object], files: dict[str, bytes]
) -> str:
    """``dphub push --no-wait`` of a folder made of ``files`` and ``descriptor``; the CLI's
    output."""
    folder.mkdir(parents=True, exist_ok=True)
    for path, content in files.items():
        (folder / path).parent.mkdir(parents=True, exist_ok=True)
        (folder / path).write_bytes(content)
    (folder / "datapackage.json").write_text(json.dumps(descriptor, indent=2))
    return cli("push", str(folder), "--no-wait", env=publisher.env).stdout
