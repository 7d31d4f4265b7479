"""Session tokens: JWTs signed with the hub's Ed25519 key (``alg: EdDSA``, ``kid`` in the header).

A token says which user a request comes from and what the credential behind it may do: its scope,
its package or publisher limit, how it was obtained (``via``) and, when an API key was exchanged
for it, that key's id, so that revoking the key ends the token too. Any service can verify a token
with the hub's public keys (``/.well-known/jwks.json``); only the hub can make one.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any

import jwt
from sqlalchemy.orm import Session

from dphub.auth import signing
from dphub.auth.apikeys import is_live
from dphub.auth.principal import SCOPES, Principal
from dphub.errors import InvalidToken, TokenExpired
from dphub.metastore.models import ApiKey, User
from dphub.names import is_valid_name

ISSUER = "dphub"
AUDIENCE = "dphub"
LEEWAY = 30
"""Seconds of clock difference tolerated between the hub's processes and machines."""
KINDS = ("session",)


@dataclass(frozen=True)
class TokenClaims:
    user_id: int
    username: str
    expires_at: int
    scope: str = "admin"
    package: tuple[str, str] | None = None
    publisher: str | None = None
    via: str = "session"
    api_key_id: int | None = None
    token_id: str = ""
    """The ``jti``: tells one token from another in logs and audit events."""
    kind: str = "session"
    kid: str = ""
    """The signing key's id."""


def issue_token(
    db: Session,
    principal: Principal,
    *,
    ttl: int,
    api_key_id: int | None = None,
    kind: str = "session",
) -> tuple[str, int]:
    """A token for ``principal`` with its scope and limit, valid ``ttl`` seconds, and its expiry
    (Unix time). The signing key is made on first need, inside ``db``'s transaction."""
    key = signing.signer(db)
    now = int(time.time())
    expires_at = now + ttl
    claims: dict[str, Any] = {
        "sub": str(principal.user_id),
        "username": principal.username,
        "iat": now,
        "nbf": now,
        "exp": expires_at,
        "iss": ISSUER,
        "aud": AUDIENCE,
        "jti": secrets.token_urlsafe(16),
        "typ": kind,
        "scope": principal.scope,
        "via": principal.via,
    }
    if principal.package is not None:
        claims["package"] = "/".join(principal.package)
    if principal.publisher is not None:
        claims["publisher"] = principal.publisher
    key_id = api_key_id if api_key_id is not None else principal.api_key_id
    if key_id is not None:
        claims["api_key"] = key_id
    token = jwt.encode(
        claims, key.private_key, algorithm=signing.ALGORITHM, headers={"kid": key.kid}
    )
    return token, expires_at


def read_token(
    db: Session, token: str, *, grace: int, kinds: tuple[str, ...] = KINDS
) -> TokenClaims:
    """The claims of a token this hub signed, or :class:`InvalidToken` / :class:`TokenExpired`.

    Only ``EdDSA`` with a ``kid`` the hub knows is accepted: no ``none``, no HMAC, no key named
    inside the token. ``grace`` is how long, in seconds, a retired key keeps verifying (the hub's
    token lifetime).
    """
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise InvalidToken() from None
    kid = header.get("kid")
    if header.get("alg") != signing.ALGORITHM or not isinstance(kid, str) or not kid:
        raise InvalidToken()
    public = signing.verifying_key(db, kid, grace=grace)
    if public is None:
        raise InvalidToken(
            "The token is signed by a key this hub does not accept (unknown, or retired):"
            " log in again (dphub login)."
        )
    try:
        claims = jwt.decode(
            token,
            public,
            algorithms=[signing.ALGORITHM],
            audience=AUDIENCE,
            issuer=ISSUER,
            options={"require": ["exp", "iat", "nbf", "sub", "jti"]},
            leeway=LEEWAY,
        )
    except jwt.ExpiredSignatureError:
        raise TokenExpired("The token has expired: log in again (dphub login).") from None
    except jwt.PyJWTError:
        raise InvalidToken() from None
    return _claims(claims, kid, kinds)


def _claims(claims: dict[str, Any], kid: str, kinds: tuple[str, ...]) -> TokenClaims:
    kind = claims.get("typ")
    if kind not in kinds:
        raise InvalidToken()
    sub, username = claims.get("sub"), claims.get("username")
    scope, via = claims.get("scope", "admin"), claims.get("via", "session")
    package, publisher = claims.get("package"), claims.get("publisher")
    api_key = claims.get("api_key")
    if (
        not isinstance(sub, str)
        or not sub.isascii()
        or not sub.isdigit()
        or not isinstance(username, str)
        or scope not in SCOPES
        or not isinstance(via, str)
        or (publisher is not None and not is_valid_name(publisher))
        or (api_key is not None and (isinstance(api_key, bool) or not isinstance(api_key, int)))
    ):
        raise InvalidToken()
    limit = None
    if package is not None:
        owner, sep, name = package.partition("/") if isinstance(package, str) else ("", "", "")
        if not sep or not is_valid_name(owner) or not is_valid_name(name):
            raise InvalidToken()
        limit = (owner, name)
    return TokenClaims(
        user_id=int(sub),
        username=username,
        expires_at=int(claims["exp"]),
        scope=str(scope),
        package=limit,
        publisher=publisher,
        via=via,
        api_key_id=api_key,
        token_id=str(claims["jti"]),
        kind=str(kind),
        kid=kid,
    )


def principal_for_token(db: Session, token: str, *, grace: int) -> Principal:
    """Who a token speaks for: the user as the metastore has them now (so ``is_admin`` comes from
    the database), with the token's scope and limit. A token made from an API key ends when that
    key is revoked or expires; a token of a deleted or renamed user ends at once."""
    claims = read_token(db, token, grace=grace)
    user = db.get(User, claims.user_id)
    if user is None or user.username != claims.username:
        raise InvalidToken("The token's user no longer exists.")
    if claims.api_key_id is not None:
        key = db.get(ApiKey, claims.api_key_id)
        if key is None or key.user_id != user.id or not is_live(key):
            raise InvalidToken(
                "The API key this token was made with has been revoked or has expired."
            )
    return Principal(
        user.id,
        user.username,
        user.email,
        user.is_admin,
        scope=claims.scope,
        package=claims.package,
        publisher=claims.publisher,
        via=claims.via,
        api_key_id=claims.api_key_id,
    )
