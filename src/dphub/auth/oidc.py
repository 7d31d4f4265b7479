"""Talking to OpenID Connect providers and issuers: discovery, signing keys, the authorization-code
exchange, and checking the JWTs they sign.

Two callers with different trust:

- single sign-on providers are configured by the operator (``DPHUB_OIDC_PROVIDERS``); the hub reads
  their documents with a plain HTTP client, so a provider on the operator's own network works;
- trusted publishers' issuers are registered by package owners, so every document of theirs is read
  through the DataProxy's vetted fetch (:func:`dphub.dataproxy.remote.fetch`): public addresses
  only, the connection pinned to the vetted address, same-host redirects, a byte cap and one
  deadline. Loopback is accepted only when ``DPHUB_OIDC_ALLOW_INSECURE_ISSUERS`` is on.

Discovery documents and key sets are cached for :data:`CACHE_TTL` seconds per process; a token
signed with a key the cached set lacks (the issuer rotated its keys) refetches the set, at most once
per :data:`REFETCH_INTERVAL`.
"""

from __future__ import annotations

import base64
import json
import tempfile
import threading
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from authlib.oauth2.rfc6749.parameters import (  # type: ignore[import-untyped]
    prepare_grant_uri,
    prepare_token_request,
)
from authlib.oauth2.rfc7636 import create_s256_code_challenge  # type: ignore[import-untyped]
from authlib.oidc.core import CodeIDToken  # type: ignore[import-untyped]
from joserfc import jwt
from joserfc.errors import ClaimError, ExpiredTokenError, JoseError
from joserfc.jwk import KeySet

from dphub import __version__
from dphub.auth.providers import DISCOVERY_PATH, Provider, url_problem
from dphub.errors import (
    DphubError,
    InvalidCredentials,
    InvalidToken,
    ServiceUnavailable,
)

HTTP_TIMEOUT = 10.0
MAX_DOCUMENT_BYTES = 1024 * 1024
CACHE_TTL = 300.0
REFETCH_INTERVAL = 30.0
LEEWAY = 60
ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA")
HEADERS = {"Accept": "application/json", "User-Agent": f"dphub/{__version__}"}

Fetch = Callable[[str], dict[str, Any]]
"""GET a URL and answer its JSON object; raises a :class:`DphubError` on any failure."""


# Reading documents


def fetch_trusted(url: str) -> dict[str, Any]:
    """A JSON document of an operator-configured provider."""
    host = urlsplit(url).hostname or url
    try:
        with httpx.Client(timeout=HTTP_TIMEOUT, follow_redirects=True, headers=HEADERS) as client:
            response = client.get(url)
    except httpx.HTTPError as exc:
        raise ServiceUnavailable(
            f"The sign-in provider at {host} could not be reached ({type(exc).__name__})."
        ) from None
    if response.status_code != 200:
        raise ServiceUnavailable(
            f"The sign-in provider at {host} answered HTTP {response.status_code} for {url}."
        )
    return _json_object(response.content, host)


def vetted_fetcher(*, allow_insecure: bool) -> Fetch:
    """A :data:`Fetch` for documents of issuers that users registered (see the module docstring)."""
    from dphub.dataproxy import remote  # here, not above: the DataProxy package loads DuckDB

    def vet(address: str) -> None:
        if allow_insecure and address in ("127.0.0.1", "::1"):
            return
        remote.vet_address(address)

    def fetch(url: str) -> dict[str, Any]:
        problem = url_problem(url, allow_insecure=allow_insecure)
        parts = urlsplit(url)
        host = parts.hostname or url
        if problem is not None:
            raise InvalidToken(
                f"The issuer's document URL {url} is refused: {problem}.", reason="issuer-url"
            )
        port = parts.port or (443 if parts.scheme == "https" else 80)
        entry = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        with tempfile.TemporaryDirectory(prefix="dphub-oidc-") as workdir:
            try:
                fetched = remote.fetch(
                    url,
                    allowed_hosts=[entry],
                    workdir=Path(workdir),
                    max_bytes=MAX_DOCUMENT_BYTES,
                    timeout=HTTP_TIMEOUT,
                    vet=vet,
                )
                return _json_object(fetched.path.read_bytes(), host)
            except DphubError as exc:
                raise InvalidToken(
                    f"The hub could not read the issuer's document {url}: {exc.message}",
                    reason="issuer-unreachable",
                ) from None

    return fetch


