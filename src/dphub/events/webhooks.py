"""Webhooks: URLs a publisher registers to be told of its packages' events.

Only a publisher's owners manage its webhooks (``publisher:manage``; a user owns the publisher of
their own name). Each webhook gets a random secret, shown once when it is made; every delivery is
signed with it (:func:`sign`), so a receiver can tell the hub's requests from anyone else's.

A webhook URL is a server-side request a user chooses, so it is held to the rules the DataProxy
applies to outside URLs (:mod:`dphub.dataproxy.remote`): https (http only when
``DPHUB_WEBHOOK_ALLOW_HTTP`` is on), no user name or password, IPv4 addresses only as four decimal
numbers, and a host whose every address is public: loopback, private, link-local, reserved,
carrier-grade NAT and cloud-metadata addresses are refused at registration (unless
``DPHUB_WEBHOOK_ALLOW_PRIVATE`` is on). Delivery checks the URL again and connects only to the
addresses it has just vetted (:mod:`dphub.events.delivery`), so a DNS answer that changes after
registration cannot point a delivery into the hub's own network.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from dphub.auth import audit
from dphub.auth.permissions import Action, require
from dphub.auth.principal import Principal
from dphub.auth.roles import publisher_ref

# The DataProxy's vetting of outside hosts, shared so that both server-side fetchers follow one set
# of rules.
from dphub.dataproxy.remote import (
    _HOST_NAME,
    DEFAULT_PORTS,
    Resolver,
    _literal_address,
    address_problem,
    resolve_host,
)
from dphub.errors import (
    AlreadyExists,
    Conflict,
    Forbidden,
    InvalidQuery,
    InvalidRequest,
    NotFound,
    PublisherNotFound,
)
from dphub.events.stream import KINDS
from dphub.metastore.models import Event, Publisher, User, Webhook, WebhookDelivery
from dphub.names import is_valid_name

MAX_PER_PUBLISHER = 20
MAX_URL = 2000
SECRET_BYTES = 32
DEFAULT_LIMIT = 50
MAX_LIMIT = 200
DELIVERY_STATES = ("pending", "delivered", "failed")


# URLs


@dataclass(frozen=True)
class Destination:
    """A vetted webhook URL and the addresses a delivery may connect to."""

    url: str
    scheme: str
    host: str
    """IDNA-encoded and lowercase; an IPv6 address without brackets."""
    port: int
    addresses: tuple[str, ...]


def _refused(url: str, why: str) -> InvalidRequest:
    return InvalidRequest(f"The webhook URL {url[:200]!r} is refused: {why}.", field="url")


def check_url(
    url: object, *, allow_http: bool, allow_private: bool, resolve: Resolver | None = None
) -> Destination:
    """The destination ``url`` names, vetted by the rules in the module docstring.

    ``resolve`` replaces DNS (tests). Raises :class:`InvalidRequest` (400) with the reason.
    """
    if not isinstance(url, str) or not url.strip():
        raise InvalidRequest('Send {"url": "https://..."}: the URL to deliver events to.')
    text = url.strip()
    if len(text) > MAX_URL:
        raise _refused(text, f"it is longer than {MAX_URL} characters")
    if any(ord(c) <= 32 or ord(c) == 127 for c in text):
        raise _refused(text, "it contains spaces or control characters")
    try:
        parsed = httpx.URL(text)
    except (httpx.InvalidURL, TypeError, ValueError):
        raise _refused(text, "it is not a valid URL") from None
    scheme = parsed.scheme
    if scheme != "https" and not (scheme == "http" and allow_http):
        raise _refused(text, "webhooks are delivered to https:// URLs only")
    try:
        netloc = urlsplit(text).netloc
    except ValueError:  # https://a]b : httpx reads it, the standard library does not
        raise _refused(text, "it is not a valid URL") from None
    if parsed.userinfo or "@" in netloc:
        raise _refused(text, "it carries a user name or password")
    if parsed.fragment:
        raise _refused(text, "it has a #fragment, which is never sent")
    host = parsed.raw_host.decode("ascii").lower()
    if not host:
        raise _refused(text, "it names no host")
    if ":" not in host and not _HOST_NAME.fullmatch(host):
        raise _refused(text, f"{host[:100]!r} is not a valid host name")
    port = DEFAULT_PORTS[scheme] if parsed.port is None else parsed.port
    if not 0 < port < 65536:
        raise _refused(text, f"{port} is not a valid TCP port")
    try:
        literal = _literal_address(host)
    except Forbidden:
        raise _refused(
            text, "write an IPv4 address as four decimal numbers and an IPv6 address in full"
        ) from None
    if literal is not None:
        addresses = [str(literal)]
    else:
        try:
            addresses = (resolve or resolve_host)(host, port)
        except (OSError, UnicodeError):
            raise _refused(text, f"the host {host} could not be resolved") from None
        if not addresses:
            raise _refused(text, f"the host {host} resolves to no address")
    if not allow_private:
        for address in addresses:
            problem = address_problem(ipaddress.ip_address(address))
            if problem is not None:
                where = f"{address} is" if literal is not None else f"{host} resolves to {address},"
                raise _refused(
                    text, f"{where} {problem}; webhooks are delivered to public addresses only"
                )
    return Destination(str(parsed), scheme, host, port, tuple(addresses))


# Signing


def new_secret() -> str:
    return secrets.token_hex(SECRET_BYTES)


def sign(secret: str, body: bytes) -> str:
    """The ``X-Dphub-Signature`` of ``body``: ``sha256=`` and the hex HMAC-SHA256 keyed with the
    webhook's secret (its UTF-8 bytes, as shown at creation)."""
    digest = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def payload(event: Event, *, base_url: str) -> bytes:
    """The exact bytes a delivery of ``event`` sends (and signs)."""
    path = f"/{event.owner}/{event.name}" if event.name else f"/{event.owner}"
    body = {
        "id": event.id,
        "kind": event.kind,
        "created_at": event.created_at.isoformat(),
        "owner": event.owner,
        "name": event.name,
        "revision": event.revision,
        "actor": event.actor,
        "detail": event.detail or {},
        "url": f"{base_url.rstrip('/')}{path}",
    }
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"), default=str).encode()


