"""A real OpenID Connect provider on loopback, for the single sign-on and trusted publishing tests.

It serves what a hub talks to: the discovery document, the signing keys (JWKS), an authorize
endpoint that approves the configured user at once and sends the browser back with a code, and a
token endpoint that checks the client, the redirect URI and the PKCE verifier and issues an RS256
ID token carrying the login's nonce. It also plays a GitHub (Enterprise Server) site: the OAuth
endpoints under ``/login/oauth/`` and the user API under ``/api/v3/``. For trusted publishing,
:meth:`OidcProvider.issue` signs any claims with the published key (or with a key nobody published).

Knobs a test may turn between requests: ``user``, ``deny`` (an error to answer the authorize request
with) and ``nonce_override`` (an ID token with another nonce).
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from joserfc import jwt
from joserfc.jwk import RSAKey
from sqlalchemy import select
from sqlalchemy.orm import Session

from dphub.metastore.db import make_engine
from dphub.metastore.models import AuditEvent
from tests.conftest import HubServer, start_hub

CLIENT_ID = "dphub-test-client"
CLIENT_SECRET = "test-client-secret-" + "x" * 16


@dataclass
class ProviderUser:
    subject: str
    email: str
    preferred_username: str
    name: str = "Test User"
    email_verified: bool = True
    github_id: int = 4242


@dataclass
class _Grant:
    client_id: str
    redirect_uri: str
    nonce: str | None
    challenge: str
    user: ProviderUser
    github: bool


@dataclass
class OidcProvider:
    """The provider's state; :func:`start_provider` puts it on the air."""

    user: ProviderUser = field(
        default_factory=lambda: ProviderUser("sub-1", "ada@example.org", "ada")
    )
    deny: str | None = None
    nonce_override: str | None = None
    key: RSAKey = field(
        default_factory=lambda: RSAKey.generate_key(
            2048, parameters={"kid": "provider-key-1", "use": "sig", "alg": "RS256"}
        )
    )
    stranger_key: RSAKey = field(
        default_factory=lambda: RSAKey.generate_key(
            2048, parameters={"kid": "provider-key-1", "use": "sig", "alg": "RS256"}
        )
    )
    """Same kid as the real key, never published: what a forger would sign with."""
    url: str = ""
    jwks_requests: int = 0
    _grants: dict[str, _Grant] = field(default_factory=dict)
    _access: dict[str, ProviderUser] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None

    def reset(self) -> None:
        self.user = ProviderUser("sub-1", "ada@example.org", "ada")
        self.deny = None
        self.nonce_override = None

    def providers_setting(self) -> str:
        """``DPHUB_OIDC_PROVIDERS`` for a hub that logs in here: as OIDC, and as a GitHub site."""
        return json.dumps(
            [
                {
                    "name": "test",
                    "kind": "oidc",
                    "title": "Test Provider",
                    "issuer": self.url,
                    "client_id": CLIENT_ID,
                    "client_secret": CLIENT_SECRET,
                },
                {
                    "name": "gh",
                    "kind": "github",
                    "url": self.url,
                    "client_id": CLIENT_ID,
                    "client_secret": CLIENT_SECRET,
                },
            ]
        )

    def issue(self, *, key: RSAKey | None = None, **claims: Any) -> str:
        """A JWT of this issuer: ``iss``, ``iat`` and a 5-minute ``exp`` unless given."""
        now = int(time.time())
        body: dict[str, Any] = {"iss": self.url, "iat": now, "exp": now + 300, **claims}
        signer = key or self.key
        return jwt.encode({"alg": "RS256", "kid": signer.kid}, body, signer)

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    # Endpoints

    def _discovery(self) -> dict[str, Any]:
        return {
            "issuer": self.url,
            "authorization_endpoint": f"{self.url}/authorize",
            "token_endpoint": f"{self.url}/token",
            "jwks_uri": f"{self.url}/jwks",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "code_challenge_methods_supported": ["S256"],
        }

    def _authorize(self, query: dict[str, str], *, github: bool) -> tuple[int, dict[str, str]]:
        redirect_uri = query.get("redirect_uri", "")
        state = query.get("state", "")
        if query.get("client_id") != CLIENT_ID or not redirect_uri:
            return 400, {}
        if self.deny:
            return 302, {"Location": _add(redirect_uri, error=self.deny, state=state)}
        if query.get("response_type") != "code" or query.get("code_challenge_method") != "S256":
            return 302, {"Location": _add(redirect_uri, error="invalid_request", state=state)}
        code = secrets.token_urlsafe(24)
        with self._lock:
            self._grants[code] = _Grant(
                client_id=CLIENT_ID,
                redirect_uri=redirect_uri,
                nonce=query.get("nonce"),
                challenge=query.get("code_challenge", ""),
                user=self.user,
                github=github,
            )
        return 302, {"Location": _add(redirect_uri, code=code, state=state)}

    def _redeem_grant(
        self, form: dict[str, str], authorization: str, *, github: bool
    ) -> tuple[int, dict[str, Any]]:
        client_id, client_secret = form.get("client_id"), form.get("client_secret")
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "basic":
            client_id, _, client_secret = base64.b64decode(value).decode().partition(":")
        if client_id != CLIENT_ID or client_secret != CLIENT_SECRET:
            return (200 if github else 401), {"error": "invalid_client"}
        with self._lock:
            grant = self._grants.pop(form.get("code", ""), None)
        bad = (
            (200 if github else 400),
            {"error": "bad_verification_code" if github else "invalid_grant"},
        )
        if (
            grant is None
            or grant.github != github
            or form.get("grant_type", "authorization_code") != "authorization_code"
        ):
            return bad
        if form.get("redirect_uri") != grant.redirect_uri:
            return bad
        verifier = form.get("code_verifier", "").encode()
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier).digest()).rstrip(b"=")
        if challenge.decode() != grant.challenge:
            return bad
        access = secrets.token_urlsafe(24)
        with self._lock:
            self._access[access] = grant.user
        answer: dict[str, Any] = {"access_token": access, "token_type": "Bearer"}
        if not github:
            user = grant.user
            answer["id_token"] = self.issue(
                sub=user.subject,
                aud=CLIENT_ID,
                nonce=self.nonce_override or grant.nonce,
                email=user.email,
                email_verified=user.email_verified,
                preferred_username=user.preferred_username,
                name=user.name,
            )
            answer["expires_in"] = 300
        return 200, answer

    def _github_api(self, path: str, authorization: str) -> tuple[int, Any]:
        scheme, _, access = authorization.partition(" ")
        with self._lock:
            user = self._access.get(access) if scheme.lower() in ("bearer", "token") else None
        if user is None:
            return 401, {"message": "Bad credentials"}
        if path == "/api/v3/user":
            return 200, {"id": user.github_id, "login": user.preferred_username, "name": user.name}
        return 200, [
            {"email": f"old-{user.email}", "primary": False, "verified": False},
            {"email": user.email, "primary": True, "verified": user.email_verified},
        ]


