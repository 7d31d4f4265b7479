"""The rate limiter on SQLite and PostgreSQL: counts, windows, Retry-After, and no lost hits when
threads and separate engines (as separate API processes would) count the same key at once."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from dphub.auth import ratelimit
from dphub.auth.ratelimit import account_key, count_hit, give_back, hit, ip_key, sweep
from dphub.config import MAX_RATE_WINDOW, load_settings
from dphub.errors import RateLimited
from dphub.hub import Hub, open_hub
from dphub.metastore.db import make_engine, make_sessionmaker, transaction
from dphub.metastore.models import AuditEvent, RateCounter

NOW = 1_700_006_400.0  # a multiple of a day (and so of 60 and 900): windows start here


@pytest.fixture(autouse=True)
def no_chance_sweeps(monkeypatch: pytest.MonkeyPatch) -> None:
    """Hits sweep old windows by chance; the tests decide when that happens."""
    monkeypatch.setattr(ratelimit, "SWEEP_ONE_IN", 10**15)


@pytest.fixture
def sessions(db: sessionmaker[Session]) -> sessionmaker[Session]:
    return db


def stored(sessions: sessionmaker[Session], key: str) -> dict[int, int]:
    with transaction(sessions) as db:
        rows = db.execute(
            select(RateCounter.window_start, RateCounter.count).where(RateCounter.key == key)
        )
        return {int(start): int(count) for start, count in rows.all()}


def test_hits_up_to_the_limit_pass_and_the_next_is_refused(
    sessions: sessionmaker[Session],
) -> None:
    for _ in range(3):
        hit(sessions, "k", limit=3, window=60, now=NOW + 1)
    with pytest.raises(RateLimited) as refused:
        hit(sessions, "k", limit=3, window=60, now=NOW + 2)
    assert refused.value.code == "rate-limited"
    assert refused.value.status == 429
    assert refused.value.details == {"retry_after": 58}
    assert stored(sessions, "k") == {int(NOW): 4}


def test_count_hit_counts_and_tells_when_the_window_ends(sessions: sessionmaker[Session]) -> None:
    first = count_hit(sessions, "k", window=60, now=NOW + 5.2)
    second = count_hit(sessions, "k", window=60, now=NOW + 59.5)
    assert (first.count, first.window_start, first.retry_after) == (1, int(NOW), 55)
    # never 0: the header asks the client to wait at least a second
    assert (second.count, second.retry_after) == (2, 1)


def test_a_new_window_starts_from_zero(sessions: sessionmaker[Session]) -> None:
    for _ in range(2):
        hit(sessions, "k", limit=2, window=60, now=NOW + 30)
    with pytest.raises(RateLimited):
        hit(sessions, "k", limit=2, window=60, now=NOW + 59.9)
    hit(sessions, "k", limit=2, window=60, now=NOW + 60)
    hit(sessions, "k", limit=2, window=60, now=NOW + 61)
    with pytest.raises(RateLimited) as refused:
        hit(sessions, "k", limit=2, window=60, now=NOW + 100)
    assert refused.value.details["retry_after"] == 20
    assert stored(sessions, "k") == {int(NOW): 3, int(NOW) + 60: 3}


def test_keys_and_windows_are_counted_apart(sessions: sessionmaker[Session]) -> None:
    hit(sessions, "a", limit=1, window=60, now=NOW)
    hit(sessions, "b", limit=1, window=60, now=NOW)
    hit(sessions, "a", limit=1, window=60, now=NOW + 60)
    with pytest.raises(RateLimited):
        hit(sessions, "a", limit=1, window=60, now=NOW + 61)
    hit(sessions, "b", limit=1, window=60, now=NOW + 61)


def test_limit_zero_counts_nothing(sessions: sessionmaker[Session]) -> None:
    for _ in range(5):
        hit(sessions, "k", limit=0, window=60, now=NOW)
    assert stored(sessions, "k") == {}


@pytest.mark.parametrize("window", [0, -1, MAX_RATE_WINDOW + 1])
def test_windows_outside_one_second_to_a_day_are_refused(
    sessions: sessionmaker[Session], window: int
) -> None:
    with pytest.raises(ValueError, match="window"):
        hit(sessions, "k", limit=1, window=window, now=NOW)


def test_give_back_takes_one_hit_back_and_never_goes_below_zero(
    sessions: sessionmaker[Session],
) -> None:
    first = count_hit(sessions, "k", window=60, now=NOW)
    second = count_hit(sessions, "k", window=60, now=NOW)
    give_back(sessions, second)
    assert stored(sessions, "k") == {int(NOW): 1}
    give_back(sessions, first)
    give_back(sessions, first)
    assert stored(sessions, "k") == {int(NOW): 0}


def test_sweep_deletes_only_windows_that_ended_a_day_ago_or_more(
    sessions: sessionmaker[Session],
) -> None:
    count_hit(sessions, "old", window=60, now=NOW - MAX_RATE_WINDOW - 60)
    count_hit(sessions, "ended", window=MAX_RATE_WINDOW, now=NOW - 10)
    count_hit(sessions, "day", window=MAX_RATE_WINDOW, now=NOW + 10)
    count_hit(sessions, "new", window=60, now=NOW)
    assert sweep(sessions, now=NOW + 20) == 2
    assert stored(sessions, "old") == {}
    assert stored(sessions, "ended") == {}
    assert stored(sessions, "day") == {int(NOW): 1}
    assert stored(sessions, "new") == {int(NOW): 1}


def test_hits_sweep_now_and_then(
    sessions: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    count_hit(sessions, "old", window=60, now=NOW - 2 * MAX_RATE_WINDOW)
    monkeypatch.setattr(ratelimit, "SWEEP_ONE_IN", 1)  # every hit sweeps
    count_hit(sessions, "new", window=60, now=NOW)
    assert stored(sessions, "old") == {}


def test_concurrent_threads_never_pass_more_hits_than_the_limit(
    sessions: sessionmaker[Session],
) -> None:
    limit, tries = 25, 80
    barrier = threading.Barrier(8)

    def attempt(_: int) -> bool:
        if _ < 8:
            barrier.wait()
        try:
            hit(sessions, "shared", limit=limit, window=MAX_RATE_WINDOW)
        except RateLimited:
            return False
        return True

    with ThreadPoolExecutor(8) as pool:
        passed = list(pool.map(attempt, range(tries)))
    assert sum(passed) == limit
    assert sum(stored(sessions, "shared").values()) == tries


def test_two_engines_share_one_count(metastore_url: str, sessions: sessionmaker[Session]) -> None:
    """Two engines with their own pools stand for two API processes on one database."""
    other_engine = make_engine(metastore_url)
    other = make_sessionmaker(other_engine)
    limit, tries = 10, 40
    barrier = threading.Barrier(2)

    def run(factory: sessionmaker[Session]) -> int:
        barrier.wait()
        passed = 0
        for _ in range(tries // 2):
            try:
                hit(factory, "two-processes", limit=limit, window=MAX_RATE_WINDOW)
                passed += 1
            except RateLimited:
                pass
        return passed

    try:
        with ThreadPoolExecutor(2) as pool:
            results = list(pool.map(run, [sessions, other]))
    finally:
        other_engine.dispose()
    assert sum(results) == limit
    assert sum(stored(sessions, "two-processes").values()) == tries


# Keys


def test_ip_keys() -> None:
    assert ip_key("login", "203.0.113.7") == "login:ip:203.0.113.7"
    assert ip_key("login", "::ffff:203.0.113.7") == "login:ip:203.0.113.7"
    # one /64 is one client: an IPv6 host has billions of addresses to rotate through
    assert ip_key("login", "2001:db8:1:2:aaaa::1") == ip_key("login", "2001:db8:1:2:ffff::9")
    assert ip_key("login", "2001:db8:1:2::1") != ip_key("login", "2001:db8:1:3::1")
    assert ip_key("login", "2001:db8:1:2::1") == "login:ip:2001:db8:1:2::/64"
    assert ip_key("exchange", "203.0.113.7") != ip_key("login", "203.0.113.7")
    assert ip_key("login", "unknown") == "login:ip:unknown"
    assert len(ip_key("login", "x" * 1000)) < 300


def test_account_keys_hide_the_name_and_ignore_case_and_spaces() -> None:
    key = account_key("Alice@Example.org ")
    assert key == account_key("alice@example.org")
    assert "alice" not in key
    assert key != account_key("alice")
    assert len(account_key("x" * 100_000)) < 300


# The login limits of a hub


@pytest.fixture
def hub(metastore_url: str, tmp_path: Path) -> Iterator[Hub]:
    settings = load_settings(
        environ={},
        data_dir=tmp_path / "data",
        database_url=metastore_url,
        login_ip_limit=6,
        login_ip_window=MAX_RATE_WINDOW,
        login_failure_limit=2,
        login_failure_window=MAX_RATE_WINDOW,
        exchange_ip_limit=2,
        exchange_ip_window=MAX_RATE_WINDOW,
    )
    opened = open_hub(settings)
    yield opened
    opened.close()


def audit_events(hub: Hub) -> list[tuple[str, str, str | None, str | None]]:
    with transaction(hub.sessions) as db:
        rows = db.execute(
            select(AuditEvent.event, AuditEvent.outcome, AuditEvent.actor, AuditEvent.ip).order_by(
                AuditEvent.id
            )
        )
        return [tuple(row) for row in rows]  # type: ignore[misc]


def test_only_failures_count_against_an_account(hub: Hub) -> None:
    for _ in range(5):  # successes give their slot back
        ratelimit.login_succeeded(hub, ratelimit.start_login(hub, login="ann", ip="10.0.0.1"))
    ratelimit.start_login(hub, login="ann", ip="10.0.0.2")  # two failures: kept
    ratelimit.start_login(hub, login="ANN", ip="10.0.0.3")
    with pytest.raises(RateLimited) as refused:
        ratelimit.start_login(hub, login="ann", ip="10.0.0.4")
    assert "failed logins" in refused.value.message
    with pytest.raises(RateLimited):  # still closed, whatever the secret will be
        ratelimit.start_login(hub, login="ann", ip="10.0.0.4")
    ratelimit.start_login(hub, login="bob", ip="10.0.0.4")  # other accounts are open
    # the refusal is recorded once per window, not once per attempt
    assert audit_events(hub) == [("login.rate-limited", "denied", "ann", "10.0.0.4")]
    # refused attempts give their slot back: the count holds the two failures only
    assert sum(stored(hub.sessions, account_key("ann")).values()) == 2


def test_a_burst_of_good_logins_leaves_no_count_behind(hub: Hub) -> None:
    """Logins of one account at the same moment may hold more slots than the limit for a while
    (some are refused), but once they are done nothing is left counted against the account."""
    barrier = threading.Barrier(8)

    def login(n: int) -> bool:
        barrier.wait()
        try:
            attempt = ratelimit.start_login(hub, login="busy", ip=f"10.3.0.{n}")
        except RateLimited:
            return False
        ratelimit.login_succeeded(hub, attempt)
        return True

    with ThreadPoolExecutor(8) as pool:
        let_through = sum(pool.map(login, range(8)))
    assert let_through >= 2
    assert sum(stored(hub.sessions, account_key("busy")).values()) == 0
    for n in range(3):
        ratelimit.login_succeeded(hub, ratelimit.start_login(hub, login="busy", ip=f"10.4.0.{n}"))


def test_concurrent_guesses_never_get_past_the_failure_limit(hub: Hub) -> None:
    barrier = threading.Barrier(8)

    def guess(n: int) -> bool:
        barrier.wait()
        try:
            ratelimit.start_login(hub, login="target", ip=f"10.5.0.{n}")
        except RateLimited:
            return False
        return True  # and then the guess fails: its slot is kept

    with ThreadPoolExecutor(8) as pool:
        assert sum(pool.map(guess, range(8))) == 2
    assert sum(stored(hub.sessions, account_key("target")).values()) == 2


def test_every_attempt_counts_against_an_address(hub: Hub) -> None:
    for index in range(6):
        attempt = ratelimit.start_login(hub, login=f"user{index}", ip="10.0.0.9")
        ratelimit.login_succeeded(hub, attempt)
    with pytest.raises(RateLimited) as refused:
        ratelimit.start_login(hub, login="someone", ip="10.0.0.9")
    assert refused.value.message.startswith("Too many attempts")
    ratelimit.start_login(hub, login="someone", ip="10.0.0.10")
    assert audit_events(hub) == [("login.rate-limited", "denied", "someone", "10.0.0.9")]


def test_unknown_and_known_names_are_limited_alike(hub: Hub) -> None:
    """The limiter never looks an account up: its answers are the same whether it exists."""
    answers = []
    for login in ("nobody-here", "nobody-there"):
        for _ in range(3):
            try:
                ratelimit.start_login(hub, login=login, ip=f"10.1.0.{len(answers)}")
                answers.append("let through")
            except RateLimited as exc:
                answers.append(f"refused {exc.details}")
    assert answers[:3] == answers[3:]


def test_exchanges_are_limited_per_address(hub: Hub) -> None:
    ratelimit.limit_exchange(hub, "10.2.0.1")
    ratelimit.limit_exchange(hub, "10.2.0.1")
    with pytest.raises(RateLimited):
        ratelimit.limit_exchange(hub, "10.2.0.1")
    ratelimit.limit_exchange(hub, "10.2.0.2")
    assert audit_events(hub) == [("oidc.exchange.rate-limited", "denied", None, "10.2.0.1")]


def test_limits_of_zero_count_nothing(metastore_url: str, tmp_path: Path) -> None:
    settings = load_settings(
        environ={},
        data_dir=tmp_path / "data",
        database_url=metastore_url,
        login_ip_limit=0,
        login_failure_limit=0,
        exchange_ip_limit=0,
    )
    opened = open_hub(settings)
    try:
        for _ in range(20):
            ratelimit.start_login(opened, login="ann", ip="10.0.0.1")
            ratelimit.limit_exchange(opened, "10.0.0.1")
        with transaction(opened.sessions) as db:
            assert db.scalar(select(func.count()).select_from(RateCounter)) == 0
    finally:
        opened.close()