# Managing webhooks


def parse_kinds(value: object) -> list[str] | None:
    """The kinds a webhook wants: a non-empty list of event kinds, or ``None`` for all."""
    if value is None:
        return None
    every = ", ".join(KINDS)
    if not isinstance(value, list) or not value or not all(isinstance(k, str) for k in value):
        raise InvalidRequest(
            f'"kinds" must be a non-empty list of event kinds ({every}), or left out for all.',
            field="kinds",
        )
    unknown = [k for k in value if k not in KINDS]
    if unknown:
        raise InvalidRequest(f"Unknown event kind {unknown[0][:40]!r}: use {every}.", field="kinds")
    return list(dict.fromkeys(value))


def _publisher(db: Session, principal: Principal | None, name: str) -> Publisher:
    found = (
        db.scalar(select(Publisher).where(Publisher.name == name)) if is_valid_name(name) else None
    )
    if found is None:
        raise PublisherNotFound(f"No publisher is called {name[:100]!r}.")
    require(principal, Action.PUBLISHER_MANAGE, publisher_ref(db, principal, name))
    return found


def _webhook(db: Session, publisher: Publisher, hook_id: int) -> Webhook:
    hook = db.get(Webhook, hook_id) if 0 < hook_id < 2**31 else None
    if hook is None or hook.publisher_id != publisher.id:
        raise NotFound(f"{publisher.name} has no webhook with id {hook_id}.")
    return hook


def describe(db: Session, hook: Webhook) -> dict[str, Any]:
    creator = db.get(User, hook.created_by) if hook.created_by is not None else None
    return {
        "id": hook.id,
        "url": hook.url,
        "kinds": hook.kinds,
        "active": hook.active,
        "created_by": creator.username if creator is not None else None,
        "created_at": hook.created_at,
    }


