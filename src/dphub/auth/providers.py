"""Single sign-on providers as the operator configures them (``DPHUB_OIDC_PROVIDERS``).

The setting is a JSON list; each entry names one provider people can log in with::

    [{"name": "github", "kind": "github", "client_id": "...", "client_secret": "..."},
     {"name": "google", "kind": "google", "client_id": "...", "client_secret": "..."},
     {"name": "corp", "kind": "oidc", "issuer": "https://id.example.org",
      "client_id": "...", "client_secret": "...", "title": "Example Corp"}]

``kind`` picks how the hub talks to it:

- ``github``: GitHub's OAuth 2.0 endpoints and its user API (GitHub does not issue ID tokens). An
  optional ``url`` points at a GitHub Enterprise Server (``https://github.example.org``).
- ``google``: OpenID Connect with the discovery document of ``https://accounts.google.com``.
- ``oidc``: any OpenID Connect issuer; its discovery document is read from
  ``<issuer>/.well-known/openid-configuration`` unless ``discovery_url`` says otherwise.

Pure parsing: nothing here touches the network. The same URL rule (https, or http on loopback when
``DPHUB_OIDC_ALLOW_INSECURE_ISSUERS`` is on) also applies to trusted publishers' issuers.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from dphub.errors import ConfigurationError, NotFound

if TYPE_CHECKING:
    from dphub.config import Settings

KINDS = ("github", "google", "oidc")
GITHUB_URL = "https://github.com"
GITHUB_API_URL = "https://api.github.com"
GOOGLE_ISSUER = "https://accounts.google.com"
DISCOVERY_PATH = "/.well-known/openid-configuration"
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})

PROVIDER_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
_KEYS = frozenset(
    {
        "name",
        "kind",
        "title",
        "client_id",
        "client_secret",
        "issuer",
        "discovery_url",
        "url",
        "scope",
    }
)
_TITLES = {"github": "GitHub", "google": "Google"}
_SCOPES = {"github": "read:user user:email", "google": "openid email profile"}


@dataclass(frozen=True)
class Provider:
    """One configured single sign-on provider."""

    name: str
    kind: str
    title: str
    client_id: str
    client_secret: str
    scope: str
    issuer: str
    """For OIDC kinds, the ``iss`` its ID tokens carry; for GitHub, the site's URL. Together with the
    account's subject it identifies an account (``oidc_identities``)."""
    discovery_url: str = ""
    """OIDC kinds only."""
    api_url: str = ""
    """GitHub only: the REST API's base URL."""

    @property
    def is_oidc(self) -> bool:
        return self.kind != "github"


def url_problem(url: str, *, allow_insecure: bool) -> str | None:
    """Why ``url`` may not be an issuer or provider URL, or ``None`` when it is fine.

    https with a host and no user name, query or fragment; plain http only on loopback, and only
    when insecure issuers are allowed (tests, development).
    """
    if any(ch.isspace() or ord(ch) < 32 for ch in url) or "\\" in url:
        return "it contains spaces, control characters or backslashes"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        return "it is not a valid URL"
    if parts.scheme not in ("https", "http") or not parts.hostname:
        return "it must be an https:// URL with a host"
    if parts.username is not None or parts.password is not None:
        return "it must not carry a user name or password"
    if parts.query or parts.fragment:
        return "it must not carry a query or fragment"
    if parts.scheme == "http":
        if not allow_insecure:
            return "it must use https"
        if parts.hostname not in LOOPBACK_HOSTS:
            return "plain http is only allowed on loopback (127.0.0.1, localhost)"
    return None


@functools.lru_cache(maxsize=8)
def parse_providers(raw: str, *, allow_insecure: bool = False) -> tuple[Provider, ...]:
    """The providers of a ``DPHUB_OIDC_PROVIDERS`` value; a clear :class:`ConfigurationError`
    naming the entry and the key when anything is wrong."""
    if not raw.strip():
        return ()
    try:
        entries = json.loads(raw)
    except ValueError as exc:
        raise ConfigurationError(f"DPHUB_OIDC_PROVIDERS is not valid JSON: {exc}.") from None
    if not isinstance(entries, list):
        raise ConfigurationError("DPHUB_OIDC_PROVIDERS must be a JSON list of provider objects.")
    providers: list[Provider] = []
    for index, entry in enumerate(entries):
        provider = _provider(index, entry, allow_insecure=allow_insecure)
        if any(p.name == provider.name for p in providers):
            raise ConfigurationError(
                f"DPHUB_OIDC_PROVIDERS names the provider {provider.name!r} twice."
            )
        providers.append(provider)
    return tuple(providers)


