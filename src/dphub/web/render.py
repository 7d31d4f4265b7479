"""Turning page data into HTML: the template environment, Markdown, and the headers every page has."""

from __future__ import annotations

from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import nh3
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markdown_it import MarkdownIt
from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import HTMLResponse

from dphub.web.assets import asset_url
from dphub.web.session import csrf_token, finish, viewer_of

TEMPLATES = Path(__file__).parent / "templates"

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        # Vega positions chart labels with style attributes; no script runs from them.
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
        "form-action 'self'",
    )
)
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}

ALLOWED_TAGS = frozenset(
    {
        "a", "abbr", "b", "blockquote", "br", "code", "dd", "del", "details", "dl", "dt", "em",
        "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "img", "kbd", "li", "ol", "p", "pre", "s",
        "strong", "sub", "summary", "sup", "table", "tbody", "td", "th", "thead", "tr", "ul",
    }
)  # fmt: skip
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "title"},
    "th": {"style"},
    "td": {"style"},
    "code": {"class"},
}


HEADING_SHIFT = 2


@cache
def _markdown() -> MarkdownIt:
    # Raw HTML in the text is shown as text, never passed through; links with unsafe schemes
    # (javascript:, vbscript:, data: except images) are refused by markdown-it itself.
    return MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table")


def markdown(text: str | None) -> Markup:
    """The README as HTML: rendered from Markdown, then cleaned to a list of harmless tags."""
    if not text:
        return Markup("")
    md = _markdown()
    tokens = md.parse(text)
    for token in tokens:
        if token.type in ("heading_open", "heading_close"):
            # The README sits under the page's own headings: its # is the page's third level.
            token.tag = f"h{min(6, int(token.tag[1]) + HEADING_SHIFT)}"
    html = md.renderer.render(tokens, md.options, {})
    cleaned = nh3.clean(
        html,
        tags=set(ALLOWED_TAGS),
        attributes={k: set(v) for k, v in ALLOWED_ATTRIBUTES.items()},
        url_schemes={"http", "https", "mailto"},
        link_rel="nofollow noopener noreferrer",
    )
    return Markup(cleaned)  # noqa: S704 - cleaned by nh3 to the tags above


def size(value: int | None) -> str:
    """Bytes in the unit a person reads (1.4 MB)."""
    if value is None:
        return "—"
    amount = float(value)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if amount < 1000 or unit == "TB":
            return f"{int(amount)} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1000
    return f"{value} B"


def number(value: int | None) -> str:
    return "—" if value is None else f"{value:,}"


def when(value: datetime | str | None) -> str:
    if value is None:
        return "—"
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.strftime("%Y-%m-%d %H:%M UTC")


def cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    isoformat = getattr(value, "isoformat", None)
    return str(isoformat()) if callable(isoformat) else str(value)


def with_query(request: Request, **changes: Any) -> str:
    """This page's path with some query parameters changed (``None`` removes one)."""
    params = dict(request.query_params)
    for key, value in changes.items():
        if value is None:
            params.pop(key, None)
        else:
            params[key] = str(value)
    query = urlencode(params)
    return f"{request.url.path}?{query}" if query else request.url.path


@cache
def environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(default=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        size=size, number=number, when=when, cell=cell, markdown=markdown, urlpart=quote
    )
    env.globals["asset"] = asset_url
    return env


def page(
    request: Request,
    template: str,
    context: dict[str, Any],
    *,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    """A rendered page with the security headers; never cached by shared caches."""
    values = {
        "request": request,
        "viewer": viewer_of(request),
        "csrf": csrf_token(request),
        "with_query": lambda **changes: with_query(request, **changes),
        **context,
    }
    html = environment().get_template(template).render(values)
    response = HTMLResponse(html, status_code=status_code)
    response.headers.update(PAGE_HEADERS)
    response.headers.setdefault("Cache-Control", "private, no-cache")
    response.headers.update(headers or {})
    finish(request, response)
    return response
