"""The error catalog: every failure dphub reports has a stable slug, an HTTP status and a sentence.

The server turns a :class:`DphubError` into ``{"error": {"code", "message", ...details}}`` in one place
(``dphub.api.errors``); the client turns that body back into the same class (:func:`from_body`), so a
program using :mod:`dphub.client` can ``except PackageNotFound`` whichever side raised it.
This module is pure Python: it is shared by the server, the client and the CLI.
"""

from __future__ import annotations

from typing import Any, ClassVar


class DphubError(Exception):
    """Base of every error dphub reports. Subclasses fix ``code`` and ``status``."""

    code: ClassVar[str] = "internal-error"
    status: ClassVar[int] = 500
    default_message: ClassVar[str] = "The hub ran into an unexpected problem."
    hint: ClassVar[str | None] = None

    refused: bool = False
    """Set on an answer that hides a refusal (a private package reported as not found), so the
    hub logs it like the refusal it is; never part of the body."""

    def __init__(self, message: str | None = None, /, **details: Any) -> None:
        self.message = message or self.default_message
        self.details = details
        super().__init__(self.message)

    def to_body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, **self.details}}


# 400: the request itself is wrong


class InvalidRequest(DphubError):
    code = "invalid-request"
    status = 400
    default_message = "The request is not valid."


class InvalidName(InvalidRequest):
    code = "invalid-name"
    default_message = (
        "Names must match ^[a-z0-9][a-z0-9_.-]{0,99}$: lowercase letters, digits, '_', '.', '-'."
    )


class InvalidPath(InvalidRequest):
    code = "invalid-path"
    default_message = "File paths must be relative, use '/', and stay inside the package."


class InvalidJson(InvalidRequest):
    code = "invalid-json"
    default_message = "The body is not valid JSON."


class InvalidDescriptor(InvalidRequest):
    code = "invalid-descriptor"
    default_message = "The datapackage.json does not follow the Data Package specification."


class InvalidUpload(InvalidRequest):
    code = "invalid-upload"
    default_message = "The upload does not match what was authorized."


class SizeMismatch(InvalidUpload):
    code = "size-mismatch"
    default_message = "The uploaded file does not have the size that was authorized."


class ChecksumMismatch(InvalidUpload):
    code = "checksum-mismatch"
    default_message = "The uploaded bytes do not match the checksum that was authorized."


class InvalidTag(InvalidRequest):
    code = "invalid-tag"
    default_message = (
        "Tags use 1 to 100 letters, digits, '.', '_', '-' or '+', and never look like a revision"
        " number, 'latest' or 'successful'."
    )


class InvalidQuery(InvalidRequest):
    code = "invalid-query"
    default_message = "The query is not one the datastore accepts."


# 401 and 403: who you are and what you may do


class Unauthenticated(DphubError):
    code = "unauthenticated"
    status = 401
    default_message = "This needs a login: send a token in Auth-Token or Authorization: Bearer."
    hint = "Run `dphub login` first."


class InvalidCredentials(Unauthenticated):
    code = "invalid-credentials"
    default_message = "The username, email, password or API key is not right."


class InvalidToken(Unauthenticated):
    code = "invalid-token"
    default_message = "The token is not valid: it is malformed, tampered with or revoked."


class TokenExpired(Unauthenticated):
    code = "token-expired"
    default_message = "The token has expired."


class Forbidden(DphubError):
    code = "forbidden"
    status = 403
    default_message = "You are not allowed to do this."


class InsufficientScope(Forbidden):
    code = "insufficient-scope"
    default_message = "The API key's scope does not cover this."


class PolicyExpired(Forbidden):
    code = "policy-expired"
    default_message = "The signed upload form has expired: ask for a new one."


class SignatureMismatch(Forbidden):
    code = "signature-mismatch"
    default_message = "The upload signature does not match its fields: the form was altered."


class CsrfFailed(Forbidden):
    code = "csrf-failed"
    default_message = (
        "This form has expired or did not come from this hub's pages: reload the page and send"
        " it again."
    )


class QuotaExceeded(Forbidden):
    code = "quota-exceeded"
    default_message = "This would take the publisher past a storage or package limit."
    hint = "Ask a site administrator for a larger quota, or purge packages you no longer need."


# 404: nothing there (or nothing you may see)


class NotFound(DphubError):
    code = "not-found"
    status = 404
    default_message = "Nothing is here."


class PackageNotFound(NotFound):
    code = "package-not-found"
    default_message = "No such package."


class RevisionNotFound(NotFound):
    code = "revision-not-found"
    default_message = "No such revision of this package."


class ResourceNotFound(NotFound):
    code = "resource-not-found"
    default_message = "No such resource or file in this package."


class TableNotFound(NotFound):
    code = "table-not-found"
    default_message = "No datastore table answers to this resource id."


class UploadSessionNotFound(NotFound):
    code = "upload-session-not-found"
    default_message = "No open upload session matches this URL: authorize the upload again."


class PublisherNotFound(NotFound):
    code = "publisher-not-found"
    default_message = "No such publisher."


class UserNotFound(NotFound):
    code = "user-not-found"
    default_message = "No such user."


class KeyNotFound(NotFound):
    code = "key-not-found"
    default_message = "No such API key of yours."


class QueryTimeout(DphubError):
    code = "query-timeout"
    status = 408
    default_message = "The query ran longer than the datastore allows; narrow it down."