def _provider(index: int, entry: Any, *, allow_insecure: bool) -> Provider:
    where = f"DPHUB_OIDC_PROVIDERS[{index}]"
    if not isinstance(entry, dict):
        raise ConfigurationError(f"{where} must be a JSON object.")
    unknown = sorted(set(entry) - _KEYS)
    if unknown:
        raise ConfigurationError(
            f"{where} has unknown keys {unknown}; known keys: {sorted(_KEYS)}."
        )
    for key, value in entry.items():
        if not isinstance(value, str):
            raise ConfigurationError(f"{where}.{key} must be a string.")
    name = entry.get("name", "")
    if not PROVIDER_NAME.fullmatch(name):
        raise ConfigurationError(
            f"{where}.name must be 1 to 40 lowercase letters, digits, '_' or '-' (it appears in"
            " the login URL)."
        )
    where = f"DPHUB_OIDC_PROVIDERS entry {name!r}"
    kind = entry.get("kind", "")
    if kind not in KINDS:
        raise ConfigurationError(f"{where}: kind must be one of {', '.join(KINDS)}.")
    client_id = entry.get("client_id", "").strip()
    if not client_id:
        raise ConfigurationError(f"{where}: client_id is required.")
    client_secret = entry.get("client_secret", "")
    if kind == "github" and not client_secret:
        raise ConfigurationError(f"{where}: client_secret is required for GitHub.")

    def checked(key: str, url: str) -> str:
        problem = url_problem(url, allow_insecure=allow_insecure)
        if problem is not None:
            raise ConfigurationError(f"{where}: {key} {url!r} is refused: {problem}.")
        return url

    issuer = discovery_url = api_url = ""
    misplaced = {
        "github": ("issuer", "discovery_url"),
        "google": ("issuer", "discovery_url", "url"),
        "oidc": ("url",),
    }[kind]
    for key in misplaced:
        if key in entry:
            raise ConfigurationError(f"{where}: {key} does not apply to kind {kind!r}.")
    if kind == "github":
        site = checked("url", entry.get("url", GITHUB_URL).rstrip("/"))
        issuer = site
        api_url = GITHUB_API_URL if site == GITHUB_URL else f"{site}/api/v3"
    elif kind == "google":
        issuer = GOOGLE_ISSUER
        discovery_url = GOOGLE_ISSUER + DISCOVERY_PATH
    else:
        issuer = entry.get("issuer", "")
        if not issuer:
            raise ConfigurationError(f"{where}: issuer is required for kind 'oidc'.")
        checked("issuer", issuer)
        discovery_url = checked(
            "discovery_url", entry.get("discovery_url") or issuer.rstrip("/") + DISCOVERY_PATH
        )
    scope = entry.get("scope") or _SCOPES.get(kind, "openid email profile")
    if kind != "github" and "openid" not in scope.split():
        raise ConfigurationError(f"{where}: scope must include 'openid'.")
    return Provider(
        name=name,
        kind=kind,
        title=entry.get("title") or _TITLES.get(kind) or name,
        client_id=client_id,
        client_secret=client_secret,
        scope=scope,
        issuer=issuer,
        discovery_url=discovery_url,
        api_url=api_url,
    )


def configured(settings: Settings) -> tuple[Provider, ...]:
    return parse_providers(
        settings.oidc_providers, allow_insecure=settings.oidc_allow_insecure_issuers
    )


def find_provider(settings: Settings, name: str) -> Provider:
    for provider in configured(settings):
        if provider.name == name:
            return provider
    names = ", ".join(p.name for p in configured(settings)) or "none"
    raise NotFound(
        f"This hub has no single sign-on provider named {name[:40]!r} (configured: {names}).",
        provider=name[:40],
    )
