"""API keys: random secrets shown once; the metastore keeps only their SHA-256.

A key looks like ``dph_<prefix>_<secret>``; the prefix lets a person tell keys apart in a list.
SHA-256 (not argon2) is right here: keys are 256-bit random values, so there is nothing to brute-force,
and every API call can check one in microseconds.

A key carries a scope (``read`` < ``publish`` < ``admin``) and may be limited to one package or one
publisher; it never grants more than the credential that made it.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from dphub.auth import audit
from dphub.auth.permissions import Action, require
from dphub.auth.principal import SCOPES, Principal
from dphub.auth.roles import package_ref
from dphub.errors import (
    Forbidden,
    InsufficientScope,
    InvalidRequest,
    KeyNotFound,
    PackageNotFound,
    PublisherNotFound,
)
from dphub.metastore.models import ApiKey, Package, Publisher
from dphub.metastore.packages import find_package
from dphub.names import is_valid_name

KEY_MARK = "dph_"
NAME_MAX = 100
MAX_DAYS = 3650
DEFAULT_NAME = "default"
REQUEST_FIELDS = frozenset({"name", "scope", "package", "publisher", "expires_in_days"})


def new_api_key() -> tuple[str, str, str]:
    """Return ``(key, prefix, key_hash)`` for a fresh key."""
    prefix = secrets.token_hex(4)
    key = f"{KEY_MARK}{prefix}_{secrets.token_urlsafe(32)}"
    return key, prefix, hash_api_key(key)


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def looks_like_api_key(value: str) -> bool:
    return value.startswith(KEY_MARK) and value.count("_") >= 2


def is_live(key: ApiKey, now: datetime | None = None) -> bool:
    """Neither revoked nor expired."""
    if key.revoked_at is not None:
        return False
    return key.expires_at is None or key.expires_at > (now or datetime.now(UTC))


@dataclass(frozen=True)
class KeyRequest:
    """What a new key should be: a label, a scope, at most one limit, and a lifetime."""

    name: str = DEFAULT_NAME
    scope: str = "read"
    package: tuple[str, str] | None = None
    publisher: str | None = None
    expires_in_days: int | None = None


def parse_key_request(body: Any) -> KeyRequest:
    """The request of ``POST /api/auth/keys``, or an :class:`InvalidRequest` naming the field."""
    if not isinstance(body, dict):
        raise InvalidRequest(
            'Send a JSON object: {"name", "scope"?, "package"?, "publisher"?, "expires_in_days"?}.'
        )
    unknown = sorted(set(body) - REQUEST_FIELDS)
    if unknown:
        raise InvalidRequest(
            f"Unknown field {unknown[0]!r}: a key takes name, scope, package, publisher and"
            " expires_in_days.",
            field=unknown[0],
        )
    name = body.get("name")
    if name is None:
        name = DEFAULT_NAME
    if (
        not isinstance(name, str)
        or not name.strip()
        or len(name.strip()) > NAME_MAX
        or not name.isprintable()
    ):
        raise InvalidRequest(f"name must be 1 to {NAME_MAX} printable characters.", field="name")
    scope = body.get("scope")
    if scope is None:
        scope = "read"
    if scope not in SCOPES:
        raise InvalidRequest(
            f"scope must be one of {', '.join(SCOPES)}, not {scope!r}.", field="scope"
        )
    package = body.get("package")
    limit_package = None
    if package is not None:
        owner, sep, package_name = (
            package.partition("/") if isinstance(package, str) else ("", "", "")
        )
        if not sep or not is_valid_name(owner) or not is_valid_name(package_name):
            raise InvalidRequest(
                f"package must name one package as OWNER/NAME, not {package!r}.", field="package"
            )
        limit_package = (owner, package_name)
    publisher = body.get("publisher")
    if publisher is not None and not is_valid_name(publisher):
        raise InvalidRequest(
            f"publisher must be a publisher's name, not {publisher!r}.", field="publisher"
        )
    if limit_package is not None and publisher is not None:
        raise InvalidRequest(
            "Limit a key to one package or to one publisher, not both.", field="publisher"
        )
    days = body.get("expires_in_days")
    if days is not None and (
        isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= MAX_DAYS
    ):
        raise InvalidRequest(
            f"expires_in_days must be a whole number of days from 1 to {MAX_DAYS}.",
            field="expires_in_days",
        )
    return KeyRequest(name.strip(), str(scope), limit_package, publisher, days)


def _within_credential(principal: Principal, request: KeyRequest) -> None:
    """A key never reaches further than the credential that makes it."""
    if not principal.has_scope(request.scope):
        raise InsufficientScope(
            f"This credential has the {principal.scope!r} scope: it cannot make a key with the"
            f" {request.scope!r} scope.",
            action=Action.ACCOUNT.value,
        )
    if principal.package is not None and request.package != principal.package:
        raise Forbidden(
            f"This credential is limited to {'/'.join(principal.package)}: so must its keys be.",
            action=Action.ACCOUNT.value,
        )
    if principal.publisher is not None:
        owner = request.package[0] if request.package is not None else request.publisher
        if owner != principal.publisher:
            raise Forbidden(
                f"This credential is limited to {principal.publisher!r}: so must its keys be.",
                action=Action.ACCOUNT.value,
            )


def create_key(
    db: Session,
    principal: Principal,
    request: KeyRequest,
    *,
    ip: str | None = None,
) -> tuple[ApiKey, str]:
    """Store a new key of ``principal``'s user; return it and its secret (never shown again)."""
    _within_credential(principal, request)
    package: Package | None = None
    publisher: Publisher | None = None
    if request.package is not None:
        owner, name = request.package
        package = find_package(db, owner, name)
        if package is None:
            raise PackageNotFound(f"No package {owner}/{name} to limit the key to.")
        require(principal, Action.PACKAGE_READ, package_ref(db, principal, package))
    if request.publisher is not None:
        publisher = db.scalar(select(Publisher).where(Publisher.name == request.publisher))
        if publisher is None:
            raise PublisherNotFound(f"No publisher {request.publisher!r} to limit the key to.")
    now = datetime.now(UTC)
    expires_at = None
    if request.expires_in_days is not None:
        expires_at = now + timedelta(days=request.expires_in_days)
    key, prefix, key_hash = new_api_key()
    row = ApiKey(
        user_id=principal.user_id,
        name=request.name,
        prefix=prefix,
        key_hash=key_hash,
        created_at=now,
        expires_at=expires_at,
        scope=request.scope,
        package=package,
        publisher=publisher,
    )
    db.add(row)
    db.flush()
    described = describe(row, now)
    audit.record(
        db,
        "api-key.create",
        principal=principal,
        ip=ip,
        target=f"api-key {row.id}",
        **{k: described[k] for k in ("name", "prefix", "scope", "package", "publisher")},
        expires_at=expires_at.isoformat() if expires_at else None,
    )
    return row, key


