"""Fetch an outside URL for the DataProxy without letting it reach into the hub's own network.

The DataProxy converts hub files; it fetches an outside URL only when the host is on the allow-list
(``DPHUB_DATAPROXY_ALLOWED_HOSTS``). Such a fetch is a server-side request a user chooses, so every
hop passes :func:`check_url` first:

- the scheme is ``http`` or ``https``; the URL carries no user name or password;
- the host matches an allow-list entry exactly (case-insensitive, IDNA-encoded). An entry is
  ``host``, ``host:port``, ``[v6-address]:port`` or ``*.domain``; ``*.example.org`` matches any name
  below example.org but not example.org itself. An entry without a port allows only the scheme's
  default port (80 or 443); an entry with a port allows only that port;
- an IPv4 address written in any form but four decimal numbers (``2130706433``, ``0x7f.1``,
  ``017700000001``, ``127.1``) is refused outright, because resolvers read those forms differently;
- the host is resolved here (``socket.getaddrinfo``) and the URL is refused if *any* address is not
  public (:func:`vet_address`): loopback, private, link-local, multicast, reserved, unspecified,
  site-local, carrier-grade NAT (100.64/10), cloud metadata (169.254.169.254, fd00:ec2::254), Teredo,
  local-use NAT64, and IPv6 forms that embed such an IPv4 address (IPv4-mapped ``::ffff:a.b.c.d``,
  6to4 ``2002::/16``, NAT64 ``64:ff9b::/96``) are all refused.

How the connection is pinned to the vetted addresses. httpx resolves names inside httpcore when it
opens a socket, so checking a name and then handing the URL to httpx would resolve it twice, and a
DNS answer that changes in between (DNS rebinding) would slip through. Two documented hooks avoid
that. One is to rewrite the URL to the vetted IP, send the original ``Host`` header and pass the
``sni_hostname`` request extension (httpcore issue #691) so TLS still names and verifies the
hostname; it works, but every URL, redirect and error message then carries an IP instead of the
name. The other, used here, is httpcore's ``network_backend`` parameter of ``ConnectionPool``:
``_PinnedBackend.connect_tcp`` is called with the URL's host and port, refuses any other host, and
opens the socket to the vetted IP addresses only, never resolving anything. httpcore then starts TLS
on that socket with ``server_hostname`` set to the URL's host, so SNI and certificate verification
(the default SSL context checks the hostname) are against the name, and the ``Host`` header is the
one httpx derives from the URL. ``_PinnedTransport`` is a small ``httpx.BaseTransport`` over that
pool. Environment proxies and ``.netrc`` are off (``trust_env=False``), so nothing reroutes it.

The same backend enforces the overall time limit: each connect, TLS handshake, read and write gets at
most the time left until the deadline, so a server that drips one byte at a time is cut off at the
deadline rather than after one read timeout per byte (that covers slow headers too).

Redirects are followed by hand, at most :data:`MAX_REDIRECTS`, each hop checked again by the same
rules (so its DNS answer is vetted again); a redirect to another host, or from https to http, is
refused. Only a 200 answer is saved; it is streamed in chunks to a temporary file in ``workdir`` and
the file is removed when anything goes wrong. ``Accept-Encoding: identity`` is asked for and a
compressed answer is refused, so the byte cap applies to the bytes on disk and nothing is inflated
in memory.

Errors (from :mod:`dphub.errors`): :class:`Forbidden` (403) when the URL is one the hub will not
fetch (scheme, credentials, host or port not allowed, address not public, obfuscated IP, redirect to
another host or to http); :class:`InvalidRequest` (400) when it is not a usable URL or the remote side
misbehaves (no such host, connection or TLS failure, an answer other than 200, a redirect loop, a
compressed body); :class:`PayloadTooLarge` (413) beyond ``max_bytes``; :class:`ServiceUnavailable`
(503) past the deadline.
"""

from __future__ import annotations

import functools
import ipaddress
import os
import re
import socket
import ssl
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx

from dphub.errors import (
    ConfigurationError,
    Forbidden,
    InvalidRequest,
    PayloadTooLarge,
    ServiceUnavailable,
)

MAX_REDIRECTS = 5
CHUNK_SIZE = 64 * 1024
DEFAULT_PORTS = {"http": 80, "https": 443}
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
REQUEST_HEADERS = {"User-Agent": "dphub-dataproxy", "Accept-Encoding": "identity"}

