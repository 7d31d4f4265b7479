"""Accounts: create users, issue API keys, and authenticate a username or email with a secret."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from dphub.auth.apikeys import hash_api_key, is_live, looks_like_api_key, new_api_key
from dphub.auth.passwords import MIN_PASSWORD_LENGTH, burn_time, hash_password, verify_password
from dphub.auth.principal import Principal
from dphub.errors import AlreadyExists, InvalidCredentials, InvalidRequest, InvalidToken
from dphub.metastore.models import ApiKey, Publisher, User
from dphub.names import check_publisher_name

EMAIL_MAX = 320


def principal_of(user: User, key: ApiKey | None = None) -> Principal:
    """The user as a principal; through an API key, with the key's scope and limit."""
    if key is None:
        return Principal(user.id, user.username, user.email, user.is_admin)
    package = (key.package.owner, key.package.name) if key.package is not None else None
    publisher = key.publisher.name if key.publisher is not None else None
    return Principal(
        user.id,
        user.username,
        user.email,
        user.is_admin,
        scope=key.scope,
        package=package,
        publisher=publisher,
        via="api-key",
        api_key_id=key.id,
    )


def create_user(
    session: Session,
    *,
    username: str,
    email: str,
    password: str | None = None,
    full_name: str | None = None,
    is_admin: bool = False,
) -> User:
    check_publisher_name(username)
    email = email.strip()
    if "@" not in email or len(email) > EMAIL_MAX or any(c.isspace() for c in email):
        raise InvalidRequest(f"{email!r} is not an email address.", field="email")
    if password is not None and len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidRequest(
            f"The password is too short: use at least {MIN_PASSWORD_LENGTH} characters.",
            field="password",
        )
    taken = session.scalar(
        select(User).where(or_(User.username == username, User.email == email.lower()))
    )
    if taken is not None:
        what = "username" if taken.username == username else "email"
        raise AlreadyExists(f"A user with this {what} already exists.", field=what)
    if session.scalar(select(Publisher.id).where(Publisher.name == username)) is not None:
        raise AlreadyExists(
            f"{username!r} is already the name of an organization.", field="username"
        )
    session.add(Publisher(name=username, kind="user", title=full_name))
    user = User(
        username=username,
        email=email.lower(),
        full_name=full_name,
        password_hash=hash_password(password) if password else None,
        is_admin=is_admin,
    )
    session.add(user)
    session.flush()
    return user


def create_api_key(
    session: Session, *, user: User, name: str = "default", scope: str = "admin"
) -> str:
    """Store a new key for ``user`` (by default with every scope, as the operator's commands make
    them) and return it; it is never retrievable again."""
    key, prefix, key_hash = new_api_key()
    session.add(ApiKey(user_id=user.id, name=name, prefix=prefix, key_hash=key_hash, scope=scope))
    session.flush()
    return key


def find_user(session: Session, login: str) -> User | None:
    login = login.strip()
    if "@" in login:
        return session.scalar(select(User).where(User.email == login.lower()))
    return session.scalar(select(User).where(User.username == login))


def authenticate(session: Session, *, login: str, secret: str) -> Principal:
    """The user whose username or email is ``login`` and whose API key or password is ``secret``;
    through a key, with that key's scope and limit."""
    user = find_user(session, login)
    if user is None:
        burn_time(secret)
        raise InvalidCredentials()
    if looks_like_api_key(secret):
        key = _live_key(session, secret)
        if key is not None and key.user_id == user.id:
            key.last_used_at = datetime.now(UTC)
            return principal_of(user, key)
    if verify_password(user.password_hash, secret):
        return principal_of(user)
    raise InvalidCredentials()


def principal_for_api_key(session: Session, secret: str) -> Principal:
    key = _live_key(session, secret)
    if key is None:
        raise InvalidToken("The API key is not valid, has expired or has been revoked.")
    key.last_used_at = datetime.now(UTC)
    return principal_of(key.user, key)


def _live_key(session: Session, secret: str) -> ApiKey | None:
    key = session.scalar(select(ApiKey).where(ApiKey.key_hash == hash_api_key(secret)))
    return key if key is not None and is_live(key) else None


def get_user(session: Session, user_id: int) -> User | None:
    return session.get(User, user_id)
