"""Rate limits that hold across every API process: attempts are counted in the metastore.

A limit counts the hits of one key (a client address, an account name) in fixed windows aligned on
the clock (a window starts at ``now // window * window``). One statement adds a hit and reads the new
count back (``INSERT ... ON CONFLICT DO UPDATE SET count = count + 1 RETURNING count``), so processes
and threads counting the same key at once never lose a hit, on SQLite as on PostgreSQL. Counts land
in their own short transaction: a refused login rolls back, its count stays.

Rows of windows that have ended are swept now and then by the hits themselves (about one hit in
:data:`SWEEP_ONE_IN`); no window is longer than :data:`~dphub.config.MAX_RATE_WINDOW`.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
import random
import time
from dataclasses import dataclass

from sqlalchemy import delete, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from dphub.auth.audit import record_apart
from dphub.config import MAX_RATE_WINDOW
from dphub.errors import ConfigurationError, RateLimited
from dphub.hub import Hub
from dphub.metastore.db import transaction
from dphub.metastore.models import RateCounter

SWEEP_ONE_IN = 100
IPV6_PREFIX = 64
"""IPv6 clients are counted per /64: one machine usually holds a whole /64."""


@dataclass(frozen=True)
class Count:
    """A key's hits in the current window, this hit included."""

    key: str
    window_start: int
    count: int
    retry_after: int
    """Whole seconds until the window ends (at least 1)."""


