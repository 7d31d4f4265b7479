"""Properties of names, tags and paths: what is accepted comes back unchanged, what is refused is
refused with the hub's own error, and no accepted path ever leads out of the package."""

from __future__ import annotations

import posixpath
import re
import string
from pathlib import PurePosixPath

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from dphub.errors import InvalidName, InvalidPath
from dphub.names import (
    MAX_PATH_LENGTH,
    NAME_PATTERN,
    RESERVED_NAMES,
    REVISION_WORDS,
    check_name,
    check_path,
    check_publisher_name,
    is_valid_name,
    is_valid_tag,
    path_problem,
    tag_problem,
)

PROPERTY = settings(derandomize=True, database=None, deadline=None, max_examples=300)

valid_names = st.from_regex(NAME_PATTERN, fullmatch=True).filter(lambda n: not n.endswith("."))
name_like = st.text(
    alphabet=string.ascii_letters + string.digits + "_.-/ \\\n\t\x00é", max_size=110
)
anything = st.one_of(
    st.none(), st.integers(), st.floats(), st.binary(), st.lists(st.text()), st.text(), name_like
)
path_alphabet = st.sampled_from(
    ["a", "b", ".", "..", "/", "\\", ":", "C:", " ", "\x00", "é", "%2e"]
)
path_like = st.lists(path_alphabet, max_size=12).map("".join)
segments = st.text(alphabet=string.ascii_letters + string.digits + "_-. ", min_size=1, max_size=20)
relative_paths = st.lists(segments.filter(lambda s: s not in (".", "..")), min_size=1, max_size=6)


@PROPERTY
@given(valid_names)
def test_a_valid_name_comes_back_unchanged(name: str) -> None:
    assert is_valid_name(name)
    assert check_name(name) == name
    assert check_name(name, what="owner") == name


@PROPERTY
@given(anything)
@example("abc\n")
@example("a" * 101)
@example("trailing.")
@example("ÄBC")
def test_a_name_is_accepted_exactly_when_it_follows_the_pattern(value: object) -> None:
    follows = (
        isinstance(value, str)
        and re.fullmatch(r"[a-z0-9][a-z0-9_.-]{0,99}", value) is not None
        and not value.endswith(".")
    )
    if follows:
        assert check_name(value, what="owner") == value
        return
    with pytest.raises(InvalidName) as refused:
        check_name(value, what="owner")
    assert refused.value.code == "invalid-name"
    assert refused.value.status == 400
    assert refused.value.details == {"field": "owner"}
    assert refused.value.message.startswith("owner ")


@PROPERTY
@given(st.one_of(valid_names, st.sampled_from(sorted(RESERVED_NAMES))))
def test_a_publisher_name_is_refused_when_reserved(name: str) -> None:
    if name not in RESERVED_NAMES:
        assert check_publisher_name(name) == name
        return
    with pytest.raises(InvalidName) as refused:
        check_publisher_name(name)
    assert refused.value.details == {"field": "publisher"}
    assert "reserved" in refused.value.message


@PROPERTY
@given(relative_paths)
def test_a_relative_path_comes_back_unchanged(parts: list[str]) -> None:
    path = "/".join(parts)
    if len(path) <= MAX_PATH_LENGTH:
        assert path_problem(path) is None
        assert check_path(path) == path


@PROPERTY
@given(st.one_of(path_like, st.text(max_size=40), anything))
@example("../etc/passwd")
@example("a/../../b")
@example("/etc/passwd")
@example("C:/Windows")
@example("a\\..\\b")
@example("a//b")
@example("./a")
@example("a/.")
@example("file:///etc/passwd")
@example("a" * (MAX_PATH_LENGTH + 1))
def test_no_accepted_path_leaves_the_package(value: object) -> None:
    if path_problem(value) is not None:
        with pytest.raises(InvalidPath) as refused:
            check_path(value)
        assert refused.value.code == "invalid-path"
        assert refused.value.status == 400
        assert refused.value.message.endswith(".")
        assert refused.value.details == {"path": value if isinstance(value, str) else None}
        return
    path = check_path(value)
    assert path == value
    root = PurePosixPath("/package")
    inside = PurePosixPath(posixpath.normpath(root / path))
    assert inside.is_relative_to(root)
    assert inside != root
    assert posixpath.normpath(path) == path
    assert not path.startswith("/")
    assert "\\" not in path
    assert ".." not in path.split("/")
    assert all(ord(ch) >= 32 and ord(ch) != 127 for ch in path)


@PROPERTY
@given(st.one_of(st.text(max_size=110), anything, st.sampled_from(sorted(REVISION_WORDS))))
@example("v1.0")
@example("12")
@example("Latest")
@example("+v1")
def test_a_tag_never_reads_as_a_revision(value: object) -> None:
    problem = tag_problem(value)
    assert is_valid_tag(value) == (problem is None)
    if problem is None:
        assert isinstance(value, str)
        assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,99}", value)
        assert not value.isdigit()
        assert value.lower() not in REVISION_WORDS
    else:
        assert isinstance(problem, str)
        assert problem
