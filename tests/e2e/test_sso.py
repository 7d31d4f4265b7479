"""Single sign-on against a real OpenID Connect provider on loopback: the whole redirect flow, the
command line's browser login, and every refusal (replayed state, wrong nonce, foreign next, reused
code, provider errors)."""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.conftest import HubServer, base_env, cli, new_publisher, stop_hub
from tests.oidc_provider import (
    CLIENT_ID,
    OidcProvider,
    ProviderUser,
    audit_events,
    start_provider,
    start_sso_hub,
)

LOOPBACK_NEXT = "http://127.0.0.1:9/callback?session=test"


@pytest.fixture(scope="module")
def provider() -> Iterator[OidcProvider]:
    started = start_provider()
    yield started
    started.close()


@pytest.fixture(scope="module", params=["embedded", "scale"])
def sso_hub(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    provider: OidcProvider,
) -> Iterator[HubServer]:
    server = start_sso_hub(request, tmp_path_factory, provider, request.param)
    yield server
    stop_hub(server)


@pytest.fixture(autouse=True)
def fresh_provider(provider: OidcProvider) -> None:
    provider.reset()


@pytest.fixture
def browser() -> Iterator[httpx.Client]:
    """A browser: one cookie jar across the hub and the provider; redirects followed by hand."""
    with httpx.Client(timeout=30) as client:
        yield client


_users = iter(range(1, 10_000))


def new_user(provider: OidcProvider, username: str = "ada") -> ProviderUser:
    number = next(_users)
    user = ProviderUser(
        subject=f"subject-{number}-{username}",
        email=f"{username}-{number}@example.org",
        preferred_username=f"{username}{number}",
        name=f"{username.title()} Number {number}",
        github_id=100_000 + number,
    )
    provider.user = user
    return user


def _query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def start(
    browser: httpx.Client,
    hub: HubServer,
    provider_name: str = "test",
    next_url: str | None = LOOPBACK_NEXT,
) -> httpx.Response:
    params = {} if next_url is None else {"next": next_url}
    return browser.get(f"{hub.url}/api/auth/oidc/{provider_name}/login", params=params)


def to_callback(
    browser: httpx.Client,
    hub: HubServer,
    provider_name: str = "test",
    next_url: str = LOOPBACK_NEXT,
) -> str:
    """Start a login and let the provider approve it: the callback URL the browser is sent to."""
    started = start(browser, hub, provider_name, next_url)
    assert started.status_code == 302, started.text
    approved = browser.get(started.headers["location"])
    assert approved.status_code == 302, approved.text
    callback = approved.headers["location"]
    assert callback.startswith(f"{hub.url}/api/auth/oidc/{provider_name}/callback?")
    return callback


def login_code(browser: httpx.Client, hub: HubServer, provider_name: str = "test") -> str:
    """The whole browser side of a command-line login: the one-time code the loopback gets."""
    finished = browser.get(to_callback(browser, hub, provider_name))
    assert finished.status_code == 302, finished.text
    location = finished.headers["location"]
    assert location.startswith("http://127.0.0.1:9/callback?")
    query = _query(location)
    assert query["session"] == "test"
    return query["code"]


def redeem(hub: HubServer, code: str) -> httpx.Response:
    return httpx.post(f"{hub.url}/api/auth/oidc/redeem", json={"code": code}, timeout=30)


def profile(hub: HubServer, token: str) -> dict[str, object]:
    check = httpx.get(
        f"{hub.url}/api/auth/check", headers={"Authorization": f"Bearer {token}"}, timeout=30
    ).json()
    assert check["authenticated"] is True, check
    result: dict[str, object] = check["profile"]
    return result


def test_check_lists_the_providers(sso_hub: HubServer) -> None:
    answer = httpx.get(f"{sso_hub.url}/api/auth/check", timeout=30).json()
    assert answer["authenticated"] is False
    assert answer["providers"] == {
        "test": {
            "title": "Test Provider",
            "kind": "oidc",
            "url": f"{sso_hub.url}/api/auth/oidc/test/login",
        },
        "gh": {"title": "GitHub", "kind": "github", "url": f"{sso_hub.url}/api/auth/oidc/gh/login"},
    }


