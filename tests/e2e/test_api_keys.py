"""Scoped API keys end to end: made, listed and revoked over HTTP and with the real CLI, and what
each key (and each token made from one) may then do."""

from __future__ import annotations

import hashlib
import itertools
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from sqlalchemy import update

from dphub.metastore.db import make_engine, make_sessionmaker, transaction
from dphub.metastore.models import ApiKey
from tests.conftest import HubServer, Publisher, base_env, cli, write_package
from tests.e2e.test_bad_input import md5_b64

_n = itertools.count(1)
CSV = b"year,value\n2020,1\n2021,2\n"
CREATED = {
    "id", "key", "name", "prefix", "scope", "package", "publisher", "created_at", "expires_at"
}  # fmt: skip
LISTED = {
    "id", "name", "prefix", "scope", "package", "publisher", "created_at", "expires_at",
    "last_used_at", "revoked_at", "expired",
}  # fmt: skip


def make_key(client: httpx.Client, **body: Any) -> dict[str, Any]:
    answer = client.post("/api/auth/keys", json=body)
    assert answer.status_code == 201, answer.text
    made: dict[str, Any] = answer.json()
    return made


def token_for(hub: HubServer, username: str, secret: str) -> str:
    answer = httpx.post(
        f"{hub.url}/api/auth/token", json={"username": username, "secret": secret}, timeout=30
    )
    assert answer.status_code == 200, answer.text
    return str(answer.json()["token"])


def authorize(client: httpx.Client, owner: str, name: str) -> httpx.Response:
    """Ask to upload one file into ``owner/name``: what every push starts with."""
    data = b"a,b\n1,2\n"
    entry = {"md5": md5_b64(data), "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    return client.post(
        "/api/datastore/authorize",
        json={"metadata": {"owner": owner, "name": name}, "filedata": {"data.csv": entry}},
    )


def error_code(answer: httpx.Response) -> str:
    return str(answer.json()["error"]["code"])


def push(publisher: Publisher, root: Path, *args: str) -> str:
    name = f"pkg-{next(_n)}"
    folder = write_package(root / name, name, files={"values.csv": CSV})
    cli("push", str(folder), *args, env=publisher.env)
    return name


def set_key(hub: HubServer, key_id: int, **values: Any) -> None:
    """Change a key's row in the hub's metastore (what time would do)."""
    url = hub.env.get("DPHUB_DATABASE_URL") or f"sqlite:///{hub.data_dir / 'metastore.db'}"
    engine = make_engine(url)
    try:
        with transaction(make_sessionmaker(engine)) as db:
            db.execute(update(ApiKey).where(ApiKey.id == key_id).values(**values))
    finally:
        engine.dispose()


# the API


def test_create_list_and_revoke_a_key(publisher: Publisher) -> None:
    with publisher.client() as client:
        made = make_key(client, name="ci", scope="publish", expires_in_days=30)
        assert set(made) == CREATED
        assert made["key"].startswith(f"dph_{made['prefix']}_")
        assert (made["name"], made["scope"], made["package"], made["publisher"]) == (
            "ci",
            "publish",
            None,
            None,
        )
        created = datetime.fromisoformat(made["created_at"])
        expires = datetime.fromisoformat(made["expires_at"])
        assert expires - created == timedelta(days=30)
        assert abs(created - datetime.now(UTC)) < timedelta(minutes=1)

        listed = client.get("/api/auth/keys")
        assert listed.status_code == 200
        assert listed.headers["cache-control"] == "no-store"
        mine = {k["id"]: k for k in listed.json()["keys"]}
        assert set(mine[made["id"]]) == LISTED
        assert mine[made["id"]]["revoked_at"] is None
        assert mine[made["id"]]["expired"] is False
        assert made["key"] not in listed.text
        assert hashlib.sha256(made["key"].encode()).hexdigest() not in listed.text
        # the key the operator made with the user has every scope
        assert [k["scope"] for k in mine.values() if k["id"] != made["id"]] == ["admin"]

        revoked = client.delete(f"/api/auth/keys/{made['id']}")
        assert revoked.status_code == 200, revoked.text
        assert revoked.json()["id"] == made["id"]
        assert revoked.json()["revoked_at"] is not None
        again = client.delete(f"/api/auth/keys/{made['id']}")
        assert again.json()["revoked_at"] == revoked.json()["revoked_at"]
        after = {k["id"]: k for k in client.get("/api/auth/keys").json()["keys"]}
        assert after[made["id"]]["revoked_at"] == revoked.json()["revoked_at"]


