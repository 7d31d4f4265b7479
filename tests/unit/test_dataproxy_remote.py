"""The DataProxy's outside fetches: SSRF refusals, the allow-list, redirects and the caps.

Refusals are proven before any connection: the injected transport records every request it gets,
and tests on the default transport replace ``socket.create_connection`` with a tripwire. The fetch
path itself runs against a real HTTP server on loopback; only those tests pass a ``vet`` that lets
127.0.0.1 through (the real :func:`vet_address` refuses it, as the tests below show).
"""

from __future__ import annotations

import ipaddress
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from dphub.dataproxy import remote
from dphub.dataproxy.remote import (
    MAX_REDIRECTS,
    Fetched,
    address_problem,
    check_url,
    fetch,
    split_allowed_hosts,
    vet_address,
)
from dphub.errors import (
    ConfigurationError,
    Forbidden,
    InvalidRequest,
    PayloadTooLarge,
    ServiceUnavailable,
)

HOST = "data.example.org"
PUBLIC = "93.184.216.34"
BODY = bytes(range(256)) * 1200  # 300 KiB: several chunks


def public_dns(host: str, port: int) -> list[str]:
    return [PUBLIC]


def loopback_dns(host: str, port: int) -> list[str]:
    return ["127.0.0.1"]


def loopback_ok(address: str) -> None:
    """The vetting for tests against the loopback server: 127.0.0.1 passes, the rest as usual."""
    if address != "127.0.0.1":
        vet_address(address)


Route = tuple[int, dict[str, str], bytes]


class Recorder:
    """A mock transport that answers from a table of paths and records every request."""

    def __init__(self, routes: dict[str, Route] | None = None) -> None:
        self.routes = routes or {}
        self.requests: list[httpx.Request] = []
        self.transport = httpx.MockTransport(self.handle)

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        status, headers, body = self.routes.get(request.url.path, (500, {}, b""))
        # A stream, not content=: like a real transport, the body is read by the caller.
        return httpx.Response(status, headers=headers, stream=httpx.ByteStream(body))


@pytest.fixture
def no_sockets(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, ...]]:
    """Fail any attempt to open a TCP connection (httpcore connects with create_connection)."""
    attempts: list[tuple[Any, ...]] = []

    def tripwire(*args: Any, **kwargs: Any) -> socket.socket:
        attempts.append(args)
        raise AssertionError(f"a connection was attempted: {args}")

    monkeypatch.setattr(socket, "create_connection", tripwire)
    return attempts


# Vetting addresses

REFUSED_ADDRESSES = [
    "127.0.0.1",
    "127.255.255.254",
    "10.0.0.1",
    "172.16.0.1",
    "192.168.1.1",
    "169.254.169.254",
    "169.254.1.1",
    "100.64.0.1",
    "0.0.0.0",  # noqa: S104 (an address to refuse, not one to bind)
    "0.1.2.3",
    "224.0.0.1",
    "240.0.0.1",
    "255.255.255.255",
    "192.0.0.8",
    "192.0.2.1",
    "198.18.0.1",
    "::",
    "::1",
    "fe80::1",
    "fc00::1",
    "fd00:ec2::254",
    "fec0::1",
    "ff02::1",
    "::ffff:127.0.0.1",
    "::ffff:10.0.0.1",
    "::ffff:169.254.169.254",
    "::127.0.0.1",
    "2002:7f00:1::1",
    "2002:a9fe:a9fe::1",
    "64:ff9b::7f00:1",
    "64:ff9b::a9fe:a9fe",
    "64:ff9b:1::1",
    "2001::1",
    "2001:db8::1",
    "100::1",
]


@pytest.mark.parametrize("address", REFUSED_ADDRESSES)
def test_addresses_that_are_not_public_are_refused(address: str) -> None:
    with pytest.raises(Forbidden, match="only fetches from public addresses"):
        vet_address(address)


@pytest.mark.parametrize(
    "address", ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111", "64:ff9b::808:808"]
)
def test_public_addresses_pass(address: str) -> None:
    vet_address(address)


def fetch_from(recorder: Recorder, url: str, workdir: Path, *, allowed_hosts: list[str]) -> Fetched:
    """``fetch`` through the recording transport, with public DNS answers and small caps."""
    return fetch(
        url,
        allowed_hosts=allowed_hosts,
        workdir=workdir,
        max_bytes=1000,
        timeout=5,
        resolve=public_dns,
        transport=recorder.transport,
    )


