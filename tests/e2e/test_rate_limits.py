"""Login rate limits against the real server, on the embedded hub and on the scale hub (two API
processes on one port: a limit kept in one process's memory would let twice as many through).

These hubs trust 127.0.0.1 as a proxy, so each test picks its client address with X-Forwarded-For.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.conftest import HubServer, Publisher, new_publisher, start_hub, stop_hub
from tests.e2e.test_audit import events, new_admin, post_login

IP_LIMIT = 8
FAILURE_LIMIT = 3
EXCHANGE_LIMIT = 4
DAY = 24 * 3600  # one window for the whole run: no count starts over halfway through a test

_addresses = itertools.count(1)


def new_address() -> str:
    n = next(_addresses)
    return f"198.51.{n // 250}.{n % 250 + 1}"


@pytest.fixture(scope="module", params=["embedded", "scale"])
def limited(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[HubServer]:
    extra = {
        "DPHUB_LOGIN_IP_LIMIT": str(IP_LIMIT),
        "DPHUB_LOGIN_IP_WINDOW": str(DAY),
        "DPHUB_LOGIN_FAILURE_LIMIT": str(FAILURE_LIMIT),
        "DPHUB_LOGIN_FAILURE_WINDOW": str(DAY),
        "DPHUB_EXCHANGE_IP_LIMIT": str(EXCHANGE_LIMIT),
        "DPHUB_EXCHANGE_IP_WINDOW": str(DAY),
        "DPHUB_TRUSTED_PROXIES": "127.0.0.1",
    }
    if request.param == "scale":
        postgres = request.getfixturevalue("postgres_server")
        s3 = request.getfixturevalue("s3_server")
        extra |= {
            "DPHUB_DATABASE_URL": postgres.create_database(),
            **s3.storage_env(s3.create_bucket(), prefix="limits"),
        }
    server = start_hub(
        tmp_path_factory.mktemp(f"limited-{request.param}"),
        extra,
        kind=request.param,
        serve_args=("--workers", "2") if request.param == "scale" else (),
    )
    yield server
    stop_hub(server)


@pytest.fixture(scope="module")
def admin_token(limited: HubServer, tmp_path_factory: pytest.TempPathFactory) -> str:
    admin = new_admin(limited, tmp_path_factory.mktemp("admin"))
    answer = post_login(limited, admin.username, admin.password, **{"X-Forwarded-For": "10.9.9.9"})
    assert answer.status_code == 200, answer.text
    return str(answer.json()["token"])


def attempt(server: HubServer, login: str, secret: str, ip: str) -> httpx.Response:
    return post_login(server, login, secret, **{"X-Forwarded-For": ip})


def assert_rate_limited(answer: httpx.Response, window: int = DAY) -> int:
    assert answer.status_code == 429, answer.text
    error = answer.json()["error"]
    assert error["code"] == "rate-limited"
    retry_after = int(answer.headers["retry-after"])
    assert 0 < retry_after <= window
    assert error["retry_after"] == retry_after
    assert "token" not in answer.json()
    return retry_after


def test_guessing_closes_the_account_even_to_the_right_password(
    limited: HubServer, tmp_path: Path, admin_token: str
) -> None:
    victim = new_publisher(limited, tmp_path / "victim")
    bystander = new_publisher(limited, tmp_path / "bystander")
    ip = new_address()
    guesses = [f"guess-{n}-{victim.username}" for n in range(FAILURE_LIMIT + 1)]
    for guess in guesses[:FAILURE_LIMIT]:
        answer = attempt(limited, victim.username, guess, ip)
        assert answer.status_code == 401
        assert answer.json()["error"]["code"] == "invalid-credentials"
    assert_rate_limited(attempt(limited, victim.username, guesses[-1], ip))
    # the point of the limit: the right password does not open it either, from any address
    assert_rate_limited(attempt(limited, victim.username, victim.password, ip))
    assert_rate_limited(attempt(limited, victim.username, victim.password, new_address()))
    assert_rate_limited(attempt(limited, victim.username, victim.secret, new_address()))
    # other accounts are not affected, not even from the guesser's address
    assert attempt(limited, bystander.username, bystander.password, ip).status_code == 200

    found = events(limited, admin_token, actor=victim.username)
    assert [(e["event"], e["outcome"]) for e in found] == [
        ("login.rate-limited", "denied"),
        *[("login.failed", "failed")] * FAILURE_LIMIT,
    ]
    assert found[0]["ip"] == ip  # the forwarded address: 127.0.0.1 is a trusted proxy here
    assert found[0]["detail"]["limit"] == "account"
    text = str(found)
    for secret in [*guesses, victim.password, victim.secret]:
        assert secret not in text
        assert secret not in limited.log_text()


def test_successful_logins_do_not_count_against_the_account(
    limited: HubServer, tmp_path: Path
) -> None:
    user = new_publisher(limited, tmp_path / "user")
    for _ in range(2 * FAILURE_LIMIT):
        assert attempt(limited, user.username, user.password, new_address()).status_code == 200
    for _ in range(FAILURE_LIMIT):
        assert attempt(limited, user.username, "wrong-password", new_address()).status_code == 401
    assert_rate_limited(attempt(limited, user.username, user.password, new_address()))


def test_a_refusal_does_not_tell_whether_the_account_exists(
    limited: HubServer, tmp_path: Path
) -> None:
    user = new_publisher(limited, tmp_path / "user")
    answers: dict[str, list[tuple[int, str]]] = {}
    for login in (user.username, f"no-such-{user.username}"):
        answers[login] = []
        for _ in range(FAILURE_LIMIT + 2):
            answer = attempt(limited, login, "wrong-password", new_address())
            error = answer.json()["error"]
            # the seconds left may differ by one between the two; nothing else may
            message = re.sub(r"\d+ seconds?", "N seconds", error["message"])
            answers[login].append((answer.status_code, f"{error['code']}: {message}"))
    known, unknown = answers.values()
    assert known == unknown
    assert known[-1][0] == 429


def test_every_attempt_from_one_address_counts(limited: HubServer, tmp_path: Path) -> None:
    user = new_publisher(limited, tmp_path / "user")
    ip = new_address()
    for _ in range(IP_LIMIT - 1):
        assert attempt(limited, user.username, user.password, ip).status_code == 200
    assert attempt(limited, f"nobody-{user.username}", "wrong-password", ip).status_code == 401
    assert_rate_limited(attempt(limited, user.username, user.password, ip))
    assert attempt(limited, user.username, user.password, new_address()).status_code == 200


def test_limits_hold_across_api_processes_under_concurrent_attempts(
    limited: HubServer, tmp_path: Path
) -> None:
    ip = new_address()
    tries = 3 * IP_LIMIT

    # A fresh connection per attempt: the kernel hands them to either API process. Each tries
    # another account name, so that only the address limit is at play.
    def spray(n: int) -> httpx.Response:
        return attempt(limited, f"nobody-{ip}-{n}", "wrong-password", ip)

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(spray, range(tries)))
    codes = [answer.json()["error"]["code"] for answer in answers]
    assert codes.count("invalid-credentials") == IP_LIMIT
    assert codes.count("rate-limited") == tries - IP_LIMIT

    target = new_publisher(limited, tmp_path / "target")

    def guess(n: int) -> httpx.Response:
        return attempt(limited, target.username, f"guess-{n}", new_address())

    with ThreadPoolExecutor(8) as pool:
        guesses = list(pool.map(guess, range(4 * FAILURE_LIMIT)))
    codes = [answer.json()["error"]["code"] for answer in guesses]
    # never more guesses than the limit, however many arrive at once
    assert codes.count("invalid-credentials") == FAILURE_LIMIT
    assert codes.count("rate-limited") == 3 * FAILURE_LIMIT
    assert_rate_limited(attempt(limited, target.username, target.password, new_address()))


def test_the_rate_limited_attempt_is_recorded_once_per_window(
    limited: HubServer, admin_token: str
) -> None:
    login = f"flood-{new_address()}"
    for _ in range(FAILURE_LIMIT):
        assert attempt(limited, login, "wrong-password", new_address()).status_code == 401
    for _ in range(4):
        assert_rate_limited(attempt(limited, login, "wrong-password", new_address()))
    found = events(limited, admin_token, actor=login)
    assert [e["event"] for e in found] == ["login.rate-limited"] + ["login.failed"] * FAILURE_LIMIT
    assert found[0]["outcome"] == "denied"
    assert found[0]["detail"]["limit"] == "account"


def test_an_address_over_its_limit_is_recorded(limited: HubServer, admin_token: str) -> None:
    ip = new_address()
    login = f"spray-{ip}"
    for n in range(IP_LIMIT):
        attempt(limited, f"{login}-{n}", "wrong-password", ip)
    assert_rate_limited(attempt(limited, login, "wrong-password", ip))
    [refusal] = events(limited, admin_token, actor=login)
    assert (refusal["event"], refusal["ip"], refusal["detail"]["limit"]) == (
        "login.rate-limited",
        ip,
        "ip",
    )


def test_oidc_exchanges_are_limited_per_address(limited: HubServer, admin_token: str) -> None:
    ip = new_address()

    def exchange(at: str) -> httpx.Response:
        return httpx.post(
            f"{limited.url}/api/auth/oidc/exchange",
            json={"token": "not.a.token"},
            headers={"X-Forwarded-For": at},
            timeout=30,
        )

    for _ in range(EXCHANGE_LIMIT):
        refused = exchange(ip)
        assert 400 <= refused.status_code < 500
        assert refused.status_code != 429
    assert_rate_limited(exchange(ip))
    assert exchange(new_address()).status_code != 429
    recorded = [
        e for e in events(limited, admin_token, event="oidc.exchange.rate-limited") if e["ip"] == ip
    ]
    assert len(recorded) == 1


def test_limits_of_zero_turn_rate_limiting_off(tmp_path: Path) -> None:
    server = start_hub(tmp_path, {"DPHUB_LOGIN_IP_LIMIT": "0", "DPHUB_LOGIN_FAILURE_LIMIT": "0"})
    try:
        user: Publisher = new_publisher(server, tmp_path / "user")
        for _ in range(15):
            assert post_login(server, user.username, "wrong-password").status_code == 401
        assert post_login(server, user.username, user.password).status_code == 200
    finally:
        stop_hub(server)