def test_keys_default_to_read_scope_and_no_expiry(publisher: Publisher) -> None:
    with publisher.client() as client:
        made = make_key(client)
    assert (made["name"], made["scope"], made["expires_at"]) == ("default", "read", None)


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"scope": "root"}, 400, "invalid-request"),
        ({"name": ""}, 400, "invalid-request"),
        ({"expires_in_days": 0}, 400, "invalid-request"),
        ({"expires_in_days": 3651}, 400, "invalid-request"),
        ({"package": "not-a-ref"}, 400, "invalid-request"),
        ({"package": "nobody-here/nothing"}, 404, "package-not-found"),
        ({"publisher": "nobody-here"}, 404, "publisher-not-found"),
        ({"scopes": ["read"]}, 400, "invalid-request"),
    ],
    ids=repr,
)
def test_bad_key_requests_are_refused(
    publisher: Publisher, body: dict[str, Any], status: int, code: str
) -> None:
    with publisher.client() as client:
        answer = client.post("/api/auth/keys", json=body)
        assert (answer.status_code, error_code(answer)) == (status, code), answer.text
        assert client.post("/api/auth/keys", content=b"[1").status_code == 400


def test_another_users_key_is_not_found(make_publisher: Callable[..., Publisher]) -> None:
    ann, bob = make_publisher("ann"), make_publisher("bob")
    with ann.client() as client:
        made = make_key(client, name="mine")
    with bob.client() as client:
        for key_id in (str(made["id"]), "999999999", "abc"):
            answer = client.delete(f"/api/auth/keys/{key_id}")
            assert (answer.status_code, error_code(answer)) == (404, "key-not-found")
        assert made["id"] not in {k["id"] for k in client.get("/api/auth/keys").json()["keys"]}
    # still live: bob's attempt changed nothing
    token_for(ann.hub, ann.username, made["key"])


def test_keys_need_a_login(hub: HubServer) -> None:
    for method in ("GET", "POST"):
        answer = httpx.request(method, f"{hub.url}/api/auth/keys", json={})
        assert (answer.status_code, error_code(answer)) == (401, "unauthenticated")
    answer = httpx.delete(f"{hub.url}/api/auth/keys/1")
    assert answer.status_code == 401


# what a key may do


def test_a_read_key_reads_private_packages_but_cannot_push(
    publisher: Publisher, tmp_path: Path
) -> None:
    hub = publisher.hub
    name = push(publisher, tmp_path, "--private")
    with publisher.client() as client:
        read_key = make_key(client, name="reader", scope="read")["key"]
    token = token_for(hub, publisher.username, read_key)
    claims = jwt.decode(token, options={"verify_signature": False})
    assert (claims["scope"], claims["via"]) == ("read", "api-key")
    for credential in (token, read_key):
        with hub.client(credential) as client:
            shown = client.get(f"/api/package/{publisher.username}/{name}")
            assert shown.status_code == 200, shown.text
            refused = authorize(client, publisher.username, name)
            assert (refused.status_code, error_code(refused)) == (403, "insufficient-scope")
            minted = client.post("/api/auth/keys", json={"scope": "read"})
            assert (minted.status_code, error_code(minted)) == (403, "insufficient-scope")
    with httpx.Client(base_url=hub.url) as anonymous:
        assert anonymous.get(f"/api/package/{publisher.username}/{name}").status_code == 404


def test_a_publish_key_pushes_but_cannot_make_keys(publisher: Publisher) -> None:
    hub = publisher.hub
    with publisher.client() as client:
        key = make_key(client, scope="publish")["key"]
    token = token_for(hub, publisher.username, key)
    with hub.client(token) as client:
        assert authorize(client, publisher.username, "fresh").status_code == 200
        for scope in ("admin", "read"):
            answer = client.post("/api/auth/keys", json={"scope": scope})
            assert (answer.status_code, error_code(answer)) == (403, "insufficient-scope")
        assert client.get("/api/auth/keys").status_code == 403


def test_a_package_limited_key_pushes_only_there(publisher: Publisher, tmp_path: Path) -> None:
    hub = publisher.hub
    name = push(publisher, tmp_path, "--private")
    other = push(publisher, tmp_path, "--private")
    with publisher.client() as client:
        made = make_key(client, scope="publish", package=f"{publisher.username}/{name}")
    assert made["package"] == f"{publisher.username}/{name}"
    token = token_for(hub, publisher.username, made["key"])
    claims = jwt.decode(token, options={"verify_signature": False})
    assert (claims["scope"], claims["package"]) == ("publish", f"{publisher.username}/{name}")
    with hub.client(token) as client:
        assert authorize(client, publisher.username, name).status_code == 200
        for elsewhere in (other, "brand-new"):
            refused = authorize(client, publisher.username, elsewhere)
            assert refused.status_code in (403, 404), refused.text
            assert error_code(refused) in ("forbidden", "package-not-found")
        assert client.get(f"/api/package/{publisher.username}/{other}").status_code == 404
        minted = client.post("/api/auth/keys", json={"scope": "read"})
        assert minted.status_code == 403


def test_a_key_cannot_be_limited_to_a_package_its_maker_cannot_read(
    make_publisher: Callable[..., Publisher], tmp_path: Path
) -> None:
    ann, bob = make_publisher("ann"), make_publisher("bob")
    ann.login()
    hidden = push(ann, tmp_path, "--private")
    with bob.client() as client:
        answer = client.post("/api/auth/keys", json={"package": f"{ann.username}/{hidden}"})
        assert (answer.status_code, error_code(answer)) == (404, "package-not-found")
        # a publisher limit names a publisher, not what it holds: any existing one will do
        made = make_key(client, publisher=ann.username)
        assert made["publisher"] == ann.username


