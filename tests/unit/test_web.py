"""The web pages' own parsing and cleaning: Markdown, chart specs, asset paths, form checks."""

from __future__ import annotations

import pytest
from starlette.requests import Request

from dphub.errors import CsrfFailed
from dphub.web.assets import asset_url
from dphub.web.render import markdown, size
from dphub.web.session import CSRF_COOKIE, check_form
from dphub.web.showcase import ResourceView
from dphub.web.views import _from_simple, field_ref


@pytest.mark.parametrize(
    ("text", "absent"),
    [
        ("<script>alert(1)</script>", "<script"),
        ('<img src=x onerror="alert(1)">', "<img"),
        ("[x](javascript:alert(1))", 'href="javascript'),
        ("[x](JaVaScRiPt:alert(1))", "href"),
        ("![x](data:text/html;base64,PHNjcmlwdD4=)", 'src="data'),
        ('<a href="javascript:alert(1)">a</a>', "<a "),
        ("<iframe src=//evil></iframe>", "<iframe"),
        ('<div style="background:url(javascript:x)">', "<div"),
    ],
)
def test_markdown_leaves_no_script(text: str, absent: str) -> None:
    html = str(markdown(text))
    assert absent.lower() not in html.lower()


def test_markdown_renders_the_usual_things() -> None:
    html = str(
        markdown("# Title\n\n**bold** and [a link](https://example.org)\n\n| a |\n|---|\n| 1 |\n")
    )
    assert "<h3>Title</h3>" in html  # the page's own headings come first
    assert "<strong>bold</strong>" in html
    assert 'href="https://example.org"' in html
    assert 'rel="nofollow noopener noreferrer"' in html
    assert "<td>1</td>" in html
    assert str(markdown(None)) == ""


def test_sizes_read_like_a_person_writes_them() -> None:
    assert [size(v) for v in (None, 0, 999, 1000, 1_500_000, 3 * 10**12)] == [
        "—",
        "0 B",
        "999 B",
        "1.0 kB",
        "1.5 MB",
        "3.0 TB",
    ]


def test_field_names_are_escaped_for_vega_lite() -> None:
    assert field_ref("a.b[0]") == "a\\.b\\[0\\]"
    assert field_ref("plain") == "plain"


def _resource(*fields: tuple[str, str]) -> ResourceView:
    return ResourceView(
        index=0,
        name="r",
        title=None,
        description=None,
        format="csv",
        size=1,
        rows=1,
        downloads=[],
        fields=[{"name": n, "type": t} for n, t in fields],
        table=None,
    )


def test_datahub_simple_specs_become_vega_lite() -> None:
    resource = _resource(("year", "integer"), ("a", "number"), ("b", "number"))
    spec = _from_simple({"type": "bar", "group": "year", "series": ["a", "b", "missing"]}, resource)
    assert spec is not None
    assert spec["mark"]["type"] == "bar"
    assert spec["transform"] == [{"fold": ["a", "b"], "as": ["series", "value"]}]
    assert spec["encoding"]["x"]["field"] == "year"
    assert _from_simple({"group": "nope", "series": ["a"]}, resource) is None
    assert _from_simple({"group": "year", "series": "a"}, resource) is None


@pytest.mark.parametrize(
    "path", ["../render.py", "vendor/../../x.js", ".hidden.js", "a/b/c.js", ""]
)
def test_assets_outside_the_folder_are_not_served(path: str) -> None:
    with pytest.raises(ValueError, match="no static asset"):
        asset_url(path)


def test_assets_are_addressed_by_their_hash() -> None:
    url = asset_url("dphub.js")
    assert url.startswith("/static/dphub.js?v=")
    assert len(url.rsplit("=", 1)[1]) == 16


def _request(cookie: str | None, origin: str | None = None) -> Request:
    headers = []
    if cookie is not None:
        headers.append((b"cookie", f"{CSRF_COOKIE}={cookie}".encode()))
    if origin is not None:
        headers.append((b"origin", origin.encode()))
    scope = {
        "type": "http",
        "method": "POST",
        "scheme": "http",
        "server": ("hub.example", 80),
        "path": "/login",
        "headers": [(b"host", b"hub.example"), *headers],
    }
    return Request(scope)


def test_forms_must_carry_the_cookies_token() -> None:
    token = "t" * 43
    check_form(_request(token), {"csrf": token})
    check_form(_request(token, "http://hub.example"), {"csrf": token})
    for request, form in [
        (_request(None), {"csrf": token}),
        (_request(token), {}),
        (_request(token), {"csrf": "u" * 43}),
        (_request(token, "https://evil.example"), {"csrf": token}),
    ]:
        with pytest.raises(CsrfFailed):
            check_form(request, form)
