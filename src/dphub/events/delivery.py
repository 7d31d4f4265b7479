"""Delivering webhooks: POST each owed event to its webhook, signed, retried with backoff.

Every worker (``dphub worker``, and the in-process worker of ``dphub serve``) runs :func:`run` on a
thread of its own. Claiming a delivery is one statement, like claiming a job
(:mod:`dphub.pipeline.jobs`): it picks the oldest due delivery with ``FOR UPDATE SKIP LOCKED`` on
PostgreSQL, counts the attempt and moves ``next_attempt_at`` past the attempt's time limit, which
is the claim's lease: no other worker sends it while this one is trying, and if this worker dies
the delivery is due again once the lease ends. The outcome is written only if the delivery is still
at the attempt this worker claimed.

One attempt: the URL is vetted again (:func:`dphub.events.webhooks.check_url`, so a host whose DNS
answer moved to a private address is refused) and the request goes to the vetted addresses only,
over the DataProxy's pinned connection, within ``DPHUB_WEBHOOK_TIMEOUT`` in all. The body is the
event as JSON (:func:`dphub.events.webhooks.payload`) with these headers:

- ``Content-Type: application/json``
- ``X-Dphub-Event``: the event's kind
- ``X-Dphub-Delivery``: the delivery's id (the same on every retry: receivers can drop repeats)
- ``X-Dphub-Signature``: ``sha256=`` and the hex HMAC-SHA256 of the exact body with the secret

A 2xx answer is a delivery; anything else (another status, a redirect, no connection, no answer in
time) is retried after ``DPHUB_WEBHOOK_RETRY_DELAY`` seconds, four times longer at each next
attempt (at most :data:`MAX_DELAY`), until ``DPHUB_WEBHOOK_ATTEMPTS`` attempts have failed. Only a
short excerpt of an answer's body is read and kept, with the status, in the delivery log.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpcore
import httpx
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

import dphub
from dphub.config import Settings
from dphub.dataproxy.remote import Resolver, _PinnedTransport, _Target
from dphub.errors import DphubError
from dphub.events.webhooks import check_url, payload, sign
from dphub.hub import Hub
from dphub.metastore.db import transaction
from dphub.metastore.models import Event, Webhook, WebhookDelivery

log = logging.getLogger("dphub.webhooks")

PENDING = "pending"
DELIVERED = "delivered"
FAILED = "failed"
MAX_DELAY = 6 * 3600.0
LEASE_MARGIN = 30.0
"""Seconds a claim outlives its attempt's time limit, for the outcome to be written."""
EXCERPT = 200
"""Characters of an answer's body kept in the delivery log."""
READ_LIMIT = 1024
POLL_SECONDS = 0.5

_TIMEOUTS = (httpx.TimeoutException, httpcore.TimeoutException)
_FAILURES = (
    httpx.HTTPError,
    httpx.StreamError,
    httpcore.ConnectionNotAvailable,
    httpcore.NetworkError,
    httpcore.ProtocolError,
    httpcore.ProxyError,
    httpcore.UnsupportedProtocol,
    OSError,
)


@dataclass(frozen=True)
class Claim:
    delivery_id: int
    attempt: int
    webhook_id: int
    url: str
    secret: str
    kind: str
    body: bytes


