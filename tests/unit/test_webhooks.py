"""Events and webhooks below the API: who sees which events, webhook URL vetting, signatures,
retry delays, and claiming deliveries on SQLite and PostgreSQL (one worker per delivery, even under
concurrent claimers); one delivery attempt against a real HTTP server on loopback."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session, sessionmaker

from dphub.auth.principal import Principal
from dphub.errors import InvalidQuery, InvalidRequest, PackageNotFound
from dphub.events import delivery, stream, webhooks
from dphub.events.delivery import Claim, Outcome
from dphub.metastore.db import transaction
from dphub.metastore.models import (
    Collaborator,
    Event,
    Membership,
    Package,
    Publisher,
    User,
    Webhook,
    WebhookDelivery,
)

PUBLIC = "93.184.216.34"
ORG = "acme"
PACKAGES = {"open": "published", "by-link": "unlisted", "secret": "private"}


def public_dns(host: str, port: int) -> list[str]:
    return [PUBLIC]


def loopback_dns(host: str, port: int) -> list[str]:
    return ["127.0.0.1"]


def check(url: object, **kwargs: Any) -> webhooks.Destination:
    options = {"allow_http": False, "allow_private": False, "resolve": public_dns, **kwargs}
    return webhooks.check_url(url, **options)


# Webhook URLs


def test_a_public_https_url_passes_and_is_pinned_to_its_addresses() -> None:
    found = check("https://Hooks.Example.org/dphub?x=1")
    assert found.url == "https://hooks.example.org/dphub?x=1"
    assert (found.scheme, found.host, found.port, found.addresses) == (
        "https",
        "hooks.example.org",
        443,
        (PUBLIC,),
    )


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("https://127.0.0.1/hook", "loopback"),
        ("https://10.1.2.3/hook", "private"),
        ("https://192.168.0.9:8443/hook", "private"),
        ("https://169.254.169.254/latest/meta-data", "metadata"),
        ("https://100.64.0.1/", "carrier-grade NAT"),
        ("https://[::1]/hook", "loopback"),
        ("https://[::ffff:127.0.0.1]/hook", "IPv4-mapped"),
        ("https://[fe80::1]/hook", "link-local"),
        ("https://0.0.0.0/hook", "unspecified"),
        ("https://240.0.0.1/hook", "240.0.0.1 is a private address"),
        ("https://2130706433/hook", "four decimal numbers"),
        ("https://0x7f.1/hook", "four decimal numbers"),
        ("https://127.1/hook", "four decimal numbers"),
    ],
)
def test_addresses_that_are_not_public_are_refused(url: str, says: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        check(url)
    assert says in refused.value.message
    assert refused.value.details == {"field": "url"}


def test_a_name_that_resolves_to_a_private_address_is_refused() -> None:
    with pytest.raises(InvalidRequest, match=r"resolves to 127\.0\.0\.1, a loopback address"):
        check("https://hooks.example.org/", resolve=loopback_dns)
    with pytest.raises(InvalidRequest, match=r"10\.0\.0\.7, a private address"):
        check("https://hooks.example.org/", resolve=lambda h, p: [PUBLIC, "10.0.0.7"])


def test_private_addresses_pass_only_when_the_setting_allows_them() -> None:
    found = check("http://127.0.0.1:8123/hook", allow_http=True, allow_private=True)
    assert found.addresses == ("127.0.0.1",)
    named = check("https://receiver.test/", allow_private=True, resolve=loopback_dns)
    assert named.addresses == ("127.0.0.1",)


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("http://hooks.example.org/", "https:// URLs only"),
        ("ftp://hooks.example.org/", "https:// URLs only"),
        ("/relative/hook", "https:// URLs only"),
        ("https://user:pw@hooks.example.org/", "user name or password"),
        ("https://hooks.example.org/#part", "#fragment"),
        ("https://hooks.example.org/a b", "spaces or control characters"),
        ("https://hooks.example.org/\x00", "spaces or control characters"),
        ("https://" + "a" * 2000 + ".org/", "longer than 2000"),
        ("https://exa$mple.org/", "not a valid host name"),
        ("https:///nohost", "no host"),
        ("https://hooks.example.org:99999/", "valid"),
    ],
)
def test_urls_that_are_not_acceptable_are_refused(url: str, says: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        check(url)
    assert says in refused.value.message


@pytest.mark.parametrize("value", [None, "", "   ", 42, ["https://x.org"]])
def test_a_missing_url_is_asked_for(value: object) -> None:
    with pytest.raises(InvalidRequest, match="the URL to deliver events to"):
        check(value)


def test_a_name_that_cannot_be_resolved_is_refused() -> None:
    def nowhere(host: str, port: int) -> list[str]:
        raise OSError("no such host")

    with pytest.raises(InvalidRequest, match="could not be resolved"):
        check("https://nowhere.invalid/", resolve=nowhere)
    with pytest.raises(InvalidRequest, match="resolves to no address"):
        check("https://nowhere.invalid/", resolve=lambda h, p: [])


@pytest.mark.parametrize("kinds", [[], "pushed", [1], ["pushed", "exploded"], {"a": 1}])
def test_kinds_must_be_a_list_of_known_kinds(kinds: object) -> None:
    with pytest.raises(InvalidRequest):
        webhooks.parse_kinds(kinds)


def test_kinds_are_kept_once_each_in_order() -> None:
    assert webhooks.parse_kinds(None) is None
    assert webhooks.parse_kinds(["failed", "pushed", "failed"]) == ["failed", "pushed"]


# Signatures, bodies and retry delays


def test_the_signature_is_hmac_sha256_of_the_exact_body() -> None:
    # RFC 4231-style known answer for key "key" over the classic pangram.
    body = b"The quick brown fox jumps over the lazy dog"
    expected = "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
    assert webhooks.sign("key", body) == f"sha256={expected}"


def test_secrets_are_32_random_bytes() -> None:
    made = {webhooks.new_secret() for _ in range(50)}
    assert len(made) == 50
    assert all(len(bytes.fromhex(secret)) == 32 for secret in made)


def test_the_body_names_the_event_and_links_the_package() -> None:
    at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    event = Event(
        id=7,
        created_at=at,
        kind="processed",
        owner="acme",
        name="rain",
        revision=3,
        actor=None,
        detail={"rows": 10},
    )
    body = webhooks.payload(event, base_url="https://hub.example.org/")
    assert json.loads(body) == {
        "id": 7,
        "kind": "processed",
        "created_at": "2026-01-02T03:04:05+00:00",
        "owner": "acme",
        "name": "rain",
        "revision": 3,
        "actor": None,
        "detail": {"rows": 10},
        "url": "https://hub.example.org/acme/rain",
    }


def test_retries_wait_four_times_longer_each_time_up_to_six_hours() -> None:
    waits = [delivery.retry_delay(attempt, 30) for attempt in range(1, 10)]
    assert waits[:5] == [30, 120, 480, 1920, 7680]
    assert waits[5:] == [21600] * 4
    assert delivery.retry_delay(3, 0) == 0


# The stream: who sees which events


@pytest.fixture
def hub_rows(db: sessionmaker[Session]) -> dict[str, Principal]:
    """An org with a package of each findability; its member, a collaborator on the private
    package, an unrelated user and a site admin; one pushed event per package."""
    with transaction(db) as s:
        users = {}
        for name in ("member", "collab", "stranger", "admin"):
            user = User(username=name, email=f"{name}@example.org", is_admin=name == "admin")
            s.add(user)
            s.add(Publisher(name=name, kind="user"))
            s.flush()
            users[name] = user
        org = Publisher(name=ORG, kind="organization")
        s.add(org)
        s.flush()
        s.add(Membership(publisher_id=org.id, user_id=users["member"].id, role="viewer"))
        for name, findability in PACKAGES.items():
            package = Package(owner=ORG, name=name, findability=findability, latest_revision=1)
            s.add(package)
            s.flush()
            if name == "secret":
                s.add(
                    Collaborator(package_id=package.id, user_id=users["collab"].id, role="viewer")
                )
            stream.record(s, "pushed", owner=ORG, name=name, revision=1)
        return {
            name: Principal(u.id, u.username, u.email, is_admin=u.is_admin)
            for name, u in users.items()
        }


def _names(page: stream.Page) -> list[str]:
    return [f"{e['kind']}:{e['name']}" for e in page.events]


def owner_stream(db: sessionmaker[Session], principal: Principal | None) -> list[str]:
    with db() as s:
        return _names(stream.owner_events(s, principal, ORG))


def test_the_owner_stream_shows_only_packages_the_caller_sees_listed(
    db: sessionmaker[Session], hub_rows: dict[str, Principal]
) -> None:
    assert owner_stream(db, None) == ["pushed:open"]
    assert owner_stream(db, hub_rows["stranger"]) == ["pushed:open"]
    assert owner_stream(db, hub_rows["collab"]) == ["pushed:secret", "pushed:open"]
    everything = ["pushed:secret", "pushed:by-link", "pushed:open"]
    assert owner_stream(db, hub_rows["member"]) == everything
    assert owner_stream(db, hub_rows["admin"]) == everything
    with db() as s:
        assert _names(stream.hub_events(s, None)) == ["pushed:open"]
        assert _names(stream.hub_events(s, hub_rows["collab"])) == ["pushed:secret", "pushed:open"]


def test_a_package_stream_follows_who_may_read_the_package(
    db: sessionmaker[Session], hub_rows: dict[str, Principal]
) -> None:
    with db() as s:
        for caller in (None, hub_rows["stranger"]):
            assert _names(stream.package_events(s, caller, ORG, "by-link")) == ["pushed:by-link"]
            with pytest.raises(PackageNotFound):
                stream.package_events(s, caller, ORG, "secret")
        for caller in ("collab", "member", "admin"):
            found = stream.package_events(s, hub_rows[caller], ORG, "secret")
            assert _names(found) == ["pushed:secret"]
        with pytest.raises(PackageNotFound):
            stream.package_events(s, None, ORG, "never-was")
        with pytest.raises(PackageNotFound):
            stream.package_events(s, None, ORG, "../x")


def test_a_credential_limited_to_another_package_sees_only_what_anyone_sees(
    db: sessionmaker[Session], hub_rows: dict[str, Principal]
) -> None:
    member = hub_rows["member"]
    limited = Principal(member.user_id, member.username, member.email, package=(ORG, "open"))
    assert owner_stream(db, limited) == ["pushed:open"]
    with db() as s, pytest.raises(PackageNotFound):
        stream.package_events(s, limited, ORG, "secret")


def _purge(db: sessionmaker[Session], name: str) -> None:
    with transaction(db) as s:
        s.execute(delete(Package).where(Package.owner == ORG, Package.name == name))


def test_events_of_a_purged_package_stay_visible_to_the_publishers_members_only(
    db: sessionmaker[Session], hub_rows: dict[str, Principal]
) -> None:
    _purge(db, "open")
    assert owner_stream(db, None) == []
    assert owner_stream(db, hub_rows["stranger"]) == []
    assert owner_stream(db, hub_rows["member"]) == [
        "pushed:secret",
        "pushed:by-link",
        "pushed:open",
    ]
    with db() as s:
        assert _names(stream.hub_events(s, hub_rows["member"])) == [
            "pushed:secret",
            "pushed:by-link",
        ]
        with pytest.raises(PackageNotFound):
            stream.package_events(s, hub_rows["stranger"], ORG, "open")
        assert _names(stream.package_events(s, hub_rows["member"], ORG, "open")) == ["pushed:open"]


def test_a_deleted_package_hides_its_events_from_all_but_the_publishers_members(
    db: sessionmaker[Session], hub_rows: dict[str, Principal]
) -> None:
    with transaction(db) as s:
        s.execute(
            update(Package)
            .where(Package.owner == ORG, Package.name == "secret")
            .values(deleted_at=datetime.now(UTC))
        )
    assert owner_stream(db, hub_rows["collab"]) == ["pushed:open"]
    assert "pushed:secret" in owner_stream(db, hub_rows["member"])
    with db() as s, pytest.raises(PackageNotFound):
        stream.package_events(s, hub_rows["collab"], ORG, "secret")


def test_a_new_package_under_a_purged_name_does_not_reveal_the_old_ones_events(
    db: sessionmaker[Session], hub_rows: dict[str, Principal]
) -> None:
    _purge(db, "secret")
    with transaction(db) as s:
        later = datetime.now(UTC) + timedelta(seconds=1)
        s.add(Package(owner=ORG, name="secret", findability="published", created_at=later))
        s.flush()
        fresh = stream.record(s, "pushed", owner=ORG, name="secret", revision=1, fresh=True)
        fresh.created_at = later
    assert owner_stream(db, None) == ["pushed:secret", "pushed:open"]
    with db() as s:
        seen = stream.package_events(s, hub_rows["stranger"], ORG, "secret").events
        assert [e["detail"] for e in seen] == [{"fresh": True}]
        both = stream.package_events(s, hub_rows["member"], ORG, "secret").events
        assert [e["detail"] for e in both] == [{"fresh": True}, {}]


def test_pages_run_newest_first_without_gaps_or_repeats(
    db: sessionmaker[Session], hub_rows: dict[str, Principal]
) -> None:
    with transaction(db) as s:
        for number in range(2, 9):
            stream.record(s, "processed", owner=ORG, name="open", revision=number)
    seen: list[int] = []
    before = None
    with db() as s:
        while True:
            page = stream.package_events(s, None, ORG, "open", limit=3, before=before)
            seen.extend(e["revision"] for e in page.events)
            if page.next is None:
                break
            before = page.next
        assert seen == [8, 7, 6, 5, 4, 3, 2, 1]
        only = stream.package_events(s, None, ORG, "open", kinds=("pushed",))
        assert [e["revision"] for e in only.events] == [1]
        past_the_end = stream.package_events(s, None, ORG, "open", before=1)
        assert past_the_end.to_json() == {"events": [], "next": None}
        with pytest.raises(InvalidQuery):
            stream.package_events(s, None, ORG, "open", limit=0)
    with pytest.raises(InvalidQuery, match="Unknown event kind"):
        stream.parse_kinds("pushed,exploded")
    assert stream.parse_kinds(" pushed, failed ,pushed") == ("pushed", "failed")


# Deliveries: owed, claimed, retried


def _hook(db: sessionmaker[Session], kinds: list[str] | None = None, *, active: bool = True) -> int:
    with transaction(db) as s:
        org = s.scalar(select(Publisher).where(Publisher.name == ORG))
        assert org is not None
        hook = Webhook(
            publisher_id=org.id,
            url="https://hooks.example.org/",
            secret="s3cret",
            kinds=kinds,
            active=active,
        )
        s.add(hook)
        s.flush()
        return hook.id


def _owed(db: sessionmaker[Session], hook_id: int) -> list[str]:
    with db() as s:
        rows = s.execute(
            select(Event.kind)
            .join(WebhookDelivery, WebhookDelivery.event_id == Event.id)
            .where(WebhookDelivery.webhook_id == hook_id)
            .order_by(Event.id)
        )
        return [kind for (kind,) in rows]


def test_each_event_is_owed_to_the_active_webhooks_that_want_its_kind(
    db: sessionmaker[Session], hub_rows: dict[str, Principal]
) -> None:
    every = _hook(db)
    failures = _hook(db, ["failed"])
    off = _hook(db, active=False)
    with transaction(db) as s:
        stream.record(s, "processed", owner=ORG, name="open", revision=1)
        stream.record(s, "failed", owner=ORG, name="secret", revision=1)
        stream.record(s, "pushed", owner="member", name="own", revision=1)
    assert _owed(db, every) == ["processed", "failed"]
    assert _owed(db, failures) == ["failed"]
    assert _owed(db, off) == []


def _deliveries(db: sessionmaker[Session], count: int) -> list[int]:
    hook = _hook(db)
    with transaction(db) as s:
        for number in range(count):
            stream.record(s, "processed", owner=ORG, name="open", revision=number + 1)
    with db() as s:
        ids = s.scalars(select(WebhookDelivery.id).where(WebhookDelivery.webhook_id == hook))
        return sorted(ids)


def _row(db: sessionmaker[Session], delivery_id: int) -> WebhookDelivery:
    with db() as s:
        row = s.get(WebhookDelivery, delivery_id)
        assert row is not None
        return row


def test_a_claimed_delivery_is_nobody_elses_until_its_lease_ends(
    db: sessionmaker[Session], hub_rows: dict[str, Principal]
) -> None:
    (only,) = _deliveries(db, 1)
    now = datetime.now(UTC)
    first = delivery.claim(db, base_url="https://hub.example.org", lease=60, now=now)
    assert first is not None
    assert (first.delivery_id, first.attempt, first.kind) == (only, 1, "processed")
    assert json.loads(first.body)["url"] == "https://hub.example.org/acme/open"
    assert delivery.claim(db, base_url="", lease=60, now=now) is None
    later = now + timedelta(seconds=61)
    again = delivery.claim(db, base_url="", lease=60, now=later)
    assert again is not None
    assert (again.delivery_id, again.attempt) == (only, 2)
    # The first worker's outcome comes too late: the delivery is the second one's now.
    assert delivery.finish(db, first, Outcome(200, None), attempts=3, base_delay=1) is None
    assert _row(db, only).state == "pending"


def test_outcomes_move_a_delivery_on(
    db: sessionmaker[Session], hub_rows: dict[str, Principal]
) -> None:
    ok, retried, spent = _deliveries(db, 3)
    now = datetime.now(UTC)
    claims: dict[int, Claim] = {}
    for _ in range(3):
        claimed = delivery.claim(db, base_url="", lease=60, now=now)
        assert claimed is not None
        claims[claimed.delivery_id] = claimed

    state = delivery.finish(db, claims[ok], Outcome(204, None), attempts=3, base_delay=30, now=now)
    assert state == "delivered"
    row = _row(db, ok)
    assert (row.state, row.attempts, row.last_status, row.delivered_at) == (
        "delivered",
        1,
        204,
        now,
    )

    failed = Outcome(500, "HTTP 500: oops")
    state = delivery.finish(db, claims[retried], failed, attempts=3, base_delay=30, now=now)
    assert state == "pending"
    row = _row(db, retried)
    assert (row.last_status, row.last_error) == (500, "HTTP 500: oops")
    assert row.next_attempt_at == now + timedelta(seconds=30)

    state = delivery.finish(db, claims[spent], failed, attempts=1, base_delay=30, now=now)
    assert state == "failed"
    row = _row(db, spent)
    assert (row.state, row.attempts, row.last_status) == ("failed", 1, 500)
    assert delivery.claim(db, base_url="", lease=60, now=now + timedelta(days=1)) is not None
    assert delivery.claim(db, base_url="", lease=60, now=now + timedelta(days=1)) is None


def test_concurrent_claimers_never_take_one_delivery_twice(
    db: sessionmaker[Session], hub_rows: dict[str, Principal]
) -> None:
    ids = _deliveries(db, 30)
    taken: list[int] = []
    lock = threading.Lock()
    start = threading.Barrier(6)

    def claimer() -> None:
        start.wait()
        while True:
            claimed = delivery.claim(db, base_url="", lease=600)
            if claimed is None:
                return
            with lock:
                taken.append(claimed.delivery_id)

    threads = [threading.Thread(target=claimer) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert Counter(taken) == Counter(ids)


# One attempt against a real HTTP server


class Receiver(ThreadingHTTPServer):
    """Answers each POST with the next status of ``statuses`` (the last one repeats)."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = statuses
        self.received: list[tuple[dict[str, str], bytes]] = []
        super().__init__(("127.0.0.1", 0), _Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hook"


class _Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.server.received.append((dict(self.headers.items()), body))
        statuses = self.server.statuses
        status = statuses.pop(0) if len(statuses) > 1 else statuses[0]
        answer = ("x" * 5000 if status >= 400 else "ok").encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver([200])
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _claim(url: str) -> Claim:
    return Claim(
        delivery_id=41,
        attempt=1,
        webhook_id=5,
        url=url,
        secret="shh",
        kind="pushed",
        body=b'{"id":1,"kind":"pushed"}',
    )


def test_a_delivery_is_signed_and_sent_to_the_vetted_address(receiver: Receiver) -> None:
    # The host name resolves only through the injected resolver: the connection goes to the
    # address it vetted, while the request still names the host.
    port = receiver.server_address[1]
    claim = _claim(f"http://receiver.test:{port}/hook")
    outcome = delivery.send(
        claim, allow_http=True, allow_private=True, timeout=5, resolve=loopback_dns
    )
    assert outcome == Outcome(200, None)
    ((headers, body),) = receiver.received
    assert body == claim.body
    assert headers["Host"] == f"receiver.test:{port}"
    assert headers["Content-Type"] == "application/json"
    assert headers["X-Dphub-Event"] == "pushed"
    assert headers["X-Dphub-Delivery"] == "41"
    digest = hmac.new(b"shh", body, hashlib.sha256).hexdigest()
    assert headers["X-Dphub-Signature"] == f"sha256={digest}"


def test_a_host_now_resolving_to_a_private_address_is_not_contacted(receiver: Receiver) -> None:
    claim = _claim(f"https://receiver.test:{receiver.server_address[1]}/hook")
    outcome = delivery.send(
        claim, allow_http=False, allow_private=False, timeout=5, resolve=loopback_dns
    )
    assert outcome.status is None
    assert outcome.error is not None
    assert "a loopback address" in outcome.error
    assert receiver.received == []


def test_a_refusal_keeps_only_a_short_excerpt_of_the_answer(receiver: Receiver) -> None:
    receiver.statuses[:] = [500]
    outcome = delivery.send(_claim(receiver.url), allow_http=True, allow_private=True, timeout=5)
    assert outcome.status == 500
    assert outcome.error is not None
    assert outcome.error.startswith("HTTP 500: xxx")
    assert len(outcome.error) <= len("HTTP 500: ") + delivery.EXCERPT


def test_a_closed_port_is_a_failed_attempt() -> None:
    with Receiver([200]) as closed:
        url = closed.url
    outcome = delivery.send(_claim(url), allow_http=True, allow_private=True, timeout=5)
    assert outcome.status is None
    assert outcome.error is not None
    assert outcome.error.startswith("Could not deliver")
