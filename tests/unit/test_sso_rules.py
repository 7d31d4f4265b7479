"""The pure rules behind single sign-on and trusted publishing: provider settings, where a login may
go next, issuer URLs, subject patterns, and usernames made from what a provider says."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dphub.auth.providers import parse_providers, url_problem
from dphub.auth.sso import _username_base, check_next
from dphub.auth.trusted import subject_matches, subject_problem
from dphub.config import load_settings
from dphub.errors import ConfigurationError, InvalidRequest


def _providers(*entries: dict[str, str]) -> str:
    return json.dumps(list(entries))


def test_the_presets_fill_in_their_endpoints() -> None:
    github, google, corp, ghes = parse_providers(
        _providers(
            {"name": "github", "kind": "github", "client_id": "a", "client_secret": "b"},
            {"name": "google", "kind": "google", "client_id": "c", "client_secret": "d"},
            {"name": "corp", "kind": "oidc", "issuer": "https://id.corp.example", "client_id": "e"},
            {
                "name": "ghes",
                "kind": "github",
                "url": "https://git.corp.example/",
                "client_id": "f",
                "client_secret": "g",
            },
        )
    )
    assert (github.title, github.issuer, github.api_url) == (
        "GitHub",
        "https://github.com",
        "https://api.github.com",
    )
    assert github.scope == "read:user user:email"
    assert not github.is_oidc
    assert google.discovery_url == "https://accounts.google.com/.well-known/openid-configuration"
    assert google.issuer == "https://accounts.google.com"
    assert corp.discovery_url == "https://id.corp.example/.well-known/openid-configuration"
    assert (corp.title, corp.scope, corp.client_secret) == ("corp", "openid email profile", "")
    assert ghes.api_url == "https://git.corp.example/api/v3"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("not json", "not valid JSON"),
        ('{"name": "x"}', "JSON list"),
        ('[{"name": "Bad Name", "kind": "oidc"}]', ".name"),
        ('[{"name": "x", "kind": "saml", "client_id": "a"}]', "kind must be one of"),
        ('[{"name": "x", "kind": "google"}]', "client_id is required"),
        ('[{"name": "x", "kind": "github", "client_id": "a"}]', "client_secret is required"),
        ('[{"name": "x", "kind": "oidc", "client_id": "a"}]', "issuer is required"),
        (
            '[{"name": "x", "kind": "oidc", "client_id": "a", "issuer": "http://id.example"}]',
            "https",
        ),
        (
            '[{"name": "x", "kind": "google", "client_id": "a", "issuer": "https://i"}]',
            "does not apply",
        ),
        ('[{"name": "x", "kind": "google", "client_id": "a", "secret": "s"}]', "unknown keys"),
        ('[{"name": "x", "kind": "google", "client_id": 1}]', "must be a string"),
        (
            '[{"name": "x", "kind": "oidc", "client_id": "a", "issuer": "https://i", "scope": "email"}]',
            "openid",
        ),
        (
            '[{"name": "x", "kind": "google", "client_id": "a"},'
            ' {"name": "x", "kind": "google", "client_id": "b"}]',
            "twice",
        ),
    ],
)
def test_bad_provider_settings_name_the_problem(raw: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match="DPHUB_OIDC_PROVIDERS") as caught:
        parse_providers(raw)
    assert message in caught.value.message


def test_a_bad_provider_setting_stops_the_hub(tmp_path: Path) -> None:
    environ = {"DPHUB_DATA_DIR": str(tmp_path), "DPHUB_OIDC_PROVIDERS": '[{"name": "x"}]'}
    with pytest.raises(ConfigurationError, match="kind must be one of"):
        load_settings(environ)
    with pytest.raises(ConfigurationError, match="true or false"):
        load_settings({**environ, "DPHUB_OIDC_ALLOW_INSECURE_ISSUERS": "maybe"})


def test_loopback_issuers_need_the_insecure_setting() -> None:
    local = '[{"name": "t", "kind": "oidc", "client_id": "a", "issuer": "http://127.0.0.1:8080"}]'
    with pytest.raises(ConfigurationError, match="https"):
        parse_providers(local)
    assert parse_providers(local, allow_insecure=True)[0].issuer == "http://127.0.0.1:8080"
    assert url_problem("http://localhost:1/x", allow_insecure=True) is None
    assert url_problem("http://ci.example.org", allow_insecure=True) is not None


@pytest.mark.parametrize(
    "url",
    [
        "",
        "token.actions.githubusercontent.com",
        "ftp://issuer.example",
        "https://",
        "https://user@issuer.example",
        "https://issuer.example/?a=1",
        "https://issuer.example/#f",
        "https://issuer.example:99999",
        "https://issuer.example/a b",
        "https://issuer.example\\@evil",
    ],
)
def test_bad_issuer_urls(url: str) -> None:
    assert url_problem(url, allow_insecure=True) is not None


@pytest.mark.parametrize(
    "value",
    [
        "/",
        "/owner/package?tab=files",
        "http://127.0.0.1:43123/callback?session=x",
        "http://localhost:8000/",
    ],
)
def test_next_may_be_a_hub_path_or_a_loopback_port(value: str) -> None:
    assert check_next(value) == value


def test_no_next_is_the_hub_root() -> None:
    assert check_next(None) == "/"
    assert check_next("") == "/"


@pytest.mark.parametrize(
    "value",
    [
        "//evil.example",
        "/\\evil.example",
        "\\\\evil.example",
        "https://evil.example",
        "http://evil.example:80/",
        "javascript:alert(1)",
        "data:text/html,hi",
        "http://127.0.0.1/",
        "http://127.0.0.1:80@evil.example/",
        "http://user:pw@127.0.0.1:8000/",
        "http://127.0.0.1:8000/#frag",
        "http://127.0.0.1:notaport/",
        "/a\nb",
        "/" + "a" * 2001,
    ],
)
def test_next_refuses_everything_else(value: str) -> None:
    with pytest.raises(InvalidRequest):
        check_next(value)


@pytest.mark.parametrize(
    ("pattern", "subject", "matches"),
    [
        ("repo:org/repo:ref:refs/heads/main", "repo:org/repo:ref:refs/heads/main", True),
        ("repo:org/repo:ref:refs/heads/*", "repo:org/repo:ref:refs/heads/release/1.0", True),
        ("repo:org/repo:ref:refs/heads/*", "repo:org/repo:ref:refs/tags/v1", False),
        ("repo:org/repo:*", "repo:org/repo:environment:prod", True),
        ("repo:org/repo:*", "repo:org/repo2:environment:prod", False),
        ("repo:org/repo:ref:refs/heads/ma.n", "repo:org/repo:ref:refs/heads/main", False),
        ("repo:org/repo:ref:refs/heads/[a-z]*", "repo:org/repo:ref:refs/heads/x", False),
        ("repo:org/repo:*:prod", "repo:org/repo:environment:prod", True),
    ],
)
def test_subject_patterns(pattern: str, subject: str, matches: bool) -> None:
    assert subject_problem(pattern) is None
    assert subject_matches(pattern, subject) is matches


@pytest.mark.parametrize(
    "pattern", ["", "*", "repo:*", "repo:org/*", "*:org/repo:ref:x", "repo:org/repo\n:x"]
)
def test_subject_patterns_that_would_trust_too_much(pattern: str) -> None:
    assert subject_problem(pattern) is not None


@pytest.mark.parametrize(
    ("candidates", "expected"),
    [
        (("Ada.Lovelace",), "ada.lovelace"),
        (("José María",), "jose-maria"),
        (("--x--",), "x"),
        (("api",), "api-user"),
        (("!!!", "grace@example.org"), "grace-example.org"),
        (("日本",), "user"),
        ((), "user"),
        (("a" * 150,), "a" * 90),
    ],
)
def test_usernames_from_what_the_provider_says(candidates: tuple[str, ...], expected: str) -> None:
    assert _username_base(candidates) == expected