Resolver = Callable[[str, int], list[str]]
Vetter = Callable[[str], None]
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class Fetched:
    """A fetched file: where it is on disk, the URL it finally came from, its type and size."""

    path: Path
    url: str
    content_type: str | None
    size: int


# Vetting addresses

_METADATA = frozenset(
    {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}
)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_GLOBAL_UNICAST = ipaddress.IPv6Network("2000::/3")
# Networks the ipaddress properties of Python 3.11 do not all flag.
_BLOCKED_NETWORKS: tuple[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, str], ...] = (
    (ipaddress.IPv4Network("0.0.0.0/8"), "a 'this network' address"),
    (ipaddress.IPv4Network("100.64.0.0/10"), "a carrier-grade NAT address"),
    (ipaddress.IPv4Network("192.0.0.0/24"), "an IETF protocol address"),
    (ipaddress.IPv6Network("2001::/32"), "a Teredo tunnel address"),
    (ipaddress.IPv6Network("64:ff9b:1::/48"), "a local-use NAT64 address"),
)


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> tuple[str, ipaddress.IPv4Address] | None:
    if ip.ipv4_mapped is not None:
        return "an IPv4-mapped form", ip.ipv4_mapped
    if ip.sixtofour is not None:
        return "a 6to4 form", ip.sixtofour
    if ip in _NAT64:
        return "a NAT64 form", ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def address_problem(ip: IPAddress) -> str | None:
    """Why the DataProxy must not connect to ``ip`` (a phrase), or None when it is public."""
    if ip in _METADATA:
        return "the cloud metadata address"
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            form, ipv4 = embedded
            problem = address_problem(ipv4)
            return None if problem is None else f"{form} of {ipv4}, {problem}"
        if ip.is_site_local:
            return "a site-local address"
    flagged = (
        (ip.is_unspecified, "the unspecified address"),
        (ip.is_loopback, "a loopback address"),
        (ip.is_link_local, "a link-local address"),
        (ip.is_multicast, "a multicast address"),
        (ip.is_private, "a private address"),
        (ip.is_reserved, "a reserved address"),
    )
    for is_flagged, problem in flagged:
        if is_flagged:
            return problem
    for network, problem in _BLOCKED_NETWORKS:
        if ip.version == network.version and ip in network:
            return problem
    if isinstance(ip, ipaddress.IPv6Address) and ip not in _GLOBAL_UNICAST:
        return "not a global unicast address"
    if not ip.is_global:
        return "not a public address"
    return None


def vet_address(address: str) -> None:
    """Refuse (:class:`Forbidden`) an IP address the DataProxy must not connect to."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        raise Forbidden(f"{address!r} is not an IP address the DataProxy can check.") from None
    problem = address_problem(ip)
    if problem is not None:
        raise Forbidden(
            f"{address} is {problem}; the DataProxy only fetches from public addresses."
        )


def resolve_host(host: str, port: int) -> list[str]:
    """The addresses ``host`` resolves to, in the resolver's order, without duplicates."""
    found: list[str] = []
    for *_, sockaddr in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
        address = str(sockaddr[0])
        if address not in found:
            found.append(address)
    return found


# Parsing URLs and the allow-list

_NUMERIC_LABEL = re.compile(r"[0-9]+|0x[0-9a-f]*")
_HOST_NAME = re.compile(r"[a-z0-9_-]+(?:\.[a-z0-9_-]+)*\.?")
_SAFE_SUFFIX = re.compile(r"\.[A-Za-z0-9]{1,16}")


@dataclass(frozen=True)
class _Target:
    url: httpx.URL
    scheme: str
    host: str  # IDNA-encoded, lowercase; an IPv6 address without brackets
    port: int  # the effective port


@dataclass(frozen=True)
class _AllowedHost:
    host: str
    port: int | None
    wildcard: bool

    def matches_host(self, host: str) -> bool:
        if self.wildcard:
            return host.endswith("." + self.host)
        return host == self.host

    def matches_port(self, scheme: str, port: int) -> bool:
        return port == (DEFAULT_PORTS[scheme] if self.port is None else self.port)


def split_allowed_hosts(value: str) -> list[str]:
    """The entries of the comma-separated ``DPHUB_DATAPROXY_ALLOWED_HOSTS`` setting."""
    return [entry.strip() for entry in value.split(",") if entry.strip()]


