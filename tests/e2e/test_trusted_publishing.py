"""Trusted publishing: a package owner trusts a CI issuer and subject; a token of that issuer is
exchanged for a 15-minute publish token for that package only. The issuer is the loopback test
provider, which signs tokens with the key it publishes (and, for the forgery test, with one it
does not)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import (
    HubServer,
    Publisher,
    base_env,
    cli,
    new_publisher,
    stop_hub,
    write_package,
)
from tests.oidc_provider import OidcProvider, audit_events, start_provider, start_sso_hub

SUBJECT = "repo:acme/data:ref:refs/heads/main"
PATTERN = "repo:acme/data:ref:refs/heads/*"


@pytest.fixture(scope="module")
def issuer() -> Iterator[OidcProvider]:
    started = start_provider()
    yield started
    started.close()


@pytest.fixture(scope="module", params=["embedded", "scale"])
def trust_hub(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    issuer: OidcProvider,
) -> Iterator[HubServer]:
    server = start_sso_hub(request, tmp_path_factory, issuer, request.param)
    yield server
    stop_hub(server)


@pytest.fixture
def owner(trust_hub: HubServer, tmp_path: Path) -> Publisher:
    publisher = new_publisher(trust_hub, tmp_path / "owner", prefix="owner")
    publisher.login()
    return publisher


def trust(owner: Publisher, package: str, *args: str, check: bool = True) -> Any:
    return cli("trust", "add", f"{owner.username}/{package}", *args, env=owner.env, check=check)


def exchange(hub: HubServer, token: str, **extra: str) -> httpx.Response:
    return httpx.post(
        f"{hub.url}/api/auth/oidc/exchange", json={"token": token, **extra}, timeout=30
    )


def refusal(answer: httpx.Response) -> dict[str, Any]:
    assert answer.status_code == 401, answer.text
    error: dict[str, Any] = answer.json()["error"]
    assert error["code"] == "invalid-token"
    return error


def ci_env(home: Path, token: str) -> dict[str, str]:
    """A CI job's environment: no saved login, the exchanged token in DPHUB_TOKEN."""
    return {**base_env(home), "DPHUB_TOKEN": token}


def test_an_exchanged_token_pushes_its_package_and_nothing_else(
    trust_hub: HubServer, issuer: OidcProvider, owner: Publisher, tmp_path: Path
) -> None:
    added = trust(owner, "ci-data", "--issuer", issuer.url, "--subject", PATTERN)
    assert f"{owner.username}/ci-data now trusts {issuer.url} for {PATTERN}" in added.stdout
    listed = cli("trust", "list", f"{owner.username}/ci-data", env=owner.env).stdout
    assert PATTERN in listed
    assert owner.username in listed

    secret = write_package(tmp_path / "secret", "secret")
    cli("push", str(secret), "--private", env=owner.env)

    answer = exchange(trust_hub, issuer.issue(sub=SUBJECT, aud="dphub"))
    assert answer.status_code == 200, answer.text
    assert answer.headers["cache-control"] == "no-store"
    body = answer.json()
    assert body["package"] == f"{owner.username}/ci-data"
    assert 890 <= body["expires_at"] - time.time() <= 900
    token = body["token"]

    # The first push of the package comes from CI, with the real command line.
    folder = write_package(tmp_path / "ci-data", "ci-data")
    pushed = cli("push", str(folder), "--server", trust_hub.url, env=ci_env(tmp_path / "ci", token))
    assert f"{owner.username}/ci-data" in pushed.stdout
    show = httpx.get(f"{trust_hub.url}/api/package/{owner.username}/ci-data", timeout=30)
    assert show.status_code == 200
    assert show.json()["revision"] == 1

    with trust_hub.client(token) as client:
        other = client.post(
            "/api/datastore/authorize",
            json={
                "metadata": {"owner": owner.username, "name": "another"},
                "filedata": {"datapackage.json": {"md5": "1B2M2Y8AsgTpgAmY7PhCfg==", "size": 0}},
            },
        )
        assert other.status_code == 403, other.text
        assert other.json()["error"]["code"] == "forbidden"
        private = client.get(f"/api/package/{owner.username}/secret")
        assert private.status_code == 404
        assert private.json()["error"]["code"] == "package-not-found"
        keys = client.post("/api/auth/keys", json={"name": "escalate"})
        assert keys.status_code == 403

    other_folder = write_package(tmp_path / "another", "another")
    refused = cli(
        "push",
        str(other_folder),
        "--server",
        trust_hub.url,
        env=ci_env(tmp_path / "ci2", token),
        check=False,
    )
    assert refused.returncode == 1
    assert "limited to the package" in refused.stderr

    [event] = [
        e
        for e in audit_events(trust_hub, "trusted-publishing.exchange")
        if e.target == f"{owner.username}/ci-data" and e.outcome == "ok"
    ]
    assert event.actor == owner.username
    assert event.detail["subject"] == SUBJECT


