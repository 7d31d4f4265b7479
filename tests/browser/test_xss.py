"""A dataset whose every text carries script: README, title, description, keywords, resource and
field names, a declared chart's title. Nothing of it may run on any page, and the text still shows."""

from __future__ import annotations

import csv
import io

import httpx
import pytest
from playwright.sync_api import expect

from tests.browser.conftest import Tab, WebHub, push_package
from tests.conftest import Publisher

HIT = "window.__xss = (window.__xss || []).concat"
TITLE = f"<script>{HIT}('title')</script>Evil title"
FIELD_IMG = f"<img src=x onerror=\"{HIT}('field')\">"
FIELD_SCRIPT = f"</script><script>{HIT}('field-script')</script>"
README = f"""# Hello <script>{HIT}('readme-script')</script>

<img src=x onerror="{HIT}('readme-img')">

[click me](javascript:{HIT}('readme-link'))

<a href="javascript:{HIT}('readme-a')">raw link</a>

<iframe src="javascript:{HIT}('readme-iframe')"></iframe>

![pic](javascript:{HIT}('readme-pic'))

<svg onload="{HIT}('readme-svg')"></svg>
"""


def table() -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["year", "count", FIELD_IMG, FIELD_SCRIPT])
    for year in range(2000, 2010):
        writer.writerow([year, year - 1990, f"<b onmouseover=\"{HIT}('cell')\">x</b>", "y"])
    return out.getvalue().encode()


@pytest.fixture(scope="module")
def evil(
    web_hub: WebHub, web_publisher: Publisher, tmp_path_factory: pytest.TempPathFactory
) -> str:
    descriptor = {
        "name": "evil",
        "title": TITLE,
        "description": f"<img src=x onerror=\"{HIT}('description')\">",
        "keywords": [f"<script>{HIT}('keyword')</script>"],
        "licenses": [{"name": f"<script>{HIT}('license')</script>"}],
        "resources": [
            {
                "name": "evil",
                "path": "data/evil.csv",
                "title": f"<script>{HIT}('resource-title')</script>",
                "description": f"<img src=x onerror=\"{HIT}('resource-description')\">",
            }
        ],
        "views": [
            {
                "name": "chart",
                "title": f"<img src=x onerror=\"{HIT}('view-title')\">",
                "resources": ["evil"],
                "specType": "vega-lite",
                "spec": {
                    "title": f"<script>{HIT}('spec-title')</script>",
                    "mark": "bar",
                    "encoding": {
                        "x": {"field": "year", "type": "ordinal"},
                        "y": {"field": "count", "type": "quantitative"},
                    },
                    "data": {"url": "https://evil.example/data.json"},
                },
            }
        ],
    }
    folder = tmp_path_factory.mktemp("evil")
    push_package(
        web_publisher,
        folder,
        descriptor,
        {"data/evil.csv": table(), "README.md": README.encode()},
    )
    web_hub.processed(web_publisher, "evil")
    return f"/{web_publisher.username}/evil"


def test_no_script_from_the_data_runs(tab: Tab, web_hub: WebHub, evil: str) -> None:
    page = tab.page
    pages = [
        evil,
        f"{evil}/v/1",
        f"{evil}/v/1/processing",
        f"{evil}/history",
        f"{evil}/changes",
        "/search?q=evil",
        evil.rsplit("/", 1)[0],
        "/",
    ]
    for path in pages:
        answer = page.goto(web_hub.url + path)
        assert answer is not None
        assert answer.status == 200, path
        page.wait_for_load_state("load")
        assert page.evaluate("window.__xss") is None, path
    page.goto(web_hub.url + evil)
    expect(page.locator(".vega")).to_have_attribute("data-drawn", "true")
    page.locator("#preview table").hover()
    page.locator("#preview tbody td").last.hover()
    assert page.evaluate("window.__xss") is None
    assert tab.dialogs == []

    # The text is shown as text.
    expect(page.locator("#dataset-title")).to_have_text(TITLE)
    schema = page.locator("table.schema tbody tr td code").all_inner_texts()
    assert schema == ["year", "count", FIELD_IMG, FIELD_SCRIPT]
    headers = page.locator("#preview thead th").all_inner_texts()
    assert headers == ["#", "year", "count", FIELD_IMG, FIELD_SCRIPT]
    # Only the page's own scripts exist: the bundled ones and the charts' JSON data blocks.
    sources = page.locator("script").evaluate_all(
        "nodes => nodes.map(n => [n.getAttribute('src'), n.getAttribute('type')])"
    )
    for src, kind in sources:
        assert (src or "").startswith("/static/") or kind == "application/json", (src, kind)
    readme = page.locator(".readme .markdown")
    assert readme.locator("script, iframe, svg, img[onerror]").count() == 0
    for link in readme.locator("a").all():
        assert not (link.get_attribute("href") or "").startswith("javascript:")


def test_pages_send_a_policy_that_forbids_inline_script(web_hub: WebHub, evil: str) -> None:
    answer = httpx.get(web_hub.url + evil, headers={"Accept": "text/html"})
    assert answer.status_code == 200
    policy = dict(
        part.split(" ", 1) for part in answer.headers["content-security-policy"].split("; ")
    )
    assert policy["script-src"] == "'self'"
    assert policy["object-src"] == "'none'"
    assert policy["frame-ancestors"] == "'none'"
    assert "<script>window" not in answer.text
    assert "\\u003cscript\\u003e" in answer.text or "&lt;script&gt;" in answer.text


def test_a_chart_never_fetches_what_its_spec_names(tab: Tab, web_hub: WebHub, evil: str) -> None:
    requested: list[str] = []
    tab.page.on("request", lambda request: requested.append(request.url))
    tab.page.goto(web_hub.url + evil)
    expect(tab.page.locator(".vega")).to_have_attribute("data-drawn", "true")
    assert [url for url in requested if not url.startswith(web_hub.url)] == []
