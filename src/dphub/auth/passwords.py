"""Password hashing with argon2id (argon2-cffi's tuned defaults)."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()

MIN_PASSWORD_LENGTH = 8


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    if not password_hash:
        return False
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


# Verifying a dummy hash when the user does not exist keeps both paths equally slow,
# so response times do not tell which usernames exist.
_DUMMY_HASH = _hasher.hash("not a password of anyone")


def burn_time(password: str) -> None:
    verify_password(_DUMMY_HASH, password)