def test_refusals_say_why() -> None:
    def why(address: str) -> str | None:
        return address_problem(ipaddress.ip_address(address))

    assert why("169.254.169.254") == "the cloud metadata address"
    assert why("fd00:ec2::254") == "the cloud metadata address"
    assert why("100.64.0.1") == "a carrier-grade NAT address"
    assert why("::ffff:127.0.0.1") == "an IPv4-mapped form of 127.0.0.1, a loopback address"
    assert why("2002:7f00:1::1") == "a 6to4 form of 127.0.0.1, a loopback address"
    assert (
        why("64:ff9b::a9fe:a9fe") == "a NAT64 form of 169.254.169.254, the cloud metadata address"
    )


def test_an_address_that_is_not_one_is_refused() -> None:
    with pytest.raises(Forbidden):
        vet_address("not-an-address")


# Checking URLs

SSRF_URLS = [
    # (url, allow-list entry naming exactly that host, what the refusal says)
    ("http://2130706433/", "2130706433", "non-standard form"),
    ("http://0x7f.1/", "0x7f.1", "non-standard form"),
    ("http://017700000001/", "017700000001", "non-standard form"),
    ("http://0x7f000001/", "0x7f000001", "non-standard form"),
    ("http://127.1/", "127.1", "non-standard form"),
    ("http://127.0.0.1./", "127.0.0.1.", "non-standard form"),
    ("http://127.0.0.1/", "127.0.0.1", "loopback"),
    ("http://[::1]/", "[::1]", "loopback"),
    ("http://[::ffff:127.0.0.1]/", "[::ffff:127.0.0.1]", "IPv4-mapped form of 127.0.0.1"),
    ("http://[::ffff:7f00:1]/", "[::ffff:7f00:1]", "IPv4-mapped form of 127.0.0.1"),
    ("http://169.254.169.254/latest/meta-data/", "169.254.169.254", "cloud metadata"),
    ("http://[fd00:ec2::254]/", "[fd00:ec2::254]", "cloud metadata"),
    ("http://10.1.2.3/", "10.1.2.3", "private"),
    ("http://100.64.0.1/", "100.64.0.1", "carrier-grade NAT"),
    ("http://0.0.0.0/", "0.0.0.0", "unspecified"),  # noqa: S104
    ("http://[fe80::1]/", "[fe80::1]", "link-local"),
]


@pytest.mark.parametrize(("url", "entry", "says"), SSRF_URLS)
def test_ssrf_urls_are_refused_even_when_allow_listed(
    url: str, entry: str, says: str, no_sockets: list[tuple[Any, ...]], tmp_path: Path
) -> None:
    with pytest.raises(Forbidden, match=says):
        check_url(url, allowed_hosts=[entry], resolve=public_dns)
    recorder = Recorder()
    with pytest.raises(Forbidden, match=says):
        fetch_from(recorder, url, tmp_path, allowed_hosts=[entry])
    assert recorder.requests == []
    assert no_sockets == []
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("url", "entry", "says"), SSRF_URLS)
def test_ssrf_urls_are_refused_when_not_allow_listed(url: str, entry: str, says: str) -> None:
    with pytest.raises(Forbidden):
        check_url(url, allowed_hosts=[HOST], resolve=public_dns)


def test_a_name_that_resolves_to_loopback_is_refused(
    monkeypatch: pytest.MonkeyPatch, no_sockets: list[tuple[Any, ...]], tmp_path: Path
) -> None:
    real_getaddrinfo = socket.getaddrinfo

    def rebound(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host == HOST:
            return real_getaddrinfo("127.0.0.1", port, *args, **kwargs)
        return real_getaddrinfo(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebound)
    with pytest.raises(Forbidden, match=r"data\.example\.org is refused.*127\.0\.0\.1.*loopback"):
        check_url(f"http://{HOST}/data.csv", allowed_hosts=[HOST])
    with pytest.raises(Forbidden, match="loopback"):
        fetch(
            f"http://{HOST}/data.csv",
            allowed_hosts=[HOST],
            workdir=tmp_path,
            max_bytes=1000,
            timeout=5,
        )
    assert no_sockets == []


def test_localhost_is_refused(no_sockets: list[tuple[Any, ...]]) -> None:
    with pytest.raises(Forbidden, match="loopback"):
        check_url("http://localhost/", allowed_hosts=["localhost"])


def test_any_private_address_among_the_answers_refuses_the_host() -> None:
    def mixed(host: str, port: int) -> list[str]:
        return [PUBLIC, "10.0.0.7"]

    with pytest.raises(Forbidden, match=r"10\.0\.0\.7 is a private address"):
        check_url(f"https://{HOST}/", allowed_hosts=[HOST], resolve=mixed)


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "ftp://data.example.org/file.csv",
        "gopher://data.example.org/",
        "http://user:secret@data.example.org/",
        "http://user@data.example.org/",
        "http://@data.example.org/",
        "http://data.example.org@127.0.0.1/",
        "http://data.example.org\\@127.0.0.1/",
    ],
)
def test_other_schemes_and_credentials_are_refused(url: str) -> None:
    with pytest.raises(Forbidden):
        check_url(url, allowed_hosts=[HOST, "127.0.0.1"], resolve=public_dns)


