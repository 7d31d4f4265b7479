"""Webhooks end to end, on both hubs: registered with the CLI, each event POSTed to a real HTTP
receiver on loopback with an HMAC-SHA256 signature over the raw body, retried with growing waits,
given up after the last attempt, and managed by the publisher's owners only. A hub that does not
allow private addresses refuses webhook URLs that point at them.

The shared hubs allow http and private addresses, retry after 0.25 s (then 1 s, 4 s) and try each
delivery 4 times (tests/conftest.py), so the receivers here can run on 127.0.0.1.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import (
    HubServer,
    Publisher,
    cli,
    new_publisher,
    start_hub,
    stop_hub,
    write_package,
)

CSV = b"year,value\n2020,1\n2021,2\n"
ATTEMPTS = 4
"""DPHUB_WEBHOOK_ATTEMPTS of the shared hubs."""


class Receiver(ThreadingHTTPServer):
    """A webhook receiver: records each request with its raw body and arrival time, and answers
    the next status of ``statuses`` (the last one repeats)."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = list(statuses)
        self.received: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hook"

    def wait_for(self, count: int, timeout: float = 60) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.received) >= count:
                    return list(self.received)
            time.sleep(0.05)
        raise AssertionError(f"{len(self.received)} of {count} deliveries arrived in {timeout} s")


class _Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        with self.server.lock:
            self.server.received.append(
                {"headers": dict(self.headers.items()), "body": body, "at": time.monotonic()}
            )
            statuses = self.server.statuses
            status = statuses.pop(0) if len(statuses) > 1 else statuses[0]
        answer = b"thanks" if status < 300 else b"not now " * 200
        self.send_response(status)
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def receiver_factory() -> Iterator[Callable[[list[int]], Receiver]]:
    started: list[Receiver] = []

    def start(statuses: list[int]) -> Receiver:
        server = Receiver(statuses)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.shutdown()
        server.server_close()


def push(publisher: Publisher, root: Path, name: str, *extra: str) -> None:
    folder = write_package(root / name, name, files={"values.csv": CSV})
    cli("push", str(folder), *extra, env=publisher.env)


def add_webhook(publisher: Publisher, owner: str, url: str, *kinds: str) -> tuple[int, str]:
    """Register with the CLI; the webhook's id and secret (the last line of the output)."""
    options = [arg for kind in kinds for arg in ("--kind", kind)]
    out = cli("webhook", "add", owner, url, *options, env=publisher.env).stdout
    match = re.search(r"Webhook (\d+) of", out)
    assert match is not None, out
    return int(match.group(1)), out.strip().splitlines()[-1]


def deliveries(publisher: Publisher, owner: str, hook: int, **params: Any) -> list[dict[str, Any]]:
    with publisher.client() as client:
        answer = client.get(f"/api/publisher/{owner}/webhooks/{hook}/deliveries", params=params)
    assert answer.status_code == 200, answer.text
    found: list[dict[str, Any]] = answer.json()["deliveries"]
    return found