def _add(url: str, **params: str) -> str:
    separator = "&" if urlsplit(url).query else "?"
    return f"{url}{separator}{urlencode(params)}"


def _single(values: dict[str, list[str]]) -> dict[str, str]:
    return {k: v[0] for k, v in values.items() if v}


def start_provider() -> OidcProvider:
    provider = OidcProvider()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _answer(
            self, status: int, body: Any = None, headers: dict[str, str] | None = None
        ) -> None:
            content = json.dumps(body).encode() if body is not None else b""
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            if body is not None:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(content)))
            self.end_headers()
            self.wfile.write(content)

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            query = _single(parse_qs(parts.query))
            if parts.path == "/.well-known/openid-configuration":
                self._answer(200, provider._discovery())
            elif parts.path == "/jwks":
                provider.jwks_requests += 1
                self._answer(200, {"keys": [provider.key.as_dict(private=False)]})
            elif parts.path in ("/authorize", "/login/oauth/authorize"):
                github = parts.path.startswith("/login/")
                status, headers = provider._authorize(query, github=github)
                self._answer(status, None, headers)
            elif parts.path in ("/api/v3/user", "/api/v3/user/emails"):
                status, body = provider._github_api(
                    parts.path, self.headers.get("Authorization", "")
                )
                self._answer(status, body)
            else:
                self._answer(404, {"error": "not_found"})

        def do_POST(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            form = _single(parse_qs(self.rfile.read(length).decode()))
            if parts.path in ("/token", "/login/oauth/access_token"):
                github = parts.path.startswith("/login/")
                status, body = provider._redeem_grant(
                    form, self.headers.get("Authorization", ""), github=github
                )
                self._answer(status, body)
            else:
                self._answer(404, {"error": "not_found"})

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    provider._server = server
    provider.url = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, name="oidc-provider", daemon=True).start()
    return provider


# The hub under test, set up to trust this provider


def start_sso_hub(
    request: Any, tmp_path_factory: Any, provider: OidcProvider, kind: str
) -> HubServer:
    """A hub (embedded, or scale: PostgreSQL + S3, two API processes) whose sign-on providers
    are ``provider``'s, with loopback issuers allowed."""
    extra = {
        "DPHUB_OIDC_PROVIDERS": provider.providers_setting(),
        "DPHUB_OIDC_ALLOW_INSECURE_ISSUERS": "true",
    }
    if kind == "scale":
        postgres = request.getfixturevalue("postgres_server")
        s3 = request.getfixturevalue("s3_server")
        extra.update(
            DPHUB_DATABASE_URL=postgres.create_database(),
            **s3.storage_env(s3.create_bucket(), prefix="hub"),
        )
    return start_hub(
        tmp_path_factory.mktemp(f"sso-hub-{kind}"),
        extra,
        kind=kind,
        serve_args=("--workers", "2") if kind == "scale" else (),
        workers=2 if kind == "scale" else 0,
    )


def audit_events(server: HubServer, event: str) -> list[AuditEvent]:
    """The hub's audit events named ``event``, oldest first, read from its metastore."""
    url = server.env.get("DPHUB_DATABASE_URL") or f"sqlite:///{server.data_dir / 'metastore.db'}"
    engine = make_engine(url)
    try:
        with Session(engine) as db:
            rows = db.scalars(select(AuditEvent).where(AuditEvent.event == event))
            return list(rows)
    finally:
        engine.dispose()
