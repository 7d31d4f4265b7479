"""Accounts, passwords, API keys, tokens and permissions, on a real SQLite metastore."""

from __future__ import annotations

import dataclasses
import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from dphub.auth.accounts import (
    authenticate,
    create_api_key,
    create_user,
    find_user,
    get_user,
    principal_for_api_key,
    principal_of,
)
from dphub.auth.apikeys import (
    KEY_MARK,
    KeyRequest,
    create_key,
    describe,
    hash_api_key,
    list_keys,
    looks_like_api_key,
    new_api_key,
    parse_key_request,
    revoke_key,
)
from dphub.auth.passwords import hash_password, verify_password
from dphub.auth.principal import Principal
from dphub.errors import (
    AlreadyExists,
    Forbidden,
    InsufficientScope,
    InvalidCredentials,
    InvalidName,
    InvalidRequest,
    InvalidToken,
    KeyNotFound,
    PackageNotFound,
    PublisherNotFound,
)
from dphub.metastore.db import transaction
from dphub.metastore.models import ApiKey, AuditEvent, Base, Package, User

ANN_PASSWORD = "correct horse battery staple"
BOB_PASSWORD = "tr0ub4dor&3-long"


@pytest.fixture
def users(db: sessionmaker[Session]) -> dict[str, int]:
    with transaction(db) as session:
        ann = create_user(session, username="ann", email="Ann@Example.org", password=ANN_PASSWORD)
        bob = create_user(session, username="bob", email="bob@example.org", password=BOB_PASSWORD)
        return {"ann": ann.id, "bob": bob.id}


def _key_for(db: sessionmaker[Session], username: str) -> str:
    with transaction(db) as session:
        user = find_user(session, username)
        assert user is not None
        return create_api_key(session, user=user, name="ci")


def _database_bytes(engine: Engine, tmp_path: Path) -> bytes:
    """Everything the metastore holds: for SQLite the files it wrote (main file and write-ahead
    log, so deleted pages count too), for PostgreSQL every row of every table."""
    if engine.dialect.name == "sqlite":
        return b"".join(p.read_bytes() for p in sorted(tmp_path.glob("metastore.db*")))
    rows = []
    with engine.connect() as connection:
        for table in Base.metadata.sorted_tables:
            rows.extend(repr(tuple(r)) for r in connection.execute(table.select()))
    return "\n".join(rows).encode()


# create_user


def test_create_user_stores_a_normalised_account(
    db: sessionmaker[Session], users: dict[str, int]
) -> None:
    with db() as session:
        ann = get_user(session, users["ann"])
        assert ann is not None
        assert (ann.username, ann.email, ann.is_admin) == ("ann", "ann@example.org", False)
        assert ann.created_at.tzinfo is not None
        assert principal_of(ann) == Principal(users["ann"], "ann", "ann@example.org", False)


def test_passwords_are_stored_as_argon2id_hashes(
    db: sessionmaker[Session], users: dict[str, int], engine: Engine, tmp_path: Path
) -> None:
    with db() as session:
        stored = session.scalars(select(User.password_hash).where(User.username == "ann")).one()
    assert stored is not None
    assert stored.startswith("$argon2id$")
    assert verify_password(stored, ANN_PASSWORD)
    assert not verify_password(stored, BOB_PASSWORD)
    assert ANN_PASSWORD.encode() not in _database_bytes(engine, tmp_path)


def test_a_user_may_have_no_password(db: sessionmaker[Session]) -> None:
    with transaction(db) as session:
        user = create_user(session, username="sso-only", email="sso@example.org")
        assert user.password_hash is None
    with transaction(db) as session, pytest.raises(InvalidCredentials):
        authenticate(session, login="sso-only", secret="any password at all")


@pytest.mark.parametrize("username", ["Ann", "-ann", "", "a" * 101, "api", "static", "a b"])
def test_create_user_refuses_bad_usernames(db: sessionmaker[Session], username: str) -> None:
    with transaction(db) as session, pytest.raises(InvalidName):
        create_user(session, username=username, email="x@example.org", password=ANN_PASSWORD)


@pytest.mark.parametrize(
    "email", ["no-at-sign", "ann @example.org", "ann@exa\tmple.org", "a@" + "b" * 319]
)
def test_create_user_refuses_bad_emails(db: sessionmaker[Session], email: str) -> None:
    with transaction(db) as session, pytest.raises(InvalidRequest) as caught:
        create_user(session, username="ann", email=email, password=ANN_PASSWORD)
    assert caught.value.details == {"field": "email"}