def count_hit(
    sessions: sessionmaker[Session], key: str, *, window: int, now: float | None = None
) -> Count:
    """Add one hit to ``key`` in the window holding ``now`` and return the window's count."""
    if not 1 <= window <= MAX_RATE_WINDOW:
        raise ValueError(f"a rate-limit window is 1 to {MAX_RATE_WINDOW} seconds, not {window}")
    now = time.time() if now is None else now
    start = int(now // window) * window
    with transaction(sessions) as db:
        count = _increment(db, key, start)
    if random.randrange(SWEEP_ONE_IN) == 0:
        sweep(sessions, now=now)
    return Count(key, start, count, max(1, math.ceil(start + window - now)))


def hit(
    sessions: sessionmaker[Session],
    key: str,
    *,
    limit: int,
    window: int,
    now: float | None = None,
) -> None:
    """Count one hit of ``key``; raise :class:`RateLimited` when it is over ``limit`` per
    ``window`` seconds. A ``limit`` of 0 means no limit (nothing is counted).

    A key is counted in one window length: two limits on the same thing need two keys.
    """
    if limit <= 0:
        return
    counted = count_hit(sessions, key, window=window, now=now)
    if counted.count > limit:
        raise refusal(counted)


def refusal(counted: Count, what: str = "attempts") -> RateLimited:
    seconds = counted.retry_after
    return RateLimited(
        f"Too many {what}: try again in {seconds} second{'' if seconds == 1 else 's'}.",
        retry_after=seconds,
    )


def give_back(sessions: sessionmaker[Session], counted: Count) -> None:
    """Take back one hit counted by :func:`count_hit` (for limits that count only failures)."""
    with transaction(sessions) as db:
        db.execute(
            update(RateCounter)
            .where(
                RateCounter.key == counted.key,
                RateCounter.window_start == counted.window_start,
                RateCounter.count > 0,
            )
            .values(count=RateCounter.count - 1)
        )


def sweep(sessions: sessionmaker[Session], *, now: float | None = None) -> int:
    """Delete the counters of windows that ended (no window outlasts ``MAX_RATE_WINDOW``)."""
    now = time.time() if now is None else now
    with transaction(sessions) as db:
        result = db.execute(
            delete(RateCounter).where(RateCounter.window_start <= now - MAX_RATE_WINDOW)
        )
    return int(getattr(result, "rowcount", 0) or 0)


def _increment(db: Session, key: str, start: int) -> int:
    dialect = db.get_bind().dialect.name
    conflict = [RateCounter.key, RateCounter.window_start]
    plus_one = {"count": RateCounter.count + 1}
    if dialect == "postgresql":
        pg = postgresql.insert(RateCounter).values(key=key, window_start=start, count=1)
        pg = pg.on_conflict_do_update(index_elements=conflict, set_=plus_one)
        return int(db.execute(pg.returning(RateCounter.count)).scalar_one())
    if dialect == "sqlite":
        lite = sqlite.insert(RateCounter).values(key=key, window_start=start, count=1)
        lite = lite.on_conflict_do_update(index_elements=conflict, set_=plus_one)
        return int(db.execute(lite.returning(RateCounter.count)).scalar_one())
    raise ConfigurationError(f"Rate limits need SQLite or PostgreSQL, not {dialect}.")


# Keys


def ip_key(scope: str, ip: str) -> str:
    """The key of a client address for one limit; an IPv6 address stands for its /64."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return f"{scope}:ip:{ip[:100]}"
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return f"{scope}:ip:{address.ipv4_mapped}"
        network = ipaddress.IPv6Network((address, IPV6_PREFIX), strict=False)
        return f"{scope}:ip:{network}"
    return f"{scope}:ip:{address}"


def account_key(login: str) -> str:
    """The key of an account name as typed: the same derivation whether or not it exists, so a
    refusal tells nothing about the account; hashed, so the table holds no email addresses."""
    digest = hashlib.sha256(login.strip().lower().encode()).hexdigest()
    return f"login:account:{digest}"


# The hub's limits


@dataclass(frozen=True)
class LoginAttempt:
    """A login let through the limits; :func:`login_succeeded` takes its failure slot back."""

    reserved: Count | None


def start_login(hub: Hub, *, login: str, ip: str) -> LoginAttempt:
    """Count a login attempt against its client address (every attempt) and its account name
    (kept only if the attempt fails). Over either limit, raise :class:`RateLimited`, even before
    the secret is looked at: a guessed account stays closed to the right password too.

    The account's slot is taken before the secret is checked, not after, so concurrent guesses
    never get past the limit together. Slots of refused attempts are given back at once, so a
    burst of logins (which may briefly hold more slots than the limit) leaves no trace behind.
    """
    settings = hub.settings
    if settings.login_ip_limit > 0:
        counted = count_hit(hub.sessions, ip_key("login", ip), window=settings.login_ip_window)
        if counted.count > settings.login_ip_limit:
            first = counted.count == settings.login_ip_limit + 1
            _refuse(hub, counted, first, "login", actor=login, ip=ip, by="ip")
    if settings.login_failure_limit <= 0:
        return LoginAttempt(None)
    key = account_key(login)
    window = settings.login_failure_window
    reserved = count_hit(hub.sessions, key, window=window)
    if reserved.count > settings.login_failure_limit:
        give_back(hub.sessions, reserved)
        first = count_hit(hub.sessions, f"{key}:refused", window=window).count == 1
        what = "failed logins for this username or email"
        _refuse(hub, reserved, first, "login", actor=login, ip=ip, by="account", what=what)
    return LoginAttempt(reserved)


def login_succeeded(hub: Hub, attempt: LoginAttempt) -> None:
    """A successful login does not count towards its account's failures."""
    if attempt.reserved is not None:
        give_back(hub.sessions, attempt.reserved)


def limit_exchange(hub: Hub, ip: str, *, event: str = "oidc.exchange") -> None:
    """Count a single sign-on start or OIDC token exchange against its client address; the first
    refusal of a window is recorded as ``<event>.rate-limited``."""
    limit = hub.settings.exchange_ip_limit
    if limit <= 0:
        return
    counted = count_hit(
        hub.sessions, ip_key("exchange", ip), window=hub.settings.exchange_ip_window
    )
    if counted.count > limit:
        first = counted.count == limit + 1
        _refuse(hub, counted, first, event, actor=None, ip=ip, by="ip")


def _refuse(
    hub: Hub,
    counted: Count,
    first: bool,
    event: str,
    *,
    actor: str | None,
    ip: str,
    by: str,
    what: str = "attempts",
) -> None:
    # Recorded once per key and window: a flood of refused attempts does not flood the log.
    if first:
        record_apart(
            hub.sessions,
            f"{event}.rate-limited",
            outcome="denied",
            actor=actor,
            ip=ip,
            limit=by,
            retry_after=counted.retry_after,
        )
    raise refusal(counted, what)
