"""Properties of the CKAN compatibility layer's parsers: every package has one CKAN name that
leads back to it and no other name does; ``fq`` reads back the values it was written with; and
parameters that are not what an action takes are refused with a validation error."""

from __future__ import annotations

import re
import string
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from dphub.compat.ckan import ckan_name, package_of, parse_fq
from dphub.compat.ckan._params import json_value, names, whole
from dphub.compat.ckan._search import FQ_FIELDS
from dphub.errors import InvalidQuery, InvalidRequest
from dphub.names import NAME_PATTERN, is_valid_name

PROPERTY = settings(derandomize=True, database=None, deadline=None, max_examples=200)
CKAN_NAME = re.compile(r"[a-z0-9_-]+")

# names heavy in the characters the escaping is about
hub_names = st.from_regex(NAME_PATTERN, fullmatch=True).filter(is_valid_name) | st.text(
    alphabet="ab_.-", min_size=1, max_size=12
).map(lambda s: "a" + s).filter(is_valid_name)


@PROPERTY
@given(hub_names, hub_names)
@example("a-", "b")
@example("a--b", "c_d")
@example("a_h", "a.d")
@example("a__", "b-")
def test_a_package_has_one_ckan_name_that_leads_back_to_it(owner: str, name: str) -> None:
    dataset = ckan_name(owner, name)
    assert CKAN_NAME.fullmatch(dataset)
    assert package_of(dataset) == (owner, name)
    assert package_of(f"{owner}/{name}") == (owner, name)


@PROPERTY
@given(st.text(alphabet="ab_.-dh/", max_size=14) | st.text(max_size=14))
@example("a--b--c")
@example("a_x--b")
@example("a---b")
def test_a_ckan_name_names_at_most_one_package(dataset: str) -> None:
    found = package_of(dataset)
    if found is None:
        return
    owner, name = found
    assert is_valid_name(owner)
    assert is_valid_name(name)
    assert dataset in (ckan_name(owner, name), f"{owner}/{name}")


def _quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


fq_values = st.text(alphabet=string.ascii_letters + string.digits + ' "\\:()-_.é', max_size=10)


@PROPERTY
@given(
    st.dictionaries(
        st.sampled_from(sorted(FQ_FIELDS)), st.lists(fq_values, min_size=1, max_size=3), max_size=3
    ),
    st.sampled_from([" ", "  ", " AND "]),
)
def test_fq_reads_back_the_values_it_was_written_with(
    terms: dict[str, list[str]], gap: str
) -> None:
    facets = {FQ_FIELDS[field] for field in terms}
    if len(facets) < len(terms):  # organization and owner_org name one facet: given twice
        return
    written = gap.join(
        f"{field}:{_quoted(values[0])}"
        if len(values) == 1
        else f"{field}:({' OR '.join(_quoted(v) for v in values)})"
        for field, values in terms.items()
    )
    read = parse_fq(written)
    expected = {
        FQ_FIELDS[field]: tuple(v.lower() if FQ_FIELDS[field] == "format" else v for v in values)
        for field, values in terms.items()
    }
    assert read.facets == expected
    assert not read.nothing


@PROPERTY
@given(st.text(max_size=60))
@example("tags:(a OR")
@example("tags:a tags:b")
@example("dataset_type:harvest")
@example('tags:"a\\')
def test_any_fq_is_filters_or_invalid_query(fq: str) -> None:
    try:
        parse_fq(fq)
    except InvalidQuery:
        with pytest.raises(InvalidQuery) as refused:
            parse_fq(fq)
        assert refused.value.status == 400
        assert refused.value.details == {"parameter": "fq"}


json_like = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=6,
)


@PROPERTY
@given(st.one_of(json_like, st.text(max_size=30)), st.sampled_from([dict, list]))
@example("[" * 5000, list)
@example("{" * 5000, dict)
@example('{"a": NaN}', dict)
def test_a_json_parameter_is_its_value_or_a_validation_error(value: Any, kind: type) -> None:
    params = {"filters": value}
    try:
        found = json_value(params, "filters", kind, "{}")
    except InvalidRequest:
        with pytest.raises(InvalidRequest) as refused:
            json_value(params, "filters", kind, "{}")
        assert refused.value.details == {"field": "filters"}
        return
    assert found is None or isinstance(found, kind)
    if isinstance(value, kind):
        assert found == value


@PROPERTY
@given(st.one_of(json_like, st.text(max_size=30)))
@example("[" * 5000)
def test_a_list_of_names_is_names_or_a_validation_error(value: Any) -> None:
    try:
        found = names({"fields": value}, "fields")
    except InvalidRequest:
        return
    assert found is None or all(isinstance(n, str) for n in found)
    if isinstance(value, str) and value and not value.lstrip().startswith("["):
        assert found == [value]


@PROPERTY
@given(st.one_of(st.integers(), st.text(max_size=40), st.booleans(), st.floats()))
@example("9" * 31)
@example(" 5 ")
@example("-0")
def test_a_natural_number_is_cut_to_the_most_or_refused(value: Any) -> None:
    try:
        found = whole({"rows": value}, "rows", 10, most=1000)
    except InvalidRequest:
        with pytest.raises(InvalidRequest) as refused:
            whole({"rows": value}, "rows", 10, most=1000)
        assert refused.value.details == {"field": "rows"}
        return
    assert 0 <= found <= 1000
    if value == "":
        assert found == 10
    else:
        assert found == min(int(value), 1000)
