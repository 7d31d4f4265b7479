"""Schemathesis against the hub's own API description (``/openapi.json``).

Every documented operation is called with generated requests, valid and not, three times: with no
credentials, as a publisher and as a site administrator. No request a client can send may answer
5xx, and every answer must be one the description documents: its status, its content type and its
body's schema. Known owners, packages, revisions, files, tables and URLs are mixed into the
generated values, so requests reach real packages and not only "not found". The web pages, which
the API description leaves out, are called the same way, anonymously and signed in.

Generation is derandomized with a fixed seed: every run sends the same requests. The requests that
once answered 500 come first, as plain regression tests, before the fuzzer deletes what it reaches.
The hub is the embedded one: the scale hub would add PostgreSQL, S3 and four processes to a module
that has a minute and a half.
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.generation import GenerationMode
from schemathesis.generation.case import Case
from schemathesis.schemas import APIOperation, BaseSchema

from tests.fuzz.conftest import Fuzzer, World
from tests.fuzz.described import API, PAGES, labels

EXAMPLES = int(os.environ.get("DPHUB_FUZZ_EXAMPLES", "10"))
"""Generated requests per operation and caller: ten keep the module within a minute and a half
on two busy cores. Set ``DPHUB_FUZZ_EXAMPLES`` higher for a deeper run by hand."""
CONFORMANCE = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
NO_SERVER_ERROR = [not_a_server_error]
SIGNED_UPLOADS = frozenset(
    {
        "POST /api/bitstore/upload",
        "PUT /api/bitstore/upload/{key}",
        "PUT /api/bitstore/multipart/{upload_id}/{number}",
    }
)
"""They take a form or URL the hub signed; a generated one is refused before any body is read
(with the S3-style answers the presigned-POST protocol prescribes), so only the no-5xx check
applies."""
PAGE_CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance]
CALLERS = ("anonymous", "publisher", "site-admin")
PAGE_CALLERS = ("anonymous", "publisher")


DEEP = "[" * 5000
CITIES_TABLE = "{owner}/regress/cities"
"""A table of a package no generated request names (the fuzzer may have deleted the others)."""
DEEP_SEGMENT = base64.urlsafe_b64encode(DEEP.encode()).decode().rstrip("=")
HOSTILE: list[tuple[str, str, str, dict[str, Any], int, str | None]] = [
    # (caller, method, path, request arguments, status, error code): each once answered 500
    ("anonymous", "GET", "/api/dataproxy", {"params": {"url": "http://["}}, 400, "invalid-request"),
    (
        "anonymous",
        "GET",
        "/api/datastore/search",
        {"params": {"resource_id": CITIES_TABLE, "filters": DEEP}},
        400,
        "invalid-query",
    ),
    (
        "anonymous",
        "GET",
        "/api/datastore/search",
        {"params": {"resource_id": CITIES_TABLE, "filters": '{"area": 1' + "0" * 400 + "}"}},
        400,
        "invalid-query",
    ),
    (
        "anonymous",
        "GET",
        "/api/datastore/search",
        {
            "params": {
                "resource_id": CITIES_TABLE,
                "filters": '{"updated": "0001-01-01T00:00:00+01:00"}',
            }
        },
        400,
        "invalid-query",
    ),
    (
        "anonymous",
        "GET",
        "/api/datastore/search",
        {"params": {"resource_id": CITIES_TABLE, "fields": DEEP}},
        400,
        "invalid-query",
    ),
    (
        "anonymous",
        "PUT",
        "/api/bitstore/upload/k",
        {"params": {"X-Dphub-Expires": "1", "X-Dphub-Size": "1", "X-Dphub-Signature": "é"}},
        403,
        "signature-mismatch",
    ),
    (
        "anonymous",
        "PUT",
        "/api/bitstore/multipart/u/1",
        {"params": {"X-Dphub-Expires": "1", "X-Dphub-Size": "1", "X-Dphub-Signature": "é"}},
        403,
        "signature-mismatch",
    ),
    (
        "anonymous",
        "POST",
        "/login",
        {"data": {"csrf": "é", "login": "x"}, "cookies": {"dphub_csrf": "a" * 43}},
        403,
        None,
    ),
    (
        "anonymous",
        "POST",
        "/login",
        {
            "data": {"csrf": "a" * 43, "login": "x"},
            "cookies": {"dphub_csrf": "a" * 43},
            "headers": {"Origin": "http://["},
        },
        403,
        None,
    ),
    (
        "anonymous",
        "POST",
        "/api/auth/token",
        {"headers": {"Authorization": "Basic é".encode("latin-1")}},
        401,
        "invalid-credentials",
    ),
    (
        "anonymous",
        "POST",
        "/api/auth/oidc/exchange",
        {"json": {"token": f"{DEEP_SEGMENT}.{DEEP_SEGMENT}.x"}},
        401,
        "invalid-token",
    ),
    (
        "publisher",
        "POST",
        "/api/package/upload",
        {"json": {"datapackage": "http://["}},
        400,
        "invalid-request",
    ),
    (
        "publisher",
        "GET",
        "/rawstore/presign",
        {"params": {"url": "http://["}},
        400,
        "invalid-request",
    ),
    (
        "publisher",
        "POST",
        "/api/publisher/{owner}/webhooks",
        {"json": {"url": "https://a]b"}},
        400,
        "invalid-request",
    ),
    (
        "anonymous",
        "POST",
        "/api/action/datastore_search",
        {"json": {"resource_id": CITIES_TABLE, "filters": DEEP}},
        409,
        None,
    ),
    (
        "anonymous",
        "GET",
        "/api/action/package_search",
        {"params": {"facet.field": DEEP}},
        409,
        None,
    ),
]


@pytest.mark.parametrize(
    ("caller", "method", "path", "arguments", "status", "code"),
    HOSTILE,
    ids=[f"{method} {path} {index}" for index, (_, method, path, *_) in enumerate(HOSTILE)],
)
def test_what_once_answered_500_is_refused_with_a_clear_error(
    world: World,
    fuzzer: Fuzzer,
    caller: str,
    method: str,
    path: str,
    arguments: dict[str, Any],
    status: int,
    code: str | None,
) -> None:
    owner = world.publisher.username
    filled = _with_owner(arguments, owner)
    answer = httpx.request(
        method,
        world.hub.url + path.replace("{owner}", owner),
        params=filled.get("params"),
        json=filled.get("json"),
        data=filled.get("data"),
        cookies=filled.get("cookies"),
        headers={**fuzzer.headers(caller), **filled.get("headers", {})},
        timeout=60,
    )
    assert answer.status_code == status, answer.text
    if code is not None:
        assert answer.json()["error"]["code"] == code, answer.text
    elif answer.headers["content-type"].startswith("application/json"):
        assert answer.json()["success"] is False  # CKAN's envelope


def _with_owner(value: Any, owner: str) -> Any:
    if isinstance(value, str):
        return value.replace("{owner}", owner)
    if isinstance(value, dict):
        return {key: _with_owner(item, owner) for key, item in value.items()}
    return value


@pytest.mark.parametrize(
    ("extra", "problem"),
    [
        (b"[" * 300 + b"]" * 300, "nested more than 64 levels"),
        (b"18446744073709551616", "larger than the hub keeps (64 bits)"),
    ],
    ids=["nested-300-deep", "integer-past-64-bits"],
)
def test_a_descriptor_the_hub_could_not_answer_again_is_refused_at_finalize(
    world: World, extra: bytes, problem: str
) -> None:
    """Both were accepted, and then every read of the package answered 500: the JSON writer
    stops at 255 levels and at 64-bit integers."""
    owner = world.publisher.username
    descriptor = (
        b'{"name": "odd", "resources": [{"name": "r", "path": "r.csv"}], "x": ' + extra + b"}"
    )
    files = {"datapackage.json": descriptor, "r.csv": b"a\n1\n"}
    with world.publisher.client() as http:
        filedata = {
            path: {"size": len(body), "sha256": hashlib.sha256(body).hexdigest()}
            for path, body in files.items()
        }
        granted = http.post(
            "/api/datastore/authorize",
            json={"metadata": {"owner": owner, "name": "odd"}, "filedata": filedata},
        )
        assert granted.status_code == 200, granted.text
        answers = granted.json()["filedata"]
        for path, body in files.items():
            put = httpx.put(
                answers[path]["put_url"], content=body, headers=answers[path]["put_headers"]
            )
            assert put.status_code == 204, put.text
        grant = answers["datapackage.json"]
        finalized = http.post(
            "/api/package/upload",
            json={"datapackage": f"{grant['upload_url']}/{grant['upload_query']['key']}"},
        )
    assert finalized.status_code == 400, finalized.text
    error = finalized.json()["error"]
    assert error["code"] == "invalid-descriptor"
    assert problem in error["message"]


def _operation(schema: BaseSchema, label: str) -> APIOperation:
    method, path = label.split(" ", 1)
    return schema[path][method]


def _cases(operation: APIOperation) -> st.SearchStrategy[Case]:
    """Valid requests, and (where there is something to get wrong) invalid ones."""
    valid = operation.as_strategy(generation_mode=GenerationMode.POSITIVE)
    takes_input = any(
        len(group) for group in (operation.path_parameters, operation.query, operation.headers)
    ) or bool(list(operation.body))
    if not takes_input:
        return valid
    return st.one_of(valid, operation.as_strategy(generation_mode=GenerationMode.NEGATIVE))


def _fuzz(operation: APIOperation, call: Callable[[Case], None]) -> None:
    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    @given(case=_cases(operation))
    def run(case: Case) -> None:
        call(case)

    run()


@pytest.mark.parametrize(
    ("caller", "label"),
    [(caller, label) for caller in CALLERS for label in labels(API)],
)
def test_operation(fuzzer: Fuzzer, caller: str, label: str) -> None:
    checks = NO_SERVER_ERROR if label in SIGNED_UPLOADS else CONFORMANCE

    def call(case: Case) -> None:
        case.call_and_validate(
            base_url=fuzzer.base_url,
            session=fuzzer.session,
            headers=fuzzer.headers(caller),
            checks=checks,
            allow_redirects=False,
        )

    _fuzz(_operation(fuzzer.api, label), call)


@pytest.mark.parametrize(
    ("caller", "label"),
    [(caller, label) for caller in PAGE_CALLERS for label in labels(PAGES)],
)
def test_page(fuzzer: Fuzzer, caller: str, label: str) -> None:
    def call(case: Case) -> None:
        case.call_and_validate(
            base_url=fuzzer.base_url,
            session=fuzzer.session,
            cookies=fuzzer.cookies(caller),
            checks=PAGE_CHECKS,
            allow_redirects=False,
        )

    _fuzz(_operation(fuzzer.pages, label), call)