def test_the_exchange_command_prints_a_token(
    trust_hub: HubServer, issuer: OidcProvider, owner: Publisher, tmp_path: Path
) -> None:
    trust(owner, "by-command", "--issuer", issuer.url, "--subject", "repo:acme/cmd:*")
    env = {
        **base_env(tmp_path / "ci"),
        "OIDC_TOKEN": issuer.issue(sub="repo:acme/cmd:ref:refs/tags/v1", aud=trust_hub.url),
    }
    result = cli("trust", "exchange", "--server", trust_hub.url, env=env)
    token = result.stdout.strip()
    with trust_hub.client(token) as client:
        check = client.get("/api/auth/check").json()
    assert check["profile"]["username"] == owner.username


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({"sub": "repo:acme/data:ref:refs/pull/1/merge"}, "subject"),
        ({"sub": "repo:acme/data-fork:ref:refs/heads/main"}, "subject"),
        ({"sub": SUBJECT, "aud": "someone-else"}, "audience"),
        (
            {"sub": SUBJECT, "exp": int(time.time()) - 3600, "iat": int(time.time()) - 7200},
            "expired",
        ),
        ({"sub": SUBJECT, "iat": int(time.time()) + 3600, "exp": int(time.time()) + 7200}, "iat"),
    ],
)
def test_tokens_that_do_not_match_are_refused(
    trust_hub: HubServer,
    issuer: OidcProvider,
    owner: Publisher,
    claims: dict[str, Any],
    reason: str,
) -> None:
    trust(owner, "strict", "--issuer", issuer.url, "--subject", PATTERN)
    error = refusal(exchange(trust_hub, issuer.issue(**{"aud": "dphub", **claims})))
    assert error["reason"] == reason
    denied = audit_events(trust_hub, "trusted-publishing.exchange")
    assert any(e.outcome == "denied" and e.detail.get("reason") == reason for e in denied)


def test_a_token_signed_by_another_key_is_refused(
    trust_hub: HubServer, issuer: OidcProvider, owner: Publisher
) -> None:
    trust(owner, "signed", "--issuer", issuer.url, "--subject", PATTERN)
    forged = issuer.issue(key=issuer.stranger_key, sub=SUBJECT, aud="dphub")
    error = refusal(exchange(trust_hub, forged))
    assert "signature" in error["message"]


def test_an_unregistered_issuer_is_refused_without_being_contacted(
    trust_hub: HubServer, issuer: OidcProvider
) -> None:
    before = issuer.jwks_requests
    token = issuer.issue(iss="https://unregistered.example", sub=SUBJECT, aud="dphub")
    error = refusal(exchange(trust_hub, token))
    assert error["reason"] == "issuer-not-trusted"
    assert issuer.jwks_requests == before


@pytest.mark.parametrize("token", ["", "not-a-jwt", "a.b.c", "x" * 70_000])
def test_garbage_is_refused(trust_hub: HubServer, token: str) -> None:
    answer = exchange(trust_hub, token)
    assert answer.status_code in (400, 401, 413), answer.text
    assert answer.json()["error"]["code"] in (
        "invalid-request",
        "invalid-token",
        "payload-too-large",
    )


def test_a_removed_trust_no_longer_exchanges(
    trust_hub: HubServer, issuer: OidcProvider, owner: Publisher
) -> None:
    trust(owner, "removed", "--issuer", issuer.url, "--subject", "repo:acme/removed:*")
    token = issuer.issue(sub="repo:acme/removed:ref:refs/heads/main", aud="dphub")
    assert exchange(trust_hub, token).status_code == 200
    with owner.client() as client:
        [listed] = client.get(f"/api/package/{owner.username}/removed/trusted-publishers").json()[
            "trusted_publishers"
        ]
    cli("trust", "remove", f"{owner.username}/removed", str(listed["id"]), env=owner.env)
    # Other packages of this hub may trust the same issuer, for other subjects.
    assert refusal(exchange(trust_hub, token))["reason"] in ("issuer-not-trusted", "subject")