def test_the_login_goes_to_the_provider_with_state_nonce_and_pkce(
    browser: httpx.Client, sso_hub: HubServer, provider: OidcProvider
) -> None:
    started = start(browser, sso_hub)
    assert started.status_code == 302
    assert started.headers["cache-control"] == "no-store"
    location = started.headers["location"]
    assert location.startswith(f"{provider.url}/authorize?")
    query = _query(location)
    assert query["client_id"] == CLIENT_ID
    assert query["response_type"] == "code"
    assert query["redirect_uri"] == f"{sso_hub.url}/api/auth/oidc/test/callback"
    assert set(query["scope"].split()) == {"openid", "email", "profile"}
    assert query["code_challenge_method"] == "S256"
    challenge = query["code_challenge"]
    assert len(base64.urlsafe_b64decode(challenge + "=")) == hashlib.sha256().digest_size
    assert len(query["state"]) >= 32
    assert len(query["nonce"]) >= 32
    again = _query(start(browser, sso_hub).headers["location"])
    assert again["state"] != query["state"]
    assert again["nonce"] != query["nonce"]


def test_a_browser_login_creates_the_user_and_the_code_gives_a_token(
    browser: httpx.Client, sso_hub: HubServer, provider: OidcProvider
) -> None:
    user = new_user(provider, "ada")
    code = login_code(browser, sso_hub)
    answer = redeem(sso_hub, code)
    assert answer.status_code == 200, answer.text
    assert answer.headers["cache-control"] == "no-store"
    body = answer.json()
    assert body["username"] == user.preferred_username
    me = profile(sso_hub, body["token"])
    assert me["username"] == user.preferred_username
    assert me["email"] == user.email
    [event] = [e for e in audit_events(sso_hub, "login.sso") if e.actor == body["username"]]
    assert event.outcome == "ok"
    assert event.detail["created"] is True


def test_codes_and_tokens_stay_out_of_the_server_log(
    browser: httpx.Client, sso_hub: HubServer, provider: OidcProvider
) -> None:
    new_user(provider)
    callback = to_callback(browser, sso_hub)
    provider_code = _query(callback)["code"]
    finished = browser.get(callback)
    handoff = _query(finished.headers["location"])["code"]
    token = redeem(sso_hub, handoff).json()["token"]
    time.sleep(0.2)  # the access log line is written after the answer
    log = sso_hub.log_text()
    assert "/api/auth/oidc/test/callback?code=[REDACTED]" in log
    for secret in (provider_code, handoff, token):
        assert secret not in log


def test_a_code_works_once(
    browser: httpx.Client, sso_hub: HubServer, provider: OidcProvider
) -> None:
    new_user(provider)
    code = login_code(browser, sso_hub)
    assert redeem(sso_hub, code).status_code == 200
    again = redeem(sso_hub, code)
    assert again.status_code == 401
    assert again.json()["error"]["code"] == "invalid-credentials"
    assert again.json()["error"]["reason"] == "code-replay"
    made_up = redeem(sso_hub, "not-a-code")
    assert made_up.status_code == 401
    assert made_up.json()["error"]["reason"] == "code-unknown"
    replays = audit_events(sso_hub, "login.sso.replay")
    assert any(e.detail.get("reason") == "handoff-replay" for e in replays)


def test_the_second_login_finds_the_same_user(
    browser: httpx.Client, sso_hub: HubServer, provider: OidcProvider
) -> None:
    user = new_user(provider)
    first = profile(sso_hub, redeem(sso_hub, login_code(browser, sso_hub)).json()["token"])
    provider.user = ProviderUser(
        user.subject, user.email, "renamed-at-provider", github_id=user.github_id
    )
    second = profile(sso_hub, redeem(sso_hub, login_code(browser, sso_hub)).json()["token"])
    assert second["id"] == first["id"]
    assert second["username"] == first["username"] == user.preferred_username


def test_a_taken_username_gets_a_suffix(
    browser: httpx.Client, sso_hub: HubServer, provider: OidcProvider, tmp_path: Path
) -> None:
    existing = new_publisher(sso_hub, tmp_path / "home", prefix="grace")
    provider.user = ProviderUser(
        f"subject-of-{existing.username}", f"sso-{existing.email}", existing.username
    )
    body = redeem(sso_hub, login_code(browser, sso_hub)).json()
    assert body["username"] == f"{existing.username}-2"


def test_an_email_of_an_existing_account_is_not_taken_over(
    browser: httpx.Client, sso_hub: HubServer, provider: OidcProvider, tmp_path: Path
) -> None:
    existing = new_publisher(sso_hub, tmp_path / "home", prefix="taken")
    provider.user = ProviderUser(f"other-{existing.username}", existing.email, "someone-else")
    answer = browser.get(to_callback(browser, sso_hub))
    assert answer.status_code == 409
    assert answer.json()["error"]["code"] == "already-exists"


