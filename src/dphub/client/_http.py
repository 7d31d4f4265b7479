"""Turning the hub's (or the object store's) error answers into dphub's typed exceptions."""

from __future__ import annotations

import re
from urllib.parse import urljoin, urlsplit

import httpx

from dphub.errors import (
    ChecksumMismatch,
    DphubError,
    Forbidden,
    PolicyExpired,
    SignatureMismatch,
    SizeMismatch,
    from_body,
)

# The storage behind a presigned URL may be S3, which answers errors in XML, not in the hub's JSON.
_S3_CODES: dict[str, type[DphubError]] = {
    "BadDigest": ChecksumMismatch,
    "InvalidDigest": ChecksumMismatch,
    "XAmzContentSHA256Mismatch": ChecksumMismatch,
    "EntityTooLarge": SizeMismatch,
    "EntityTooSmall": SizeMismatch,
    "IncompleteBody": SizeMismatch,
    "SignatureDoesNotMatch": SignatureMismatch,
    "ExpiredToken": PolicyExpired,
    "AccessDenied": Forbidden,
}
_XML_FIELD = re.compile(r"<(Code|Message)>([^<]*)</\1>")


def raise_for_status(response: httpx.Response) -> None:
    """Raise the typed :class:`~dphub.errors.DphubError` an unsuccessful answer stands for."""
    if response.is_success:
        return
    response.read()
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        raise from_body(response.status_code, body)
    s3 = _s3_error(response.text)
    if s3 is not None:
        raise s3
    error = from_body(response.status_code, body)
    where = f"{response.request.method} {_without_query(response.url)}"
    raise type(error)(f"{error.message} ({where})", **error.details)


def _s3_error(text: str) -> DphubError | None:
    fields = dict(_XML_FIELD.findall(text[:10000]))
    code = fields.get("Code")
    if not code:
        return None
    message = fields.get("Message") or code
    if code == "AccessDenied" and "expired" in message.lower():
        return PolicyExpired(f"The storage refused the upload: {message}", storage_code=code)
    cls = _S3_CODES.get(code, DphubError)
    return cls(f"The storage refused the request: {message}", storage_code=code)


def _without_query(url: httpx.URL) -> str:
    # Signed URLs carry their signature (and sometimes a token) in the query: never print it.
    return str(url.copy_with(query=None))


def absolute(server: str, url: str) -> str:
    """``url`` resolved against the hub, for answers that give paths rather than full URLs."""
    return urljoin(server.rstrip("/") + "/", url)


def same_origin(a: str, b: str) -> bool:
    first, second = urlsplit(a), urlsplit(b)
    return (first.scheme, first.netloc.lower()) == (second.scheme, second.netloc.lower())
