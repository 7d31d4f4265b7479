"""The CKAN compatibility layer's own rules: dataset names, ``fq`` and the error envelope."""

from __future__ import annotations

import itertools
import string

import pytest

from dphub.compat.ckan import bad_request, ckan_name, failure, package_of, parse_fq
from dphub.errors import (
    InvalidQuery,
    InvalidRequest,
    InvalidToken,
    PackageNotFound,
    QueryTimeout,
    RateLimited,
)
from dphub.names import is_valid_name

BASE = "http://hub.example"
CKAN_CHARS = set(string.ascii_lowercase + string.digits + "-_")


def test_names_are_ckan_names_and_read_back() -> None:
    assert ckan_name("alice", "gdp") == "alice--gdp"
    assert ckan_name("acme", "world_bank.v2") == "acme--world__bank_dv2"
    assert ckan_name("a--b", "c-") == "a-_hb--c_h"
    for owner, name in [("alice", "gdp"), ("acme", "world_bank.v2"), ("x-y.z", "a--b_c-")]:
        assert package_of(ckan_name(owner, name)) == (owner, name)
    assert package_of("alice/gdp") == ("alice", "gdp")


def test_every_pair_of_short_names_has_its_own_ckan_name() -> None:
    """All owner and package names of up to three characters of a, 0, '-', '_' and '.'."""
    parts = ["".join(p) for n in (1, 2, 3) for p in itertools.product("a0-_.", repeat=n)]
    valid = [p for p in parts if is_valid_name(p)]
    seen: dict[str, tuple[str, str]] = {}
    for owner, name in itertools.product(valid, valid):
        written = ckan_name(owner, name)
        assert set(written) <= CKAN_CHARS
        assert written not in seen, (seen[written], (owner, name))
        seen[written] = (owner, name)
        assert package_of(written) == (owner, name)


@pytest.mark.parametrize(
    "dataset",
    ["alice-gdp", "alice--gd_hp", "alice--x_q", "alice--", "--gdp", "alice--g_", "a/b/c", "A--b"],
)
def test_other_spellings_name_no_package(dataset: str) -> None:
    assert package_of(dataset) is None


def test_fq_terms_become_search_filters() -> None:
    filters = parse_fq(
        'organization:acme AND tags:(weather OR "sea level") +license_id:"CC-BY-4.0" res_format:CSV'
    )
    assert filters.facets == {
        "owner": ("acme",),
        "keyword": ("weather", "sea level"),
        "license": ("CC-BY-4.0",),
        "format": ("csv",),
    }
    assert filters.nothing is False
    assert parse_fq("+dataset_type:dataset state:active").facets == {}
    assert parse_fq("dataset_type:harvest").nothing is True
    assert parse_fq("").facets == {}
    assert parse_fq(r'tags:"say \"hi\""').facets == {"keyword": ('say "hi"',)}


@pytest.mark.parametrize(
    "fq",
    [
        "groups:x",
        "tags",
        "tags:",
        "tags:(a OR",
        "tags:a OR tags:b",
        "tags:a tags:b",
        "organization:a owner_org:b",
        "tags:a&&res_format:csv",
        "-tags:a",
    ],
)
def test_fq_that_cannot_be_read(fq: str) -> None:
    with pytest.raises(InvalidQuery) as caught:
        parse_fq(fq)
    assert caught.value.message.startswith("fq")


def test_errors_in_ckans_envelope() -> None:
    status, body = failure(BASE, "package_show", PackageNotFound())
    assert status == 404
    assert body == {
        "help": f"{BASE}/api/3/action/help_show?name=package_show",
        "success": False,
        "error": {"__type": "Not Found Error", "message": "Not found: No such package."},
    }
    status, body = failure(BASE, "package_list", InvalidToken())
    assert status == 403
    assert body["error"]["__type"] == "Authorization Error"
    status, body = failure(BASE, "package_search", InvalidRequest("Missing value", field="rows"))
    assert status == 409
    assert body["error"] == {
        "__type": "Validation Error",
        "message": "Missing value",
        "rows": ["Missing value"],
    }
    status, body = failure(BASE, "package_search", InvalidQuery("fq: no"))
    assert (status, body["error"]["__type"]) == (400, "Search Query Error")
    # a query problem of the datastore is a validation error, under the parameter it names
    status, body = failure(BASE, "datastore_search", InvalidQuery("filters: 'x' is not a column"))
    assert status == 409
    assert body["error"]["filters"] == ["filters: 'x' is not a column"]
    status, body = failure(BASE, "datastore_search_sql", QueryTimeout())
    assert (status, body["error"]["__type"]) == (409, "Validation Error")
    status, body = failure(BASE, "package_list", RateLimited(retry_after=3))
    assert status == 429
    status, body = bad_request(BASE, "nope", "Action name not known: nope")
    assert status == 400
    assert body["error"]["message"] == "Bad request - Action name not known: nope"