def _parse_allowed(entries: Sequence[str]) -> list[_AllowedHost]:
    if isinstance(entries, str):
        raise TypeError(
            "allowed_hosts is a list of hosts: use split_allowed_hosts() on the setting."
        )
    allowed = []
    for raw in entries:
        entry = raw.strip()
        if not entry:
            continue
        wildcard = entry.startswith("*.")
        rest = entry.removeprefix("*.")
        problem = (
            f"DPHUB_DATAPROXY_ALLOWED_HOSTS entry {entry!r} is not host, host:port or *.domain."
        )
        if any(c in rest for c in "*/?#@\\") or rest.endswith(":"):
            raise ConfigurationError(problem)
        try:
            parsed = httpx.URL(f"http://{rest}/")
            port = urlsplit(f"//{rest}").port
        except (httpx.InvalidURL, ValueError):
            raise ConfigurationError(problem) from None
        if not parsed.raw_host:
            raise ConfigurationError(problem)
        allowed.append(_AllowedHost(parsed.raw_host.decode("ascii").lower(), port, wildcard))
    return allowed


def _parse(url: str | httpx.URL) -> _Target:
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError):
        raise InvalidRequest(f"{str(url)[:200]!r} is not a valid URL.") from None
    scheme = parsed.scheme
    if scheme not in DEFAULT_PORTS:
        raise Forbidden(
            f"The DataProxy only fetches http:// and https:// URLs, not {scheme or 'relative'} ones."
        )
    if parsed.userinfo or (isinstance(url, str) and "@" in urlsplit(url).netloc):
        raise Forbidden("The DataProxy does not fetch URLs with a user name or password in them.")
    host = parsed.raw_host.decode("ascii").lower()
    if not host:
        raise InvalidRequest("The URL names no host.")
    if ":" not in host and not _HOST_NAME.fullmatch(host):
        raise InvalidRequest(f"{host!r} is not a valid host name.")
    port = DEFAULT_PORTS[scheme] if parsed.port is None else parsed.port
    if not 0 < port < 65536:
        raise InvalidRequest(f"Port {port} is not a valid TCP port.")
    return _Target(url=parsed, scheme=scheme, host=host, port=port)


def _literal_address(host: str) -> IPAddress | None:
    """The IP address a host is written as, None for a name; refuses non-standard IPv4 forms."""
    if ":" in host or "%" in host:
        try:
            return ipaddress.IPv6Address(host)
        except ValueError:
            raise Forbidden(f"{host} is not an IPv6 address the DataProxy accepts.") from None
    last_label = host.removesuffix(".").rpartition(".")[2]
    if not _NUMERIC_LABEL.fullmatch(last_label):
        return None
    try:
        return ipaddress.IPv4Address(host)
    except ValueError:
        raise Forbidden(
            f"{host} looks like an IP address written in a non-standard form (decimal, octal or"
            " hex); the DataProxy only accepts IPv4 addresses as four decimal numbers."
        ) from None


def _vet_target(
    target: _Target, allowed: list[_AllowedHost], resolve: Resolver, vet: Vetter
) -> list[str]:
    literal = _literal_address(target.host)
    if not allowed:
        raise Forbidden(
            "The DataProxy fetches no outside URLs on this hub (DPHUB_DATAPROXY_ALLOWED_HOSTS is"
            " empty); it converts files stored in the hub."
        )
    host_entries = [entry for entry in allowed if entry.matches_host(target.host)]
    if not host_entries:
        raise Forbidden(
            f"{target.host} is not in DPHUB_DATAPROXY_ALLOWED_HOSTS, the hosts the DataProxy may"
            " fetch from."
        )
    if not any(entry.matches_port(target.scheme, target.port) for entry in host_entries):
        raise Forbidden(
            f"{target.host} is allowed, but not on port {target.port}: DPHUB_DATAPROXY_ALLOWED_HOSTS"
            " must name the port."
        )
    if literal is not None:
        vet(str(literal))
        return [str(literal)]
    try:
        addresses = resolve(target.host, target.port)
    except (OSError, UnicodeError):
        raise InvalidRequest(f"The host {target.host} could not be resolved.") from None
    if not addresses:
        raise InvalidRequest(f"The host {target.host} resolves to no address.")
    for address in addresses:
        try:
            vet(address)
        except Forbidden as exc:
            raise Forbidden(f"{target.host} is refused: it resolves to {exc.message}") from None
    return list(addresses)


