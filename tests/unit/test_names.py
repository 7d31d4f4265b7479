"""Names of publishers and packages, and file paths inside a package."""

from __future__ import annotations

import pytest

from dphub.errors import InvalidName, InvalidPath
from dphub.names import (
    MAX_PATH_LENGTH,
    RESERVED_NAMES,
    check_name,
    check_path,
    check_publisher_name,
    is_valid_name,
    path_problem,
)

VALID_NAMES = [
    "a",
    "0",
    "gdp",
    "world-bank",
    "co2_emissions",
    "v1.2-final",
    "9lives",
    "a" * 100,
    "x" + "._-" * 33,
]

INVALID_NAMES = [
    "",
    "a" * 101,
    "GDP",
    "World",
    "-leading-dash",
    "_leading-underscore",
    ".hidden",
    "with space",
    "slash/inside",
    "tab\tinside",
    "émigré",
    "trailing-newline\n",
    "semi;colon",
]


@pytest.mark.parametrize("name", VALID_NAMES)
def test_valid_names_are_accepted(name: str) -> None:
    assert is_valid_name(name)
    assert check_name(name) == name


@pytest.mark.parametrize("name", INVALID_NAMES)
def test_invalid_names_are_refused(name: str) -> None:
    assert not is_valid_name(name)
    with pytest.raises(InvalidName) as caught:
        check_name(name, what="package")
    assert caught.value.code == "invalid-name"
    assert caught.value.status == 400
    assert caught.value.details == {"field": "package"}


def test_length_limit_is_exactly_100() -> None:
    assert check_name("n" * 100) == "n" * 100
    with pytest.raises(InvalidName):
        check_name("n" * 101)


@pytest.mark.parametrize("value", [None, 42, b"bytes", ["list"], {"a": 1}])
def test_non_strings_are_not_names(value: object) -> None:
    assert not is_valid_name(value)
    with pytest.raises(InvalidName):
        check_name(value)


@pytest.mark.parametrize("name", ["dots.", "v1."])
def test_names_may_not_end_with_a_dot(name: str) -> None:
    # A trailing dot is dropped by some file systems and URL normalisers.
    assert not is_valid_name(name)
    with pytest.raises(InvalidName, match=r"not ending with '\.'"):
        check_name(name)


@pytest.mark.parametrize("name", ["api", "auth", "bitstore", "static", "search", "login"])
def test_reserved_words_are_refused_as_publishers(name: str) -> None:
    assert name in RESERVED_NAMES
    with pytest.raises(InvalidName, match="reserved") as caught:
        check_publisher_name(name)
    assert caught.value.details == {"field": "publisher"}


def test_every_reserved_word_is_refused_as_publisher() -> None:
    for name in sorted(RESERVED_NAMES):
        with pytest.raises(InvalidName):
            check_publisher_name(name)


def test_reserved_words_remain_valid_package_names() -> None:
    # Only the top-level URL segment (the publisher) collides with routes.
    assert check_name("search", what="package") == "search"


@pytest.mark.parametrize("name", ["apis", "my-api", "core-datasets", "searchable"])
def test_names_near_reserved_words_are_fine_publishers(name: str) -> None:
    assert check_publisher_name(name) == name


def test_publisher_names_follow_the_name_pattern() -> None:
    with pytest.raises(InvalidName):
        check_publisher_name("Core")


# paths

FINE_PATHS = [
    "data.csv",
    "data/table.csv",
    "data/2024/q1/sales.csv",
    "README.md",
    "with space/and-dash_underscore.csv",
    "archive.tar.gz",
    "...three-dots-is-a-name",
    "données/été.csv",
    "a" * MAX_PATH_LENGTH,
]


@pytest.mark.parametrize("path", FINE_PATHS)
def test_fine_relative_paths_are_accepted(path: str) -> None:
    assert path_problem(path) is None
    assert check_path(path) == path


BAD_PATHS = [
    ("", "empty"),
    ("/etc/passwd", "absolute"),
    ("/x", "absolute"),
    ("C:\\x", "backslash"),
    ("C:/x", "absolute"),
    ("c:data.csv", "absolute"),
    ("..", "'..'"),
    ("../x.csv", "'..'"),
    ("data/../../x.csv", "'..'"),
    ("data/..", "'..'"),
    ("data\\table.csv", "backslash"),
    ("data//table.csv", "empty"),
    ("data/", "empty"),
    ("./data.csv", "'.'"),
    ("data/./table.csv", "'.'"),
    ("data\x00.csv", "control"),
    ("data\n.csv", "control"),
    ("data\x7f.csv", "control"),
    ("https://example.com/data.csv", "URL"),
    ("s3://bucket/key", "URL"),
    ("a" * (MAX_PATH_LENGTH + 1), "longer"),
]


@pytest.mark.parametrize(("path", "reason"), BAD_PATHS)
def test_unsafe_paths_are_refused(path: str, reason: str) -> None:
    problem = path_problem(path)
    assert problem is not None
    assert reason in problem
    with pytest.raises(InvalidPath) as caught:
        check_path(path)
    assert caught.value.code == "invalid-path"
    assert caught.value.status == 400
    assert caught.value.details == {"path": path}


@pytest.mark.parametrize("value", [None, 3, b"data.csv", ["data.csv"]])
def test_non_string_paths_are_refused_without_echoing_them(value: object) -> None:
    assert path_problem(value) == "a path must be a string"
    with pytest.raises(InvalidPath) as caught:
        check_path(value)
    assert caught.value.details == {"path": None}
