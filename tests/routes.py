"""The app's route table and the documented one (docs/permissions.md), for the permission tests."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from fastapi.routing import APIRoute

from dphub.api.app import create_app
from dphub.config import Settings

DOC = Path(__file__).resolve().parents[1] / "docs" / "permissions.md"
PRINCIPALS = (
    "anonymous",
    "unrelated user",
    "viewer",
    "editor",
    "owner",
    "org owner",
    "site admin",
)
FINDABILITIES = ("published", "unlisted", "private")
FRAMEWORK_PATHS = frozenset({"/openapi.json", "/api/docs", "/docs/oauth2-redirect"})
"""FastAPI's own pages: the API description, public by nature."""


@dataclass(frozen=True)
class Route:
    methods: tuple[str, ...]
    path: str
    action: str | None
    page: bool = False
    """One of the web pages (tagged ``web``), listed apart in the doc."""


def _walk(routes: list[object]) -> list[APIRoute | object]:
    found: list[APIRoute | object] = []
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:
            found.extend(_walk(list(inner.routes)))
        else:
            found.append(route)
    return found


def app_routes(tmp: Path) -> list[Route]:
    """Every API route of the app with the action it declares (``None`` when it declares none)."""
    return [r for r in all_routes(tmp) if not r.page]


def page_routes(tmp: Path) -> list[Route]:
    """Every web page route of the app with the action it declares."""
    return [r for r in all_routes(tmp) if r.page]


def all_routes(tmp: Path) -> list[Route]:
    app = create_app(Settings(data_dir=tmp))
    table = []
    for route in _walk(list(app.routes)):
        path = getattr(route, "path", "")
        if path in FRAMEWORK_PATHS:
            continue
        extra = route.openapi_extra if isinstance(route, APIRoute) else None
        action = (extra or {}).get("x-dphub-action")
        methods = tuple(sorted(m for m in getattr(route, "methods", ()) if m != "HEAD"))
        page = "web" in (getattr(route, "tags", None) or ())
        table.append(Route(methods, re.sub(r":\w+}", "}", path), action, page))
    return table


def _rows(heading: str) -> list[list[str]]:
    text = DOC.read_text()
    section = text.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        if line.startswith("|") and not line.startswith("|---"):
            rows.append([cell.strip().strip("`") for cell in line.strip("|").split("|")])
    return rows[1:]


def documented_routes(heading: str = "Routes") -> list[Route]:
    page = heading == "Web pages"
    return [
        Route(tuple(sorted(m.strip() for m in methods.split(","))), path, action, page)
        for methods, path, action in _rows(heading)
    ]


def documented_matrix() -> dict[tuple[str, str], dict[str, str]]:
    """``{(action, findability): {principal: "✓" | "sig" | "401" | ...}}``."""
    matrix = {}
    for row in _rows("The authorization matrix"):
        action, findability, *cells = row
        assert len(cells) == len(PRINCIPALS), row
        matrix[(action, findability)] = dict(zip(PRINCIPALS, cells, strict=True))
    return matrix


def expected(action: str, findability: str, principal: str) -> str:
    matrix = documented_matrix()
    row = matrix.get((action, findability)) or matrix[(action, "any")]
    return row[principal]
