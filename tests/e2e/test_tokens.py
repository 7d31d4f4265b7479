"""The hub's tokens seen from outside: verified with its published keys as any service would, forged
ones refused, and signing keys rotated without logging anyone out."""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import os
import re
import time
from collections.abc import Callable

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select

from dphub.metastore.db import make_engine, make_sessionmaker
from dphub.metastore.models import AuditEvent
from tests.conftest import HubServer, Publisher

_n = itertools.count(1)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def kid_of(token: str) -> str:
    return str(jwt.get_unverified_header(token)["kid"])


def error_code(answer: httpx.Response) -> str:
    return str(answer.json()["error"]["code"])


def admin_token(hub: HubServer) -> str:
    name = f"root{next(_n)}-{os.getpid()}"
    made = hub.admin("user", "create", name, "--email", f"{name}@example.org", "--admin")
    key = made.stdout.strip().splitlines()[-1]
    answer = httpx.post(f"{hub.url}/api/auth/token", json={"username": name, "secret": key})
    assert answer.status_code == 200, answer.text
    return str(answer.json()["token"])


def jwks(hub: HubServer) -> dict[str, dict[str, str]]:
    answer = httpx.get(f"{hub.url}/.well-known/jwks.json")
    assert answer.status_code == 200
    return {k["kid"]: k for k in answer.json()["keys"]}


def accepted(hub: HubServer, token: str) -> bool:
    answer = httpx.get(f"{hub.url}/api/auth/check", headers={"Authorization": f"Bearer {token}"})
    return bool(answer.json()["authenticated"])


def test_any_service_verifies_a_token_with_the_jwks(publisher: Publisher) -> None:
    hub = publisher.hub
    token = publisher.token()
    answer = httpx.get(f"{hub.url}/.well-known/jwks.json")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("application/json")
    assert "max-age=" in answer.headers["cache-control"]
    for key in answer.json()["keys"]:
        assert set(key) == {"kty", "crv", "x", "kid", "alg", "use"}
        assert (key["kty"], key["crv"], key["alg"], key["use"]) == (
            "OKP",
            "Ed25519",
            "EdDSA",
            "sig",
        )
    # as a service would: plain pyjwt, the key picked by the token's kid
    signing_key = jwt.PyJWKClient(f"{hub.url}/.well-known/jwks.json").get_signing_key_from_jwt(
        token
    )
    claims = jwt.decode(token, signing_key, algorithms=["EdDSA"], audience="dphub", issuer="dphub")
    assert claims["username"] == publisher.username
    assert (claims["scope"], claims["via"], claims["typ"]) == ("admin", "api-key", "session")
    for name in ("sub", "iat", "nbf", "exp", "jti", "api_key"):
        assert name in claims


def test_the_public_key_is_pem(publisher: Publisher) -> None:
    hub = publisher.hub
    answer = httpx.get(f"{hub.url}/api/auth/public-key")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/x-pem-file"
    assert "max-age=" in answer.headers["cache-control"]
    pem = answer.text
    assert pem.startswith("-----BEGIN PUBLIC KEY-----")
    assert "PRIVATE" not in pem
    assert answer.headers["key-id"] in jwks(hub)
    # a token signed now is signed by this key (a rotation elsewhere shows up within seconds)
    deadline = time.monotonic() + 15
    token = publisher.token()
    while kid_of(token) != answer.headers["key-id"] and time.monotonic() < deadline:
        time.sleep(1)
        token = publisher.token()
    claims = jwt.decode(token, pem, algorithms=["EdDSA"], audience="dphub")
    assert claims["username"] == publisher.username


