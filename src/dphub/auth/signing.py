"""The key pairs that sign session tokens: Ed25519 (JWT ``alg: EdDSA``), kept in the metastore.

The newest unretired key signs; the hub makes the first one when it first needs it. Rotating adds a
new key and retires the others, which keep verifying for a grace period (the hub's token lifetime),
so every token signed before a rotation stays valid until it expires. Keys past their grace verify
nothing and leave the JWKS.

Several API processes share one metastore: each reads the keys and keeps them for a few seconds; a
token naming a key it does not know makes it read them again, so a key another process just made is
recognised at once. A transaction that makes a key never fills that copy: it may still roll back. Keys are numbered
(``dphub-1``, ``dphub-2``, ...): two processes making the same key at once insert the same ``kid``,
one insert wins and the other reads the winner.
"""

from __future__ import annotations

import base64
import re
import threading
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import Engine, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from dphub.metastore.models import SigningKey

ALGORITHM = "EdDSA"
CACHE_SECONDS = 5.0
KID_PREFIX = "dphub-"
_MADE_KEY = "dphub.signing.made-key"
_KID = re.compile(rf"^{KID_PREFIX}([0-9]{{1,18}})$")


@dataclass(frozen=True)
class KeyInfo:
    """The public facts of one signing key."""

    kid: str
    algorithm: str
    public_pem: str
    created_at: datetime
    retired_at: datetime | None

    def verifies(self, *, grace: int, now: datetime | None = None) -> bool:
        """Whether tokens signed with this key are still accepted."""
        if self.retired_at is None:
            return True
        return (now or datetime.now(UTC)) < self.retired_at + timedelta(seconds=grace)

    def state(self, *, grace: int, now: datetime | None = None) -> str:
        """``signing``, ``verifying`` (retired, within its grace) or ``retired``."""
        if self.retired_at is None:
            return "signing"
        return "verifying" if self.verifies(grace=grace, now=now) else "retired"


@dataclass(frozen=True)
class Signer:
    kid: str
    private_key: Ed25519PrivateKey


@dataclass
class _Ring:
    """One process's view of a metastore's keys."""

    loaded_at: float
    keys: dict[str, KeyInfo]
    public: dict[str, Ed25519PublicKey]
    signer: Signer | None
    last: int
    """The highest key number in the metastore when read."""


@dataclass
class _Cache:
    lock: threading.Lock = field(default_factory=threading.Lock)
    rings: weakref.WeakKeyDictionary[Engine, _Ring] = field(
        default_factory=weakref.WeakKeyDictionary
    )


_cache = _Cache()


def _engine(db: Session) -> Engine:
    bind = db.get_bind()
    return bind if isinstance(bind, Engine) else bind.engine


def _sequence(kid: str) -> int:
    match = _KID.match(kid)
    return int(match.group(1)) if match else 0


def _newest_first(rows: Sequence[SigningKey]) -> list[SigningKey]:
    return sorted(rows, key=lambda r: (_sequence(r.kid), r.created_at), reverse=True)


def _info(row: SigningKey) -> KeyInfo:
    return KeyInfo(row.kid, row.algorithm, row.public_key, row.created_at, row.retired_at)


def _signer(row: SigningKey) -> Signer:
    private = serialization.load_pem_private_key(row.private_key.encode(), password=None)
    if not isinstance(private, Ed25519PrivateKey):
        raise TypeError(f"signing key {row.kid} is not an Ed25519 key")
    return Signer(row.kid, private)


def _all(db: Session) -> Sequence[SigningKey]:
    return db.scalars(select(SigningKey).execution_options(populate_existing=True)).all()


def _rows(db: Session) -> list[SigningKey]:
    """Every Ed25519 key, newest first."""
    return _newest_first([r for r in _all(db) if r.algorithm == ALGORITHM])


def _load(db: Session) -> _Ring:
    every = _all(db)
    last = max((_sequence(r.kid) for r in every), default=0)
    rows = _newest_first([r for r in every if r.algorithm == ALGORITHM])
    keys: dict[str, KeyInfo] = {}
    public: dict[str, Ed25519PublicKey] = {}
    for row in rows:
        loaded = serialization.load_pem_public_key(row.public_key.encode())
        if isinstance(loaded, Ed25519PublicKey):
            keys[row.kid] = _info(row)
            public[row.kid] = loaded
    current = next((r for r in rows if r.retired_at is None), None)
    signing = _signer(current) if current is not None else None
    return _Ring(time.monotonic(), keys, public, signing, last)


def _ring(db: Session, *, reload: bool = False) -> _Ring:
    if db.info.get(_MADE_KEY):
        return _load(db)  # this transaction changed the keys: neither trust nor fill the cache
    engine = _engine(db)
    with _cache.lock:
        ring = _cache.rings.get(engine)
    if ring is None or reload or time.monotonic() - ring.loaded_at > CACHE_SECONDS:
        ring = _load(db)
        with _cache.lock:
            _cache.rings[engine] = ring
    return ring


