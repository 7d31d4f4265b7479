"""The API description at ``/openapi.json``: FastAPI's, finished so it says what the hub answers.

FastAPI documents, for every route with parameters, a 422 "validation error" the hub never sends:
the hub's one error handler (:mod:`dphub.api.errors`) answers 400 with the error body, and every
other failure leaves with that same body. Here each operation lists that body once for every
client error (``4XX``) and for ``503`` (a store that cannot be reached), the 422 goes, and each
method of a route that serves several from one function (``GET, POST /api/datastore/sql``,
``GET, HEAD`` of the file routes) gets an operation id of its own.
"""

from __future__ import annotations

import warnings
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from dphub.bitstore.local import MULTIPART_PATH, UPLOAD_PATH

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "Every failure: a stable code, a sentence, and details some errors add.",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string", "pattern": "^[a-z0-9]+(-[a-z0-9]+)*$"},
                "message": {"type": "string", "minLength": 1},
            },
        }
    },
}
ERROR_CONTENT: dict[str, Any] = {
    "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}
}
ERROR_RESPONSES: dict[str, dict[str, Any]] = {
    "ClientError": {
        "description": "The request was refused: not valid, not allowed, not found, too large,"
        " too many.",
        "content": ERROR_CONTENT,
    },
    "Unavailable": {
        "description": "The hub's database or object storage cannot be reached right now;"
        " nothing was changed. Retry-After says when to try again.",
        "content": ERROR_CONTENT,
    },
    "InsufficientStorage": {
        "description": "The hub's own disk has no room for the file; nothing of it was kept.",
        "content": ERROR_CONTENT,
    },
}
COMMON_ERRORS: dict[str, dict[str, str]] = {
    "4XX": {"$ref": "#/components/responses/ClientError"},
    "503": {"$ref": "#/components/responses/Unavailable"},
}
STORED_BODIES = (UPLOAD_PATH, MULTIPART_PATH)
"""The routes that write a request's body to the hub's own disk, which may be full (507)."""
FASTAPI_VALIDATION = ("HTTPValidationError", "ValidationError")
"""FastAPI's schemas for its 422 answer, which the hub replaces with its own 400."""
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def describe(app: FastAPI) -> dict[str, Any]:
    """The finished API description of ``app``."""
    with warnings.catch_warnings():
        # Routes serving several methods share FastAPI's id; ``_one_id_per_method`` gives each
        # its own and then checks that every id is unique, so no duplicate goes unnoticed.
        warnings.filterwarnings("ignore", message="Duplicate Operation ID", category=UserWarning)
        document = get_openapi(
            title=app.title,
            version=app.version,
            openapi_version=app.openapi_version,
            summary=app.summary,
            description=app.description,
            routes=app.routes,
        )
    _in_method_order(document)
    _one_id_per_method(document)
    _no_body_on_reads(document)
    _document_errors(document)
    return document


def _in_method_order(document: dict[str, Any]) -> None:
    """The methods of each path in one order (FastAPI lists a route's in its set's order, which
    changes from one process to the next)."""
    rank = {method: index for index, method in enumerate(METHODS)}
    document["paths"] = {
        path: dict(sorted(item.items(), key=lambda entry: rank.get(entry[0], -1)))
        for path, item in document.get("paths", {}).items()
    }


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, operation)
        for path, item in document.get("paths", {}).items()
        for method, operation in item.items()
        if method in METHODS
    ]


def _one_id_per_method(document: dict[str, Any]) -> None:
    for item in document.get("paths", {}).values():
        shared: dict[str, list[str]] = {}
        for method in item:
            if method in METHODS:
                shared.setdefault(item[method]["operationId"], []).append(method)
        for operation_id, methods in shared.items():
            if len(methods) < 2:
                continue
            # FastAPI's id ends with one of the route's methods, picked from a set: the stem
            # before it is stable, and each method's id is that stem and the method.
            stem = _without_method_suffix(operation_id, methods)
            for method in methods:
                item[method]["operationId"] = f"{stem}_{method}"
    seen: dict[str, str] = {}
    for path, method, operation in _operations(document):
        operation_id = operation["operationId"]
        if operation_id in seen:
            warnings.warn(
                f"Duplicate Operation ID {operation_id} for {method.upper()} {path} and"
                f" {seen[operation_id]}: give one of the routes its own operation_id",
                stacklevel=1,
            )
        seen[operation_id] = f"{method.upper()} {path}"


def _without_method_suffix(operation_id: str, methods: list[str]) -> str:
    for method in methods:
        if operation_id.endswith(f"_{method}"):
            return operation_id.removesuffix(f"_{method}")
    return operation_id


def _no_body_on_reads(document: dict[str, Any]) -> None:
    """A route serving GET and POST from one function declares the POST's body; a GET's body is
    never read."""
    for _, method, operation in _operations(document):
        if method in ("get", "head"):
            operation.pop("requestBody", None)


def _document_errors(document: dict[str, Any]) -> None:
    for path, _, operation in _operations(document):
        responses = operation.setdefault("responses", {})
        responses.pop("422", None)
        for status, response in COMMON_ERRORS.items():
            responses.setdefault(status, response)
        if path.startswith(STORED_BODIES):
            responses["507"] = {"$ref": "#/components/responses/InsufficientStorage"}
    components = document.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for name in FASTAPI_VALIDATION:
        schemas.pop(name, None)
    schemas["Error"] = ERROR_SCHEMA
    components.setdefault("responses", {}).update(ERROR_RESPONSES)


def install(app: FastAPI) -> None:
    """Serve :func:`describe`'s document at the app's OpenAPI URL (made once, on first use)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = describe(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
