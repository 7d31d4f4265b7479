"""A publisher's session: sign in, push with the CLI, watch processing turn into the dataset's page,
make and revoke an API key, make the dataset private, and see it gone for everyone else."""

from __future__ import annotations

from pathlib import Path

import httpx
from playwright.sync_api import Browser, expect

from tests.browser.conftest import Tab, WebHub, open_tab, push_package
from tests.conftest import Publisher

BUDGET = b"year,spending\n2019,10.5\n2020,12.25\n2021,11.0\n2022,14.75\n"


def sign_in(tab: Tab, hub: WebHub, publisher: Publisher) -> None:
    page = tab.page
    page.goto(hub.url + "/")
    page.get_by_role("link", name="Sign in").click()
    page.get_by_label("Username or email").fill(publisher.username)
    page.get_by_label("Password").fill(publisher.password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(hub.url + "/")
    expect(page.get_by_role("link", name=publisher.username)).to_be_visible()


def test_publisher_flow(
    tab: Tab, browser: Browser, web_hub: WebHub, web_publisher: Publisher, tmp_path: Path
) -> None:
    page = tab.page
    sign_in(tab, web_hub, web_publisher)
    cookies = {c["name"]: c for c in tab.context.cookies()}
    session = cookies["dphub_session"]
    assert session["httpOnly"]
    assert session["sameSite"] == "Lax"

    # Push with the command line; no worker runs yet, so the revision waits in the queue.
    descriptor = {
        "name": "budget",
        "title": "City budget",
        "resources": [{"name": "spending", "path": "spending.csv"}],
    }
    output = push_package(web_publisher, tmp_path / "budget", descriptor, {"spending.csv": BUDGET})
    processing = next(
        line.split()[1] for line in output.splitlines() if line.startswith("Processing: ")
    )
    showcase = f"{web_hub.url}/{web_publisher.username}/budget"
    assert processing == f"{showcase}/v/1/processing"
    page.goto(processing)
    expect(page.locator("#state")).to_have_text("QUEUED")
    web_hub.start_worker()
    try:
        page.wait_for_url(showcase, timeout=90_000)
    finally:
        web_hub.stop_worker()
    expect(page.locator("#dataset-title")).to_have_text("City budget")
    expect(page.locator("#row-count")).to_have_text("4 rows")

    # An API key: shown once, works, then revoked from the account page and refused.
    page.goto(web_hub.url + "/account")
    page.get_by_label("Name", exact=True).fill("ci")
    page.get_by_label("Scope").select_option("publish")
    page.get_by_role("button", name="Create key").click()
    key = page.locator("#new-key").inner_text().strip()
    assert key.startswith("dph_")
    read = f"{web_hub.url}/api/package/{web_publisher.username}/budget"
    assert httpx.get(read, headers={"Authorization": f"Bearer {key}"}).status_code == 200
    row = page.locator("#keys tr", has_text="ci")
    expect(row.locator(".key-state")).to_have_text("active")
    page.get_by_role("button", name="Revoke ci").click()
    page.wait_for_url(web_hub.url + "/account?revoked=1")
    expect(page.locator("#keys tr", has_text="ci").locator(".key-state")).to_have_text("revoked")
    assert page.locator("#new-key").count() == 0
    refused = httpx.get(read, headers={"Authorization": f"Bearer {key}"})
    assert refused.status_code == 401

    # Make the dataset private: the owner still sees it, with the badge.
    page.goto(showcase)
    page.get_by_label("Who can find this dataset").select_option("private")
    page.get_by_role("button", name="Save").click()
    expect(page.locator(".badges")).to_contain_text("private")
    assert httpx.get(read).status_code == 404

    # Signed out (another browser, and this one after signing out), it is a 404 page.
    stranger = open_tab(browser)
    try:
        answer = stranger.page.goto(showcase)
        assert answer is not None
        assert answer.status == 404
        expect(stranger.page.locator("h1")).to_have_text("Not found")
        stranger.page.goto(f"{web_hub.url}/search?q=budget")
        expect(stranger.page.locator("#result-count")).to_have_text("0 datasets")
    finally:
        stranger.context.close()
    assert tab.errors == []
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(web_hub.url + "/")
    answer = page.goto(showcase)
    assert answer is not None
    assert answer.status == 404


def test_forms_need_the_pages_csrf_token(web_hub: WebHub, web_publisher: Publisher) -> None:
    login = {"login": web_publisher.username, "password": web_publisher.password, "next": "/"}
    without = httpx.post(f"{web_hub.url}/login", data=login)
    assert without.status_code == 403
    assert "did not come from this hub" in without.text
    with httpx.Client(base_url=web_hub.url) as browser:
        form = browser.get("/login")
        token = browser.cookies["dphub_csrf"]
        assert f'value="{token}"' in form.text
        forged = browser.post(
            "/login", data={**login, "csrf": token}, headers={"Origin": "https://evil.example"}
        )
        assert forged.status_code == 403
        signed_in = browser.post("/login", data={**login, "csrf": token})
        assert signed_in.status_code == 303
        assert "dphub_session" in browser.cookies
        page = browser.get("/", headers={"Accept": "text/html"})
        csp = page.headers["content-security-policy"]
        script_src = next(p for p in csp.split("; ") if p.startswith("script-src"))
        assert script_src == "script-src 'self'"
        assert page.headers["x-content-type-options"] == "nosniff"
