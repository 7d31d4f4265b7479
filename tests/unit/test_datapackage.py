"""The Data Package checks: each problem is found and points at the right place."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from dphub.datapackage import (
    Problem,
    check_descriptor,
    descriptor_problems,
    local_paths,
    parse_descriptor,
    pointer,
    validate_data,
)
from dphub.errors import InvalidDescriptor


def package(*resources: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"name": "demo", **fields, "resources": list(resources)}


def pointers(descriptor: object) -> list[str]:
    return [p.pointer for p in descriptor_problems(descriptor)]


def test_a_valid_package_has_no_problem() -> None:
    descriptor = package(
        {"name": "gdp", "path": "data/gdp.csv", "schema": {"fields": [{"name": "year"}]}},
        {"name": "inline", "data": [{"a": 1}]},
        {"name": "parts", "path": ["a.csv", "b.csv"]},
        {"name": "remote", "path": "https://example.org/x.csv"},
        title="Demo",
        keywords=["a", "b"],
        licenses=[{"name": "ODC-PDDL-1.0"}],
        contributors=[{"title": "Someone", "role": "author"}],
    )
    assert descriptor_problems(descriptor) == []
    check_descriptor(descriptor)


@pytest.mark.parametrize(
    ("raw", "where"),
    [
        (b'{"name": "x",\n "resources": [}', "line 2 column 16"),
        (b'{"name": "x" "resources": []}', "line 1 column 14"),
        (b"", "line 1 column 1"),
    ],
)
def test_invalid_json_names_line_and_column(raw: bytes, where: str) -> None:
    with pytest.raises(InvalidDescriptor) as caught:
        parse_descriptor(raw)
    [problem] = caught.value.details["problems"]
    assert problem["pointer"] == ""
    assert problem["file"] == "datapackage.json"
    assert problem["message"].startswith(where + ": ")


def test_a_descriptor_must_be_an_object() -> None:
    with pytest.raises(InvalidDescriptor) as caught:
        parse_descriptor("[1, 2]")
    assert "JSON object" in caught.value.details["problems"][0]["message"]
    assert pointers([1, 2]) == [""]


def test_nan_is_not_json() -> None:
    with pytest.raises(InvalidDescriptor):
        parse_descriptor('{"resources": NaN}')


def test_parse_accepts_a_utf8_bom() -> None:
    assert parse_descriptor('\ufeff{"a": "é"}'.encode()) == {"a": "é"}


def test_missing_resources() -> None:
    [problem] = descriptor_problems({"name": "demo"})
    assert problem.pointer == "/resources"
    assert problem.message == '"resources" is required and must list at least one resource'


def test_empty_resources() -> None:
    assert pointers({"resources": []}) == ["/resources"]


def test_duplicate_resource_names_point_at_the_duplicate() -> None:
    descriptor = package(
        {"name": "a", "path": "a.csv"}, {"name": "b", "path": "b.csv"}, {"name": "a", "data": []}
    )
    [problem] = descriptor_problems(descriptor)
    assert problem.pointer == "/resources/2/name"
    assert "/resources/0" in problem.message
    assert "unique" in problem.message


@pytest.mark.parametrize(
    ("path", "words"),
    [
        ("/etc/passwd", "absolute"),
        ("C:/data/x.csv", "absolute"),
        ("../secret.csv", ".."),
        ("data/../../x.csv", ".."),
        ("data\\x.csv", "backslash"),
        ("data//x.csv", "empty"),
    ],
)
def test_unsafe_paths(path: str, words: str) -> None:
    [problem] = descriptor_problems(package({"name": "a", "path": path}))
    assert problem.pointer == "/resources/0/path"
    assert words in problem.message


def test_path_lists_point_at_the_item() -> None:
    descriptor = package({"name": "a", "path": ["ok.csv", "../bad.csv", 3]})
    assert pointers(descriptor) == ["/resources/0/path/1", "/resources/0/path/2"]
    assert pointers(package({"name": "a", "path": []})) == ["/resources/0/path"]


def test_exactly_one_of_path_and_data() -> None:
    both = package({"name": "a", "path": "a.csv", "data": [[1]]})
    neither = package({"name": "a"})
    for descriptor in (both, neither):
        [problem] = descriptor_problems(descriptor)
        assert problem.pointer == "/resources/0"
        assert '"path"' in problem.message
        assert '"data"' in problem.message


@pytest.mark.parametrize("name", ["Demo", "has space", "-start", "x" * 101, "trailing."])
def test_bad_package_name(name: str) -> None:
    [problem] = descriptor_problems(package({"name": "a", "data": []}, name=name))
    assert problem.pointer == "/name"
    assert "not valid" in problem.message


def test_package_name_is_optional_for_validation() -> None:
    assert descriptor_problems({"resources": [{"name": "a", "data": []}]}) == []


def test_resource_rules() -> None:
    descriptor = package(
        {"path": "a.csv"},
        {"name": "Upper", "path": "b.csv"},
        "not an object",
        {"name": "s", "path": "c.csv", "schema": {"fields": [{"type": "integer"}]}},
        {"name": "t", "path": "d.csv", "schema": 5},
    )
    problems = {p.pointer: p.message for p in descriptor_problems(descriptor)}
    assert problems["/resources/0/name"] == 'every resource needs a "name"'
    assert "lowercase" in problems["/resources/1/name"]
    assert problems["/resources/2"] == 'item 2 of "resources" must be an object, not a string'
    assert "name" in problems["/resources/3/schema/fields/0/name"]
    assert "Table Schema" in problems["/resources/4/schema"]
    assert len(problems) == 5


def test_package_metadata_types() -> None:
    descriptor = package(
        {"name": "a", "data": []},
        title=3,
        keywords=["ok", 1],
        licenses=[{"title": "no name"}],
        sources="x",
    )
    assert pointers(descriptor) == ["/keywords/1", "/licenses/0", "/sources", "/title"]


def test_pointers_escape_tilde_and_slash() -> None:
    assert pointer(["a/b", "c~d", 0]) == "/a~1b/c~0d/0"
    assert pointer([]) == ""


def test_check_descriptor_names_the_first_pointer() -> None:
    with pytest.raises(InvalidDescriptor) as caught:
        check_descriptor(package({"name": "a", "path": "/abs.csv"}, {"name": "a", "data": []}))
    assert "/resources/0/path" in caught.value.message
    assert "1 more problem" in caught.value.message
    problems = caught.value.details["problems"]
    assert [p["pointer"] for p in problems] == ["/resources/0/path", "/resources/1/name"]
    assert set(problems[0]) == {"file", "pointer", "message"}


def test_local_paths() -> None:
    descriptor = package(
        {"name": "a", "path": "a.csv", "schema": "schemas/a.json"},
        {"name": "b", "path": ["b1.csv", "https://example.org/b2.csv"], "dialect": "http://x/d"},
        {"name": "c", "data": [[1]]},
        {"name": "d", "path": "HTTPS://example.org/d.csv"},
    )
    assert local_paths(descriptor) == [
        ("/resources/0/path", "a.csv"),
        ("/resources/0/schema", "schemas/a.json"),
        ("/resources/1/path/0", "b1.csv"),
    ]


def test_problem_to_dict() -> None:
    assert Problem("/x", "m").to_dict() == {
        "file": "datapackage.json",
        "pointer": "/x",
        "message": "m",
    }


def test_validate_data_reports_rows_and_fields(tmp_path: Path) -> None:
    (tmp_path / "ok.csv").write_text("id,age\n1,20\n2,30\n")
    (tmp_path / "bad.csv").write_text("id,age\n1,20\n2,old\n" + "x,1\n" * 40)
    (tmp_path / "notes.txt").write_text("not a table")
    schema = {"fields": [{"name": "id", "type": "integer"}, {"name": "age", "type": "integer"}]}
    descriptor = package(
        {"name": "ok", "path": "ok.csv", "schema": schema},
        {"name": "bad", "path": "bad.csv", "schema": schema},
        {"name": "notes", "path": "notes.txt"},
        {"name": "inline", "data": [{"a": 1}]},
    )
    (tmp_path / "datapackage.json").write_text(json.dumps(descriptor))
    problems = validate_data(tmp_path, descriptor)
    assert problems
    assert len(problems) <= 20
    assert {p.file for p in problems} == {"bad.csv"}
    assert {p.pointer for p in problems} == {"/resources/1"}
    assert 'row "3"' in problems[0].message
    assert '"age"' in problems[0].message
