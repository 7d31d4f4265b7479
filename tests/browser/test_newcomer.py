"""A newcomer's visit: search, open the dataset, page through its rows, see its chart, download it."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, expect

from tests.browser.conftest import Tab, WebHub, push_package
from tests.conftest import Publisher

ROWS = 45
CSV = (
    "year,rainfall_mm,station\n"
    + "".join(f"{1980 + i},{500 + (i * 37) % 300}.5,station {i % 4}\n" for i in range(ROWS))
).encode()
README = b"# Rainfall\n\nYearly rainfall at **four stations**.\n\n- measured in mm\n- since 1980\n"


@pytest.fixture(scope="module")
def rainfall(
    web_hub: WebHub, web_publisher: Publisher, tmp_path_factory: pytest.TempPathFactory
) -> str:
    descriptor = {
        "name": "rainfall",
        "title": "Yearly rainfall",
        "description": "Rainfall per year at four weather stations.",
        "licenses": [{"name": "CC-BY-4.0", "title": "Creative Commons Attribution 4.0"}],
        "keywords": ["weather", "rain"],
        "resources": [{"name": "rainfall", "path": "data/rainfall.csv"}],
    }
    folder = tmp_path_factory.mktemp("rainfall")
    push_package(web_publisher, folder, descriptor, {"data/rainfall.csv": CSV, "README.md": README})
    web_hub.processed(web_publisher, "rainfall")
    return f"/{web_publisher.username}/rainfall"


def test_search_showcase_preview_chart_download(
    tab: Tab, web_hub: WebHub, rainfall: str, tmp_path: Path
) -> None:
    page = tab.page
    page.goto(web_hub.url + "/")
    expect(page).to_have_title("dphub — find and publish data packages")
    page.get_by_label("Search", exact=False).first.fill("rainfall stations")
    page.keyboard.press("Enter")
    page.wait_for_url("**/search?q=rainfall+stations")
    expect(page.locator("#result-count")).to_have_text("1 dataset")
    page.get_by_role("link", name="Yearly rainfall").click()
    page.wait_for_url(web_hub.url + rainfall)

    # The showcase: title, badges, README, schema, alternate link to the descriptor.
    expect(page).to_have_title(f"Yearly rainfall — {rainfall[1:]} — dphub")
    expect(page.locator("h1")).to_have_text("Yearly rainfall")
    expect(page.locator("#row-count")).to_have_text(f"{ROWS} rows")
    expect(page.locator(".badges")).to_contain_text("Creative Commons Attribution 4.0")
    expect(page.locator(".readme strong")).to_have_text("four stations")
    description = page.locator('meta[name="description"]').get_attribute("content")
    assert description == "Rainfall per year at four weather stations."
    alternate = page.locator('link[rel="alternate"][type="application/json"]')
    assert alternate.get_attribute("href") == f"{web_hub.url}{rainfall}/v/1/datapackage.json"
    schema = page.locator("table.schema tbody tr td code")
    assert schema.all_inner_texts() == ["year", "rainfall_mm", "station"]

    # The chart: a default line over the year column, drawn by Vega under the page's CSP.
    chart = page.locator(".vega[data-drawn]")
    expect(chart).to_have_attribute("data-drawn", "true", timeout=30_000)
    assert page.locator(".vega svg .mark-line path").count() == 1
    assert page.locator(".vega svg .mark-symbol path").count() == ROWS

    # The preview pages through the datastore: 20 rows a page.
    preview = page.locator("#preview table tbody tr")
    expect(preview).to_have_count(20)
    expect(preview.first.locator("td").nth(1)).to_have_text("1980")
    page.get_by_role("link", name="Next →").click()
    expect(page.locator("#preview .meta")).to_have_text(f"Rows 21 to 40 of {ROWS}")
    expect(preview.first.locator("td").nth(1)).to_have_text("2000")
    page.get_by_role("link", name="Next →").click()
    expect(preview).to_have_count(ROWS - 40)
    expect(page.get_by_role("link", name="Next →")).to_have_count(0)

    # Downloads: the original file byte for byte, and the JSON the hub derived.
    with page.expect_download() as original:
        page.get_by_role("link", name="Original (csv)").click()
    saved = tmp_path / "rainfall.csv"
    original.value.save_as(saved)
    assert saved.read_bytes() == CSV
    with page.expect_download() as derived:
        page.get_by_role("link", name="JSON", exact=True).click()
    derived.value.save_as(tmp_path / "rainfall.json")
    rows = json.loads((tmp_path / "rainfall.json").read_text())
    assert len(rows) == ROWS
    assert rows[0]["year"] == 1980
    with page.expect_download() as zipped:
        page.get_by_role("link", name="Download all (zip)").click()
    zipped.value.save_as(tmp_path / "all.zip")
    assert (tmp_path / "all.zip").read_bytes()[:2] == b"PK"

    assert tab.errors == []
    assert tab.dialogs == []


def test_pages_answer_programs_with_json_and_keep_working_without_javascript(
    browser: Browser, web_hub: WebHub, rainfall: str
) -> None:
    assert httpx.get(web_hub.url + "/").json()["name"] == "dphub"
    assert httpx.get(web_hub.url + rainfall).json()["name"] == "rainfall"
    context = browser.new_context(java_script_enabled=False)
    try:
        page = context.new_page()
        page.goto(web_hub.url + rainfall + "?page=3")
        expect(page.locator("#preview .meta")).to_have_text(f"Rows 41 to {ROWS} of {ROWS}")
        page.get_by_role("link", name="← Previous").click()
        expect(page.locator("#preview .meta")).to_have_text(f"Rows 21 to 40 of {ROWS}")
        page.goto(web_hub.url + "/search?q=weather")
        expect(page.locator("#result-count")).to_have_text("1 dataset")
    finally:
        context.close()
