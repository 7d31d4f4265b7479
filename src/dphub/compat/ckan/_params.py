"""An action's parameters, as a GET query string (text) or a POST body (JSON values) carries them.

CKAN takes either for each parameter: ``rows=5`` or ``"rows": 5``, ``filters={"a": 1}`` as JSON text
or as an object. Each reader accepts both and raises a validation error naming the parameter.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from dphub.errors import InvalidRequest

Params = Mapping[str, Any]
MISSING = "Missing value"
"""CKAN's words for a required parameter that was not sent."""


def given(params: Params, key: str) -> Any:
    """The value sent, ``None`` for an absent or empty one."""
    value = params.get(key)
    return None if value == "" else value


def text(params: Params, key: str, *, required: bool = False) -> str | None:
    value = given(params, key)
    if value is None:
        if required:
            raise InvalidRequest(MISSING, field=key)
        return None
    if not isinstance(value, str):
        raise InvalidRequest(f"{key} must be text.", field=key)
    return value


def whole(params: Params, key: str, default: int, *, most: int) -> int:
    """A natural number; one above ``most`` is cut to it, as CKAN cuts ``rows``."""
    value = given(params, key)
    if value is None:
        return default
    if isinstance(value, str) and re.fullmatch(r"\s*-?\d{1,30}\s*", value):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidRequest(f"{key} must be a natural number (0, 1, 2, ...).", field=key)
    return min(value, most)


def flag(params: Params, key: str, default: bool) -> bool:
    value = given(params, key)
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
        return value.lower() in ("true", "1", "yes")
    raise InvalidRequest(f"{key} must be true or false.", field=key)


def json_value(params: Params, key: str, kind: type, example: str) -> Any:
    """A JSON value of type ``kind``, sent as JSON or as JSON text."""
    value = given(params, key)
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except (ValueError, RecursionError):  # RecursionError: nested a thousand levels deep
            raise InvalidRequest(f"{key} is not valid JSON: send {example}.", field=key) from None
    if not isinstance(value, kind):
        raise InvalidRequest(f"{key} must be JSON like {example}.", field=key)
    return value


def names(params: Params, key: str) -> list[str] | None:
    """A list of names: a JSON list, JSON text of one, or a single name."""
    value = given(params, key)
    if isinstance(value, str) and not value.lstrip().startswith("["):
        return [value]
    found = json_value(params, key, list, '["a", "b"]')
    if found is None:
        return None
    if not all(isinstance(n, str) for n in found):
        raise InvalidRequest(f"{key} must list names.", field=key)
    return [str(n) for n in found]


def json_text(params: Params, key: str, kind: type, example: str) -> str | None:
    """A parameter as dphub's own query string carries it: text as it is, a JSON value of type
    ``kind`` as JSON text."""
    value = given(params, key)
    if value is None or isinstance(value, str):
        return value
    if not isinstance(value, kind):
        raise InvalidRequest(f"{key} must be text or JSON like {example}.", field=key)
    return json.dumps(value)
