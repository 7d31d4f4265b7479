"""API keys: random secrets shown once; the metastore keeps only their SHA-256.

A key looks like ``dph_<prefix>_<secret>``; the prefix lets a person tell keys apart in a list.
SHA-256 (not argon2) is right here: keys are 256-bit random values, so there is nothing to brute-force,
and every API call can check one in microseconds.
"""

from __future__ import annotations

import hashlib
import secrets

KEY_MARK = "dph_"


def new_api_key() -> tuple[str, str, str]:
    """Return ``(key, prefix, key_hash)`` for a fresh key."""
    prefix = secrets.token_hex(4)
    key = f"{KEY_MARK}{prefix}_{secrets.token_urlsafe(32)}"
    return key, prefix, hash_api_key(key)


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def looks_like_api_key(value: str) -> bool:
    return value.startswith(KEY_MARK) and value.count("_") >= 2