# httpx itself refuses dotted IPv4 with leading zeros, so 0177.0.0.1 never becomes a host.
@pytest.mark.parametrize(
    "url", ["http:///nohost", "http://exa mple.org/", "http://[::1/", "http://0177.0.0.1/"]
)
def test_urls_that_are_not_urls_are_invalid(url: str) -> None:
    with pytest.raises(InvalidRequest):
        check_url(url, allowed_hosts=[HOST], resolve=public_dns)


def test_nothing_is_fetched_when_the_allow_list_is_empty() -> None:
    with pytest.raises(Forbidden, match="ALLOWED_HOSTS is empty"):
        check_url(f"https://{HOST}/", allowed_hosts=[], resolve=public_dns)


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://data.example.org/a.csv", ["data.example.org"]),
        ("https://DATA.Example.ORG/a.csv", ["data.example.org"]),
        ("https://data.example.org/a.csv", ["Data.Example.Org"]),
        ("http://data.example.org/a.csv", ["data.example.org"]),
        ("http://data.example.org:80/a.csv", ["data.example.org"]),
        ("https://data.example.org:8443/a.csv", ["data.example.org:8443"]),
        ("https://files.example.org/a.csv", ["*.example.org"]),
        ("https://a.b.example.org/a.csv", ["*.example.org"]),
        ("https://xn--bcher-kva.example/a.csv", ["bücher.example"]),
        ("https://bücher.example/a.csv", ["xn--bcher-kva.example"]),
        (f"https://{PUBLIC}/a.csv", [PUBLIC]),
    ],
)
def test_allow_list_matches(url: str, allowed: list[str]) -> None:
    host, addresses = check_url(url, allowed_hosts=allowed, resolve=public_dns)
    assert addresses == [PUBLIC]
    assert host == host.lower()


@pytest.mark.parametrize(
    ("url", "allowed", "says"),
    [
        ("https://other.example.org/", ["data.example.org"], "not in"),
        ("https://evil-example.org/", ["example.org"], "not in"),
        ("https://example.org.evil.com/", ["example.org"], "not in"),
        ("https://data.example.org./", ["data.example.org"], "not in"),
        ("https://example.org/", ["*.example.org"], "not in"),
        ("https://data.example.org:8443/", ["data.example.org"], "not on port 8443"),
        ("http://data.example.org:443/", ["data.example.org"], "not on port 443"),
        ("https://data.example.org/", ["data.example.org:8443"], "not on port 443"),
    ],
)
def test_allow_list_refusals(url: str, allowed: list[str], says: str) -> None:
    with pytest.raises(Forbidden, match=says):
        check_url(url, allowed_hosts=allowed, resolve=public_dns)


@pytest.mark.parametrize(
    "entry", ["https://data.example.org", "data.example.org/x", "a.org:x", "*"]
)
def test_bad_allow_list_entries_are_configuration_errors(entry: str) -> None:
    with pytest.raises(ConfigurationError):
        check_url(f"https://{HOST}/", allowed_hosts=[entry], resolve=public_dns)


def test_the_setting_splits_on_commas() -> None:
    assert split_allowed_hosts(" a.org, *.b.org:8443 ,,") == ["a.org", "*.b.org:8443"]
    assert split_allowed_hosts("") == []
    with pytest.raises(TypeError):
        check_url(f"https://{HOST}/", allowed_hosts="data.example.org", resolve=public_dns)


def test_a_name_that_cannot_be_resolved_is_invalid() -> None:
    def nxdomain(host: str, port: int) -> list[str]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    with pytest.raises(InvalidRequest, match="could not be resolved"):
        check_url(f"https://{HOST}/", allowed_hosts=[HOST], resolve=nxdomain)


