"""Session tokens signed with the hub's Ed25519 keys: issue, verify, forge, rotate, on SQLite and
PostgreSQL metastores."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Engine, func, select, update
from sqlalchemy.orm import Session, sessionmaker

from dphub.auth import signing
from dphub.auth.accounts import authenticate, create_api_key, create_user, find_user
from dphub.auth.principal import Principal
from dphub.auth.tokens import (
    AUDIENCE,
    ISSUER,
    TokenClaims,
    issue_token,
    principal_for_token,
    read_token,
)
from dphub.errors import InvalidToken, TokenExpired
from dphub.metastore.db import make_engine, make_sessionmaker, transaction
from dphub.metastore.models import ApiKey, SigningKey, User

GRACE = 3600
ANN_PASSWORD = "correct horse battery staple"


@pytest.fixture
def ann(db: sessionmaker[Session]) -> Principal:
    with transaction(db) as session:
        user = create_user(session, username="ann", email="ann@example.org", password=ANN_PASSWORD)
        return Principal(user.id, user.username, user.email)


def issue(db: sessionmaker[Session], principal: Principal, ttl: int = 600, **kw: Any) -> str:
    with transaction(db) as session:
        token, _ = issue_token(session, principal, ttl=ttl, **kw)
    return token


def read(db: sessionmaker[Session], token: str, grace: int = GRACE) -> TokenClaims:
    with transaction(db) as session:
        return read_token(session, token, grace=grace)


def principal(db: sessionmaker[Session], token: str) -> Principal:
    with transaction(db) as session:
        return principal_for_token(session, token, grace=GRACE)


def private_key(db: sessionmaker[Session]) -> tuple[str, Ed25519PrivateKey]:
    with transaction(db) as session:
        key = signing.signer(session)
    return key.kid, key.private_key


def good_claims(user: Principal, **changes: object) -> dict[str, object]:
    now = int(time.time())
    claims: dict[str, object] = {
        "sub": str(user.user_id),
        "username": user.username,
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "iss": ISSUER,
        "aud": AUDIENCE,
        "jti": "a-token-id",
        "typ": "session",
        "scope": "admin",
        "via": "session",
    }
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def sign_raw(header: dict[str, object], claims: dict[str, object], key: Ed25519PrivateKey) -> str:
    """A JWT put together by hand, for headers pyjwt would refuse to write."""
    signed = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    return f"{signed}.{b64(key.sign(signed.encode()))}"


def key_rows(db: sessionmaker[Session]) -> list[SigningKey]:
    with db() as session:
        return list(session.scalars(select(SigningKey).order_by(SigningKey.created_at)))


# issuing and reading


def test_a_token_round_trips_with_every_claim(db: sessionmaker[Session], ann: Principal) -> None:
    with transaction(db) as session:
        token, expires_at = issue_token(session, ann, ttl=3600)
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "EdDSA"
    assert header["kid"] == "dphub-1"
    claims = read(db, token)
    assert (claims.user_id, claims.username, claims.expires_at) == (ann.user_id, "ann", expires_at)
    assert (claims.scope, claims.package, claims.publisher, claims.via) == (
        "admin",
        None,
        None,
        "session",
    )
    assert claims.api_key_id is None
    assert claims.kind == "session"
    assert claims.kid == "dphub-1"
    assert 3590 <= expires_at - time.time() <= 3600
    payload = jwt.decode(token, options={"verify_signature": False})
    assert set(payload) == {
        "sub", "username", "iat", "nbf", "exp", "iss", "aud", "jti", "typ", "scope", "via"
    }  # fmt: skip
    assert payload["iat"] == payload["nbf"] == expires_at - 3600


def test_each_token_has_its_own_id(db: sessionmaker[Session], ann: Principal) -> None:
    ids = {read(db, issue(db, ann)).token_id for _ in range(5)}
    assert len(ids) == 5


def test_a_token_carries_the_credentials_scope_and_limit(
    db: sessionmaker[Session], ann: Principal
) -> None:
    limited = Principal(
        ann.user_id,
        "ann",
        ann.email,
        scope="publish",
        package=("ann", "gdp"),
        via="trusted-publisher",
    )
    claims = read(db, issue(db, limited, ttl=900))
    assert (claims.scope, claims.package, claims.publisher, claims.via) == (
        "publish",
        ("ann", "gdp"),
        None,
        "trusted-publisher",
    )
    by_publisher = Principal(ann.user_id, "ann", ann.email, scope="read", publisher="ann")
    found = principal(db, issue(db, by_publisher))
    assert (found.scope, found.package, found.publisher) == ("read", None, "ann")


def test_a_token_from_an_api_key_names_the_key(db: sessionmaker[Session], ann: Principal) -> None:
    with transaction(db) as session:
        user = find_user(session, "ann")
        assert user is not None
        secret = create_api_key(session, user=user, name="ci", scope="read")
    with transaction(db) as session:
        via_key = authenticate(session, login="ann", secret=secret)
        token, _ = issue_token(session, via_key, ttl=600, api_key_id=via_key.api_key_id)
    assert via_key.scope == "read"
    found = principal(db, token)
    assert (found.scope, found.via, found.api_key_id) == ("read", "api-key", via_key.api_key_id)


def test_the_principal_comes_from_the_database(db: sessionmaker[Session], ann: Principal) -> None:
    token = issue(db, Principal(ann.user_id, "ann", ann.email, is_admin=True))
    assert principal(db, token).is_admin is False
    with transaction(db) as session:
        session.execute(update(User).where(User.id == ann.user_id).values(is_admin=True))
    assert principal(db, issue(db, ann)).is_admin is True


# refusals


def test_an_expired_token_is_refused(db: sessionmaker[Session], ann: Principal) -> None:
    with pytest.raises(TokenExpired) as caught:
        read(db, issue(db, ann, ttl=-120))
    assert caught.value.status == 401
    assert caught.value.code == "token-expired"


def test_a_token_within_the_clock_leeway_is_accepted(
    db: sessionmaker[Session], ann: Principal
) -> None:
    assert read(db, issue(db, ann, ttl=-5)).user_id == ann.user_id


def test_an_unsigned_token_is_refused(db: sessionmaker[Session], ann: Principal) -> None:
    kid, _ = private_key(db)
    unsigned = jwt.encode(good_claims(ann), None, algorithm="none", headers={"kid": kid})
    with pytest.raises(InvalidToken):
        read(db, unsigned)
    stripped = ".".join(issue(db, ann).split(".")[:2]) + "."
    with pytest.raises(InvalidToken):
        read(db, stripped)


def test_hs256_signed_with_the_public_key_is_refused(
    db: sessionmaker[Session], ann: Principal
) -> None:
    """The classic confusion: the public key, which anyone can fetch, used as an HMAC secret."""
    with transaction(db) as session:
        public_pem = signing.current_key(session).public_pem
        kid = signing.current_key(session).kid
    header = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": kid}).encode())
    payload = b64(json.dumps(good_claims(ann)).encode())
    signed = f"{header}.{payload}".encode()
    for secret in (public_pem.encode(), public_pem.strip().encode()):
        signature = b64(hmac.new(secret, signed, hashlib.sha256).digest())
        with pytest.raises(InvalidToken):
            read(db, f"{header}.{payload}.{signature}")


@pytest.mark.parametrize("kid", [None, "", "dphub-999", "../../etc/passwd", 7])
def test_a_token_without_a_known_kid_is_refused(
    db: sessionmaker[Session], ann: Principal, kid: object
) -> None:
    _, key = private_key(db)
    header = {"alg": "EdDSA", "typ": "JWT", **({"kid": kid} if kid is not None else {})}
    forged = sign_raw(header, good_claims(ann), key)
    with pytest.raises(InvalidToken):
        read(db, forged)


def test_a_token_signed_with_another_key_is_refused(
    db: sessionmaker[Session], ann: Principal
) -> None:
    kid, _ = private_key(db)
    other = Ed25519PrivateKey.generate()
    forged = jwt.encode(good_claims(ann), other, algorithm="EdDSA", headers={"kid": kid})
    with pytest.raises(InvalidToken):
        read(db, forged)


def test_a_tampered_token_is_refused(db: sessionmaker[Session], ann: Principal) -> None:
    header, payload, signature = issue(db, ann).split(".")
    raised = b64(json.dumps(good_claims(ann, sub="1", username="root")).encode())
    with pytest.raises(InvalidToken):
        read(db, f"{header}.{raised}.{signature}")
    wider = jwt.decode(f"{header}.{payload}.{signature}", options={"verify_signature": False})
    wider["scope"] = "admin"
    wider["exp"] = 4102444800
    with pytest.raises(InvalidToken):
        read(db, f"{header}.{b64(json.dumps(wider).encode())}.{signature}")
    flipped = ("B" if signature[0] == "A" else "A") + signature[1:]
    with pytest.raises(InvalidToken):
        read(db, f"{header}.{payload}.{flipped}")


@pytest.mark.parametrize(
    "changes",
    [
        {"typ": "refresh"},
        {"typ": None},
        {"aud": "someone-else"},
        {"iss": "another-hub"},
        {"sub": "not-a-number"},
        {"sub": None},
        {"username": None},
        {"jti": None},
        {"nbf": None},
        {"scope": "root"},
        {"package": "no-slash"},
        {"package": "Ann/../x"},
        {"publisher": "Not A Name"},
        {"api_key": "7"},
        # an id of its own: a time in the id would differ between the test processes' collections
        pytest.param({"nbf": int(time.time()) + 3600}, id="{'nbf': <in an hour>}"),
    ],
    ids=repr,
)
def test_tokens_with_wrong_claims_are_refused(
    db: sessionmaker[Session], ann: Principal, changes: dict[str, object]
) -> None:
    kid, key = private_key(db)
    token = jwt.encode(good_claims(ann, **changes), key, algorithm="EdDSA", headers={"kid": kid})
    with pytest.raises(InvalidToken):
        read(db, token)


@pytest.mark.parametrize("garbage", ["", "not-a-token", "a.b.c", "Bearer x", "....", "e30.e30.e30"])
def test_garbage_is_not_a_token(db: sessionmaker[Session], garbage: str) -> None:
    with pytest.raises(InvalidToken):
        read(db, garbage)


def test_a_token_of_a_deleted_or_renamed_user_is_refused(
    db: sessionmaker[Session], ann: Principal
) -> None:
    token = issue(db, ann)
    with transaction(db) as session:
        session.execute(update(User).where(User.id == ann.user_id).values(username="ann2"))
    with pytest.raises(InvalidToken):
        principal(db, token)
    with transaction(db) as session:
        session.delete(session.get(User, ann.user_id))
    with pytest.raises(InvalidToken) as caught:
        principal(db, token)
    assert "no longer exists" in caught.value.message


@pytest.mark.parametrize("state", ["revoked", "expired", "deleted"])
def test_tokens_from_a_dead_api_key_are_refused(
    db: sessionmaker[Session], ann: Principal, state: str
) -> None:
    with transaction(db) as session:
        user = find_user(session, "ann")
        assert user is not None
        secret = create_api_key(session, user=user, name="ci", scope="publish")
    with transaction(db) as session:
        via_key = authenticate(session, login="ann", secret=secret)
        token, _ = issue_token(session, via_key, ttl=600)
    assert principal(db, token).api_key_id == via_key.api_key_id
    with transaction(db) as session:
        key = session.get(ApiKey, via_key.api_key_id)
        assert key is not None
        moment = datetime.now(UTC) - timedelta(seconds=1)
        if state == "revoked":
            key.revoked_at = moment
        elif state == "expired":
            key.expires_at = moment
        else:
            session.delete(key)
    with pytest.raises(InvalidToken):
        principal(db, token)


# signing keys: made once, rotated without logging anyone out


def test_the_first_key_is_made_on_first_need_and_only_once(
    db: sessionmaker[Session], ann: Principal
) -> None:
    assert key_rows(db) == []
    for _ in range(3):
        issue(db, ann)
    rows = key_rows(db)
    assert [(r.kid, r.algorithm, r.retired_at) for r in rows] == [("dphub-1", "EdDSA", None)]
    assert rows[0].private_key.startswith("-----BEGIN PRIVATE KEY-----")
    assert rows[0].public_key.startswith("-----BEGIN PUBLIC KEY-----")


def test_processes_racing_for_the_first_key_agree_on_one(
    metastore_url: str, engine: Engine, ann: Principal
) -> None:
    """Each thread has its own engine, as separate API processes would."""
    engines = [make_engine(metastore_url) for _ in range(6)]
    kids: list[str] = []
    errors: list[BaseException] = []
    start = threading.Barrier(len(engines))

    def first_token(own: Engine) -> None:
        try:
            start.wait()
            with transaction(make_sessionmaker(own)) as session:
                token, _ = issue_token(session, ann, ttl=600)
            kids.append(jwt.get_unverified_header(token)["kid"])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=first_token, args=(e,)) for e in engines]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for own in engines:
        own.dispose()
    assert errors == []
    assert kids == ["dphub-1"] * len(engines)
    with Session(engine) as session:
        assert session.scalar(select(func.count()).select_from(SigningKey)) == 1


def test_rotation_keeps_old_tokens_valid_and_signs_with_the_new_key(
    db: sessionmaker[Session], engine: Engine, ann: Principal
) -> None:
    before = issue(db, ann)
    with transaction(db) as session:
        rotation = signing.rotate(session)
    signing.forget(engine)
    assert rotation.key.kid == "dphub-2"
    assert rotation.retired == ["dphub-1"]
    after = issue(db, ann)
    assert jwt.get_unverified_header(after)["kid"] == "dphub-2"
    assert read(db, before).user_id == ann.user_id
    assert read(db, after).user_id == ann.user_id
    with db() as session:
        states = {k.kid: k.state(grace=GRACE) for k in signing.list_keys(session)}
        verifying = [k.kid for k in signing.verifying_keys(session, grace=GRACE)]
    assert states == {"dphub-2": "signing", "dphub-1": "verifying"}
    assert sorted(verifying) == ["dphub-1", "dphub-2"]


def test_a_retired_key_stops_verifying_after_its_grace(
    db: sessionmaker[Session], engine: Engine, ann: Principal
) -> None:
    before = issue(db, ann, ttl=7200)
    with transaction(db) as session:
        signing.rotate(session)
    signing.forget(engine)
    with transaction(db) as session:
        session.execute(
            update(SigningKey)
            .where(SigningKey.kid == "dphub-1")
            .values(retired_at=datetime.now(UTC) - timedelta(seconds=GRACE + 1))
        )
    signing.forget(engine)
    with pytest.raises(InvalidToken) as caught:
        read(db, before)
    assert "retired" in caught.value.message
    with db() as session:
        assert [k.kid for k in signing.verifying_keys(session, grace=GRACE)] == ["dphub-2"]
        assert {k.kid: k.state(grace=GRACE) for k in signing.list_keys(session)} == {
            "dphub-2": "signing",
            "dphub-1": "retired",
        }


def test_a_key_made_by_another_process_is_recognised_at_once(
    metastore_url: str, db: sessionmaker[Session], ann: Principal
) -> None:
    """This process caches the keys; another one rotates; its first new token verifies here."""
    issue(db, ann)
    elsewhere = make_engine(metastore_url)
    try:
        other = make_sessionmaker(elsewhere)
        with transaction(other) as session:
            signing.rotate(session)
        token = issue(other, ann)
    finally:
        elsewhere.dispose()
    assert jwt.get_unverified_header(token)["kid"] == "dphub-2"
    assert read(db, token).user_id == ann.user_id


def test_rotations_number_keys_and_retire_all_but_the_newest(
    db: sessionmaker[Session], engine: Engine, ann: Principal
) -> None:
    issue(db, ann)
    for _ in range(10):
        with transaction(db) as session:
            signing.rotate(session)
    signing.forget(engine)
    assert jwt.get_unverified_header(issue(db, ann))["kid"] == "dphub-11"
    with db() as session:
        keys = signing.list_keys(session)
    assert [k.kid for k in keys][:3] == ["dphub-11", "dphub-10", "dphub-9"]
    assert [k.kid for k in keys if k.retired_at is None] == ["dphub-11"]


def test_a_rolled_back_first_key_is_not_used(db: sessionmaker[Session], ann: Principal) -> None:
    def sign_then_fail() -> None:
        with transaction(db) as session:
            issue_token(session, ann, ttl=600)
            raise RuntimeError("the transaction fails after signing")

    with pytest.raises(RuntimeError):
        sign_then_fail()
    assert key_rows(db) == []
    token = issue(db, ann)
    assert read(db, token).user_id == ann.user_id
    assert [r.kid for r in key_rows(db)] == ["dphub-1"]


def test_the_jwks_verifies_a_token_with_plain_pyjwt(
    db: sessionmaker[Session], ann: Principal
) -> None:
    token = issue(db, ann)
    with transaction(db) as session:
        keys = [signing.jwk(k) for k in signing.verifying_keys(session, grace=GRACE)]
    assert keys == [
        {
            "kty": "OKP",
            "crv": "Ed25519",
            "x": keys[0]["x"],
            "kid": "dphub-1",
            "alg": "EdDSA",
            "use": "sig",
        }
    ]
    assert len(base64.urlsafe_b64decode(keys[0]["x"] + "=")) == 32
    key = jwt.PyJWK(keys[0])
    claims = jwt.decode(token, key, algorithms=["EdDSA"], audience=AUDIENCE, issuer=ISSUER)
    assert claims["username"] == "ann"