def test_create_user_refuses_short_passwords(db: sessionmaker[Session]) -> None:
    with transaction(db) as session, pytest.raises(InvalidRequest) as caught:
        create_user(session, username="ann", email="ann@example.org", password="7chars!")
    assert caught.value.details == {"field": "password"}
    with transaction(db) as session:
        assert create_user(
            session, username="ann", email="ann@example.org", password="8chars!!"
        ).password_hash


@pytest.mark.parametrize(
    ("username", "email", "field"),
    [
        ("ann", "another@example.org", "username"),
        ("ann2", "ann@example.org", "email"),
        ("ann3", "ANN@EXAMPLE.ORG", "email"),
        ("ann4", "  ann@example.org ", "email"),
    ],
)
def test_duplicate_usernames_and_emails_are_refused(
    db: sessionmaker[Session], users: dict[str, int], username: str, email: str, field: str
) -> None:
    with transaction(db) as session, pytest.raises(AlreadyExists) as caught:
        create_user(session, username=username, email=email, password=ANN_PASSWORD)
    assert caught.value.details == {"field": field}
    assert caught.value.status == 409
    with db() as session:
        assert session.scalars(select(User.username).order_by(User.id)).all() == ["ann", "bob"]


# authenticate


@pytest.mark.parametrize("login", ["ann", "ann@example.org", "ANN@example.ORG", " ann "])
def test_authenticate_with_username_or_email_and_password(
    db: sessionmaker[Session], users: dict[str, int], login: str
) -> None:
    with transaction(db) as session:
        assert authenticate(session, login=login, secret=ANN_PASSWORD).user_id == users["ann"]


def test_authenticate_with_an_api_key(db: sessionmaker[Session], users: dict[str, int]) -> None:
    key = _key_for(db, "ann")
    for login in ("ann", "ann@example.org"):
        with transaction(db) as session:
            assert authenticate(session, login=login, secret=key).user_id == users["ann"]
    with db() as session:
        used = session.scalars(select(ApiKey.last_used_at)).one()
    assert used is not None
    assert datetime.now(UTC) - used < timedelta(minutes=1)


@pytest.mark.parametrize(
    ("login", "secret"),
    [
        ("ann", BOB_PASSWORD),
        ("ann", ANN_PASSWORD.upper()),
        ("ann", ""),
        ("Ann", ANN_PASSWORD),
        ("nobody", ANN_PASSWORD),
        ("nobody@example.org", ANN_PASSWORD),
        ("ann", f"{KEY_MARK}00000000_not-a-real-key"),
    ],
)
def test_wrong_credentials_are_refused(
    db: sessionmaker[Session], users: dict[str, int], login: str, secret: str
) -> None:
    with transaction(db) as session, pytest.raises(InvalidCredentials) as caught:
        authenticate(session, login=login, secret=secret)
    assert caught.value.status == 401
    assert caught.value.code == "invalid-credentials"


def test_an_api_key_of_another_user_is_refused(
    db: sessionmaker[Session], users: dict[str, int]
) -> None:
    bobs_key = _key_for(db, "bob")
    with transaction(db) as session, pytest.raises(InvalidCredentials):
        authenticate(session, login="ann", secret=bobs_key)
    with transaction(db) as session:
        assert authenticate(session, login="bob", secret=bobs_key).user_id == users["bob"]


@pytest.mark.parametrize("state", ["revoked", "expired"])
def test_revoked_or_expired_keys_are_refused(
    db: sessionmaker[Session], users: dict[str, int], state: str
) -> None:
    key = _key_for(db, "ann")
    with transaction(db) as session:
        row = session.scalars(select(ApiKey).where(ApiKey.key_hash == hash_api_key(key))).one()
        moment = datetime.now(UTC) - timedelta(seconds=1)
        if state == "revoked":
            row.revoked_at = moment
        else:
            row.expires_at = moment
    with transaction(db) as session, pytest.raises(InvalidCredentials):
        authenticate(session, login="ann", secret=key)
    with transaction(db) as session, pytest.raises(InvalidToken):
        principal_for_api_key(session, key)


def test_a_key_that_expires_later_still_works(
    db: sessionmaker[Session], users: dict[str, int]
) -> None:
    key = _key_for(db, "ann")
    with transaction(db) as session:
        row = session.scalars(select(ApiKey)).one()
        row.expires_at = datetime.now(UTC) + timedelta(hours=1)
    with transaction(db) as session:
        assert principal_for_api_key(session, key).username == "ann"