def list_keys(db: Session, principal: Principal) -> list[ApiKey]:
    """The keys of ``principal``'s user, newest first, revoked and expired ones included."""
    query = (
        select(ApiKey)
        .where(ApiKey.user_id == principal.user_id)
        .options(selectinload(ApiKey.package), selectinload(ApiKey.publisher))
        .order_by(ApiKey.created_at.desc(), ApiKey.id.desc())
    )
    return list(db.scalars(query))


def revoke_key(db: Session, principal: Principal, key_id: str, *, ip: str | None = None) -> ApiKey:
    """Revoke one of ``principal``'s keys (and so every token made with it); twice is harmless.

    Another user's key is *not found*, so its existence is not revealed.
    """
    row = None
    if key_id.isascii() and key_id.isdigit() and len(key_id) <= 18:
        row = db.get(ApiKey, int(key_id))
    if row is None or row.user_id != principal.user_id:
        raise KeyNotFound(f"You have no API key {key_id!r}.")
    if row.revoked_at is None:
        row.revoked_at = datetime.now(UTC)
        audit.record(
            db,
            "api-key.revoke",
            principal=principal,
            ip=ip,
            target=f"api-key {row.id}",
            name=row.name,
            prefix=row.prefix,
        )
    return row


def describe(key: ApiKey, now: datetime | None = None) -> dict[str, Any]:
    """A key as the API shows it: never its secret or its hash."""
    now = now or datetime.now(UTC)
    return {
        "id": key.id,
        "name": key.name,
        "prefix": key.prefix,
        "scope": key.scope,
        "package": f"{key.package.owner}/{key.package.name}" if key.package else None,
        "publisher": key.publisher.name if key.publisher else None,
        "created_at": key.created_at,
        "expires_at": key.expires_at,
        "last_used_at": key.last_used_at,
        "revoked_at": key.revoked_at,
        "expired": key.expires_at is not None and key.expires_at <= now,
    }