def wait_settled(
    publisher: Publisher, owner: str, hook: int, count: int, timeout: float = 60
) -> list[dict[str, Any]]:
    """The delivery log once ``count`` deliveries have left the pending state."""
    deadline = time.monotonic() + timeout
    while True:
        found = deliveries(publisher, owner, hook)
        if len(found) >= count and all(d["state"] != "pending" for d in found):
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"deliveries still pending after {timeout} s: {found}")
        time.sleep(0.2)


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def test_each_event_is_delivered_signed_over_the_raw_body(
    publisher: Publisher,
    receiver_factory: Callable[[list[int]], Receiver],
    tmp_path: Path,
) -> None:
    hub, owner = publisher.hub, publisher.username
    receiver = receiver_factory([200])
    hook, secret = add_webhook(publisher, owner, receiver.url)
    assert len(bytes.fromhex(secret)) == 32
    push(publisher, tmp_path, "rain")

    arrived = receiver.wait_for(2)
    by_kind = {json.loads(r["body"])["kind"]: r for r in arrived}
    assert set(by_kind) == {"pushed", "processed"}
    for kind, request in by_kind.items():
        headers, body = request["headers"], request["body"]
        assert headers["X-Dphub-Signature"] == signature(secret, body)
        assert headers["X-Dphub-Signature"] != signature(secret + "x", body)
        assert headers["X-Dphub-Event"] == kind
        assert headers["Content-Type"] == "application/json"
        sent = json.loads(body)
        assert set(sent) == {
            "id",
            "kind",
            "created_at",
            "owner",
            "name",
            "revision",
            "actor",
            "detail",
            "url",
        }
        assert (sent["owner"], sent["name"], sent["revision"]) == (owner, "rain", 1)
        assert sent["url"] == f"{hub.url}/{owner}/rain"

    log = wait_settled(publisher, owner, hook, 2)
    assert [d["event"]["kind"] for d in log] == ["processed", "pushed"]
    for entry in log:
        assert (entry["state"], entry["attempts"], entry["last_status"]) == ("delivered", 1, 200)
        assert entry["last_error"] is None
        assert entry["delivered_at"] is not None
        assert entry["next_attempt_at"] is None
        request = by_kind[entry["event"]["kind"]]
        assert request["headers"]["X-Dphub-Delivery"] == str(entry["id"])
        assert json.loads(request["body"])["id"] == entry["event"]["id"]
    assert len(receiver.received) == 2, "each event is delivered once"


def test_a_failing_receiver_is_retried_with_growing_waits(
    publisher: Publisher,
    receiver_factory: Callable[[list[int]], Receiver],
    tmp_path: Path,
) -> None:
    owner = publisher.username
    receiver = receiver_factory([500, 500, 200])
    hook, secret = add_webhook(publisher, owner, receiver.url, "pushed")
    push(publisher, tmp_path, "flaky")

    (entry,) = wait_settled(publisher, owner, hook, 1)
    assert (entry["state"], entry["attempts"], entry["last_status"]) == ("delivered", 3, 200)
    assert entry["event"]["kind"] == "pushed"
    arrived = receiver.wait_for(3)
    assert len(arrived) == 3
    assert len({r["body"] for r in arrived}) == 1, "every retry sends the same body"
    assert {r["headers"]["X-Dphub-Delivery"] for r in arrived} == {str(entry["id"])}
    assert all(r["headers"]["X-Dphub-Signature"] == signature(secret, r["body"]) for r in arrived)
    first_wait = arrived[1]["at"] - arrived[0]["at"]
    second_wait = arrived[2]["at"] - arrived[1]["at"]
    assert first_wait >= 0.25
    assert second_wait >= 1.0


def test_a_receiver_that_never_accepts_ends_failed_after_the_last_attempt(
    publisher: Publisher,
    receiver_factory: Callable[[list[int]], Receiver],
    tmp_path: Path,
) -> None:
    owner = publisher.username
    receiver = receiver_factory([503])
    hook, _ = add_webhook(publisher, owner, receiver.url, "pushed")
    push(publisher, tmp_path, "doomed")

    (entry,) = wait_settled(publisher, owner, hook, 1)
    assert (entry["state"], entry["attempts"], entry["last_status"]) == ("failed", ATTEMPTS, 503)
    assert entry["last_error"].startswith("HTTP 503: not now not now")
    assert len(entry["last_error"]) <= 220, "only an excerpt of the answer is kept"
    assert entry["delivered_at"] is None
    assert len(receiver.received) == ATTEMPTS
    assert deliveries(publisher, owner, hook, state="failed") == [entry]
    assert deliveries(publisher, owner, hook, state="delivered") == []
    shown = cli("webhook", "deliveries", owner, str(hook), env=publisher.env).stdout
    assert "failed" in shown
    assert "503" in shown


