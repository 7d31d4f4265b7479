"""The audit log over HTTP and the CLI: logins and failed logins recorded without secret material,
read by site admins only, newest first, one page at a time."""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import HubServer, Publisher, cli

TOKEN_URL = "/api/auth/token"


def new_admin(server: HubServer, home: Path) -> Publisher:
    """A site admin of ``server`` (its API key in ``secret``)."""
    username = f"admin-{secrets.token_hex(4)}"
    email = f"{username}@example.org"
    password = f"pw-{username}-{secrets.token_hex(8)}"
    result = server.admin(
        "user", "create", username, "--email", email, "--password-stdin", "--admin",
        input=password + "\n",
    )  # fmt: skip
    home.mkdir(parents=True, exist_ok=True)
    return Publisher(
        username, email, result.stdout.strip().splitlines()[-1], password, server, home
    )


def post_login(
    server: HubServer, login: str, secret: str, *, field: str = "username", **headers: str
) -> httpx.Response:
    return httpx.post(
        f"{server.url}{TOKEN_URL}",
        json={field: login, "secret": secret},
        headers=headers,
        timeout=30,
    )


def audit(server: HubServer, token: str, **params: Any) -> httpx.Response:
    return httpx.get(
        f"{server.url}/api/admin/audit",
        params=params,
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )


def events(server: HubServer, token: str, **params: Any) -> list[dict[str, Any]]:
    answer = audit(server, token, **params)
    assert answer.status_code == 200, answer.text
    found: list[dict[str, Any]] = answer.json()["events"]
    return found


@pytest.fixture(scope="module")
def admin_token(hub: HubServer, tmp_path_factory: pytest.TempPathFactory) -> str:
    return new_admin(hub, tmp_path_factory.mktemp("admin")).token()


def test_a_login_and_failed_logins_are_recorded_without_secrets(
    hub: HubServer, make_publisher: Callable[..., Publisher], admin_token: str
) -> None:
    user = make_publisher()
    wrong = [f"guess-{secrets.token_hex(8)}", f"guess-{secrets.token_hex(8)}"]
    for guess in wrong:
        refused = post_login(hub, user.username, guess)
        assert refused.status_code == 401
        assert refused.json()["error"]["code"] == "invalid-credentials"
    assert post_login(hub, user.email.upper(), wrong[0], field="email").status_code == 401
    ok = post_login(hub, user.username, user.password)
    assert ok.status_code == 200
    profile = httpx.get(
        f"{hub.url}/api/auth/check", headers={"Authorization": f"Bearer {ok.json()['token']}"}
    ).json()["profile"]

    answer = audit(hub, admin_token, actor=user.username)
    assert answer.status_code == 200
    assert answer.headers["cache-control"] == "no-store"
    found = answer.json()["events"]
    assert [(e["event"], e["outcome"]) for e in found] == [
        ("login", "ok"),
        ("login.failed", "failed"),
        ("login.failed", "failed"),
    ]
    login, failed = found[0], found[1]
    assert set(login) == {
        "id", "created_at", "event", "outcome", "actor", "actor_id", "ip", "target", "detail",
    }  # fmt: skip
    assert login["actor_id"] == profile["id"]
    assert login["detail"] == {"via": "session"}
    assert login["ip"] == failed["ip"] == "127.0.0.1"
    assert failed["actor"] == user.username
    assert failed["actor_id"] is None  # the login as typed: it names no account for sure
    assert login["created_at"] >= failed["created_at"]
    # the email form is recorded as typed
    by_email = events(hub, admin_token, actor=user.email.upper(), event="login.failed")
    assert len(by_email) == 1

    log = hub.log_text()
    for secret in [*wrong, user.password, user.secret, ok.json()["token"]]:
        assert secret not in answer.text
        assert secret not in log
    assert f"audit login.failed failed actor={user.username}" in log


def test_a_login_name_cannot_forge_a_log_line(hub: HubServer, admin_token: str) -> None:
    tag = secrets.token_hex(4)
    forged = f"ghost-{tag}\n2030-01-01 00:00:00 INFO dphub.audit: audit login ok actor=root-{tag}"
    assert post_login(hub, forged, "not-the-password").status_code == 401
    lines = hub.log_text().splitlines()
    assert not any(line.startswith("2030-01-01") for line in lines)
    assert any(f"actor=ghost-{tag}?2030-01-01" in line for line in lines)
    [event] = events(hub, admin_token, actor=forged)  # the record keeps the name as typed
    assert event["event"] == "login.failed"


