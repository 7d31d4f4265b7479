"""Every route declares the action it needs, and docs/permissions.md lists exactly those routes."""

from __future__ import annotations

from pathlib import Path

from dphub.auth.permissions import Action
from tests.routes import (
    FINDABILITIES,
    all_routes,
    app_routes,
    documented_matrix,
    documented_routes,
    page_routes,
)


def test_every_route_declares_an_action(tmp_path: Path) -> None:
    undeclared = [r for r in all_routes(tmp_path) if r.action is None]
    assert undeclared == []
    known = {a.value for a in Action}
    assert {r.action for r in all_routes(tmp_path)} <= known


def test_the_documented_route_table_is_the_apps(tmp_path: Path) -> None:
    app = sorted(app_routes(tmp_path), key=lambda r: (r.path, r.methods))
    documented = sorted(documented_routes(), key=lambda r: (r.path, r.methods))
    assert documented == app


def test_the_documented_page_table_is_the_apps(tmp_path: Path) -> None:
    app = sorted(page_routes(tmp_path), key=lambda r: (r.path, r.methods))
    documented = sorted(documented_routes("Web pages"), key=lambda r: (r.path, r.methods))
    assert documented == app


def test_the_matrix_covers_every_declared_action_and_findability(tmp_path: Path) -> None:
    matrix = documented_matrix()
    for route in all_routes(tmp_path):
        assert route.action is not None
        for findability in FINDABILITIES:
            assert (route.action, findability) in matrix or (route.action, "any") in matrix
