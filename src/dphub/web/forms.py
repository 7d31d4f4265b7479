"""Reading the web pages' forms: small, URL-encoded, and checked against cross-site requests."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import parse_qs

from fastapi import Depends, Request

from dphub.api.body import read_bounded
from dphub.errors import InvalidRequest, UnsupportedMediaType
from dphub.web.session import check_form

MAX_FORM = 16 * 1024
"""Bytes a page's form may send (every form here is a few fields)."""


async def read_form(request: Request) -> dict[str, str]:
    """The form's fields (first value of each), once the CSRF token has been checked."""
    kind = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        raise UnsupportedMediaType("Send the page's form as application/x-www-form-urlencoded.")
    body = await read_bounded(request, MAX_FORM)
    try:
        text = body.decode()
    except UnicodeDecodeError:
        raise InvalidRequest("The form is not valid UTF-8.") from None
    fields = {k: v[0] for k, v in parse_qs(text, keep_blank_values=True).items()}
    check_form(request, fields)
    return fields


Form = Annotated[dict[str, str], Depends(read_form)]


def field(form: dict[str, str], name: str, *, required: bool = True) -> str:
    value = form.get(name, "").strip()
    if required and not value:
        raise InvalidRequest(f"Fill in {name.replace('_', ' ')}.", field=name)
    return value
