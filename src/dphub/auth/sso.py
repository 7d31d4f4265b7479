"""Single sign-on: a login that starts at the hub, passes through a provider, and ends with a token.

1. :func:`start_login` records the login (``oidc_logins``: state, nonce, PKCE verifier, where to go
   next) in the metastore, so that any API process can finish it, and answers the provider's URL;
   the browser also gets a cookie tied to the state (:func:`binding_cookie`).
2. :func:`finish_login` runs when the provider sends the browser back: the state is used up first
   (a replayed state is refused), the browser must hold the login's cookie, the code is exchanged,
   the identity checked, and the user linked (``oidc_identities``: issuer + subject) or created.
3. Where the browser goes then depends on ``next``, which was checked at step 1:

   - a loopback URL (``http://127.0.0.1:<port>/...``, ``http://localhost:<port>/...``): the command
     line's one-shot receiver. It gets a one-time ``code`` that :func:`redeem` turns into a token;
     only the code's SHA-256 is stored, it is valid :data:`HANDOFF_TTL` seconds, and works once;
   - a path on this hub (``/...``): the browser gets the token in an HttpOnly cookie.

   Anything else (another host, ``//host``, a scheme, backslashes) is refused before the provider
   is ever asked.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from dphub.auth import audit, oidc
from dphub.auth.accounts import create_user, principal_of
from dphub.auth.providers import Provider
from dphub.auth.tokens import issue_token
from dphub.errors import (
    AlreadyExists,
    DphubError,
    InvalidCredentials,
    InvalidRequest,
)
from dphub.metastore.db import transaction
from dphub.metastore.models import OidcIdentity, OidcLogin, Publisher, User
from dphub.names import RESERVED_NAMES, is_valid_name

LOGIN_TTL = 600
"""Seconds a started login may take at the provider."""
HANDOFF_TTL = 120
"""Seconds the command line has to redeem its one-time code."""
FORGET_AFTER = 24 * 3600
"""Finished or abandoned logins are deleted after this many seconds."""
COOKIE_NAME = "dphub_session"
MAX_NEXT = 2000
LOOPBACK_NEXT_HOSTS = ("127.0.0.1", "localhost")


# Where to go after the login


def check_next(value: str | None) -> str:
    """``value`` if it is a path on this hub or a loopback URL with a port; ``/`` when absent.

    Refuses (:class:`InvalidRequest`) everything else: the hub never sends a token to another site.
    """
    if value is None or value == "":
        return "/"
    problem = _next_problem(value)
    if problem is not None:
        raise InvalidRequest(
            f"next={value[:200]!r} is refused: {problem}. Use a path on this hub (/...) or the"
            " command line's loopback address (http://127.0.0.1:PORT/...).",
            field="next",
        )
    return value


def _next_problem(value: str) -> str | None:
    if len(value) > MAX_NEXT:
        return f"it is longer than {MAX_NEXT} characters"
    if "\\" in value or any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in value):
        return "it contains backslashes, spaces or control characters"
    if value.startswith("/"):
        return "it names another host" if value.startswith("//") else None
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        return "it is not a valid URL"
    if parts.scheme != "http" or parts.hostname not in LOOPBACK_NEXT_HOSTS:
        return "only paths on this hub and http://127.0.0.1 or http://localhost are allowed"
    if port is None:
        return "a loopback address needs its port"
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        return "it must not carry a user name"
    if parts.fragment:
        return "it must not carry a fragment"
    return None


def is_loopback(next_url: str) -> bool:
    return not next_url.startswith("/")


def _with_query(url: str, **params: str) -> str:
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in params]
    query.extend(params.items())
    return urlunsplit(parts._replace(query=urlencode(query)))


def _digest(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


# 1. Start


def redirect_uri(base_url: str, provider: Provider) -> str:
    return f"{base_url}/api/auth/oidc/{provider.name}/callback"


@dataclass(frozen=True)
class Started:
    url: str
    """The provider's page to send the browser to."""
    state: str


def binding_cookie(state: str) -> tuple[str, str]:
    """Name and value of the cookie that ties a login to the browser that started it.

    The callback requires it, so a callback URL made by someone else's login, opened in this
    browser, cannot log this browser in as them. One cookie per login: logins in two tabs both
    work.
    """
    digest = hashlib.sha256(f"dphub-sso:{state}".encode()).hexdigest()
    return f"dphub_sso_{digest[:16]}", digest[16:48]


def start_login(
    sessions: sessionmaker[Session],
    provider: Provider,
    *,
    base_url: str,
    next_url: str | None,
    ip: str | None = None,
) -> Started:
    """Record a new login; the browser goes to the provider with the binding cookie set."""
    try:
        checked = check_next(next_url)
    except InvalidRequest:
        audit.record_apart(
            sessions,
            "login.sso.bad-next",
            outcome="denied",
            ip=ip,
            target=provider.name,
            next=(next_url or "")[:200],
        )
        raise
    state = secrets.token_urlsafe(32)
    nonce = secrets.token_urlsafe(32)
    verifier = secrets.token_urlsafe(64)
    url = oidc.authorization_url(
        provider,
        redirect_uri=redirect_uri(base_url, provider),
        state=state,
        nonce=nonce,
        code_verifier=verifier,
    )
    with transaction(sessions) as db:
        cutoff = datetime.now(UTC) - timedelta(seconds=FORGET_AFTER)
        db.execute(delete(OidcLogin).where(OidcLogin.created_at < cutoff))
        db.add(
            OidcLogin(
                state=state,
                provider=provider.name,
                nonce=nonce,
                code_verifier=verifier,
                next=checked,
            )
        )
    return Started(url, state)