def test_a_token_trusted_by_two_packages_must_name_one(
    trust_hub: HubServer, issuer: OidcProvider, owner: Publisher
) -> None:
    trust(owner, "twin-a", "--issuer", issuer.url, "--subject", "repo:acme/twins:*")
    trust(owner, "twin-b", "--issuer", issuer.url, "--subject", "repo:acme/twins:*")
    token = issuer.issue(sub="repo:acme/twins:ref:refs/heads/main", aud="dphub")
    error = refusal(exchange(trust_hub, token))
    assert error["reason"] == "ambiguous"
    chosen = exchange(trust_hub, token, package=f"{owner.username}/twin-b")
    assert chosen.status_code == 200
    assert chosen.json()["package"] == f"{owner.username}/twin-b"


def test_a_trust_with_its_own_audience(
    trust_hub: HubServer, issuer: OidcProvider, owner: Publisher
) -> None:
    trust(
        owner,
        "audience",
        "--issuer",
        issuer.url,
        "--subject",
        "repo:acme/aud:*",
        "--audience",
        "https://hub.example.org",
    )
    sub = "repo:acme/aud:ref:refs/heads/main"
    assert refusal(exchange(trust_hub, issuer.issue(sub=sub, aud="dphub")))["reason"] == "audience"
    ok = exchange(trust_hub, issuer.issue(sub=sub, aud=["other", "https://hub.example.org"]))
    assert ok.status_code == 200


def test_only_the_owner_manages_trust(
    trust_hub: HubServer, issuer: OidcProvider, owner: Publisher, tmp_path: Path
) -> None:
    stranger = new_publisher(trust_hub, tmp_path / "stranger", prefix="stranger")
    path = f"/api/package/{owner.username}/guarded/trusted-publishers"
    body = {"issuer": issuer.url, "subject": PATTERN}
    with stranger.client() as client:
        answer = client.post(path, json=body)
        assert answer.status_code == 403
        assert answer.json()["error"]["code"] == "forbidden"
        assert client.get(path).status_code == 403
    anonymous = httpx.post(f"{trust_hub.url}{path}", json=body, timeout=30)
    assert anonymous.status_code == 401
    with owner.client() as client:
        created = client.post(path, json=body)
        assert created.status_code == 201
        assert created.json()["created_by"] == owner.username
        assert client.post(path, json=body).status_code == 409
        trust_id = created.json()["id"]
    with stranger.client() as client:
        assert client.delete(f"{path}/{trust_id}").status_code == 403
    with owner.client() as client:
        assert client.delete(f"{path}/{trust_id}").status_code == 204
        assert client.delete(f"{path}/{trust_id}").status_code == 404
        assert client.get(path).json() == {"trusted_publishers": []}
    assert any(
        e.target == f"{owner.username}/guarded"
        for e in audit_events(trust_hub, "trusted-publishing.remove")
    )


@pytest.mark.parametrize(
    ("field", "value", "why"),
    [
        ("issuer", "http://ci.example.org", "loopback"),
        ("issuer", "ftp://ci.example.org", "https"),
        ("issuer", "https://user:pw@ci.example.org", "user name"),
        ("issuer", "https://ci.example.org/?x=1", "query"),
        ("subject", "*", "first two"),
        ("subject", "repo:*", "first two"),
        ("subject", "repo:acme/*:ref:refs/heads/main", "first two"),
        ("subject", "", "empty"),
    ],
)
def test_unsafe_trust_is_refused(
    trust_hub: HubServer, owner: Publisher, field: str, value: str, why: str
) -> None:
    body = {"issuer": "https://token.actions.githubusercontent.com", "subject": PATTERN}
    body[field] = value
    with owner.client() as client:
        answer = client.post(f"/api/package/{owner.username}/unsafe/trusted-publishers", json=body)
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["code"] == "invalid-request"
    assert error["field"] == field
    assert why in error["message"]