def check_url(
    url: str,
    *,
    allowed_hosts: Sequence[str],
    resolve: Resolver | None = None,
    vet: Vetter = vet_address,
) -> tuple[str, list[str]]:
    """Check ``url`` by the rules in the module docstring; return its host and vetted addresses.

    ``resolve`` replaces DNS (tests); ``vet`` replaces :func:`vet_address` (only tests that talk to
    a loopback server pass anything else).
    """
    target = _parse(url)
    addresses = _vet_target(target, _parse_allowed(allowed_hosts), resolve or resolve_host, vet)
    return target.host, addresses


# Connecting to the vetted addresses only, within the deadline


def _time_left(deadline: float, error: type[Exception]) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise error("The DataProxy's time limit for this fetch has passed.")
    return left


class _DeadlineStream(httpcore.NetworkStream):
    """A network stream whose every operation ends by the fetch's deadline."""

    def __init__(self, inner: httpcore.NetworkStream, deadline: float) -> None:
        self._inner = inner
        self._deadline = deadline

    def _clamp(self, timeout: float | None, error: type[Exception]) -> float:
        left = _time_left(self._deadline, error)
        return left if timeout is None else min(timeout, left)

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, self._clamp(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, self._clamp(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        timeout = self._clamp(timeout, httpcore.ConnectTimeout)
        inner = self._inner.start_tls(ssl_context, server_hostname, timeout)
        return _DeadlineStream(inner, self._deadline)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _PinnedBackend(httpcore.NetworkBackend):
    """Opens sockets for one host and port, to its vetted addresses only; never resolves."""

    def __init__(self, host: str, port: int, addresses: Sequence[str], deadline: float) -> None:
        self._host = host
        self._port = port
        self._addresses = list(addresses)
        self._deadline = deadline
        self._inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        if host.lower() != self._host or port != self._port:
            raise Forbidden(f"The DataProxy only connects to {self._host}:{self._port} here.")
        failure: Exception = httpcore.ConnectError(f"{self._host} has no address to connect to.")
        for address in self._addresses:
            left = _time_left(self._deadline, httpcore.ConnectTimeout)
            try:
                stream = self._inner.connect_tcp(
                    address,
                    port,
                    timeout=left if timeout is None else min(timeout, left),
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
                continue
            return _DeadlineStream(stream, self._deadline)
        raise failure


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    return httpx.create_ssl_context()


class _CoreBody(httpx.SyncByteStream):
    def __init__(self, response: httpcore.Response) -> None:
        self._response = response

    def __iter__(self) -> Iterator[bytes]:
        yield from self._response.iter_stream()

    def close(self) -> None:
        self._response.close()


class _PinnedTransport(httpx.BaseTransport):
    """An httpx transport whose connections go to the vetted addresses of one host only."""

    def __init__(self, target: _Target, addresses: Sequence[str], deadline: float) -> None:
        backend = _PinnedBackend(target.host, target.port, addresses, deadline)
        self._pool = httpcore.ConnectionPool(
            ssl_context=_ssl_context(), max_connections=1, network_backend=backend
        )

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if not isinstance(request.stream, httpx.SyncByteStream):
            raise TypeError("The DataProxy sends synchronous requests only.")
        url = request.url
        response = self._pool.handle_request(
            httpcore.Request(
                method=request.method,
                url=httpcore.URL(
                    scheme=url.raw_scheme, host=url.raw_host, port=url.port, target=url.raw_path
                ),
                headers=request.headers.raw,
                content=request.stream,
                extensions=request.extensions,
            )
        )
        return httpx.Response(
            status_code=response.status,
            headers=response.headers,
            stream=_CoreBody(response),
            extensions=response.extensions,
        )

    def close(self) -> None:
        self._pool.close()


# Fetching

_TIMEOUTS = (httpx.TimeoutException, httpcore.TimeoutException)
_TRANSPORT_FAILURES = (
    httpx.HTTPError,
    httpx.StreamError,
    httpcore.ConnectionNotAvailable,
    httpcore.NetworkError,
    httpcore.ProtocolError,
    httpcore.ProxyError,
    httpcore.UnsupportedProtocol,
)


def fetch(
    url: str,
    *,
    allowed_hosts: Sequence[str],
    workdir: Path,
    max_bytes: int,
    timeout: float,
    resolve: Resolver | None = None,
    transport: httpx.BaseTransport | None = None,
    vet: Vetter = vet_address,
) -> Fetched:
    """Fetch ``url`` into a new file in ``workdir``; the caller owns (and removes) the file.

    At most ``max_bytes`` are accepted and the whole fetch, redirects included, ends within
    ``timeout`` seconds. ``resolve``, ``transport`` and ``vet`` are for tests: ``transport``
    replaces the pinned connection (the URL checks still run before every hop).
    """
    deadline = time.monotonic() + timeout
    allowed = _parse_allowed(allowed_hosts)
    resolve = resolve or resolve_host
    target = _parse(url)
    for redirects in range(MAX_REDIRECTS + 1):
        addresses = _vet_target(target, allowed, resolve, vet)
        outcome = _fetch_once(
            target,
            addresses,
            deadline=deadline,
            timeout=timeout,
            transport=transport,
            workdir=workdir,
            max_bytes=max_bytes,
        )
        if isinstance(outcome, Fetched):
            return outcome
        if redirects == MAX_REDIRECTS:
            break
        following = _parse(outcome)
        if following.host != target.host:
            raise Forbidden(
                f"{target.host} redirected to another host, {following.host}; the DataProxy only"
                " follows redirects on the same host."
            )
        if target.scheme == "https" and following.scheme == "http":
            raise Forbidden(f"{target.host} redirected from https to http; the DataProxy refuses.")
        target = following
    raise InvalidRequest(
        f"{target.host} redirected more than {MAX_REDIRECTS} times; the DataProxy stopped there."
    )


def _fetch_once(
    target: _Target,
    addresses: list[str],
    *,
    deadline: float,
    timeout: float,
    transport: httpx.BaseTransport | None,
    workdir: Path,
    max_bytes: int,
) -> Fetched | httpx.URL:
    """One request: the saved file for a 200, the next URL for a redirect; refuses the rest."""
    timed_out = ServiceUnavailable(
        f"{target.host} did not answer within the DataProxy's time limit of {timeout:g} seconds."
    )
    try:
        left = _time_left(deadline, httpx.TimeoutException)
        pinned = transport or _PinnedTransport(target, addresses, deadline)
        with (
            httpx.Client(
                transport=pinned, trust_env=False, follow_redirects=False, timeout=left
            ) as client,
            client.stream("GET", target.url, headers=REQUEST_HEADERS) as response,
        ):
            status = response.status_code
            if status in REDIRECT_STATUSES:
                location = response.headers.get("location")
                if not location:
                    raise InvalidRequest(f"{target.host} answered a redirect without a Location.")
                try:
                    return target.url.join(location)
                except httpx.InvalidURL:
                    raise InvalidRequest(f"{target.host} redirected to an invalid URL.") from None
            if status != 200:
                raise InvalidRequest(
                    f"{target.host} answered HTTP {status}; the DataProxy only accepts 200.",
                    upstream_status=status,
                )
            encoding = response.headers.get("content-encoding", "").strip().lower()
            if encoding not in ("", "identity"):
                raise InvalidRequest(
                    f"{target.host} sent a {encoding}-compressed body although the DataProxy asked"
                    " for none; it does not inflate bodies."
                )
            declared = response.headers.get("content-length", "").strip()
            if declared.isdigit() and int(declared) > max_bytes:
                raise _too_large(target, max_bytes)
            return _save(response, target, workdir=workdir, max_bytes=max_bytes, deadline=deadline)
    except _TIMEOUTS:
        raise timed_out from None
    except _TRANSPORT_FAILURES as exc:
        raise InvalidRequest(
            f"The DataProxy could not fetch from {target.host} ({type(exc).__name__})."
        ) from None
    except _DeadlinePassed:
        raise timed_out from None


class _DeadlinePassed(Exception):
    pass


def _too_large(target: _Target, max_bytes: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"The file at {target.host} is larger than the DataProxy's limit of {max_bytes} bytes.",
        max_bytes=max_bytes,
    )


def _save(
    response: httpx.Response, target: _Target, *, workdir: Path, max_bytes: int, deadline: float
) -> Fetched:
    suffix = PurePosixPath(target.url.path).suffix
    fd, name = tempfile.mkstemp(
        prefix="remote-", suffix=suffix if _SAFE_SUFFIX.fullmatch(suffix) else "", dir=workdir
    )
    path = Path(name)
    size = 0
    try:
        with os.fdopen(fd, "wb") as out:
            for chunk in response.iter_raw(CHUNK_SIZE):
                size += len(chunk)
                if size > max_bytes:
                    raise _too_large(target, max_bytes)
                if time.monotonic() > deadline:
                    raise _DeadlinePassed
                out.write(chunk)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return Fetched(
        path=path,
        url=str(target.url),
        content_type=response.headers.get("content-type"),
        size=size,
    )
