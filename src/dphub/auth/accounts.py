"""Accounts: create users, issue API keys, and authenticate a username or email with a secret."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from dphub.auth.apikeys import hash_api_key, looks_like_api_key, new_api_key
from dphub.auth.passwords import MIN_PASSWORD_LENGTH, burn_time, hash_password, verify_password
from dphub.auth.principal import Principal
from dphub.errors import AlreadyExists, InvalidCredentials, InvalidRequest, InvalidToken
from dphub.metastore.models import ApiKey, User
from dphub.names import check_publisher_name

EMAIL_MAX = 320


def principal_of(user: User) -> Principal:
    return Principal(user.id, user.username, user.email, user.is_admin)


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


def create_api_key(session: Session, *, user: User, name: str = "default") -> str:
    """Store a new key for ``user`` and return it; it is never retrievable again."""
    key, prefix, key_hash = new_api_key()
    session.add(ApiKey(user_id=user.id, name=name, prefix=prefix, key_hash=key_hash))
    session.flush()
    return key


def find_user(session: Session, login: str) -> User | None:
    login = login.strip()
    if "@" in login:
        return session.scalar(select(User).where(User.email == login.lower()))
    return session.scalar(select(User).where(User.username == login))


def authenticate(session: Session, *, login: str, secret: str) -> User:
    """The user whose username or email is ``login`` and whose API key or password is ``secret``."""
    user = find_user(session, login)
    if user is None:
        burn_time(secret)
        raise InvalidCredentials()
    if looks_like_api_key(secret):
        key = _live_key(session, secret)
        if key is not None and key.user_id == user.id:
            key.last_used_at = datetime.now(UTC)
            return user
    if verify_password(user.password_hash, secret):
        return user
    raise InvalidCredentials()


def user_for_api_key(session: Session, secret: str) -> User:
    key = _live_key(session, secret)
    if key is None:
        raise InvalidToken("The API key is not valid or has been revoked.")
    key.last_used_at = datetime.now(UTC)
    return key.user


def _live_key(session: Session, secret: str) -> ApiKey | None:
    key = session.scalar(select(ApiKey).where(ApiKey.key_hash == hash_api_key(secret)))
    if key is None or key.revoked_at is not None:
        return None
    if key.expires_at is not None and key.expires_at <= datetime.now(UTC):
        return None
    return key


def get_user(session: Session, user_id: int) -> User | None:
    return session.get(User, user_id)