# 2. Finish


@dataclass(frozen=True)
class Finished:
    """Where the browser goes now, with what."""

    location: str
    session_token: str | None = None
    """For a hub path: the token to set as the session cookie."""


def finish_login(
    sessions: sessionmaker[Session],
    provider: Provider,
    *,
    base_url: str,
    token_ttl: int,
    state: str | None,
    code: str | None,
    cookies: Mapping[str, str],
    error: str | None = None,
    ip: str | None = None,
) -> Finished:
    """The callback: use up the state, check that this browser started the login and the
    provider's answer, link or create the user."""
    login = _use_state(sessions, provider, state, ip=ip)

    def failed(reason: str, **detail: Any) -> None:
        audit.record_apart(
            sessions,
            "login.sso",
            outcome="failed",
            ip=ip,
            target=provider.name,
            reason=reason,
            **detail,
        )

    name, value = binding_cookie(login.state)
    if not hmac.compare_digest(cookies.get(name, "").encode(), value.encode()):
        failed("other-browser")
        raise InvalidRequest(
            "This login was started in another browser (or its cookie was blocked); start it"
            " again here.",
            reason="other-browser",
        )
    if error:
        failed("provider-error", provider_error=error[:100])
        raise InvalidCredentials(
            f"{provider.title} did not log you in ({error[:100]}); start the login again.",
            provider_error=error[:100],
        )
    if not code:
        failed("no-code")
        raise InvalidRequest(f"{provider.title} sent the browser back without a code.")
    try:
        identity = oidc.provider_identity(
            provider,
            code=code,
            redirect_uri=redirect_uri(base_url, provider),
            code_verifier=login.code_verifier,
            nonce=login.nonce,
        )
    except DphubError as exc:
        failed(exc.code, message=exc.message[:300])
        raise
    try:
        try:
            return _sign_in(sessions, provider, identity, login, token_ttl=token_ttl, ip=ip)
        except IntegrityError:
            # Two first logins of one account at once: the other made the user; link to it.
            return _sign_in(sessions, provider, identity, login, token_ttl=token_ttl, ip=ip)
    except DphubError as exc:
        failed(exc.code, message=exc.message[:300])
        raise


@dataclass(frozen=True)
class _Login:
    state: str
    nonce: str
    code_verifier: str
    next: str


def _use_state(
    sessions: sessionmaker[Session], provider: Provider, state: str | None, *, ip: str | None
) -> _Login:
    """The login ``state`` names, marked used in the same step: a state works once."""
    if not state:
        raise InvalidRequest("The callback has no state: start the login from the hub again.")
    now = datetime.now(UTC)
    with transaction(sessions) as db:
        login = db.get(OidcLogin, state[:128])
        if login is None or login.provider != provider.name:
            refusal = "unknown"
        elif login.used_at is not None:
            refusal = "replay"
        elif login.created_at < now - timedelta(seconds=LOGIN_TTL):
            refusal = "expired"
        else:
            used = db.execute(
                update(OidcLogin)
                .where(OidcLogin.state == login.state, OidcLogin.used_at.is_(None))
                .values(used_at=now)
            )
            refusal = "" if used.rowcount == 1 else "replay"  # type: ignore[attr-defined]
        if not refusal:
            assert login is not None
            return _Login(login.state, login.nonce, login.code_verifier, login.next or "/")
    if refusal == "replay":
        audit.record_apart(
            sessions, "login.sso.replay", outcome="denied", ip=ip, target=provider.name
        )
        raise InvalidRequest(
            "This login has already been completed; its state works once. Start the login again.",
            reason="state-used",
        )
    audit.record_apart(
        sessions, "login.sso", outcome="failed", ip=ip, target=provider.name, reason=refusal
    )
    if refusal == "expired":
        raise InvalidRequest(
            f"This login took longer than {LOGIN_TTL // 60} minutes; start it again.",
            reason="state-expired",
        )
    raise InvalidRequest(
        "The callback's state is unknown to this hub; start the login from the hub again.",
        reason="state-unknown",
    )


def _sign_in(
    sessions: sessionmaker[Session],
    provider: Provider,
    identity: oidc.Identity,
    login: _Login,
    *,
    token_ttl: int,
    ip: str | None,
) -> Finished:
    with transaction(sessions) as db:
        user, created = _user_for(db, identity)
        principal = principal_of(user)
        audit.record(
            db,
            "login.sso",
            principal=principal,
            ip=ip,
            target=provider.name,
            created=created,
            subject=identity.subject[:200],
        )
        if is_loopback(login.next):
            handoff = secrets.token_urlsafe(32)
            db.execute(
                update(OidcLogin)
                .where(OidcLogin.state == login.state)
                .values(user_id=user.id, handoff_hash=_digest(handoff))
            )
            return Finished(_with_query(login.next, code=handoff))
        db.execute(update(OidcLogin).where(OidcLogin.state == login.state).values(user_id=user.id))
        token, _ = issue_token(db, principal, ttl=token_ttl)
        return Finished(login.next, session_token=token)


