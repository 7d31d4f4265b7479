"""The DataProxy's inputs: encodings, and a well-defined answer (or a 4xx) for each kind of bad or
odd input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from dphub.dataproxy import MAX_COLUMNS
from dphub.errors import InvalidRequest, UnsupportedMediaType
from tests.unit.test_dataproxy import URL, as_csv, as_json, as_records, body, prepare, xlsx

# Encodings


def test_utf8_with_a_byte_order_mark(tmp_path: Path) -> None:
    answer = as_json(tmp_path, "bom.csv", "\ufeffname,n\ncafé,1\n".encode())
    assert answer["fields"][0]["name"] == "name"
    assert answer["data"] == [["café", 1]]


def test_windows_1252_is_detected(tmp_path: Path) -> None:
    content = "name;price\ncafé;€5\n“quoted”;x\n".encode("cp1252")
    answer = as_json(tmp_path, "w.csv", content)
    assert answer["data"] == [["café", "€5"], ["“quoted”", "x"]]


def test_a_declared_encoding_is_used(tmp_path: Path) -> None:
    content = "a,b\nж,1\n".encode("koi8_r")
    assert as_json(tmp_path, "k.csv", content, encoding="koi8-r")["data"] == [["ж", 1]]
    assert as_json(tmp_path, "k.csv", None, resource={"encoding": "koi8_r"})["data"] == [["ж", 1]]
    with pytest.raises(InvalidRequest):
        prepare(tmp_path, "k.csv", None, encoding="no-such-encoding")


def test_utf16_with_a_byte_order_mark(tmp_path: Path) -> None:
    assert as_json(tmp_path, "u.csv", "a,b\n1,é\n".encode("utf-16"))["data"] == [[1, "é"]]


def test_invalid_utf8_in_a_file_declared_utf8_is_replaced(tmp_path: Path) -> None:
    content = b"a,b\n1,caf\xe9\n2,ok\n"
    answer = as_json(tmp_path, "bad.csv", content, resource={"encoding": "utf-8"})
    assert answer["data"] == [[1, "caf\ufffd"], [2, "ok"]]


def test_invalid_utf8_past_the_first_mebibyte_is_replaced_mid_stream(tmp_path: Path) -> None:
    rows = [f"{i},row {i}" for i in range(200_000)]
    rows[150_000] = "150000,caf\udce9"
    content = ("id,text\n" + "\n".join(rows) + "\n").encode("utf-8", "surrogateescape")
    assert len(content) > 2 << 20
    records = as_records(tmp_path, "late.csv", content)
    assert len(records) == 200_000
    assert [r["id"] for r in records] == list(range(200_000))
    assert records[150_000] == {"id": 150_000, "text": "caf\ufffd"}
    page = as_records(tmp_path, "late.csv", None, offset=149_999, limit=3)
    assert [r["text"] for r in page] == ["row 149999", "caf\ufffd", "row 150001"]


# Bad and odd input


def test_a_binary_file_is_unsupported(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedMediaType) as caught:
        prepare(tmp_path, "data.csv", bytes(range(256)) * 64)
    assert caught.value.status == 415
    assert caught.value.code == "unsupported-media-type"


@pytest.mark.parametrize(
    ("name", "content", "resource"),
    [
        ("old.xls", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(500), None),
        ("doc.pdf", b"%PDF-1.7\n\x00\x01\x02\x03", None),
        ("data.csv", b"a,b\n1,2\n", {"format": "pdf"}),
    ],
)
def test_formats_that_are_not_tables_are_unsupported(
    tmp_path: Path, name: str, content: bytes, resource: dict[str, Any] | None
) -> None:
    with pytest.raises(UnsupportedMediaType):
        prepare(tmp_path, name, content, resource=resource)


def test_a_truncated_workbook_is_an_invalid_request(tmp_path: Path) -> None:
    book = xlsx(tmp_path / "s.xlsx", {"S": [["a"], *[[i] for i in range(100)]]})
    with pytest.raises(InvalidRequest) as caught:
        prepare(tmp_path, "cut.xlsx", book[: len(book) // 2])
    assert caught.value.status == 400
    assert "XLSX" in caught.value.message


def test_a_workbook_said_to_be_one_but_not_is_an_invalid_request(tmp_path: Path) -> None:
    with pytest.raises(InvalidRequest):
        prepare(tmp_path, "fake.xlsx", b"a,b\n1,2\n")


def test_ragged_rows_are_padded_and_cut(tmp_path: Path) -> None:
    text = "a,b,c\n1,2,3\n4,5\n6,7,8,9\n10\n"
    answer = as_json(tmp_path, "r.csv", text)
    assert answer["data"] == [[1, 2, 3], [4, 5, None], [6, 7, 8], [10, None, None]]
    assert as_csv(tmp_path, "r.csv", None)[2] == ["4", "5", ""]


def test_ragged_rows_with_quoted_line_breaks(tmp_path: Path) -> None:
    # DuckDB's parallel reader cannot pad rows when a value holds a line break: read on one thread
    text = 'a,b,c\n1,"x\ny",3\n4,5\n6,7,8,9\n'
    assert as_json(tmp_path, "r.csv", text)["data"] == [[1, "x\ny", 3], [4, "5", None], [6, "7", 8]]


def test_a_one_column_file(tmp_path: Path) -> None:
    text = "word\nalpha\n\nbeta\n"
    assert as_json(tmp_path, "one.csv", text)["data"] == [
        ["alpha"],
        ["beta"],
    ]  # blank lines skipped
    schema = {"fields": [{"name": "word"}], "missingValues": []}
    lines = as_csv(tmp_path, "one.csv", 'word\n""\nx\n', resource={"schema": schema})
    assert lines == [["word"], [""], ["x"]]  # an empty value keeps its line


@pytest.mark.parametrize("content", [b"", b"\n\n  \r\n", b"\xef\xbb\xbf"])
def test_an_empty_file_is_an_empty_table(tmp_path: Path, content: bytes) -> None:
    answer = as_json(tmp_path, "e.csv", content)
    assert answer == {"url": URL, "fields": [], "data": [], "offset": 0, "limit": None, "total": 0}
    assert body(prepare(tmp_path, "e.csv", content, format="ndjson")) == b""
    assert body(prepare(tmp_path, "e.csv", content, format="csv")) == b""


def test_empty_json_and_sheets_are_empty_tables(tmp_path: Path) -> None:
    assert as_json(tmp_path, "e.json", "[]")["data"] == []
    assert as_json(tmp_path, "e.ndjson", "\n")["fields"] == []
    empty = xlsx(tmp_path / "e.xlsx", {"S": []})
    assert as_json(tmp_path, "e2.xlsx", empty)["fields"] == []


def test_a_header_only_file_has_fields_and_no_rows(tmp_path: Path) -> None:
    answer = as_json(tmp_path, "h.csv", "a,b\n")
    assert answer["fields"] == [{"name": "a", "type": "string"}, {"name": "b", "type": "string"}]
    assert answer["data"] == []


def test_a_hundred_thousand_columns_are_refused(tmp_path: Path) -> None:
    header = ",".join(f"c{i}" for i in range(100_000))
    with pytest.raises(InvalidRequest) as caught:
        prepare(tmp_path, "wide.csv", header + "\n" + header + "\n")
    assert caught.value.details == {"columns": 100_000, "max_columns": MAX_COLUMNS}


def test_a_wide_table_below_the_limit(tmp_path: Path) -> None:
    width = 200
    header = ",".join(f"c{i}" for i in range(width))
    row = ",".join(str(i) if i % 2 else f"v{i}" for i in range(width))
    text = header + "\n" + row + "\n" + ",".join([""] * width) + "\n"
    answer = as_json(tmp_path, "w.csv", text)
    assert [f["type"] for f in answer["fields"][:2]] == ["string", "integer"]
    assert answer["data"][0][:4] == ["v0", 1, "v2", 3]
    assert answer["data"][1] == [None] * width
    records = as_records(tmp_path, "w.csv", None, limit=1)
    assert list(records[0].items())[:2] == [("c0", "v0"), ("c1", 1)]
    assert as_csv(tmp_path, "w.csv", None)[1] == row.split(",")


def test_json_rows_must_be_objects_or_arrays(tmp_path: Path) -> None:
    with pytest.raises(InvalidRequest):
        prepare(tmp_path, "s.json", "[1, 2, 3]")


def test_malformed_json_is_an_invalid_request(tmp_path: Path) -> None:
    with pytest.raises(InvalidRequest) as caught:
        prepare(tmp_path, "t.json", '[{"a": 1}, {"a": 2}, {"a"')
    assert str(tmp_path) not in caught.value.message  # no server paths in errors


def test_json_values_of_several_kinds(tmp_path: Path) -> None:
    text = json.dumps([{"a": 1, "b": "x"}, {"a": 2.5, "c": [1, 2]}, {"b": None}])
    answer = as_json(tmp_path, "j.json", text)
    assert answer["fields"] == [
        {"name": "a", "type": "number"},
        {"name": "b", "type": "string"},
        {"name": "c", "type": "string"},
    ]
    assert answer["data"] == [[1.0, "x", None], [2.5, None, "[1,2]"], [None, None, None]]
    arrays = as_json(
        tmp_path, "a.json", json.dumps([[1, "x"], [2, "y", "extra"], [3]]), header=False
    )
    assert arrays["data"] == [[1, "x", None], [2, "y", "extra"], [3, None, None]]


def test_json_keys_of_any_spelling(tmp_path: Path) -> None:
    text = json.dumps([{"a": 1, "A": "x", "": True, "a/b~c": 2}, {"A": "y"}])
    answer = as_json(tmp_path, "k.json", text)
    assert [f["name"] for f in answer["fields"]] == ["a", "A2", "field3", "a/b~c"]
    assert answer["data"] == [[1, "x", True, 2], [None, "y", None, None]]


def test_wide_json_objects(tmp_path: Path) -> None:
    keys = [f"k{i}" for i in range(120)]
    rows = [{k: (i * j if j % 2 else f"v{j}") for j, k in enumerate(keys)} for i in range(3)]
    text = "\n".join(json.dumps(r) for r in rows)
    answer = as_json(tmp_path, "w.ndjson", text)
    assert [f["type"] for f in answer["fields"][:2]] == ["string", "integer"]
    assert answer["data"] == [list(r.values()) for r in rows]
    assert as_records(tmp_path, "w.ndjson", None) == rows