def test_forged_tokens_are_refused(publisher: Publisher) -> None:
    hub = publisher.hub
    token = publisher.token()
    header, payload, signature = token.split(".")
    claims = jwt.decode(token, options={"verify_signature": False})
    pem = httpx.get(f"{hub.url}/api/auth/public-key").text
    forged: dict[str, str] = {}
    unsigned_header = b64(json.dumps({"alg": "none", "typ": "JWT", "kid": kid_of(token)}).encode())
    forged["alg none"] = f"{unsigned_header}.{payload}."
    hs_header = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": kid_of(token)}).encode())
    hs_signature = hmac.new(pem.encode(), f"{hs_header}.{payload}".encode(), hashlib.sha256)
    forged["HS256 with the public key"] = f"{hs_header}.{payload}.{b64(hs_signature.digest())}"
    stranger = Ed25519PrivateKey.generate()
    forged["another key, same kid"] = jwt.encode(
        claims, stranger, algorithm="EdDSA", headers={"kid": kid_of(token)}
    )
    forged["unknown kid"] = jwt.encode(
        claims, stranger, algorithm="EdDSA", headers={"kid": "dphub-999999"}
    )
    forged["no kid"] = jwt.encode(claims, stranger, algorithm="EdDSA")
    raised = b64(json.dumps({**claims, "username": "root", "sub": "1"}).encode())
    forged["tampered payload"] = f"{header}.{raised}.{signature}"
    for what, bad in forged.items():
        answer = httpx.get(f"{hub.url}/api/auth/keys", headers={"Authorization": f"Bearer {bad}"})
        assert (answer.status_code, error_code(answer)) == (401, "invalid-token"), what
        assert bad not in answer.text
    assert (
        httpx.get(
            f"{hub.url}/api/auth/keys", headers={"Authorization": f"Bearer {token}"}
        ).status_code
        == 200
    )


def test_rotation_logs_nobody_out(hub: HubServer, make_publisher: Callable[..., Publisher]) -> None:
    user = make_publisher("rot")
    before = user.token()
    old_kid = kid_of(before)

    refused = httpx.post(
        f"{hub.url}/api/admin/signing-keys/rotate", headers={"Authorization": f"Bearer {before}"}
    )
    assert (refused.status_code, error_code(refused)) == (403, "forbidden")
    assert httpx.post(f"{hub.url}/api/admin/signing-keys/rotate").status_code == 401

    root = admin_token(hub)
    rotated = httpx.post(
        f"{hub.url}/api/admin/signing-keys/rotate", headers={"Authorization": f"Bearer {root}"}
    )
    assert rotated.status_code == 200, rotated.text
    new_kid = rotated.json()["signing_key"]["kid"]
    assert new_kid != old_kid
    assert rotated.json()["signing_key"]["state"] == "signing"
    assert old_kid in rotated.json()["retired"]

    # tokens signed before stay valid; new ones use the new key (every API process within seconds)
    assert accepted(hub, before)
    assert accepted(hub, root)
    deadline = time.monotonic() + 15
    while kid_of(user.token()) != new_kid:
        assert time.monotonic() < deadline, "new tokens are still signed with the old key"
        time.sleep(0.5)
    after = user.token()
    assert accepted(hub, after)
    assert {old_kid, new_kid} <= set(jwks(hub))
    assert httpx.get(f"{hub.url}/api/auth/public-key").headers["key-id"] == new_kid

    # the operator's command does the same from the server
    result = hub.admin("signing-key", "rotate")
    third = result.stdout.split("New signing key ")[1].split(".")[0]
    assert third not in (old_kid, new_kid)
    assert new_kid in result.stdout
    listed = hub.admin("signing-key", "list").stdout
    rows = {
        found.group(0): line
        for line in listed.splitlines()
        if (found := re.search(r"dphub-\d+", line)) is not None
    }
    assert "signing" in rows[third]
    assert "verifying" in rows[new_kid]
    assert "verifying" in rows[old_kid]
    assert "PRIVATE" not in listed
    for token in (before, after):
        assert accepted(hub, token)
    deadline = time.monotonic() + 15
    while third not in jwks(hub):
        assert time.monotonic() < deadline
        time.sleep(0.5)

    url = hub.env.get("DPHUB_DATABASE_URL") or f"sqlite:///{hub.data_dir / 'metastore.db'}"
    engine = make_engine(url)
    try:
        with make_sessionmaker(engine)() as db:
            events = db.scalars(
                select(AuditEvent).where(AuditEvent.event == "signing-key.rotate")
            ).all()
    finally:
        engine.dispose()
    targets = {e.target: e for e in events}
    assert targets[new_kid].outcome == "ok"
    assert targets[new_kid].actor is not None
    assert targets[new_kid].actor.startswith("root")
    assert old_kid in targets[new_kid].detail["retired"]
    assert targets[third].actor == "command line"
