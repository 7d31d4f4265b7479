"""The web pages over plain HTTP on both hubs (SQLite + local disk, PostgreSQL + S3): the showcase
reads the same metastore and datastore as the API, and keeps the same secrets."""

from __future__ import annotations

import contextlib
import itertools
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx

from tests.conftest import HubServer, Publisher, cli, write_package

HTML = {"Accept": "text/html"}
ROWS = 57
_orgs = itertools.count(1)
CSV = "day,visits\n" + "".join(f"2024-01-{1 + i % 28:02d},{i * 3}\n" for i in range(ROWS))


def _push(publisher: Publisher, tmp_path: Path, name: str, *extra: str) -> str:
    folder = write_package(
        tmp_path / name,
        name,
        files={"visits.csv": CSV.encode(), "README.md": b"# Visits\n\nCounted *daily*.\n"},
    )
    cli("push", str(folder), *extra, env=publisher.env)
    return f"/{publisher.username}/{name}"


def _cells(html: str) -> list[list[str]]:
    body = html.split('<section id="preview"', 1)[1].split("</tbody>", 1)[0]
    rows = re.findall(r"<tr>(.*?)</tr>", body, flags=re.S)
    return [re.findall(r"<td[^>]*>(.*?)</td>", row) for row in rows[1:]]


def test_the_showcase_pages_rows_from_the_datastore(
    hub: HubServer, publisher: Publisher, tmp_path: Path
) -> None:
    publisher.login()
    path = _push(publisher, tmp_path, "visits")
    with httpx.Client(base_url=hub.url, headers=HTML, timeout=30) as browser:
        first = browser.get(path)
        assert first.status_code == 200
        assert first.headers["content-type"] == "text/html; charset=utf-8"
        assert f"{ROWS} rows" in first.text
        assert "<em>daily</em>" in first.text
        assert _cells(first.text)[0] == ["1", "2024-01-01", "0"]
        third = browser.get(path, params={"page": 3})
        assert [c[0] for c in _cells(third.text)] == [str(n) for n in range(41, ROWS + 1)]
        assert _cells(third.text)[-1] == [str(ROWS), "2024-01-01", str((ROWS - 1) * 3)]
        # a page past the end shows the last one; nonsense is a 400 page, not a 500
        assert _cells(browser.get(path, params={"page": 99}).text) == _cells(third.text)
        bad = browser.get(path, params={"page": "x"})
        assert bad.status_code == 400
        assert "text/html" in bad.headers["content-type"]
        # the chart carries the table's first rows inline, as JSON that cannot close the script
        assert '"mark": {"point": true' in first.text
        for page in ("/history", "/changes", "/v/1", "/v/1/processing"):
            answer = browser.get(path + page)
            assert answer.status_code == 200, page
    # programs still get JSON at the same address
    assert httpx.get(hub.url + path).json()["name"] == "visits"


def test_private_datasets_are_404_pages_for_others(
    hub: HubServer, publisher: Publisher, tmp_path: Path
) -> None:
    publisher.login()
    path = _push(publisher, tmp_path, "hidden", "--private")
    for page in ("", "/v/1", "/v/1/processing", "/history", "/changes"):
        answer = httpx.get(hub.url + path + page, headers=HTML)
        assert answer.status_code == 404, page
        assert "<h1>Not found</h1>" in answer.text
        assert "hidden" not in answer.text.split("<main", 1)[1].split("</main>", 1)[0]
    with _signed_in(hub, publisher) as browser:
        assert browser.get(path).status_code == 200
        assert browser.get("/search?q=hidden").text.count(f'href="{path}"') == 1
    anonymous = httpx.get(f"{hub.url}/search", params={"q": "hidden"}, headers=HTML)
    assert f'href="{path}"' not in anonymous.text


@contextlib.contextmanager
def _signed_in(hub: HubServer, publisher: Publisher) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=hub.url, headers=HTML, timeout=30) as browser:
        browser.get("/login")
        form = {
            "login": publisher.username,
            "password": publisher.password,
            "csrf": browser.cookies["dphub_csrf"],
        }
        assert browser.post("/login", data=form).status_code == 303
        yield browser


def test_owners_manage_members_from_the_organizations_page(
    hub: HubServer, make_publisher: Callable[..., Publisher]
) -> None:
    boss, newcomer, outsider = (make_publisher(p) for p in ("wboss", "wnew", "wout"))
    org = f"weborg{next(_orgs)}-{boss.username[-6:]}"
    with boss.client() as client:
        assert client.post("/api/org", json={"name": org}).status_code == 201
    with _signed_in(hub, boss) as browser:
        csrf = browser.cookies["dphub_csrf"]
        page = browser.get(f"/{org}")
        assert "Add or change member" in page.text
        added = browser.post(
            f"/{org}/members", data={"username": newcomer.username, "role": "editor", "csrf": csrf}
        )
        assert added.status_code == 303
        members = browser.get(f"/{org}").text.split('id="members"', 1)[1]
        assert f">{newcomer.username}</a></td>\n        <td>editor</td>" in members
    with _signed_in(hub, outsider) as browser:
        page = browser.get(f"/{org}")
        assert page.status_code == 200
        assert 'id="members"' not in page.text
        refused = browser.post(
            f"/{org}/members/{newcomer.username}/remove",
            data={"csrf": browser.cookies["dphub_csrf"]},
        )
        assert refused.status_code == 403
        assert "text/html" in refused.headers["content-type"]
    with _signed_in(hub, boss) as browser:
        removed = browser.post(
            f"/{org}/members/{newcomer.username}/remove",
            data={"csrf": browser.cookies["dphub_csrf"]},
        )
        assert removed.status_code == 303
        assert newcomer.username not in browser.get(f"/{org}").text