def create_webhook(
    db: Session,
    principal: Principal | None,
    publisher_name: str,
    *,
    url: object,
    kinds: object = None,
    allow_http: bool,
    allow_private: bool,
    resolve: Resolver | None = None,
) -> dict[str, Any]:
    """Register a webhook; the answer holds its secret, which is never shown again."""
    publisher = _publisher(db, principal, publisher_name)
    assert principal is not None
    wanted = parse_kinds(kinds)
    destination = check_url(
        url, allow_http=allow_http, allow_private=allow_private, resolve=resolve
    )
    count = db.scalar(
        select(func.count()).select_from(Webhook).where(Webhook.publisher_id == publisher.id)
    )
    if (count or 0) >= MAX_PER_PUBLISHER:
        raise Conflict(
            f"{publisher.name} already has {MAX_PER_PUBLISHER} webhooks, the most it may have:"
            " remove one first."
        )
    taken = db.scalar(
        select(Webhook.id).where(
            Webhook.publisher_id == publisher.id, Webhook.url == destination.url
        )
    )
    if taken is not None:
        raise AlreadyExists(
            f"{publisher.name} already has a webhook for this URL (id {taken}).", field="url"
        )
    secret = new_secret()
    hook = Webhook(
        publisher_id=publisher.id,
        url=destination.url,
        secret=secret,
        kinds=wanted,
        active=True,
        created_by=principal.user_id,
    )
    db.add(hook)
    db.flush()
    # The host only: a URL's path or query may itself carry a token.
    audit.record(
        db,
        "webhook.add",
        principal=principal,
        target=publisher.name,
        webhook=hook.id,
        host=destination.host,
    )
    return {**describe(db, hook), "secret": secret}


def list_webhooks(
    db: Session, principal: Principal | None, publisher_name: str
) -> list[dict[str, Any]]:
    publisher = _publisher(db, principal, publisher_name)
    hooks = db.scalars(
        select(Webhook).where(Webhook.publisher_id == publisher.id).order_by(Webhook.id)
    )
    return [describe(db, hook) for hook in hooks]


def remove_webhook(
    db: Session, principal: Principal | None, publisher_name: str, hook_id: int
) -> None:
    """Remove a webhook with its delivery log; deliveries still owed are dropped."""
    publisher = _publisher(db, principal, publisher_name)
    hook = _webhook(db, publisher, hook_id)
    audit.record(
        db,
        "webhook.remove",
        principal=principal,
        target=publisher.name,
        webhook=hook.id,
        host=urlsplit(hook.url).hostname,
    )
    db.delete(hook)


def list_deliveries(
    db: Session,
    principal: Principal | None,
    publisher_name: str,
    hook_id: int,
    *,
    state: str | None = None,
    before: int | None = None,
    limit: int = DEFAULT_LIMIT,
) -> dict[str, Any]:
    """A webhook's delivery log, newest first: ``{deliveries, next}``."""
    publisher = _publisher(db, principal, publisher_name)
    hook = _webhook(db, publisher, hook_id)
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidQuery(f"limit must be between 1 and {MAX_LIMIT}.", field="limit")
    conditions = [WebhookDelivery.webhook_id == hook.id]
    if state is not None:
        if state not in DELIVERY_STATES:
            raise InvalidQuery(f"state must be one of {', '.join(DELIVERY_STATES)}.", field="state")
        conditions.append(WebhookDelivery.state == state)
    if before is not None:
        conditions.append(WebhookDelivery.id < before)
    rows = db.execute(
        select(WebhookDelivery, Event)
        .join(Event, Event.id == WebhookDelivery.event_id)
        .where(*conditions)
        .order_by(WebhookDelivery.id.desc())
        .limit(limit + 1)
    ).all()
    page = [_delivery(delivery, event) for delivery, event in rows[:limit]]
    return {"deliveries": page, "next": page[-1]["id"] if len(rows) > limit else None}


def _delivery(delivery: WebhookDelivery, event: Event) -> dict[str, Any]:
    return {
        "id": delivery.id,
        "event": {
            "id": event.id,
            "kind": event.kind,
            "owner": event.owner,
            "name": event.name,
            "revision": event.revision,
            "created_at": event.created_at,
        },
        "state": delivery.state,
        "attempts": delivery.attempts,
        "next_attempt_at": delivery.next_attempt_at if delivery.state == "pending" else None,
        "last_status": delivery.last_status,
        "last_error": delivery.last_error,
        "created_at": delivery.created_at,
        "delivered_at": delivery.delivered_at,
    }