# Redirects, status and size, against a mock transport


def test_redirect_to_another_host_is_refused(tmp_path: Path) -> None:
    recorder = Recorder({"/a.csv": (302, {"Location": "https://127.0.0.1/a.csv"}, b"")})
    with pytest.raises(Forbidden, match=r"another host, 127\.0\.0\.1"):
        fetch_from(
            recorder,
            f"https://{HOST}/a.csv",
            tmp_path,
            allowed_hosts=[HOST, "127.0.0.1", "*.example.org"],
        )
    assert [str(r.url) for r in recorder.requests] == [f"https://{HOST}/a.csv"]


def test_redirect_to_a_sibling_allowed_host_is_refused(tmp_path: Path) -> None:
    recorder = Recorder({"/a.csv": (301, {"Location": "//files.example.org/a.csv"}, b"")})
    with pytest.raises(Forbidden, match="another host"):
        fetch_from(recorder, f"https://{HOST}/a.csv", tmp_path, allowed_hosts=["*.example.org"])
    assert len(recorder.requests) == 1


def test_redirect_from_https_to_http_is_refused(tmp_path: Path) -> None:
    recorder = Recorder({"/a.csv": (302, {"Location": f"http://{HOST}/b"}, b"")})
    with pytest.raises(Forbidden, match="from https to http"):
        fetch_from(recorder, f"https://{HOST}/a.csv", tmp_path, allowed_hosts=[HOST])


def test_each_hop_is_resolved_and_vetted_again(tmp_path: Path) -> None:
    answers = iter([[PUBLIC], ["127.0.0.1"]])

    def rebinding(host: str, port: int) -> list[str]:
        return next(answers)

    recorder = Recorder({"/a.csv": (307, {"Location": "/b.csv"}, b"")})
    with pytest.raises(Forbidden, match="loopback"):
        fetch(
            f"https://{HOST}/a.csv",
            allowed_hosts=[HOST],
            workdir=tmp_path,
            max_bytes=1000,
            timeout=5,
            resolve=rebinding,
            transport=recorder.transport,
        )
    assert len(recorder.requests) == 1


def chain(length: int) -> Recorder:
    """Redirects /0 -> /1 -> ... -> /length, which answers the body."""
    routes: dict[str, Route] = {
        f"/{i}": (302, {"Location": f"/{i + 1}"}, b"") for i in range(length)
    }
    routes[f"/{length}"] = (200, {"Content-Type": "text/csv"}, b"end")
    return Recorder(routes)


def test_redirect_chains_are_capped(tmp_path: Path) -> None:
    recorder = chain(MAX_REDIRECTS + 1)
    with pytest.raises(InvalidRequest, match=f"more than {MAX_REDIRECTS} times"):
        fetch_from(recorder, f"https://{HOST}/0", tmp_path, allowed_hosts=[HOST])
    assert len(recorder.requests) == MAX_REDIRECTS + 1
    assert list(tmp_path.iterdir()) == []


def test_redirect_chains_within_the_cap_are_followed(tmp_path: Path) -> None:
    recorder = chain(MAX_REDIRECTS)
    fetched = fetch_from(recorder, f"https://{HOST}/0", tmp_path, allowed_hosts=[HOST])
    assert fetched.url == f"https://{HOST}/{MAX_REDIRECTS}"
    assert fetched.path.read_bytes() == b"end"
    assert fetched.content_type == "text/csv"


@pytest.mark.parametrize("status", [204, 206, 304, 404, 500])
def test_only_200_is_accepted(status: int, tmp_path: Path) -> None:
    recorder = Recorder({"/a.csv": (status, {}, b"")})
    with pytest.raises(InvalidRequest, match=f"HTTP {status}") as caught:
        fetch_from(recorder, f"https://{HOST}/a.csv", tmp_path, allowed_hosts=[HOST])
    assert caught.value.details == {"upstream_status": status}
    assert list(tmp_path.iterdir()) == []


def test_a_redirect_without_location_is_invalid(tmp_path: Path) -> None:
    recorder = Recorder({"/a.csv": (302, {}, b"")})
    with pytest.raises(InvalidRequest, match="without a Location"):
        fetch_from(recorder, f"https://{HOST}/a.csv", tmp_path, allowed_hosts=[HOST])


