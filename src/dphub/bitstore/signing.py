"""Signed upload forms for the hub's own bitstore endpoint, in the manner of S3.

Two ways to upload one authorized file, both binding key, exact size, checksum, content type and
expiry with an HMAC-SHA256 signature:

* a presigned **POST** form (``upload_query``): a base64 JSON policy listing its conditions, the
  signature of that policy, and the fields the conditions name; the body is ``multipart/form-data``
  with those fields and then ``file``;
* a presigned **PUT** URL taking the raw body, with the SHA-256 sent as ``x-amz-checksum-sha256``.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import orjson

from dphub.errors import InvalidUpload, PolicyExpired, SignatureMismatch, SizeMismatch

POLICY_FIELD = "policy"
SIGNATURE_FIELD = "x-dphub-signature"
SHA256_FIELD = "x-amz-checksum-sha256"
EXPIRES_PARAM = "X-Dphub-Expires"
SIZE_PARAM = "X-Dphub-Size"
SIGNATURE_PARAM = "X-Dphub-Signature"
# Fields a client may send that no policy condition needs to cover.
FREE_FIELDS = frozenset({POLICY_FIELD, SIGNATURE_FIELD, "file", "success_action_status"})


@dataclass(frozen=True)
class UploadGrant:
    """What the holder of a signed form may upload: exactly these bytes to this key."""

    key: str
    size: int
    content_type: str
    md5_b64: str | None = None
    sha256_b64: str | None = None
    staged: bool = False
    """Upload to a key of the session rather than straight to the content address (the store
    then files the bytes under their SHA-256 when :meth:`BitStore.confirm` is asked)."""

    @property
    def md5_hex(self) -> str | None:
        return _b64_to_hex(self.md5_b64) if self.md5_b64 else None

    @property
    def sha256_hex(self) -> str | None:
        return _b64_to_hex(self.sha256_b64) if self.sha256_b64 else None


class UploadSigner:
    def __init__(self, secret_key: str) -> None:
        # A key of its own, so an upload signature can never pass for a token signature.
        self._key = hmac.new(secret_key.encode(), b"dphub bitstore upload v1", "sha256").digest()

    def sign(self, message: bytes) -> str:
        return hmac.new(self._key, message, "sha256").hexdigest()

    # presigned POST

    def post_form(self, grant: UploadGrant, *, expires_at: int) -> dict[str, str]:
        fields: dict[str, str] = {"key": grant.key, "Content-Type": grant.content_type}
        if grant.md5_b64:
            fields["Content-MD5"] = grant.md5_b64
        if grant.sha256_b64:
            fields[SHA256_FIELD] = grant.sha256_b64
        conditions: list[Any] = [{name: value} for name, value in fields.items()]
        conditions.append(["content-length-range", grant.size, grant.size])
        expiration = datetime.fromtimestamp(expires_at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        policy = base64.b64encode(
            orjson.dumps({"expiration": expiration, "conditions": conditions})
        ).decode()
        return {**fields, POLICY_FIELD: policy, SIGNATURE_FIELD: self.sign(policy.encode())}

    def check_post_form(
        self, fields: Mapping[str, str], *, now: float | None = None
    ) -> UploadGrant:
        """The grant a submitted form carries, after checking its signature, expiry and fields."""
        policy_b64 = fields.get(POLICY_FIELD)
        signature = fields.get(SIGNATURE_FIELD)
        if not policy_b64 or not signature:
            raise InvalidUpload(
                f"The form lacks the '{POLICY_FIELD}' or '{SIGNATURE_FIELD}' field: send every"
                " field of upload_query before the file."
            )
        if not _same(self.sign(policy_b64.encode()), signature):
            raise SignatureMismatch()
        try:
            policy = orjson.loads(base64.b64decode(policy_b64, validate=True))
            expires = datetime.strptime(policy["expiration"], "%Y-%m-%dT%H:%M:%SZ")
            conditions = policy["conditions"]
        except (ValueError, KeyError, TypeError, binascii.Error):
            raise SignatureMismatch("The policy could not be read.") from None
        if expires.replace(tzinfo=UTC).timestamp() < (time.time() if now is None else now):
            raise PolicyExpired()
        bound: dict[str, str] = {}
        size_range: tuple[int, int] | None = None
        for condition in conditions:
            if isinstance(condition, dict):
                bound.update({str(k): str(v) for k, v in condition.items()})
            elif isinstance(condition, list) and condition[:1] == ["content-length-range"]:
                size_range = (int(condition[1]), int(condition[2]))
        for name, value in bound.items():
            if fields.get(name) != value:
                raise SignatureMismatch(
                    f"The form field {name!r} differs from the signed policy.", field=name
                )
        extra = set(fields) - set(bound) - FREE_FIELDS
        if extra:
            raise SignatureMismatch(
                f"The form has fields the policy does not allow: {', '.join(sorted(extra))}."
            )
        if size_range is None or size_range[0] != size_range[1]:
            raise SignatureMismatch("The policy does not fix the file size.")
        return UploadGrant(
            key=bound["key"],
            size=size_range[0],
            content_type=bound.get("Content-Type", "application/octet-stream"),
            md5_b64=bound.get("Content-MD5"),
            sha256_b64=bound.get(SHA256_FIELD),
        )

    # presigned PUT

    def _put_message(self, grant: UploadGrant, expires_at: int) -> bytes:
        parts = ["PUT", grant.key, str(grant.size), grant.sha256_b64 or "", grant.content_type]
        return "\n".join([*parts, str(expires_at)]).encode()

    def put_url(
        self, grant: UploadGrant, *, upload_url: str, expires_at: int
    ) -> tuple[str, dict[str, str]]:
        if not grant.sha256_b64:
            raise ValueError("a presigned PUT needs the SHA-256")
        signature = self.sign(self._put_message(grant, expires_at))
        url = (
            f"{upload_url}/{quote(grant.key)}"
            f"?{SIZE_PARAM}={grant.size}&{EXPIRES_PARAM}={expires_at}&{SIGNATURE_PARAM}={signature}"
        )
        headers = {"Content-Type": grant.content_type, SHA256_FIELD: grant.sha256_b64}
        return url, headers

    def check_put(
        self,
        *,
        key: str,
        query: Mapping[str, str],
        headers: Mapping[str, str],
        size: int | None,
        now: float | None = None,
    ) -> UploadGrant:
        """Check a presigned PUT. ``size`` is the Content-Length, when the client sent one."""
        try:
            expires_at = int(query[EXPIRES_PARAM])
            signed_size = int(query[SIZE_PARAM])
            signature = query[SIGNATURE_PARAM]
        except (KeyError, ValueError):
            raise SignatureMismatch("The upload URL lacks its size, expiry or signature.") from None
        lowered = {name.lower(): value for name, value in headers.items()}
        grant = UploadGrant(
            key=key,
            size=signed_size,
            content_type=lowered.get("content-type", "application/octet-stream"),
            sha256_b64=lowered.get(SHA256_FIELD),
        )
        expected = self.sign(self._put_message(grant, expires_at))
        if not _same(expected, signature):
            raise SignatureMismatch(
                "The upload does not match its signed URL: key, size, content type and"
                f" {SHA256_FIELD} must be sent exactly as authorized."
            )
        if expires_at < (time.time() if now is None else now):
            raise PolicyExpired()
        if size is not None and size != signed_size:
            raise SizeMismatch(
                f"The body has {size} bytes but {signed_size} were authorized.",
                expected=signed_size,
                received=size,
            )
        return grant


class PartSigner:
    """Signed URLs for the parts of a multipart upload to the hub's own endpoint."""

    def __init__(self, signer: UploadSigner) -> None:
        self._signer = signer

    @staticmethod
    def _message(upload_id: str, number: int, size: int, expires_at: int) -> bytes:
        return f"PART\n{upload_id}\n{number}\n{size}\n{expires_at}".encode()

    def url(self, base: str, upload_id: str, number: int, size: int, *, expires_at: int) -> str:
        signature = self._signer.sign(self._message(upload_id, number, size, expires_at))
        return (
            f"{base}/{quote(upload_id)}/{number}"
            f"?{SIZE_PARAM}={size}&{EXPIRES_PARAM}={expires_at}&{SIGNATURE_PARAM}={signature}"
        )

    def check(
        self,
        upload_id: str,
        number: int,
        *,
        query: Mapping[str, str],
        size: int | None,
        now: float | None = None,
    ) -> int:
        """The part's authorized size, after checking the URL's signature, expiry and length."""
        try:
            expires_at = int(query[EXPIRES_PARAM])
            signed_size = int(query[SIZE_PARAM])
            signature = query[SIGNATURE_PARAM]
        except (KeyError, ValueError):
            raise SignatureMismatch("The part URL lacks its size, expiry or signature.") from None
        expected = self._signer.sign(self._message(upload_id, number, signed_size, expires_at))
        if not _same(expected, signature):
            raise SignatureMismatch("The part does not match its signed URL.")
        if expires_at < (time.time() if now is None else now):
            raise PolicyExpired()
        if size is not None and size != signed_size:
            raise SizeMismatch(
                f"The part has {size} bytes but {signed_size} were authorized.",
                expected=signed_size,
                received=size,
            )
        return signed_size


def _same(expected: str, sent: str) -> bool:
    """Whether ``sent`` is the hex signature ``expected``, in constant time. A client may send any
    text, and ``compare_digest`` takes only ASCII strings: anything else is simply not it."""
    return sent.isascii() and hmac.compare_digest(expected, sent)


def _b64_to_hex(value: str) -> str:
    try:
        return base64.b64decode(value, validate=True).hex()
    except (binascii.Error, ValueError):
        raise InvalidUpload("A checksum is not valid base64.") from None


def hex_to_b64(value: str) -> str:
    return base64.b64encode(bytes.fromhex(value)).decode()


def md5_b64_to_hex(value: str) -> str | None:
    """The hex form of a base64 MD5, or ``None`` when it is not a valid one."""
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw.hex() if len(raw) == 16 else None