def test_an_expired_key_is_refused(publisher: Publisher) -> None:
    hub = publisher.hub
    with publisher.client() as client:
        made = make_key(client, expires_in_days=1)
    token = token_for(hub, publisher.username, made["key"])
    set_key(hub, made["id"], expires_at=datetime.now(UTC) - timedelta(seconds=1))
    for credential in (token, made["key"]):
        with hub.client(credential) as client:
            answer = client.get("/api/auth/keys")
            assert answer.status_code == 401
            assert error_code(answer) == "invalid-token"
    answer = httpx.post(
        f"{hub.url}/api/auth/token", json={"username": publisher.username, "secret": made["key"]}
    )
    assert (answer.status_code, error_code(answer)) == (401, "invalid-credentials")
    with publisher.client() as client:
        listed = {k["id"]: k for k in client.get("/api/auth/keys").json()["keys"]}
    assert listed[made["id"]]["expired"] is True


def test_revoking_a_key_ends_it_and_every_token_made_with_it(publisher: Publisher) -> None:
    hub = publisher.hub
    with publisher.client() as client:
        made = make_key(client, scope="publish")
    tokens = [token_for(hub, publisher.username, made["key"]) for _ in range(2)]
    for credential in (*tokens, made["key"]):
        with hub.client(credential) as client:
            assert authorize(client, publisher.username, "soon-gone").status_code == 200
    with publisher.client() as client:
        assert client.delete(f"/api/auth/keys/{made['id']}").status_code == 200
    for credential in (*tokens, made["key"]):
        with hub.client(credential) as client:
            answer = authorize(client, publisher.username, "soon-gone")
            assert (answer.status_code, error_code(answer)) == (401, "invalid-token")
            check = client.get("/api/auth/check").json()
            assert check["authenticated"] is False
    answer = httpx.post(
        f"{hub.url}/api/auth/token", json={"username": publisher.username, "secret": made["key"]}
    )
    assert (answer.status_code, error_code(answer)) == (401, "invalid-credentials")


def test_last_use_is_recorded(publisher: Publisher) -> None:
    hub = publisher.hub
    with publisher.client() as client:
        made = make_key(client)
        token_for(hub, publisher.username, made["key"])
        listed = {k["id"]: k for k in client.get("/api/auth/keys").json()["keys"]}
    used = listed[made["id"]]["last_used_at"]
    assert used is not None
    assert abs(datetime.fromisoformat(used) - datetime.now(UTC)) < timedelta(minutes=1)


# the CLI


def test_token_commands_create_list_and_revoke(publisher: Publisher, tmp_path: Path) -> None:
    hub = publisher.hub
    name = push(publisher, tmp_path, "--private")
    made = cli(
        "token", "create", "--name", "from-cli", "--scope", "publish",
        "--package", f"{publisher.username}/{name}", "--expires", "7",
        env=publisher.env,
    )  # fmt: skip
    lines = made.stdout.rstrip("\n").splitlines()
    key = lines[-1]
    assert re.fullmatch(r"dph_[0-9a-f]{8}_\S+", key), made.stdout
    description = "\n".join(lines[:-1])
    assert "from-cli" in description
    assert "publish" in description
    assert f"{publisher.username}/{name}" in description
    token = token_for(hub, publisher.username, key)
    with hub.client(token) as client:
        assert authorize(client, publisher.username, name).status_code == 200

    listed = cli("token", "list", env=publisher.env).stdout
    row = next(line for line in listed.splitlines() if "from-cli" in line)
    key_id = re.search(r"(\d+)", row)
    assert key_id is not None
    for cell in ("publish", f"package {publisher.username}/{name}", "active", key[:12]):
        assert cell in row, listed
    assert key not in listed

    revoked = cli("token", "revoke", key_id.group(1), env=publisher.env)
    assert "Revoked" in revoked.stdout
    listed = cli("token", "list", env=publisher.env).stdout
    assert "revoked" in next(line for line in listed.splitlines() if "from-cli" in line)
    with hub.client(token) as client:
        assert client.get("/api/auth/check").json()["authenticated"] is False

    missing = cli("token", "revoke", "999999999", env=publisher.env, check=False)
    assert missing.returncode == 1
    assert "Traceback" not in missing.stderr
    assert "999999999" in missing.stderr


def test_token_create_with_a_read_login_says_why_it_cannot(publisher: Publisher) -> None:
    with publisher.client() as client:
        reader = make_key(client, scope="read")["key"]
    cli(
        "login", "--server", publisher.hub.url, "--username", publisher.username,
        "--secret", reader, env=publisher.env,
    )  # fmt: skip
    refused = cli("token", "create", "--scope", "read", env=publisher.env, check=False)
    assert refused.returncode == 1
    assert "scope" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_token_commands_need_a_login(hub: HubServer, tmp_path: Path) -> None:
    env = {**base_env(tmp_path), "DPHUB_SERVER": hub.url}
    refused = cli("token", "list", env=env, check=False)
    assert refused.returncode == 1
    assert "dphub login" in refused.stderr
