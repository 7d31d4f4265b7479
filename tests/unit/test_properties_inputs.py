"""Properties of the parsers that read what clients send as JSON documents, tokens and URLs: each
answers a value or the hub's own error, never another exception; and what they accept, the hub
can store and answer again."""

from __future__ import annotations

import base64
import ipaddress
import json
import string
from typing import Any

import orjson
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from dphub.api.routes.dataproxy import FORMATS, _options
from dphub.auth.oidc import unverified_claims
from dphub.auth.sso import LOOPBACK_NEXT_HOSTS, check_next
from dphub.datapackage import MAX_DEPTH, parse_descriptor
from dphub.dataproxy.remote import address_problem
from dphub.errors import InvalidDescriptor, InvalidRequest, InvalidToken
from dphub.events.webhooks import check_url

PROPERTY = settings(derandomize=True, database=None, deadline=None, max_examples=200)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=2) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=10,
)


def _nested(depth: int) -> bytes:
    return b'{"name": "p", "x": ' + b"[" * depth + b"]" * depth + b"}"


@PROPERTY
@given(
    st.one_of(
        json_values.map(lambda v: json.dumps({"name": "p", "x": v}).encode()),
        st.integers(min_value=0, max_value=3000).map(_nested),
        st.binary(max_size=40),
        st.text(max_size=40).map(str.encode),
    )
)
@example(_nested(MAX_DEPTH - 2))
@example(_nested(MAX_DEPTH - 1))
@example(_nested(300))
@example(_nested(5000))
@example(b'{"a": NaN}')
@example(b'{"a": 1' + b"0" * 5000 + b"}")
@example(b"\xef\xbb\xbf{}")
@example(b'{"a": "\xff"}')
def test_a_descriptor_is_one_the_hub_can_store_or_invalid_descriptor(raw: bytes) -> None:
    try:
        descriptor = parse_descriptor(raw)
    except InvalidDescriptor:
        with pytest.raises(InvalidDescriptor) as refused:
            parse_descriptor(raw)
        assert refused.value.status == 400
        assert [p["file"] for p in refused.value.details["problems"]] == ["datapackage.json"]
        return
    assert isinstance(descriptor, dict)
    # the hub writes descriptors with orjson, which stops at 255 levels
    assert orjson.loads(orjson.dumps(descriptor)) == descriptor


def _segment(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


@PROPERTY
@given(
    st.one_of(
        st.text(max_size=60),
        st.tuples(json_values, json_values).map(lambda p: f"{_segment(p[0])}.{_segment(p[1])}.s"),
    )
)
@example("a.b.c")
@example("é.é.é")
@example(".".join([base64.urlsafe_b64encode(b"[" * 5000).decode()] * 3))
def test_a_ci_token_is_its_claims_or_invalid_token(token: str) -> None:
    try:
        claims = unverified_claims(token)
    except InvalidToken:
        with pytest.raises(InvalidToken) as refused:
            unverified_claims(token)
        assert refused.value.status == 401
        return
    assert isinstance(claims, dict)
    assert token.count(".") == 2


def _public(host: str, port: int) -> list[str]:
    return ["93.184.216.34"]


def _private(host: str, port: int) -> list[str]:
    return ["10.0.0.1"]


url_text = st.one_of(
    st.text(max_size=40),
    st.builds(
        "{}://{}{}{}".format,
        st.sampled_from(["https", "http", "ftp", "HTTPS"]),
        st.text(alphabet=string.ascii_lowercase + string.digits + ".-[]:@%", max_size=20),
        st.sampled_from(["", ":443", ":0", ":99999", ":x"]),
        st.sampled_from(["", "/", "/hook?x=1", "#frag", "/a b"]),
    ),
)


@PROPERTY
@given(url_text, st.booleans())
@example("https://a]b", False)
@example("https://[::1", False)
@example("https://[::1]/", False)
@example("https://user@example.org/", False)
@example("https://0x7f.1/", False)
@example("https://example.org:0/", False)
def test_a_webhook_url_is_a_public_destination_or_refused(url: str, resolves_private: bool) -> None:
    def vet() -> Any:
        return check_url(
            url,
            allow_http=False,
            allow_private=False,
            resolve=_private if resolves_private else _public,
        )

    try:
        destination = vet()
    except InvalidRequest:
        with pytest.raises(InvalidRequest) as refused:
            vet()
        assert refused.value.status == 400
        return
    assert destination.scheme == "https"
    assert destination.host == destination.host.lower()
    assert 0 < destination.port < 65536
    for address in destination.addresses:
        assert address_problem(ipaddress.ip_address(address)) is None


@PROPERTY
@given(
    st.one_of(
        st.text(max_size=40),
        st.builds(
            "http://{}:{}/{}".format,
            st.sampled_from([*sorted(LOOPBACK_NEXT_HOSTS), "evil.example", "127.0.0.2"]),
            st.integers(min_value=0, max_value=70000),
            st.text(alphabet=string.ascii_letters + "/?#@", max_size=8),
        ),
    )
)
@example("//evil.example/")
@example("/\\evil.example")
@example("http://[")
@example("http://127.0.0.1:99999/")
@example("http://user@127.0.0.1:80/")
@example("javascript:alert(1)")
def test_a_login_only_returns_to_this_hub_or_the_command_line(value: str) -> None:
    try:
        target = check_next(value)
    except InvalidRequest:
        with pytest.raises(InvalidRequest) as refused:
            check_next(value)
        assert refused.value.details == {"field": "next"}
        return
    if target.startswith("/"):
        assert not target.startswith("//")
        assert "\\" not in target
    else:
        assert target.startswith("http://")
        host_and_port = target.removeprefix("http://").split("/", 1)[0]
        host, _, port = host_and_port.rpartition(":")
        assert host in LOOPBACK_NEXT_HOSTS
        assert 0 <= int(port) < 65536


@PROPERTY
@given(
    st.one_of(st.sampled_from(FORMATS), st.text(max_size=8)),
    st.one_of(st.none(), st.text(alphabet=string.ascii_letters + " ,", max_size=20)),
    st.one_of(st.none(), st.text(max_size=6)),
)
@example("csv", " a, ,b,a ", "²")
@example("json", ",,,", "3")
def test_dataproxy_options_read_back_or_are_refused(
    fmt: str, fields: str | None, sheet: str | None
) -> None:
    def read() -> Any:
        return _options(fmt, None, 0, fields, None, None, sheet, True)

    if fmt not in FORMATS:
        with pytest.raises(InvalidRequest) as refused:
            read()
        assert refused.value.status == 400
        return
    options = read()
    assert options.format == fmt
    listed = tuple(f.strip() for f in (fields or "").split(",") if f.strip())
    # ",,," names no column: the DataProxy refuses it, rather than answer every column
    assert options.fields == (listed if fields else None)
    if sheet is not None and sheet.isascii() and sheet.isdigit():
        assert options.sheet == int(sheet)
    else:
        assert options.sheet == sheet