# 409 and friends: the state does not allow it


class Conflict(DphubError):
    code = "conflict"
    status = 409
    default_message = "The request conflicts with the current state."


class UploadIncomplete(Conflict):
    code = "upload-incomplete"
    default_message = "Some files of the upload session have not been uploaded yet."


class UploadMismatch(Conflict):
    code = "upload-mismatch"
    default_message = "A stored upload does not match the size or checksum that was authorized."


class NotProcessed(Conflict):
    code = "not-processed"
    default_message = "This revision has not been processed successfully."


class AlreadyExists(Conflict):
    code = "already-exists"
    default_message = "This already exists."


class PackageDeleted(Conflict):
    code = "package-deleted"
    default_message = "This package was deleted: undelete it, or purge it to reuse its name."
    hint = "Run `dphub undelete OWNER/NAME` to bring it back, or `dphub purge OWNER/NAME` first."


class TagExists(Conflict):
    code = "tag-exists"
    default_message = "This tag already names another revision; tags move only when forced."
    hint = "Tags are immutable: choose another name, or (as an owner) move it with --force."


class RateLimited(DphubError):
    """Too many attempts; ``retry_after`` (seconds) goes to the ``Retry-After`` header too."""

    code = "rate-limited"
    status = 429
    default_message = "Too many attempts: wait a little and try again."


class PayloadTooLarge(DphubError):
    code = "payload-too-large"
    status = 413
    default_message = "The body is larger than allowed."


class HeadersTooLarge(DphubError):
    code = "headers-too-large"
    status = 431
    default_message = "The request's headers are larger than the hub accepts."


class BodyStalled(DphubError):
    code = "body-stalled"
    status = 408
    default_message = "The request body stopped arriving; send it again."


class TooManyUploads(DphubError):
    """A publisher has as many pushes in progress as the hub allows at once."""

    code = "too-many-uploads"
    status = 429
    default_message = "This publisher has too many pushes in progress; finish one first."


class RangeNotSatisfiable(DphubError):
    code = "range-not-satisfiable"
    status = 416
    default_message = "The requested byte range is outside the file."


class MethodNotAllowed(DphubError):
    code = "method-not-allowed"
    status = 405
    default_message = "This method is not allowed on this URL."


class UnsupportedMediaType(DphubError):
    code = "unsupported-media-type"
    status = 415
    default_message = "The body's content type is not accepted here."


class ServiceUnavailable(DphubError):
    code = "service-unavailable"
    status = 503
    default_message = "The hub cannot serve this right now; try again shortly."


class InsufficientStorage(DphubError):
    """The hub's own disk has no room left for a file; nothing of it was kept."""

    code = "insufficient-storage"
    status = 507
    default_message = (
        "The hub has run out of storage space: the file was not stored, and nothing of it was kept."
    )
    hint = (
        "This is on the hub's side: ask its operator to free space (dphub gc removes unused"
        " files), then run the same dphub push again."
    )


class ConfigurationError(DphubError):
    code = "configuration-error"
    status = 500
    default_message = "The hub's configuration is not valid."


# Backups (dphub admin export / import)


class BackupInvalid(InvalidRequest):
    """The backup does not verify: a file is missing, or a hash, size or count does not match."""

    code = "backup-invalid"
    default_message = "The backup does not verify against its manifest."
    hint = "Use an intact copy of the backup; nothing was imported."


class BackupIncompatible(Conflict):
    code = "backup-incompatible"
    default_message = "This hub cannot take this backup."


class HubNotEmpty(Conflict):
    code = "hub-not-empty"
    default_message = "A backup is imported only into an empty hub."
    hint = "Import into a new hub: a fresh data dir, or an empty database and bucket."


class BlobMissing(DphubError):
    """A blob the metastore references is not in the bitstore, or not whole."""

    code = "blob-missing"
    default_message = "A file the metastore references is not in the bitstore."


class BackupExists(AlreadyExists):
    code = "backup-exists"
    default_message = "The backup folder already exists and is not empty."
    hint = "Choose a new folder: a backup is never written over another one."


def _catalog() -> dict[str, type[DphubError]]:
    found: dict[str, type[DphubError]] = {}
    pending: list[type[DphubError]] = [DphubError]
    while pending:
        cls = pending.pop()
        found[cls.code] = cls
        pending.extend(cls.__subclasses__())
    return found


CATALOG: dict[str, type[DphubError]] = _catalog()


def from_body(status: int, body: Any) -> DphubError:
    """Rebuild the typed error from an error body the hub (or an older hub) sent."""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        cls = _status_fallback(status)
        return cls(f"The hub answered HTTP {status} without an error body.")
    details = {k: v for k, v in error.items() if k not in ("code", "message")}
    code = str(error.get("code", ""))
    cls = CATALOG.get(code) or _status_fallback(status)
    exc = cls(str(error.get("message") or cls.default_message), **details)
    return exc


def _status_fallback(status: int) -> type[DphubError]:
    by_status: dict[int, type[DphubError]] = {
        400: InvalidRequest,
        401: Unauthenticated,
        403: Forbidden,
        404: NotFound,
        405: MethodNotAllowed,
        409: Conflict,
        413: PayloadTooLarge,
        415: UnsupportedMediaType,
        416: RangeNotSatisfiable,
        503: ServiceUnavailable,
        507: InsufficientStorage,
    }
    return by_status.get(status, DphubError)
