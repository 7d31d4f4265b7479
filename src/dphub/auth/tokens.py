"""Session tokens: JWTs that say which user a request comes from, with an expiry."""

from __future__ import annotations

import time
from dataclasses import dataclass

import jwt

from dphub.errors import InvalidToken, TokenExpired

ALGORITHM = "HS256"
ISSUER = "dphub"
AUDIENCE = "dphub"


@dataclass(frozen=True)
class TokenClaims:
    user_id: int
    username: str
    expires_at: int


def issue_token(*, user_id: int, username: str, secret_key: str, ttl: int) -> tuple[str, int]:
    now = int(time.time())
    expires_at = now + ttl
    claims = {
        "sub": str(user_id),
        "username": username,
        "iat": now,
        "nbf": now,
        "exp": expires_at,
        "iss": ISSUER,
        "aud": AUDIENCE,
        "typ": "session",
    }
    return jwt.encode(claims, secret_key, algorithm=ALGORITHM), expires_at


def read_token(token: str, *, secret_key: str) -> TokenClaims:
    try:
        claims = jwt.decode(
            token,
            secret_key,
            algorithms=[ALGORITHM],
            audience=AUDIENCE,
            issuer=ISSUER,
            options={"require": ["exp", "sub", "iat"]},
            leeway=30,
        )
    except jwt.ExpiredSignatureError:
        raise TokenExpired("The token has expired: log in again (dphub login).") from None
    except jwt.PyJWTError:
        raise InvalidToken() from None
    if claims.get("typ") != "session":
        raise InvalidToken()
    try:
        return TokenClaims(int(claims["sub"]), str(claims["username"]), int(claims["exp"]))
    except (KeyError, ValueError):
        raise InvalidToken() from None