def test_an_announced_oversized_body_is_refused_before_reading(tmp_path: Path) -> None:
    recorder = Recorder({"/a.csv": (200, {"Content-Length": "2000"}, b"x" * 2000)})
    with pytest.raises(PayloadTooLarge, match="limit of 1000 bytes"):
        fetch_from(recorder, f"https://{HOST}/a.csv", tmp_path, allowed_hosts=[HOST])
    assert list(tmp_path.iterdir()) == []


def test_an_oversized_streamed_body_is_refused_and_the_file_removed(tmp_path: Path) -> None:
    def endless() -> Iterator[bytes]:
        while True:
            yield b"x" * 4096

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=endless())

    with pytest.raises(PayloadTooLarge):
        fetch(
            f"https://{HOST}/a.csv",
            allowed_hosts=[HOST],
            workdir=tmp_path,
            max_bytes=100_000,
            timeout=5,
            resolve=public_dns,
            transport=httpx.MockTransport(answer),
        )
    assert list(tmp_path.iterdir()) == []


def test_a_body_of_exactly_max_bytes_is_accepted(tmp_path: Path) -> None:
    recorder = Recorder({"/a.csv": (200, {}, b"x" * 1000)})
    fetched = fetch_from(recorder, f"https://{HOST}/a.csv", tmp_path, allowed_hosts=[HOST])
    assert fetched.size == 1000


def test_a_compressed_body_is_refused(tmp_path: Path) -> None:
    recorder = Recorder({"/a.csv": (200, {"Content-Encoding": "gzip"}, b"\x1f\x8b")})
    with pytest.raises(InvalidRequest, match="gzip-compressed"):
        fetch_from(recorder, f"https://{HOST}/a.csv", tmp_path, allowed_hosts=[HOST])
    assert recorder.requests[0].headers["accept-encoding"] == "identity"


# Against a real HTTP server on loopback


class Handler(BaseHTTPRequestHandler):
    server: Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self.server.hosts.append(self.headers.get("Host", ""))
        if self.path == "/data.csv":
            self.send_response(200)
            self.send_header("Content-Type", "text/csv")
            self.send_header("Content-Length", str(len(BODY)))
            self.end_headers()
            self.wfile.write(BODY)
        elif self.path == "/moved":
            self.send_response(302)
            self.send_header("Location", "/data.csv")
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif self.path == "/drip":
            self.send_response(200)
            self.end_headers()
            self.drip(b"x")
        elif self.path == "/drip-headers":
            self.wfile.write(b"HTTP/1.1 200 OK\r\nX-Slow: ")
            self.drip(b"y")

    def drip(self, byte: bytes) -> None:
        """One byte every 50 ms for at most 5 seconds, or until the client hangs up."""
        try:
            for _ in range(100):
                self.wfile.write(byte)
                self.wfile.flush()
                time.sleep(0.05)
        except OSError:
            pass


class Server(ThreadingHTTPServer):
    daemon_threads = True
    hosts: list[str]


@pytest.fixture
def server() -> Iterator[Server]:
    httpd = Server(("127.0.0.1", 0), Handler)
    httpd.hosts = []
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()
    thread.join()