def test_principal_for_api_key(db: sessionmaker[Session], users: dict[str, int]) -> None:
    key = _key_for(db, "bob")
    with transaction(db) as session:
        assert principal_for_api_key(session, key).user_id == users["bob"]
    with transaction(db) as session, pytest.raises(InvalidToken):
        principal_for_api_key(session, key + "x")


def test_only_the_sha256_of_an_api_key_is_stored(
    db: sessionmaker[Session], users: dict[str, int], engine: Engine, tmp_path: Path
) -> None:
    key = _key_for(db, "ann")
    prefix, secret_part = key.removeprefix(KEY_MARK).split("_", 1)
    with db() as session:
        row = session.scalars(select(ApiKey)).one()
        assert row.key_hash == hashlib.sha256(key.encode()).hexdigest()
        assert row.prefix == prefix
        assert row.name == "ci"
        assert row.user_id == users["ann"]
    stored = _database_bytes(engine, tmp_path)
    assert key.encode() not in stored
    assert secret_part.encode() not in stored
    assert row.key_hash.encode() in stored


def test_new_api_keys_are_distinct_and_recognisable() -> None:
    keys = {new_api_key()[0] for _ in range(50)}
    assert len(keys) == 50
    key, prefix, key_hash = new_api_key()
    assert key.startswith(f"{KEY_MARK}{prefix}_")
    assert len(key) > 40
    assert key_hash == hash_api_key(key)
    assert looks_like_api_key(key)
    assert not looks_like_api_key("a normal password")
    assert not looks_like_api_key("dph_onlyone")


def test_a_password_that_looks_like_an_api_key_still_logs_in(db: sessionmaker[Session]) -> None:
    password = "dph_my_old_password"
    with transaction(db) as session:
        create_user(session, username="dee", email="dee@example.org", password=password)
    with transaction(db) as session:
        assert authenticate(session, login="dee", secret=password).username == "dee"
    with transaction(db) as session, pytest.raises(InvalidCredentials):
        authenticate(session, login="dee", secret="dph_my_wrong_password")


def test_password_hashes_are_salted() -> None:
    first, second = hash_password(ANN_PASSWORD), hash_password(ANN_PASSWORD)
    assert first != second
    assert verify_password(first, ANN_PASSWORD)
    assert verify_password(second, ANN_PASSWORD)


@pytest.mark.parametrize("stored", [None, "", "not-a-hash", "$argon2id$broken"])
def test_verify_password_refuses_missing_or_broken_hashes(stored: str | None) -> None:
    assert verify_password(stored, ANN_PASSWORD) is False


# scoped API keys


def test_keys_of_the_operators_commands_have_every_scope(
    db: sessionmaker[Session], users: dict[str, int]
) -> None:
    key = _key_for(db, "ann")
    with transaction(db) as session:
        found = principal_for_api_key(session, key)
    row_id = found.api_key_id
    assert (found.scope, found.package, found.publisher, found.via) == (
        "admin",
        None,
        None,
        "api-key",
    )
    with db() as session:
        row = session.get(ApiKey, row_id)
        assert row is not None
        assert row.scope == "admin"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ([], None),
        ({"name": ""}, "name"),
        ({"name": " "}, "name"),
        ({"name": "x" * 101}, "name"),
        ({"name": "line\nbreak"}, "name"),
        ({"name": 7}, "name"),
        ({"scope": "root"}, "scope"),
        ({"scope": ["read"]}, "scope"),
        ({"package": "ann"}, "package"),
        ({"package": "ann/gdp/x"}, "package"),
        ({"package": "Ann/gdp"}, "package"),
        ({"package": 7}, "package"),
        ({"publisher": "Not A Name"}, "publisher"),
        ({"package": "ann/gdp", "publisher": "ann"}, "publisher"),
        ({"expires_in_days": 0}, "expires_in_days"),
        ({"expires_in_days": 3651}, "expires_in_days"),
        ({"expires_in_days": 1.5}, "expires_in_days"),
        ({"expires_in_days": True}, "expires_in_days"),
        ({"expires_in_days": "30"}, "expires_in_days"),
        ({"scopes": "read"}, "scopes"),
    ],
    ids=repr,
)
def test_key_requests_are_checked_field_by_field(body: object, field: str | None) -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_key_request(body)
    assert caught.value.details.get("field") == field