def _json_object(content: bytes, host: str) -> dict[str, Any]:
    if len(content) > MAX_DOCUMENT_BYTES:
        raise ServiceUnavailable(f"{host} sent a document larger than {MAX_DOCUMENT_BYTES} bytes.")
    try:
        document = json.loads(content)
    except ValueError:
        raise ServiceUnavailable(f"{host} did not answer with JSON.") from None
    if not isinstance(document, dict):
        raise ServiceUnavailable(f"{host} did not answer with a JSON object.")
    return document


class _Cache:
    """Values by key for a while; shared by the threads of one process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[str, tuple[float, Any]] = {}

    def get(self, key: str, max_age: float) -> Any:
        with self._lock:
            found = self._values.get(key)
        if found is None or time.monotonic() - found[0] > max_age:
            return None
        return found[1]

    def put(self, key: str, value: Any) -> None:
        with self._lock:
            self._values[key] = (time.monotonic(), value)

    def clear(self) -> None:
        with self._lock:
            self._values.clear()


_documents = _Cache()
_key_sets = _Cache()


@dataclass(frozen=True)
class Discovery:
    """The parts of an OpenID Provider's discovery document the hub uses."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    token_auth_methods: tuple[str, ...]
    algorithms: tuple[str, ...]


def discover(discovery_url: str, *, issuer: str, fetch: Fetch) -> Discovery:
    """The discovery document at ``discovery_url``, which must name ``issuer`` exactly."""
    cached = _documents.get(discovery_url, CACHE_TTL)
    if isinstance(cached, Discovery) and cached.issuer == issuer:
        return cached
    document = fetch(discovery_url)
    if document.get("issuer") != issuer:
        raise InvalidToken(
            f"The discovery document at {discovery_url} names the issuer"
            f" {document.get('issuer')!r}, not {issuer!r}."
        )
    discovered = Discovery(
        issuer=issuer,
        authorization_endpoint=_text(document.get("authorization_endpoint")),
        token_endpoint=_text(document.get("token_endpoint")),
        jwks_uri=_text(document.get("jwks_uri")),
        token_auth_methods=_texts(document.get("token_endpoint_auth_methods_supported")),
        algorithms=_texts(document.get("id_token_signing_alg_values_supported")),
    )
    if not discovered.jwks_uri:
        raise InvalidToken(f"The discovery document at {discovery_url} names no jwks_uri.")
    _documents.put(discovery_url, discovered)
    return discovered


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _texts(value: object) -> tuple[str, ...]:
    if not isinstance(value, list):
        return ()
    return tuple(v for v in value if isinstance(v, str))


def key_set(jwks_uri: str, *, fetch: Fetch, kid: str | None = None) -> KeySet:
    """The keys published at ``jwks_uri``; fetched again when ``kid`` is not among them."""
    cached = _key_sets.get(jwks_uri, CACHE_TTL)
    if isinstance(cached, KeySet):
        known = kid is None or any(key.kid == kid for key in cached.keys)
        fresh = _key_sets.get(jwks_uri, REFETCH_INTERVAL) is not None
        if known or fresh:
            return cached
    document = fetch(jwks_uri)
    try:
        keys = KeySet.import_key_set(document)  # type: ignore[arg-type]
    except (JoseError, ValueError, KeyError, TypeError):
        raise InvalidToken(f"The key set at {jwks_uri} holds no usable public key.") from None
    if any(key.is_private for key in keys.keys):
        raise InvalidToken(f"The key set at {jwks_uri} publishes private keys; refused.")
    _key_sets.put(jwks_uri, keys)
    return keys