def forget(engine: Engine) -> None:
    """Drop this process's copy of the keys (after a rotation it made itself)."""
    with _cache.lock:
        _cache.rings.pop(engine, None)


def _new_pair() -> tuple[str, str]:
    private = Ed25519PrivateKey.generate()
    private_pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public_pem = (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private_pem, public_pem


def _insert(db: Session, kid: str) -> None:
    """Insert a fresh key named ``kid``, unless another transaction already made it."""
    private_pem, public_pem = _new_pair()
    dialect = db.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(SigningKey).values(
        kid=kid,
        algorithm=ALGORITHM,
        private_key=private_pem,
        public_key=public_pem,
        created_at=datetime.now(UTC),
    )
    db.execute(stmt.on_conflict_do_nothing(index_elements=["kid"]))
    db.info[_MADE_KEY] = True


def _next_kid(db: Session) -> str:
    highest = max((_sequence(kid) for kid in db.scalars(select(SigningKey.kid))), default=0)
    return f"{KID_PREFIX}{highest + 1}"


def signer(db: Session) -> Signer:
    """The key that signs now, made on first need (inside ``db``'s transaction)."""
    ring = _ring(db)
    if ring.signer is None:
        ring = _ring(db, reload=True)
    if ring.signer is None:
        # Named from the read that found no key: a process that raced us to it inserted the same
        # kid, so one insert wins and both sign with the winner.
        _insert(db, f"{KID_PREFIX}{ring.last + 1}")
        ring = _ring(db)
    if ring.signer is None:
        raise RuntimeError("no signing key after making one")
    return ring.signer


def verifying_key(db: Session, kid: str, *, grace: int) -> Ed25519PublicKey | None:
    """The public key named ``kid`` when it still verifies; one reload when it is not known."""
    ring = _ring(db)
    if kid not in ring.public:
        # a key another process just made (one small query: what every API-key request costs)
        ring = _ring(db, reload=True)
    info = ring.keys.get(kid)
    if info is None or not info.verifies(grace=grace):
        return None
    return ring.public[kid]


def current_key(db: Session) -> KeyInfo:
    """The signing key's public facts, made on first need."""
    signer(db)
    ring = _ring(db)
    if ring.signer is None:
        raise RuntimeError("the signing key vanished")
    return ring.keys[ring.signer.kid]


def list_keys(db: Session) -> list[KeyInfo]:
    """Every key the metastore holds, newest first."""
    return [_info(r) for r in _rows(db)]


def verifying_keys(db: Session, *, grace: int) -> list[KeyInfo]:
    """Keys whose tokens are still accepted, newest first (the signing key made on first need)."""
    signer(db)
    now = datetime.now(UTC)
    # read afresh: a key another process has just started signing with must be published at
    # once, or a service fetching the set to check such a token would refuse it
    return [k for k in _ring(db, reload=True).keys.values() if k.verifies(grace=grace, now=now)]


@dataclass(frozen=True)
class Rotation:
    key: KeyInfo
    retired: list[str]
    """The keys this rotation retired: they verify for their grace, then stop."""


def rotate(db: Session) -> Rotation:
    """Make a new signing key and retire the others (inside ``db``'s transaction).

    Two rotations at once make one key: the second insert meets the first's ``kid`` and both
    report that key.
    """
    kid = _next_kid(db)
    _insert(db, kid)
    row = db.get(SigningKey, kid, populate_existing=True)
    if row is None:
        raise RuntimeError(f"signing key {kid} vanished")
    retiring = list(
        db.scalars(
            select(SigningKey.kid).where(SigningKey.retired_at.is_(None), SigningKey.kid != kid)
        )
    )
    if retiring:
        db.execute(
            update(SigningKey)
            .where(SigningKey.kid.in_(retiring), SigningKey.retired_at.is_(None))
            .values(retired_at=datetime.now(UTC))
        )
    return Rotation(_info(row), sorted(retiring, key=_sequence))


def jwk(key: KeyInfo) -> dict[str, Any]:
    """The key as a JSON Web Key (RFC 8037: ``kty`` OKP, ``crv`` Ed25519)."""
    public = serialization.load_pem_public_key(key.public_pem.encode())
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    x = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
    return {"kty": "OKP", "crv": "Ed25519", "x": x, "kid": key.kid, "alg": ALGORITHM, "use": "sig"}


def describe(key: KeyInfo, *, grace: int, now: datetime | None = None) -> dict[str, Any]:
    """A key's public facts as the API and the CLI show them."""
    now = now or datetime.now(UTC)
    until = key.retired_at + timedelta(seconds=grace) if key.retired_at is not None else None
    return {
        "kid": key.kid,
        "algorithm": key.algorithm,
        "created_at": key.created_at,
        "retired_at": key.retired_at,
        "verifies_until": until,
        "state": key.state(grace=grace, now=now),
    }