def test_a_login_with_an_api_key_says_so(
    hub: HubServer, make_publisher: Callable[..., Publisher], admin_token: str
) -> None:
    user = make_publisher()
    assert post_login(hub, user.username, user.secret).status_code == 200
    [login] = events(hub, admin_token, actor=user.username)
    assert (login["event"], login["detail"]) == ("login", {"via": "api-key"})
    assert user.secret not in json.dumps(login)


def test_events_come_newest_first_one_page_at_a_time(hub: HubServer, admin_token: str) -> None:
    ghost = (
        f"ghost-{secrets.token_hex(4)}"  # no such account: its failures are recorded all the same
    )
    for _ in range(5):
        assert post_login(hub, ghost, "not-the-password").status_code == 401
    everything = events(hub, admin_token, actor=ghost)
    assert len(everything) == 5
    ids = [e["id"] for e in everything]
    assert ids == sorted(ids, reverse=True)

    pages: list[list[int]] = []
    before: int | None = None
    while True:
        params: dict[str, Any] = {"actor": ghost, "event": "login.failed", "limit": 2}
        if before is not None:
            params["before"] = before
        answer = audit(hub, admin_token, **params).json()
        pages.append([e["id"] for e in answer["events"]])
        before = answer["next"]
        if before is None:
            break
        assert before == pages[-1][-1]
    assert pages == [ids[0:2], ids[2:4], ids[4:5]]
    assert events(hub, admin_token, actor=ghost, event="login") == []
    # with no filter the newest events of the hub come first, ours among them
    assert ids[0] in [e["id"] for e in events(hub, admin_token, limit=1000)]


@pytest.mark.parametrize(
    "params",
    [{"limit": 0}, {"limit": 1001}, {"limit": "many"}, {"before": 0}, {"before": 2**70}],
)
def test_bad_paging_is_a_clear_400(
    hub: HubServer, admin_token: str, params: dict[str, Any]
) -> None:
    answer = audit(hub, admin_token, **params)
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "invalid-request"


def test_only_site_admins_read_the_audit_log(
    hub: HubServer, make_publisher: Callable[..., Publisher]
) -> None:
    user = make_publisher()
    forbidden = audit(hub, user.token())
    assert forbidden.status_code == 403
    assert forbidden.json()["error"]["code"] == "forbidden"
    anonymous = httpx.get(f"{hub.url}/api/admin/audit", timeout=30)
    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["code"] == "unauthenticated"
    action = httpx.get(f"{hub.url}/openapi.json", timeout=30).json()["paths"]["/api/admin/audit"]
    assert action["get"]["x-dphub-action"] == "site:admin"


def test_forwarded_for_from_an_unlisted_proxy_is_not_believed(
    hub: HubServer, make_publisher: Callable[..., Publisher], admin_token: str
) -> None:
    user = make_publisher()
    answer = post_login(hub, user.username, user.password, **{"X-Forwarded-For": "203.0.113.50"})
    assert answer.status_code == 200
    [login] = events(hub, admin_token, actor=user.username)
    assert login["ip"] == "127.0.0.1"


def test_the_cli_shows_the_audit_log_to_admins_only(
    hub: HubServer, make_publisher: Callable[..., Publisher], tmp_path: Path
) -> None:
    admin = new_admin(hub, tmp_path / "admin")
    admin.login()
    ghost = f"ghost-{secrets.token_hex(4)}"
    for _ in range(3):
        post_login(hub, ghost, "not-the-password")

    table = cli("audit", "--event", "login.failed", "--actor", ghost, "--limit", "2", env=admin.env)
    assert table.stdout.count(ghost) == 2
    assert "login.failed" in table.stdout
    assert "127.0.0.1" in table.stdout
    assert "dphub audit --before" in table.stdout

    raw = cli("audit", "--actor", ghost, "--json", env=admin.env)
    answer = json.loads(raw.stdout)
    assert [e["event"] for e in answer["events"]] == ["login.failed"] * 3
    assert answer["next"] is None

    none = cli("audit", "--actor", f"nobody-{secrets.token_hex(4)}", env=admin.env)
    assert "No events." in none.stdout

    user = make_publisher()
    user.login()
    refused = cli("audit", env=user.env, check=False)
    assert refused.returncode == 1
    assert "Only site administrators" in refused.stderr