def test_a_replayed_state_is_refused(
    browser: httpx.Client, sso_hub: HubServer, provider: OidcProvider
) -> None:
    new_user(provider)
    callback = to_callback(browser, sso_hub)
    assert browser.get(callback).status_code == 302
    replay = browser.get(callback)
    assert replay.status_code == 400
    error = replay.json()["error"]
    assert error["code"] == "invalid-request"
    assert error["reason"] == "state-used"
    assert "already been completed" in error["message"]
    assert any(
        e.outcome == "denied" and e.target == "test"
        for e in audit_events(sso_hub, "login.sso.replay")
    )


def test_a_callback_opened_in_another_browser_is_refused(
    browser: httpx.Client, sso_hub: HubServer, provider: OidcProvider
) -> None:
    """Someone's own approved login, its callback URL sent to a victim, logs nobody in."""
    new_user(provider)
    callback = to_callback(browser, sso_hub, next_url="/")
    with httpx.Client(timeout=30) as victim:
        answer = victim.get(callback)
    assert answer.status_code == 400
    assert answer.json()["error"]["reason"] == "other-browser"
    assert "set-cookie" not in answer.headers or "dphub_session" not in answer.headers["set-cookie"]
    failed = [e for e in audit_events(sso_hub, "login.sso") if e.outcome == "failed"]
    assert any(e.detail.get("reason") == "other-browser" for e in failed)


def test_the_browser_gets_a_binding_cookie_for_the_login(
    browser: httpx.Client, sso_hub: HubServer
) -> None:
    started = start(browser, sso_hub)
    cookie = started.headers["set-cookie"]
    assert cookie.startswith("dphub_sso_")
    assert "httponly" in cookie.lower()
    assert "samesite=lax" in cookie.lower()
    assert "path=/api/auth/oidc/" in cookie.lower()


def test_an_unknown_state_is_refused(sso_hub: HubServer) -> None:
    answer = httpx.get(
        f"{sso_hub.url}/api/auth/oidc/test/callback",
        params={"code": "x", "state": "made-up"},
        timeout=30,
    )
    assert answer.status_code == 400
    assert answer.json()["error"]["reason"] == "state-unknown"


def test_an_id_token_with_another_nonce_is_refused(
    browser: httpx.Client, sso_hub: HubServer, provider: OidcProvider
) -> None:
    new_user(provider)
    provider.nonce_override = "a-nonce-of-another-login"
    answer = browser.get(to_callback(browser, sso_hub))
    assert answer.status_code == 401
    error = answer.json()["error"]
    assert error["code"] == "invalid-token"
    assert error["claim"] == "nonce"
    failed = [e for e in audit_events(sso_hub, "login.sso") if e.outcome == "failed"]
    assert any(e.detail.get("reason") == "invalid-token" for e in failed)


def test_the_provider_saying_no_is_a_clear_401(
    browser: httpx.Client, sso_hub: HubServer, provider: OidcProvider
) -> None:
    provider.deny = "access_denied"
    answer = browser.get(to_callback(browser, sso_hub))
    assert answer.status_code == 401
    error = answer.json()["error"]
    assert error["code"] == "invalid-credentials"
    assert error["provider_error"] == "access_denied"


def test_a_forged_code_is_refused(browser: httpx.Client, sso_hub: HubServer) -> None:
    state = _query(start(browser, sso_hub).headers["location"])["state"]
    answer = browser.get(
        f"{sso_hub.url}/api/auth/oidc/test/callback",
        params={"code": "forged", "state": state},
        timeout=30,
    )
    assert answer.status_code == 401
    assert answer.json()["error"]["code"] == "invalid-credentials"
    assert "forged" not in answer.text


@pytest.mark.parametrize(
    "next_url",
    [
        "https://evil.example/steal",
        "//evil.example/steal",
        "/\\evil.example",
        "javascript:alert(1)",
        "http://127.0.0.1/no-port",
        "http://127.0.0.1.evil.example:8080/x",
        "http://evil.example@127.0.0.1:8080/x",
        "https://127.0.0.1:8080/x",
        "http://[::1]:8080/x",
        "/ok path with space",
        "http://localhost:8080/x#fragment",
    ],
)
def test_a_foreign_next_is_refused_before_the_provider(
    browser: httpx.Client, sso_hub: HubServer, next_url: str
) -> None:
    answer = start(browser, sso_hub, next_url=next_url)
    assert answer.status_code == 400, answer.headers.get("location")
    assert answer.json()["error"]["code"] == "invalid-request"
    assert "location" not in answer.headers
    assert any(
        e.detail.get("next") == next_url for e in audit_events(sso_hub, "login.sso.bad-next")
    )