def test_a_key_request_has_defaults() -> None:
    assert parse_key_request({}) == KeyRequest("default", "read", None, None, None)
    assert parse_key_request(
        {"name": " ci ", "scope": "publish", "package": "ann/gdp", "expires_in_days": 3650}
    ) == KeyRequest("ci", "publish", ("ann", "gdp"), None, 3650)


def _principal(db: sessionmaker[Session], username: str, **kw: Any) -> Principal:
    with db() as session:
        user = find_user(session, username)
        assert user is not None
        return dataclasses.replace(principal_of(user), **kw)


def test_a_key_never_reaches_further_than_its_maker(
    db: sessionmaker[Session], users: dict[str, int]
) -> None:
    publish = _principal(db, "ann", scope="publish", via="api-key")
    with transaction(db) as session, pytest.raises(InsufficientScope):
        create_key(session, publish, KeyRequest(scope="admin"))
    limited = _principal(db, "ann", publisher="ann", via="api-key")
    with transaction(db) as session, pytest.raises(Forbidden):
        create_key(session, limited, KeyRequest(scope="read"))
    with transaction(db) as session, pytest.raises(Forbidden):
        create_key(session, limited, KeyRequest(scope="read", publisher="bob"))
    with transaction(db) as session:
        row, key = create_key(session, limited, KeyRequest(scope="read", publisher="ann"))
        assert (row.scope, describe(row)["publisher"]) == ("read", "ann")
    with transaction(db) as session:
        assert principal_for_api_key(session, key).publisher == "ann"


def test_a_key_limit_must_name_something_readable(
    db: sessionmaker[Session], users: dict[str, int]
) -> None:
    bob = _principal(db, "bob")
    with transaction(db) as session:
        session.add(Package(owner="ann", name="secret", findability="private"))
        session.add(Package(owner="ann", name="open", findability="published"))
    for wanted in (("ann", "secret"), ("ann", "missing")):
        with transaction(db) as session, pytest.raises(PackageNotFound):
            create_key(session, bob, KeyRequest(package=wanted))
    with transaction(db) as session, pytest.raises(PublisherNotFound):
        create_key(session, bob, KeyRequest(publisher="nobody"))
    with transaction(db) as session:
        row, _ = create_key(session, bob, KeyRequest(package=("ann", "open")))
        assert describe(row)["package"] == "ann/open"
    with transaction(db) as session:
        row, _ = create_key(session, _principal(db, "ann"), KeyRequest(package=("ann", "secret")))
        assert describe(row)["package"] == "ann/secret"


def test_keys_are_listed_and_revoked_by_their_user_only(
    db: sessionmaker[Session], users: dict[str, int]
) -> None:
    ann, bob = _principal(db, "ann"), _principal(db, "bob")
    with transaction(db) as session:
        first, _ = create_key(session, ann, KeyRequest(name="one", expires_in_days=30))
        second, _ = create_key(session, ann, KeyRequest(name="two", scope="publish"))
        ids = (first.id, second.id)
    with db() as session:
        listed = [describe(k) for k in list_keys(session, ann)]
        assert [k["name"] for k in listed] == ["two", "one"]
        assert list_keys(session, bob) == []
    assert listed[1]["expires_at"] - listed[1]["created_at"] == timedelta(days=30)
    assert not any(k["expired"] or k["revoked_at"] for k in listed)
    assert all("key_hash" not in k and "key" not in k for k in listed)
    for wrong in (str(ids[0]), "999999", "x", "-1", "1" * 40):
        with transaction(db) as session, pytest.raises(KeyNotFound):
            revoke_key(session, bob if wrong == str(ids[0]) else ann, wrong)
    with transaction(db) as session:
        revoked_at = revoke_key(session, ann, str(ids[0])).revoked_at
        assert revoked_at is not None
    with transaction(db) as session:
        assert revoke_key(session, ann, str(ids[0])).revoked_at == revoked_at
    with db() as session:
        events = session.scalars(select(AuditEvent).order_by(AuditEvent.id)).all()
        assert [(e.event, e.target) for e in events] == [
            ("api-key.create", f"api-key {ids[0]}"),
            ("api-key.create", f"api-key {ids[1]}"),
            ("api-key.revoke", f"api-key {ids[0]}"),
        ]
        assert all(e.actor == "ann" for e in events)