@pytest.fixture
def no_name_lookups(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail any DNS lookup of a name: the fetch may only connect to addresses it was given."""
    real_getaddrinfo = socket.getaddrinfo

    def numeric_only(host: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise AssertionError(f"{host} was resolved again") from None
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", numeric_only)


def loopback_fetch(server: Server, path: str, workdir: Path, **caps: Any) -> Any:
    port = server.server_address[1]
    return fetch(
        f"http://{HOST}:{port}{path}",
        allowed_hosts=[f"{HOST}:{port}"],
        workdir=workdir,
        resolve=loopback_dns,
        vet=loopback_ok,
        **{"max_bytes": 10_000_000, "timeout": 5.0, **caps},
    )


@pytest.mark.usefixtures("no_name_lookups")
def test_a_fetch_streams_the_bytes_to_disk(server: Server, tmp_path: Path) -> None:
    fetched = loopback_fetch(server, "/data.csv", tmp_path)
    port = server.server_address[1]
    assert fetched.path.parent == tmp_path
    assert fetched.path.suffix == ".csv"
    assert fetched.path.read_bytes() == BODY
    assert fetched.size == len(BODY)
    assert fetched.content_type == "text/csv"
    assert fetched.url == f"http://{HOST}:{port}/data.csv"
    # Connected to the pinned 127.0.0.1, yet the server saw the name in the Host header.
    assert server.hosts == [f"{HOST}:{port}"]


@pytest.mark.usefixtures("no_name_lookups")
def test_a_real_redirect_on_the_same_host_is_followed(server: Server, tmp_path: Path) -> None:
    fetched = loopback_fetch(server, "/moved", tmp_path)
    assert fetched.path.read_bytes() == BODY
    assert fetched.url.endswith("/data.csv")
    assert len(server.hosts) == 2


def test_the_loopback_server_is_refused_without_the_test_vetting(
    server: Server, tmp_path: Path
) -> None:
    port = server.server_address[1]
    with pytest.raises(Forbidden, match="loopback"):
        fetch(
            f"http://{HOST}:{port}/data.csv",
            allowed_hosts=[f"{HOST}:{port}"],
            workdir=tmp_path,
            max_bytes=10_000_000,
            timeout=5,
            resolve=loopback_dns,
        )
    assert server.hosts == []


def test_a_body_over_the_cap_from_a_real_server_leaves_no_file(
    server: Server, tmp_path: Path
) -> None:
    with pytest.raises(PayloadTooLarge):
        loopback_fetch(server, "/data.csv", tmp_path, max_bytes=len(BODY) - 1)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("path", ["/drip", "/drip-headers"])
def test_a_slow_drip_is_cut_off_at_the_deadline(server: Server, tmp_path: Path, path: str) -> None:
    started = time.monotonic()
    with pytest.raises(ServiceUnavailable, match=r"time limit of 0\.5 seconds"):
        loopback_fetch(server, path, tmp_path, timeout=0.5)
    elapsed = time.monotonic() - started
    # Each byte arrives well within any per-read timeout; only the overall deadline stops it.
    assert 0.4 < elapsed < 1.5
    assert list(tmp_path.iterdir()) == []


def test_a_closed_port_is_an_invalid_request(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(InvalidRequest, match="could not fetch"):
        fetch(
            f"http://{HOST}:{port}/x",
            allowed_hosts=[f"{HOST}:{port}"],
            workdir=tmp_path,
            max_bytes=1000,
            timeout=5,
            resolve=loopback_dns,
            vet=loopback_ok,
        )


# TLS: connect to the pinned address, but name and verify the host


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is needed to make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    request = f"req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN={HOST}".split()
    request += ["-addext", f"subjectAltName=DNS:{HOST}", "-keyout", str(key), "-out", str(cert)]
    subprocess.run([openssl, *request], check=True, capture_output=True)
    return cert, key


@pytest.fixture
def tls_server(certificate: tuple[Path, Path]) -> Iterator[tuple[Server, list[str | None]]]:
    cert, key = certificate
    names: list[str | None] = []
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)

    def record_name(sock: Any, name: str | None, ctx: Any) -> None:
        names.append(name)

    context.sni_callback = record_name
    httpd = Server(("127.0.0.1", 0), Handler)
    httpd.hosts = []
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd, names
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def https_fetch(server: Server, workdir: Path) -> Any:
    port = server.server_address[1]
    return fetch(
        f"https://{HOST}:{port}/data.csv",
        allowed_hosts=[f"{HOST}:{port}"],
        workdir=workdir,
        max_bytes=10_000_000,
        timeout=5,
        resolve=loopback_dns,
        vet=loopback_ok,
    )


@pytest.mark.usefixtures("no_name_lookups")
def test_tls_names_and_verifies_the_host_not_the_address(
    tls_server: tuple[Server, list[str | None]],
    certificate: tuple[Path, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server, names = tls_server
    trusting = ssl.create_default_context(cafile=str(certificate[0]))
    monkeypatch.setattr(remote, "_ssl_context", lambda: trusting)
    # The certificate names data.example.org only: verifying against 127.0.0.1 would fail.
    fetched = https_fetch(server, tmp_path)
    assert fetched.path.read_bytes() == BODY
    assert names == [HOST]
    assert server.hosts == [f"{HOST}:{server.server_address[1]}"]


def test_an_untrusted_certificate_is_refused(
    tls_server: tuple[Server, list[str | None]], tmp_path: Path
) -> None:
    server, names = tls_server
    with pytest.raises(InvalidRequest, match="could not fetch"):
        https_fetch(server, tmp_path)
    assert names == [HOST]
    assert server.hosts == []
    assert list(tmp_path.iterdir()) == []