@dataclass(frozen=True)
class Outcome:
    status: int | None
    error: str | None

    @property
    def delivered(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def retry_delay(attempt: int, base: float) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1, 2, ...)."""
    return float(min(base * 4 ** (attempt - 1), MAX_DELAY))


def claim(
    sessions: sessionmaker[Session],
    *,
    base_url: str,
    lease: float,
    now: datetime | None = None,
) -> Claim | None:
    """Take the delivery due longest ago that no other worker holds, or ``None``."""
    now = now or datetime.now(UTC)
    active = select(Webhook.id).where(Webhook.active.is_(True))
    due = (
        select(WebhookDelivery.id)
        .where(
            WebhookDelivery.state == PENDING,
            WebhookDelivery.next_attempt_at <= now,
            WebhookDelivery.webhook_id.in_(active),
        )
        .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id)
        .limit(1)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    with transaction(sessions) as db:
        taken = db.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id == due)
            .values(
                attempts=WebhookDelivery.attempts + 1,
                next_attempt_at=now + timedelta(seconds=lease),
            )
            .returning(
                WebhookDelivery.id,
                WebhookDelivery.webhook_id,
                WebhookDelivery.event_id,
                WebhookDelivery.attempts,
            )
        ).first()
        if taken is None:
            return None
        delivery_id, webhook_id, event_id, attempt = taken
        hook = db.get(Webhook, webhook_id)
        event = db.get(Event, event_id)
        # Both are foreign keys of the delivery, deleted with it.
        assert hook is not None
        assert event is not None
        return Claim(
            delivery_id=delivery_id,
            attempt=attempt,
            webhook_id=webhook_id,
            url=hook.url,
            secret=hook.secret,
            kind=event.kind,
            body=payload(event, base_url=base_url),
        )


def headers(claim: Claim) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "User-Agent": f"dphub-webhook/{dphub.__version__}",
        "X-Dphub-Event": claim.kind,
        "X-Dphub-Delivery": str(claim.delivery_id),
        "X-Dphub-Signature": sign(claim.secret, claim.body),
    }


def send(
    claim: Claim,
    *,
    allow_http: bool,
    allow_private: bool,
    timeout: float,
    resolve: Resolver | None = None,
) -> Outcome:
    """One attempt at delivering ``claim``; never raises for what the receiver does."""
    try:
        destination = check_url(
            claim.url, allow_http=allow_http, allow_private=allow_private, resolve=resolve
        )
    except DphubError as exc:
        return Outcome(None, exc.message[:EXCERPT])
    deadline = time.monotonic() + timeout
    url = httpx.URL(destination.url)
    target = _Target(
        url=url, scheme=destination.scheme, host=destination.host, port=destination.port
    )
    try:
        with (
            httpx.Client(
                transport=_PinnedTransport(target, destination.addresses, deadline),
                trust_env=False,
                follow_redirects=False,
                timeout=timeout,
            ) as client,
            client.stream("POST", url, content=claim.body, headers=headers(claim)) as response,
        ):
            status = response.status_code
            if 200 <= status < 300:
                return Outcome(status, None)
            excerpt = _excerpt(response)
    except _TIMEOUTS:
        return Outcome(None, f"No answer within {timeout:g} seconds.")
    except _FAILURES as exc:
        return Outcome(None, f"Could not deliver: {type(exc).__name__}: {exc}"[:EXCERPT])
    except DphubError as exc:
        return Outcome(None, exc.message[:EXCERPT])
    return Outcome(status, f"HTTP {status}" + (f": {excerpt}" if excerpt else ""))


def _excerpt(response: httpx.Response) -> str:
    """The start of an answer's body as one line of text; nothing of a compressed body."""
    if response.headers.get("content-encoding", "identity").strip().lower() != "identity":
        return ""
    read = b""
    for chunk in response.iter_raw(256):
        read += chunk
        if len(read) >= READ_LIMIT:
            break
    text = " ".join(read[:READ_LIMIT].decode("utf-8", errors="replace").split())
    return text[:EXCERPT]


def finish(
    sessions: sessionmaker[Session],
    claim: Claim,
    outcome: Outcome,
    *,
    attempts: int,
    base_delay: float,
    now: datetime | None = None,
) -> str | None:
    """Record the attempt; the delivery's new state, or ``None`` when the claim had been lost."""
    now = now or datetime.now(UTC)
    values: dict[str, object] = {"last_status": outcome.status, "last_error": outcome.error}
    if outcome.delivered:
        state = DELIVERED
        values.update(state=DELIVERED, delivered_at=now)
    elif claim.attempt >= attempts:
        state = FAILED
        values.update(state=FAILED)
    else:
        state = PENDING
        delay = retry_delay(claim.attempt, base_delay)
        values.update(next_attempt_at=now + timedelta(seconds=delay))
    with transaction(sessions) as db:
        written = db.execute(
            update(WebhookDelivery)
            .where(
                WebhookDelivery.id == claim.delivery_id,
                WebhookDelivery.attempts == claim.attempt,
                WebhookDelivery.state == PENDING,
            )
            .values(**values)
        )
        if written.rowcount != 1:  # type: ignore[attr-defined]
            return None
    return state


def deliver_once(hub: Hub) -> bool:
    """Claim one due delivery and attempt it; ``False`` when none was due."""
    settings: Settings = hub.settings
    claimed = claim(
        hub.sessions,
        base_url=settings.base_url,
        lease=settings.webhook_timeout + LEASE_MARGIN,
    )
    if claimed is None:
        return False
    if claimed.attempt > settings.webhook_attempts:
        # Its last attempt's worker stopped before writing the outcome: nothing is left to try.
        outcome = Outcome(None, "No attempt left: the last one ended without an outcome.")
    else:
        outcome = send(
            claimed,
            allow_http=settings.webhook_allow_http,
            allow_private=settings.webhook_allow_private,
            timeout=settings.webhook_timeout,
        )
    state = finish(
        hub.sessions,
        claimed,
        outcome,
        attempts=settings.webhook_attempts,
        base_delay=settings.webhook_retry_delay,
    )
    log.info(
        "webhook delivery %s (webhook %s) attempt %s: %s%s",
        claimed.delivery_id,
        claimed.webhook_id,
        claimed.attempt,
        outcome.status if outcome.status is not None else "no answer",
        f", now {state}" if state else ", claim lost",
    )
    return True


def run(hub: Hub, *, stop: threading.Event) -> None:
    """Deliver due webhooks until ``stop`` is set."""
    while not stop.is_set():
        try:
            busy = deliver_once(hub)
        except Exception:  # the metastore is unreachable: wait, then try again
            log.warning("webhook deliveries could not be claimed", exc_info=True)
            busy = False
        if not busy:
            stop.wait(POLL_SECONDS)