def unverified_header(token: str) -> dict[str, Any]:
    return _segment(token, 0)


def unverified_claims(token: str) -> dict[str, Any]:
    """The claims of a JWT before any check: only to find out which issuer to check it with."""
    return _segment(token, 1)


def _segment(token: str, index: int) -> dict[str, Any]:
    parts = token.split(".")
    if len(parts) != 3:
        raise InvalidToken("The token is not a JWT (three base64url parts separated by dots).")
    try:
        raw = base64.urlsafe_b64decode(parts[index] + "=" * (-len(parts[index]) % 4))
        value = json.loads(raw)
    except (ValueError, RecursionError):  # RecursionError: nested a thousand levels deep
        raise InvalidToken(
            "The token is not a JWT: a part is not base64url-encoded JSON."
        ) from None
    if not isinstance(value, dict):
        raise InvalidToken("The token is not a JWT: a part is not a JSON object.")
    return value


def verify_signature(
    token: str, *, jwks_uri: str, fetch: Fetch, algorithms: Collection[str] = ALGORITHMS
) -> jwt.Token:
    """The token, its signature checked against the issuer's published keys (claims unchecked)."""
    header = unverified_header(token)
    algorithm = header.get("alg")
    allowed = [a for a in ALGORITHMS if a in algorithms] or list(ALGORITHMS)
    if algorithm not in allowed:
        raise InvalidToken(
            f"The token is signed with {algorithm!r}; accepted: {', '.join(allowed)}."
        )
    kid = header.get("kid")
    keys = key_set(jwks_uri, fetch=fetch, kid=kid if isinstance(kid, str) else None)
    try:
        return jwt.decode(token, keys, algorithms=allowed)
    except JoseError:
        raise InvalidToken(
            "The token's signature does not verify with any key the issuer publishes."
        ) from None


# Single sign-on: the authorization-code flow with PKCE


@dataclass(frozen=True)
class Identity:
    """Who the provider vouched for."""

    issuer: str
    subject: str
    email: str | None
    names: tuple[str, ...]
    """Username candidates, best first (preferred_username, login, the email's local part)."""
    full_name: str | None


def provider_discovery(provider: Provider) -> Discovery | None:
    if not provider.is_oidc:
        return None
    return discover(provider.discovery_url, issuer=provider.issuer, fetch=fetch_trusted)


def authorization_url(
    provider: Provider, *, redirect_uri: str, state: str, nonce: str, code_verifier: str
) -> str:
    """Where to send the browser: the provider's consent page for this login."""
    discovery = provider_discovery(provider)
    endpoint = (
        discovery.authorization_endpoint
        if discovery is not None
        else f"{provider.issuer}/login/oauth/authorize"
    )
    if not endpoint:
        raise ServiceUnavailable(f"{provider.title} publishes no authorization endpoint.")
    extra: dict[str, str] = {
        "code_challenge": create_s256_code_challenge(code_verifier),
        "code_challenge_method": "S256",
    }
    if provider.is_oidc:
        extra["nonce"] = nonce
    url: str = prepare_grant_uri(
        endpoint,
        client_id=provider.client_id,
        response_type="code",
        redirect_uri=redirect_uri,
        scope=provider.scope,
        state=state,
        **extra,
    )
    return url


