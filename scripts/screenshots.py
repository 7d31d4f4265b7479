"""Take the README's screenshots of the web pages: a dataset's showcase and its processing page.

    .venv/bin/python scripts/screenshots.py [--out docs/screenshots]

Starts a throwaway hub on loopback (``dphub serve --no-worker``, so a push waits in the queue),
pushes an example dataset with the real command line, photographs the processing page while the
revision is queued, runs a worker, and photographs the showcase once the revision is processed. Needs
Chromium at /usr/bin/chromium (Debian's ``chromium`` package), driven by Playwright.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
USER = "demo"
PASSWORD = "demo-password-for-screenshots"
README = """# Yearly rainfall at four stations

Example data made up for dphub's screenshots: yearly rainfall totals, in millimetres, at four
weather stations from 1990 to 2024.

| column | meaning |
|---|---|
| `year` | calendar year |
| `station` | where it was measured |
| `rainfall_mm` | the year's total, in mm |
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def dphub(*args: str, env: dict[str, str], stdin: str | None = None) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "dphub", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout


def example_package(folder: Path) -> None:
    rows = ["year,station,rainfall_mm"]
    for station, (base, swing) in {
        "Harbour": (820, 90),
        "Hilltop": (1040, 130),
        "Airport": (690, 70),
        "Valley": (760, 110),
    }.items():
        for year in range(1990, 2025):
            wave = math.sin((year - 1990) / 3.1 + base / 100) * swing
            rows.append(f"{year},{station},{base + wave + (year - 1990) * 1.5:.1f}")
    (folder / "data").mkdir(parents=True)
    (folder / "data" / "rainfall.csv").write_text("\n".join(rows) + "\n")
    (folder / "README.md").write_text(README)
    descriptor = {
        "name": "rainfall",
        "title": "Yearly rainfall at four stations",
        "description": "Yearly rainfall totals at four weather stations, 1990-2024 (example data).",
        "licenses": [{"name": "CC0-1.0", "title": "CC0 1.0"}],
        "keywords": ["weather", "rainfall", "example"],
        "resources": [{"name": "rainfall", "path": "data/rainfall.csv"}],
        "views": [
            {
                "name": "by-station",
                "title": "Rainfall by station",
                "resources": ["rainfall"],
                "specType": "vega-lite",
                "spec": {
                    "mark": {"type": "line", "point": True},
                    "encoding": {
                        "x": {"field": "year", "type": "quantitative", "axis": {"format": "d"}},
                        "y": {"field": "rainfall_mm", "type": "quantitative", "title": "mm"},
                        "color": {"field": "station", "type": "nominal"},
                    },
                    "height": 260,
                },
            }
        ],
    }
    (folder / "datapackage.json").write_text(json.dumps(descriptor, indent=2))


def wait_for(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{url} did not answer in {timeout} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    options = parser.parse_args()
    options.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="dphub-screenshots-") as tmp:
        work = Path(tmp)
        data = work / "data"
        env = {k: v for k, v in os.environ.items() if not k.startswith("DPHUB_")}
        env.update(HOME=str(work / "home"), DPHUB_CONFIG=str(work / "home" / "config.json"))
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        serve = [sys.executable, "-m", "dphub", "serve", "--port", str(port), "--data-dir"]
        with open(work / "server.log", "wb") as log:
            server = subprocess.Popen(
                [*serve, str(data), "--no-worker"], env=env, stdout=log, stderr=log
            )
        worker = None
        try:
            wait_for(f"{url}/api/auth/check")
            create = ["user", "create", USER, "--email", "demo@example.org", "--password-stdin"]
            dphub(*create, "--data-dir", str(data), env=env, stdin=PASSWORD + "\n")
            dphub("login", "--server", url, "--username", USER, "--secret", PASSWORD, env=env)
            example_package(work / "rainfall")
            dphub("push", str(work / "rainfall"), "--no-wait", env=env)
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
                page = browser.new_page(viewport={"width": 1100, "height": 760})
                page.goto(f"{url}/login?next=/{USER}/rainfall/v/1/processing")
                page.get_by_label("Username or email").fill(USER)
                page.get_by_label("Password").fill(PASSWORD)
                page.get_by_role("button", name="Sign in").click()
                page.wait_for_url(f"{url}/{USER}/rainfall/v/1/processing")
                page.screenshot(path=str(options.out / "processing.png"))
                worker_log = open(work / "worker.log", "wb")  # noqa: SIM115 - lives with the worker
                worker = subprocess.Popen(
                    [sys.executable, "-m", "dphub", "worker", "--data-dir", str(data)],
                    env={**env, "DPHUB_BASE_URL": url},
                    stdout=worker_log,
                    stderr=worker_log,
                )
                page.wait_for_url(f"{url}/{USER}/rainfall", timeout=120_000)
                page.locator(".vega[data-drawn=true]").wait_for()
                page.screenshot(path=str(options.out / "showcase.png"), full_page=True)
                browser.close()
        finally:
            for process in (worker, server):
                if process is not None:
                    process.terminate()
                    process.wait(timeout=30)
    for name in ("processing.png", "showcase.png"):
        print(options.out / name)


if __name__ == "__main__":
    main()