def test_an_unreachable_receiver_is_a_failed_attempt_with_the_reason(
    publisher: Publisher,
    receiver_factory: Callable[[list[int]], Receiver],
    tmp_path: Path,
) -> None:
    owner = publisher.username
    gone = receiver_factory([200])
    url = gone.url
    gone.shutdown()
    gone.server_close()
    hook, _ = add_webhook(publisher, owner, url, "pushed")
    push(publisher, tmp_path, "nobody-home")
    (entry,) = wait_settled(publisher, owner, hook, 1)
    assert (entry["state"], entry["attempts"], entry["last_status"]) == ("failed", ATTEMPTS, None)
    assert entry["last_error"].startswith("Could not deliver")


def test_webhooks_are_listed_without_secrets_and_removed_with_their_log(
    publisher: Publisher,
    receiver_factory: Callable[[list[int]], Receiver],
    tmp_path: Path,
) -> None:
    owner = publisher.username
    receiver = receiver_factory([200])
    hook, secret = add_webhook(publisher, owner, receiver.url, "pushed", "failed")
    with publisher.client() as client:
        listed = client.get(f"/api/publisher/{owner}/webhooks")
        assert listed.status_code == 200
        (shown,) = listed.json()["webhooks"]
        assert shown["id"] == hook
        assert shown["url"] == receiver.url
        assert shown["kinds"] == ["pushed", "failed"]
        assert shown["created_by"] == owner
        assert secret not in listed.text
        again = client.post(f"/api/publisher/{owner}/webhooks", json={"url": receiver.url})
        assert again.status_code == 409
        assert again.json()["error"]["code"] == "already-exists"
        for body in (
            {"url": receiver.url + "2", "kinds": ["exploded"]},
            {"url": receiver.url + "2", "kinds": "pushed"},
            {"url": receiver.url + "2", "extra": 1},
            {"kinds": ["pushed"]},
            ["not", "an", "object"],
        ):
            refused = client.post(f"/api/publisher/{owner}/webhooks", json=body)
            assert refused.status_code == 400, (body, refused.text)
            assert refused.json()["error"]["code"] == "invalid-request"
    table = cli("webhook", "list", owner, env=publisher.env).stdout
    assert receiver.url in table
    assert "pushed, failed" in table

    push(publisher, tmp_path, "logged")
    assert len(wait_settled(publisher, owner, hook, 1)) == 1
    cli("webhook", "remove", owner, str(hook), env=publisher.env)
    with publisher.client() as client:
        assert client.get(f"/api/publisher/{owner}/webhooks").json() == {"webhooks": []}
        log = client.get(f"/api/publisher/{owner}/webhooks/{hook}/deliveries")
        assert log.status_code == 404
        assert client.delete(f"/api/publisher/{owner}/webhooks/{hook}").status_code == 404
    assert "has no webhooks" in cli("webhook", "list", owner, env=publisher.env).stdout