def exchange_code(
    provider: Provider, *, code: str, redirect_uri: str, code_verifier: str
) -> dict[str, Any]:
    """The provider's token answer for an authorization code (access token, ID token)."""
    discovery = provider_discovery(provider)
    if discovery is not None:
        endpoint = discovery.token_endpoint
        methods = discovery.token_auth_methods or ("client_secret_basic",)
    else:
        endpoint = f"{provider.issuer}/login/oauth/access_token"
        methods = ("client_secret_post",)
    if not endpoint:
        raise ServiceUnavailable(f"{provider.title} publishes no token endpoint.")
    fields: dict[str, str] = {"code_verifier": code_verifier}
    auth: httpx.Auth | None = None
    if provider.client_secret and "client_secret_basic" in methods:
        auth = httpx.BasicAuth(provider.client_id, provider.client_secret)
    else:
        fields["client_id"] = provider.client_id
        if provider.client_secret:
            fields["client_secret"] = provider.client_secret
    body: str = prepare_token_request(
        "authorization_code", code=code, redirect_uri=redirect_uri, **fields
    )
    host = urlsplit(endpoint).hostname or endpoint
    try:
        with httpx.Client(timeout=HTTP_TIMEOUT, headers=HEADERS) as client:
            response = client.post(
                endpoint,
                content=body,
                auth=auth or httpx.USE_CLIENT_DEFAULT,
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            )
    except httpx.HTTPError as exc:
        raise ServiceUnavailable(
            f"{provider.title} could not be reached to finish the login ({type(exc).__name__})."
        ) from None
    try:
        answer = response.json()
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        raise ServiceUnavailable(
            f"{provider.title}'s token endpoint ({host}) answered HTTP {response.status_code}"
            " without a JSON object."
        )
    error = answer.get("error")
    if error or response.status_code != 200:
        # Deliberately not echoing the provider's description: it may quote the code.
        raise InvalidCredentials(
            f"{provider.title} refused the login code ({error or response.status_code});"
            " start the login again.",
            provider_error=str(error) if error else None,
        )
    return answer


def id_token_identity(provider: Provider, token_answer: dict[str, Any], *, nonce: str) -> Identity:
    """The identity in an OIDC token answer's ID token, after every check: signature (the
    provider's published keys), issuer, audience, expiry, issue time, nonce, and at_hash."""
    discovery = provider_discovery(provider)
    assert discovery is not None
    id_token = token_answer.get("id_token")
    if not isinstance(id_token, str) or not id_token:
        raise InvalidToken(f"{provider.title} answered without an ID token.")
    token = verify_signature(
        id_token,
        jwks_uri=discovery.jwks_uri,
        fetch=fetch_trusted,
        algorithms=discovery.algorithms or ("RS256",),
    )
    access_token = token_answer.get("access_token")
    claims = CodeIDToken(
        token.claims,
        token.header,
        options={
            "iss": {"essential": True, "value": provider.issuer},
            "aud": {"essential": True, "value": provider.client_id},
            "sub": {"essential": True},
        },
        params={
            "nonce": nonce,
            "client_id": provider.client_id,
            "access_token": access_token if isinstance(access_token, str) else None,
        },
    )
    try:
        claims.validate(now=int(time.time()), leeway=LEEWAY)
    except JoseError as exc:
        raise claims_failure(f"{provider.title}'s ID token", exc) from None
    email = token.claims.get("email")
    usable_email = (
        email
        if isinstance(email, str) and token.claims.get("email_verified") is not False
        else None
    )
    names = [
        token.claims.get(key) for key in ("preferred_username", "nickname", "given_name", "name")
    ]
    if usable_email:
        names.append(usable_email.partition("@")[0])
    full_name = token.claims.get("name")
    return Identity(
        issuer=provider.issuer,
        subject=str(token.claims["sub"]),
        email=usable_email,
        names=tuple(n for n in names if isinstance(n, str) and n),
        full_name=full_name if isinstance(full_name, str) else None,
    )