def _user_for(db: Session, identity: oidc.Identity) -> tuple[User, bool]:
    """The user linked to ``identity``, or a new one; whether it was created."""
    linked = db.scalar(
        select(OidcIdentity).where(
            OidcIdentity.issuer == identity.issuer, OidcIdentity.subject == identity.subject
        )
    )
    if linked is not None:
        user = db.get(User, linked.user_id)
        assert user is not None  # the foreign key cascades deletes
        return user, False
    if not identity.email:
        raise InvalidRequest(
            "The provider did not share a verified email address, and a dphub account needs one:"
            " verify an address with the provider (and allow the hub to read it), then log in"
            " again.",
            reason="no-email",
        )
    if db.scalar(select(User.id).where(User.email == identity.email.lower())) is not None:
        raise AlreadyExists(
            "A dphub account already uses the email address this provider gave; log in to it"
            " with its password or API key. Single sign-on does not take over existing accounts.",
            field="email",
        )
    user = create_user(
        db,
        username=_free_username(db, _username_base(identity.names)),
        email=identity.email,
        full_name=identity.full_name[:200] if identity.full_name else None,
    )
    db.add(OidcIdentity(user_id=user.id, issuer=identity.issuer, subject=identity.subject))
    db.flush()
    return user, True


def _username_base(candidates: tuple[str, ...]) -> str:
    """A valid, unreserved publisher name from the first usable candidate."""
    for raw in candidates:
        ascii_text = unicodedata.normalize("NFKD", raw).encode("ascii", "ignore").decode()
        name = re.sub(r"[^a-z0-9_.-]+", "-", ascii_text.lower())
        name = re.sub(r"-{2,}", "-", name).strip("-_.")[:90].rstrip("-_.")
        if is_valid_name(name):
            return f"{name}-user" if name in RESERVED_NAMES else name
    return "user"


def _free_username(db: Session, base: str) -> str:
    """``base``, or ``base-2``, ``base-3``, ...: the first name no user or organization holds."""
    candidates = [base, *(f"{base}-{n}" for n in range(2, 100))]
    taken = set(db.scalars(select(Publisher.name).where(Publisher.name.in_(candidates))))
    taken.update(db.scalars(select(User.username).where(User.username.in_(candidates))))
    for candidate in candidates:
        if candidate not in taken:
            return candidate
    return f"{base}-{secrets.token_hex(4)}"


# 3. The command line's handoff


def redeem(
    sessions: sessionmaker[Session], code: str, *, token_ttl: int, ip: str | None = None
) -> dict[str, Any]:
    """The token for a one-time code the callback gave a loopback ``next``.

    A redeemed code keeps its hash but loses its ``user_id``, so that using it again is told
    apart (and audited) from a code that never existed.
    """
    digest = _digest(code)
    now = datetime.now(UTC)
    refusal = ""
    with transaction(sessions) as db:
        login = db.scalar(select(OidcLogin).where(OidcLogin.handoff_hash == digest))
        if login is None:
            refusal = "unknown"
        elif login.user_id is None:
            refusal = "replay"
        elif login.used_at is None or login.used_at < now - timedelta(seconds=HANDOFF_TTL):
            refusal = "expired"
        else:
            user_id = login.user_id
            taken = db.execute(
                update(OidcLogin)
                .where(OidcLogin.state == login.state, OidcLogin.user_id.is_not(None))
                .values(user_id=None)
            )
            if taken.rowcount != 1:  # type: ignore[attr-defined]
                refusal = "replay"
            else:
                user = db.get(User, user_id)
                assert user is not None
                principal = principal_of(user)
                token, expires_at = issue_token(db, principal, ttl=token_ttl)
                audit.record(
                    db, "login.sso.redeem", principal=principal, ip=ip, target=login.provider
                )
                return {"token": token, "expires_at": expires_at, "username": user.username}
    event = "login.sso.replay" if refusal == "replay" else "login.sso"
    audit.record_apart(
        sessions,
        event,
        outcome="denied" if refusal == "replay" else "failed",
        ip=ip,
        reason=f"handoff-{refusal}",
    )
    raise InvalidCredentials(
        "This login code is unknown, has expired or was already used: run"
        " `dphub login --browser` again.",
        reason=f"code-{refusal}",
    )


def session_cookie(base_url: str, token: str, *, max_age: int) -> str:
    """The ``Set-Cookie`` value that carries a session token for the web pages."""
    secure = "; Secure" if base_url.startswith("https://") else ""
    return f"{COOKIE_NAME}={token}; Max-Age={max_age}; Path=/; HttpOnly; SameSite=Lax{secure}"