def test_only_the_publishers_owners_manage_its_webhooks(
    publisher: Publisher, make_publisher: Callable[..., Publisher]
) -> None:
    hub, owner = publisher.hub, publisher.username
    org = f"hooks-org-{owner}"
    viewer = make_publisher()
    stranger = make_publisher()
    with publisher.client() as client:
        assert client.post("/api/org", json={"name": org}).status_code == 201
        member = f"/api/org/{org}/members/{viewer.username}"
        assert client.put(member, json={"role": "viewer"}).status_code == 200
        made = client.post(f"/api/publisher/{org}/webhooks", json={"url": "http://127.0.0.1:9/a"})
        assert made.status_code == 201, made.text
        hook = made.json()["id"]
    body = {"url": "http://127.0.0.1:9/b"}
    paths = [
        ("GET", f"/api/publisher/{org}/webhooks", None),
        ("POST", f"/api/publisher/{org}/webhooks", body),
        ("DELETE", f"/api/publisher/{org}/webhooks/{hook}", None),
        ("GET", f"/api/publisher/{org}/webhooks/{hook}/deliveries", None),
        ("GET", f"/api/publisher/{owner}/webhooks", None),
        ("POST", f"/api/publisher/{owner}/webhooks", body),
    ]
    for caller in (viewer, stranger):
        with caller.client() as client:
            for method, path, json_body in paths:
                answer = client.request(method, path, json=json_body)
                assert answer.status_code == 403, (method, path, answer.text)
                assert answer.json()["error"]["code"] == "forbidden"
    with httpx.Client(base_url=hub.url, timeout=30) as anonymous:
        for method, path, json_body in paths:
            assert anonymous.request(method, path, json=json_body).status_code == 401
    with stranger.client() as client:
        missing = client.get("/api/publisher/no-such-publisher-here/webhooks")
        assert missing.status_code == 404
        assert missing.json()["error"]["code"] == "publisher-not-found"
    # The hook id of one publisher is not found under another, even by an owner of both.
    with publisher.client() as client:
        assert client.get(f"/api/publisher/{owner}/webhooks/{hook}/deliveries").status_code == 404
        assert client.get(f"/api/publisher/{org}/webhooks/{hook}/deliveries").status_code == 200
    stranger.login()
    for args in (("list", org), ("add", org, "http://127.0.0.1:9/c")):
        refused = cli("webhook", *args, env=stranger.env, check=False)
        assert refused.returncode == 1
        assert "needs the owner role" in refused.stderr


@pytest.fixture(scope="module")
def strict_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubServer]:
    """A hub with the production defaults: https only, public addresses only."""
    server = start_hub(
        tmp_path_factory.mktemp("strict-hub"),
        {"DPHUB_WEBHOOK_ALLOW_HTTP": "0", "DPHUB_WEBHOOK_ALLOW_PRIVATE": "0"},
    )
    yield server
    stop_hub(server)


@pytest.fixture(scope="module")
def strict_user(strict_hub: HubServer, tmp_path_factory: pytest.TempPathFactory) -> Publisher:
    return new_publisher(strict_hub, tmp_path_factory.mktemp("strict-user"))


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("https://127.0.0.1/hook", "a loopback address"),
        ("https://localhost:8443/hook", "a loopback address"),
        ("https://10.20.30.40/hook", "a private address"),
        ("https://192.168.1.1/hook", "a private address"),
        ("https://169.254.169.254/latest", "the cloud metadata address"),
        ("https://[::1]/hook", "a loopback address"),
        ("https://[fd00::1]/hook", "a private address"),
        ("https://2130706433/hook", "four decimal numbers"),
        ("http://93.184.216.34/hook", "https:// URLs only"),
        ("https://admin:pw@93.184.216.34/hook", "user name or password"),
    ],
)
def test_urls_pointing_at_private_addresses_are_refused(
    strict_user: Publisher, url: str, says: str
) -> None:
    user = strict_user
    with user.client() as client:
        answer = client.post(f"/api/publisher/{user.username}/webhooks", json={"url": url})
        assert answer.status_code == 400, answer.text
        error = answer.json()["error"]
        assert error["code"] == "invalid-request"
        assert error["field"] == "url"
        assert says in error["message"]
        listed = client.get(f"/api/publisher/{user.username}/webhooks").json()["webhooks"]
        assert url not in {h["url"] for h in listed}


def test_a_public_https_url_is_accepted_on_the_strict_hub(strict_user: Publisher) -> None:
    user = strict_user
    with user.client() as client:
        made = client.post(
            f"/api/publisher/{user.username}/webhooks",
            json={"url": "https://93.184.216.34/hook", "kinds": ["purged"]},
        )
    assert made.status_code == 201, made.text
    assert made.json()["url"] == "https://93.184.216.34/hook"
    assert made.headers["cache-control"] == "no-store"