def github_identity(provider: Provider, token_answer: dict[str, Any]) -> Identity:
    """The GitHub account behind an access token: ``/user``, and ``/user/emails`` for its
    primary verified address."""
    access_token = token_answer.get("access_token")
    if not isinstance(access_token, str) or not access_token:
        raise InvalidToken(f"{provider.title} answered without an access token.")
    headers = {
        **HEADERS,
        "Accept": "application/vnd.github+json",
        "Authorization": f"Bearer {access_token}",
    }
    try:
        with httpx.Client(timeout=HTTP_TIMEOUT, headers=headers) as client:
            user = client.get(f"{provider.api_url}/user")
            emails = client.get(f"{provider.api_url}/user/emails")
    except httpx.HTTPError as exc:
        raise ServiceUnavailable(
            f"{provider.title}'s API could not be reached ({type(exc).__name__})."
        ) from None
    if user.status_code != 200:
        raise InvalidToken(
            f"{provider.title} refused to say who logged in (HTTP {user.status_code})."
        )
    try:
        profile = user.json()
        addresses = emails.json() if emails.status_code == 200 else []
    except ValueError:
        raise ServiceUnavailable(f"{provider.title}'s API did not answer with JSON.") from None
    if not isinstance(profile, dict) or profile.get("id") is None:
        raise ServiceUnavailable(f"{provider.title}'s API answered without an account id.")
    email = None
    if isinstance(addresses, list):
        verified = [a for a in addresses if isinstance(a, dict) and a.get("verified") is True]
        primary = [a for a in verified if a.get("primary") is True]
        for address in primary + verified:
            if isinstance(address.get("email"), str):
                email = address["email"]
                break
    login = profile.get("login")
    names = [login] if isinstance(login, str) else []
    if email:
        names.append(email.partition("@")[0])
    full_name = profile.get("name")
    return Identity(
        issuer=provider.issuer,
        subject=str(profile["id"]),
        email=email,
        names=tuple(names),
        full_name=full_name if isinstance(full_name, str) else None,
    )


def provider_identity(
    provider: Provider, *, code: str, redirect_uri: str, code_verifier: str, nonce: str
) -> Identity:
    """Finish a login at the provider: exchange the code, and check who it vouches for."""
    answer = exchange_code(
        provider, code=code, redirect_uri=redirect_uri, code_verifier=code_verifier
    )
    if provider.is_oidc:
        return id_token_identity(provider, answer, nonce=nonce)
    return github_identity(provider, answer)


# Trusted publishing: tokens a CI system issued


def issuer_token(token: str, *, issuer: str, fetch: Fetch) -> jwt.Token:
    """A JWT from ``issuer`` with a checked signature and times (exp, iat, nbf); the caller
    checks audience and subject."""
    discovery = discover(issuer.rstrip("/") + DISCOVERY_PATH, issuer=issuer, fetch=fetch)
    verified = verify_signature(token, jwks_uri=discovery.jwks_uri, fetch=fetch)
    registry = jwt.JWTClaimsRegistry(
        leeway=LEEWAY,
        iss={"essential": True, "value": issuer},
        exp={"essential": True},
        iat={"essential": True},
        sub={"essential": True},
    )
    try:
        registry.validate(verified.claims)
    except JoseError as exc:
        raise claims_failure("The token", exc) from None
    iat = verified.claims["iat"]
    if not isinstance(iat, int | float) or iat > time.time() + LEEWAY:
        raise InvalidToken(
            "The token's issue time (iat) is in the future.", reason="iat", claim="iat"
        )
    return verified


def claims_failure(what: str, exc: JoseError) -> InvalidToken:
    """The refusal for a token whose claims failed a check, naming the claim (never its value)."""
    if isinstance(exc, ExpiredTokenError):
        return InvalidToken(f"{what} has expired.", reason="expired", claim="exp")
    claim = exc.claim if isinstance(exc, ClaimError) else ""
    return InvalidToken(
        f"{what} failed its check: {exc.description or exc.error}.",
        reason=claim or exc.error,
        claim=claim or None,
    )


def clear_caches() -> None:
    """Forget every cached discovery document and key set (tests rotate keys)."""
    _documents.clear()
    _key_sets.clear()
