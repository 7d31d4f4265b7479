"""The descriptions the fuzz tests are generated from, built from the app in this process (the
hub serves the same ``/openapi.json``): the API's own, and one of the web pages, which the API's
leaves out, made from the app's route table."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts

from dphub.api.app import create_app
from dphub.api.openapi import ERROR_SCHEMA
from dphub.config import Settings


def _app() -> FastAPI:
    with tempfile.TemporaryDirectory() as data_dir:
        return create_app(Settings(data_dir=Path(data_dir)))


def labels(document: dict[str, Any]) -> list[str]:
    """``METHOD /path`` of every operation of a description, in its order."""
    return [
        f"{method.upper()} {path}"
        for path, item in document["paths"].items()
        for method in item
        if method != "parameters"
    ]


def page_document(app: FastAPI) -> dict[str, Any]:
    """An API description of the web pages, from the app's routes: their path and query
    parameters, form bodies, and answers that are pages (or redirects)."""
    paths: dict[str, dict[str, Any]] = {}
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        if not isinstance(route, APIRoute) or "web" not in (context.tags or []):
            continue
        parameters = [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in route.param_convertors
        ]
        parameters += [
            {
                "name": field.alias,
                "in": "query",
                "required": field.field_info.is_required(),
                "schema": _query_schema(field.field_info.annotation),
            }
            for field in route.dependant.query_params
        ]
        for method in sorted(context.methods):
            operation: dict[str, Any] = {
                "operationId": f"page_{route.name}_{method.lower()}",
                "parameters": parameters,
                "responses": {
                    "2XX": {"description": "A page", "content": _page_content(route.path)},
                    "3XX": {"description": "Elsewhere (signing in, after a form)"},
                    "4XX": {"description": "What went wrong", "content": PAGE_ERROR},
                },
            }
            if method == "POST":
                form = {"type": "object", "additionalProperties": {"type": "string"}}
                operation["requestBody"] = {
                    "required": True,
                    "content": {"application/x-www-form-urlencoded": {"schema": form}},
                }
            paths.setdefault(context.path_format, {})[method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": "dphub pages", "version": "1"},
        "paths": paths,
        "components": {"schemas": {"Error": ERROR_SCHEMA}},
    }


PAGE_ERROR = {
    "text/html": {"schema": {"type": "string"}},
    # a URL no page matches (/static/ with a newline in it) is answered by the API's routes
    "application/json": {"schema": {"$ref": "#/components/schemas/Error"}},
}


def _query_schema(annotation: Any) -> dict[str, Any]:
    if annotation is int:
        return {"type": "integer"}
    if getattr(annotation, "__origin__", None) is list:
        return {"type": "array", "items": {"type": "string"}}
    return {"type": "string"}


def _page_content(path: str) -> dict[str, Any]:
    page = {"text/html": {"schema": {"type": "string"}}}
    if path.startswith("/static/"):
        # stylesheets, scripts and images
        return {"*/*": {"schema": {}}}
    if path == "/":
        # the hub's description, for a client that does not ask for a page
        return {**page, "application/json": {"schema": {"type": "object"}}}
    return page


APP = _app()
API = APP.openapi()
PAGES = page_document(APP)