def test_a_hub_path_next_gets_the_session_cookie(
    browser: httpx.Client, sso_hub: HubServer, provider: OidcProvider
) -> None:
    user = new_user(provider)
    finished = browser.get(to_callback(browser, sso_hub, next_url="/some/page?tab=1"))
    assert finished.status_code == 302
    assert finished.headers["location"] == "/some/page?tab=1"
    cookies = finished.headers.get_list("set-cookie")
    [cookie] = [c for c in cookies if c.startswith("dphub_session=")]
    [cleared] = [c for c in cookies if c.startswith("dphub_sso_")]
    assert "max-age=0" in cleared.lower()  # the login's binding cookie is spent
    attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")[1:]}
    assert {"httponly", "path", "max-age"} <= attributes
    assert "samesite=lax" in cookie.lower()
    assert "secure" not in attributes  # the hub's base URL is http
    token = cookie.split(";", 1)[0].split("=", 1)[1]
    assert profile(sso_hub, token)["username"] == user.preferred_username


def test_no_next_means_the_hub_root(
    browser: httpx.Client, sso_hub: HubServer, provider: OidcProvider
) -> None:
    new_user(provider)
    started = start(browser, sso_hub, next_url=None)
    callback = browser.get(started.headers["location"]).headers["location"]
    finished = browser.get(callback)
    assert finished.headers["location"] == "/"


def test_github_login_reads_the_user_api(
    browser: httpx.Client, sso_hub: HubServer, provider: OidcProvider
) -> None:
    user = new_user(provider, "octo")
    started = start(browser, sso_hub, "gh")
    location = started.headers["location"]
    assert location.startswith(f"{provider.url}/login/oauth/authorize?")
    query = _query(location)
    assert query["scope"] == "read:user user:email"
    assert "nonce" not in query
    assert query["code_challenge_method"] == "S256"
    callback = browser.get(location).headers["location"]
    finished = browser.get(callback)
    assert finished.status_code == 302, finished.text
    body = redeem(sso_hub, _query(finished.headers["location"])["code"]).json()
    me = profile(sso_hub, body["token"])
    assert me["username"] == user.preferred_username
    assert me["email"] == user.email  # the primary verified address, not the unverified one


def test_an_unknown_provider_is_404(browser: httpx.Client, sso_hub: HubServer) -> None:
    answer = start(browser, sso_hub, "nope")
    assert answer.status_code == 404
    assert "test" in answer.json()["error"]["message"]


def test_the_command_line_logs_in_through_the_browser(
    sso_hub: HubServer, provider: OidcProvider, tmp_path: Path
) -> None:
    """`dphub login --browser`, the test playing the browser: it follows the printed address
    through the hub and the provider back to the command line's loopback receiver."""
    user = new_user(provider, "cli")
    env = base_env(tmp_path / "home")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dphub",
            "login",
            "--browser",
            "--provider",
            "test",
            "--no-open",
            "--server",
            sso_hub.url,
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        url = ""
        for line in process.stdout:
            if line.startswith("http"):
                url = line.strip()
                break
        assert url.startswith(f"{sso_hub.url}/api/auth/oidc/test/login?next=")
        page = httpx.get(url, follow_redirects=True, timeout=30)
        assert page.status_code == 200
        assert "You can close this tab" in page.text
        assert str(page.url).startswith("http://127.0.0.1:")
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, err
    assert f"Logged in to {sso_hub.url} as {user.preferred_username}" in out
    saved = json.loads((tmp_path / "home" / "config.json").read_text())
    assert saved["server"] == sso_hub.url
    assert saved["username"] == user.preferred_username
    token = saved["token"]
    assert profile(sso_hub, token)["username"] == user.preferred_username


def test_the_command_line_gives_up_after_its_timeout(
    browser: httpx.Client, sso_hub: HubServer, tmp_path: Path
) -> None:
    result = cli(
        "login",
        "--browser",
        "--provider",
        "test",
        "--no-open",
        "--timeout",
        "1",
        "--server",
        sso_hub.url,
        env=base_env(tmp_path / "home"),
        check=False,
    )
    assert result.returncode == 1
    assert "No login came back from the browser within" in result.stderr
    assert "dphub login --browser" in result.stderr


def test_the_command_line_asks_which_provider(
    browser: httpx.Client, sso_hub: HubServer, tmp_path: Path
) -> None:
    result = cli(
        "login", "--browser", "--server", sso_hub.url, env=base_env(tmp_path / "home"), check=False
    )
    assert result.returncode == 1
    assert "several sign-on providers (gh, test)" in result.stderr
