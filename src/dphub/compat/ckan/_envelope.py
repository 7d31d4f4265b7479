"""CKAN's envelope: ``{"help", "success": true, "result"}``, or ``{"help", "success": false,
"error": {"__type", "message", ...}}`` with the status CKAN answers.

CKAN's clients raise by ``__type``: ``Not Found Error`` (404), ``Authorization Error`` (403),
``Validation Error`` (409, with each problem listed under its parameter) and ``Search Query Error``
(400). dphub's errors map onto them here; a token that is not valid is an authorization error, never
taken as anonymous.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlencode

from dphub.errors import DphubError, InvalidJson, InvalidQuery, NotFound

API_VERSION = 3
STATUS_TYPES = {
    413: "Bad Request",
    415: "Bad Request",
    429: "Too Many Requests",
    503: "Service Unavailable",
}
"""``__type`` of the errors CKAN has no type of its own for (CKAN's clients raise their base
error for them)."""


def help_url(base_url: str, action: str) -> str:
    return f"{base_url}/api/{API_VERSION}/action/help_show?{urlencode({'name': action})}"


def success(base_url: str, action: str, result: Any) -> dict[str, Any]:
    return {"help": help_url(base_url, action), "success": True, "result": result}


def bad_request(base_url: str, action: str, problem: str) -> tuple[int, dict[str, Any]]:
    """The answer to a request no action can take: an unknown action, a body that is not a JSON
    object. CKAN's words, in the envelope."""
    error = {"__type": "Bad Request", "message": f"Bad request - {problem}"}
    return 400, {"help": help_url(base_url, action), "success": False, "error": error}


def error_answer(
    base_url: str,
    action: str,
    exc: DphubError,
    *,
    parameters: tuple[str, ...],
    search: bool,
) -> tuple[int, dict[str, Any]]:
    """The status and body of a failed action; ``parameters`` are the action's (a validation
    error is listed under the one its message starts with), ``search`` says that a query problem
    is a search query error."""
    status, error = _error(exc, parameters, search)
    return status, {"help": help_url(base_url, action), "success": False, "error": error}


def _error(
    exc: DphubError, parameters: tuple[str, ...], search: bool
) -> tuple[int, dict[str, Any]]:
    if isinstance(exc, NotFound):
        return 404, {"__type": "Not Found Error", "message": f"Not found: {exc.message}"}
    if exc.status in (401, 403):
        return 403, {"__type": "Authorization Error", "message": f"Access denied: {exc.message}"}
    if isinstance(exc, InvalidJson):
        return 400, {"__type": "Bad Request", "message": f"Bad request - JSON Error: {exc.message}"}
    if isinstance(exc, InvalidQuery) and search:
        message = f"Search Query is invalid: {exc.message}"
        return 400, {"__type": "Search Query Error", "message": message}
    if exc.status in (400, 408, 409):
        error: dict[str, Any] = {"__type": "Validation Error", "message": exc.message}
        field = _parameter_of(exc, parameters)
        if field is not None:
            error[field] = [exc.message]
        return 409, error
    kind = STATUS_TYPES.get(exc.status, "Internal Server Error")
    return exc.status, {"__type": kind, "message": exc.message}


def _parameter_of(exc: DphubError, parameters: tuple[str, ...]) -> str | None:
    """The parameter a validation error is about: named by the error, or the word its message
    starts with when that is one of the action's parameters."""
    for key in ("field", "parameter"):
        if isinstance(exc.details.get(key), str):
            return str(exc.details[key])
    first = re.match(r"[a-z_.]+", exc.message)
    if first and first.group() in parameters:
        return first.group()
    return None
