"""Loading tabular resources into DuckDB: every input kind, the checks and their row numbers, the
inferred schema, and the exported files."""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any

import duckdb
import openpyxl
import pytest

from dphub.pipeline.tables import (
    MAX_ERRORS,
    TableResult,
    duckdb_type,
    export_csv,
    export_json,
    is_tabular,
    load_table,
    preview,
)


@pytest.fixture
def con() -> duckdb.DuckDBPyConnection:
    return duckdb.connect()


def load(
    con: duckdb.DuckDBPyConnection,
    tmp_path: Path,
    name: str,
    content: str | bytes,
    **resource: Any,
) -> TableResult:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8", newline="")
    workdir = tmp_path / "work"
    workdir.mkdir(exist_ok=True)
    return load_table(con, path, {"path": name, **resource}, table="t", workdir=workdir)


def rows(con: duckdb.DuckDBPyConnection) -> list[tuple[Any, ...]]:
    return con.execute('SELECT * FROM "t"').fetchall()


def columns(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str]]:
    return [(str(r[0]), str(r[1])) for r in con.execute('DESCRIBE "t"').fetchall()]


def errors(result: TableResult) -> list[tuple[str, int | None, str | None]]:
    return [(e["type"], e.get("rowNumber"), e.get("fieldName")) for e in result.report["errors"]]


def table_exists(con: duckdb.DuckDBPyConnection) -> bool:
    found = con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 't'").fetchone()
    return found == (1,)


# Delimiters, quoting, dialects


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
def test_the_delimiter_is_detected(con, tmp_path, delimiter):
    text = f"id{delimiter}name{delimiter}price\n1{delimiter}a, b{delimiter}1.5\n2{delimiter}c{delimiter}2\n"
    if delimiter == ",":
        text = text.replace("a, b", '"a, b"')
    result = load(con, tmp_path, "data.csv", text)
    assert result.valid, result.report["errors"]
    assert result.dialect["delimiter"] == delimiter
    assert columns(con) == [("id", "BIGINT"), ("name", "VARCHAR"), ("price", "DOUBLE")]
    assert rows(con) == [(1, "a, b", 1.5), (2, "c", 2.0)]


def test_the_dialect_delimiter_wins_and_tsv_means_tab(con, tmp_path):
    result = load(con, tmp_path, "data.csv", "a;b|c\n1;2|3\n", dialect={"delimiter": "|"})
    assert result.valid
    assert rows(con) == [("1;2", 3)]
    result = load(con, tmp_path, "data.tsv", "a,b\tc\n1,2\t3\n")
    assert result.valid
    assert rows(con) == [("1,2", 3)]


def test_quoted_values_keep_delimiters_newlines_and_doubled_quotes(con, tmp_path):
    text = 'id,text,n\n1,"one, two",5\n2,"line 1\nline 2",6\n3,"say ""hi""",7\n4,"a\r\n\r\nb",8\n'
    result = load(con, tmp_path, "data.csv", text)
    assert result.valid, result.report["errors"]
    assert rows(con) == [
        (1, "one, two", 5),
        (2, "line 1\nline 2", 6),
        (3, 'say "hi"', 7),
        (4, "a\r\n\r\nb", 8),
    ]


def test_a_file_without_a_header_row(con, tmp_path):
    result = load(con, tmp_path, "data.csv", "1,x\n2,y\n", dialect={"header": False})
    assert result.valid
    assert [f["name"] for f in result.schema["fields"]] == ["field1", "field2"]
    assert rows(con) == [(1, "x"), (2, "y")]
    schema = {"fields": [{"name": "n", "type": "integer"}, {"name": "s", "type": "string"}]}
    result = load(con, tmp_path, "data.csv", "1,x\nz,y\n", dialect={"header": False}, schema=schema)
    assert errors(result) == [("type-error", 2, "n")]


def test_crlf_line_endings(con, tmp_path):
    result = load(con, tmp_path, "data.csv", "a,b\r\n1,2\r\n3,4\r\n")
    assert result.valid
    assert rows(con) == [(1, 2), (3, 4)]


# Encodings


def test_utf8_with_a_byte_order_mark(con, tmp_path):
    result = load(con, tmp_path, "data.csv", "\ufeffname,city\nRené,Zürich\n".encode())
    assert result.valid
    assert result.encoding == "utf-8"
    assert columns(con)[0][0] == "name"
    assert rows(con) == [("René", "Zürich")]


def test_latin1_is_detected_and_transcoded(con, tmp_path):
    result = load(con, tmp_path, "data.csv", "name,city\nRené,Zürich\n".encode("latin-1"))
    assert result.valid
    assert result.encoding == "windows-1252"
    assert result.report["warnings"] == ['the file is not UTF-8; it was read as "windows-1252"']
    assert rows(con) == [("René", "Zürich")]
    assert list((tmp_path / "work").iterdir())  # the UTF-8 copy went to the workdir


def test_windows_1252_with_bytes_it_does_not_define(con, tmp_path):
    content = "word,price\n“quoted”,€5\n".encode("cp1252") + b"x\x81y,2\n"
    result = load(con, tmp_path, "data.csv", content)
    assert result.valid
    assert rows(con) == [("“quoted”", "€5"), ("x\x81y", "2")]


def test_a_declared_encoding_overrides_detection(con, tmp_path):
    result = load(con, tmp_path, "data.csv", b"a\n\x80\n", encoding="iso-8859-1")
    assert result.valid
    assert rows(con) == [("\x80",)]  # Latin-1 reads 0x80 as U+0080, where Windows-1252 has "€"


def test_a_file_declared_utf8_that_is_not(con, tmp_path):
    result = load(con, tmp_path, "data.csv", b"a\n\xe9\n", encoding="utf-8")
    assert not result.valid
    assert result.report["errors"][0]["type"] == "encoding-error"
    assert "byte 2" in result.report["errors"][0]["message"]
    assert not table_exists(con)


def test_utf16_with_a_byte_order_mark(con, tmp_path):
    result = load(con, tmp_path, "data.csv", "a,b\n1,é\n".encode("utf-16"))
    assert result.valid
    assert rows(con) == [(1, "é")]


# XLSX, JSON, NDJSON


def write_workbook(path: Path) -> None:
    book = openpyxl.Workbook()
    first = book.active
    first.title = "first"
    first.append(["id", "day", "at", "ok", "x"])
    first.append(
        [1, datetime.datetime(2020, 1, 2), datetime.datetime(2020, 1, 2, 3, 4, 5), True, 1.5]
    )
    first.append(
        [2, datetime.datetime(2021, 3, 4), datetime.datetime(2021, 3, 4, 5, 6, 7), False, None]
    )
    first["B2"].number_format = first["B3"].number_format = "yyyy-mm-dd"
    first["C2"].number_format = first["C3"].number_format = "yyyy-mm-dd hh:mm:ss"
    second = book.create_sheet("second")
    for row in (["k", "v"], ["a", 1], [None, None], ["b", 2], [None, None]):
        second.append(row)
    book.save(path)


def test_xlsx_first_sheet_by_default(con, tmp_path):
    write_workbook(tmp_path / "book.xlsx")
    result = load_table(
        con, tmp_path / "book.xlsx", {"path": "book.xlsx"}, table="t", workdir=tmp_path
    )
    assert result.valid, result.report["errors"]
    types = [f["type"] for f in result.schema["fields"]]
    assert types == ["integer", "date", "datetime", "boolean", "number"]
    assert rows(con) == [
        (1, datetime.date(2020, 1, 2), datetime.datetime(2020, 1, 2, 3, 4, 5), True, 1.5),
        (2, datetime.date(2021, 3, 4), datetime.datetime(2021, 3, 4, 5, 6, 7), False, None),
    ]


@pytest.mark.parametrize("sheet", ["second", 2])
def test_xlsx_sheet_by_name_or_position(con, tmp_path, sheet):
    write_workbook(tmp_path / "book.xlsx")
    resource = {"path": "book.xlsx", "dialect": {"sheet": sheet}}
    result = load_table(con, tmp_path / "book.xlsx", resource, table="t", workdir=tmp_path)
    # An empty row between rows is a blank row; the empty rows at the end are not rows at all.
    assert errors(result) == [("blank-row", 3, None)]
    assert result.rows == 3


def test_xlsx_missing_sheet(con, tmp_path):
    write_workbook(tmp_path / "book.xlsx")
    resource = {"path": "book.xlsx", "dialect": {"sheet": "nope"}}
    result = load_table(con, tmp_path / "book.xlsx", resource, table="t", workdir=tmp_path)
    assert errors(result) == [("format-error", None, None)]


def test_json_array_of_objects(con, tmp_path):
    text = '[{"b": "x", "a": 1}, {"a": 2, "c": null}, {"a": 3, "d": {"k": [1, 2]}}]'
    result = load(con, tmp_path, "data.json", text)
    assert result.valid, result.report["errors"]
    assert [(f["name"], f["type"]) for f in result.schema["fields"]] == [
        ("b", "string"),
        ("a", "integer"),
        ("c", "string"),
        ("d", "string"),
    ]
    assert rows(con) == [
        ("x", 1, None, None),
        (None, 2, None, None),
        (None, 3, None, '{"k":[1,2]}'),
    ]


def test_json_objects_with_a_schema_are_matched_by_name(con, tmp_path):
    schema = {"fields": [{"name": "a", "type": "integer"}, {"name": "b", "type": "boolean"}]}
    result = load(con, tmp_path, "data.json", '[{"b": true, "a": 1}, {"a": "x"}]', schema=schema)
    assert errors(result) == [("type-error", 3, "a")]  # the keys are row 1, the first object row 2


def test_json_array_of_arrays_with_ragged_rows(con, tmp_path):
    result = load(con, tmp_path, "data.json", '[["a", "b"], [1, "x"], [2], [3, "z", 9]]')
    assert errors(result) == [("missing-cell", 3, "b"), ("extra-cell", 4, "")]
    assert result.report["errors"][1]["cell"] == "9"
    assert not table_exists(con)
    result = load(con, tmp_path, "data.json", '[["a", "b"], [1, "x"], [2, null]]')
    assert result.valid
    assert rows(con) == [(1, "x"), (2, None)]


def test_ndjson(con, tmp_path):
    text = '{"a": 1, "t": "2020-01-01T00:00:00Z"}\n{"a": 2, "t": "2020-01-01T00:00:00+02:00"}\n'
    result = load(con, tmp_path, "data.ndjson", text)
    assert result.valid
    assert rows(con) == [
        (1, datetime.datetime(2020, 1, 1)),
        (2, datetime.datetime(2019, 12, 31, 22)),  # offsets are applied: stored in UTC
    ]


def test_bytes_that_are_not_csv(con, tmp_path):
    garbage = bytes(range(256)) * 400
    result = load(con, tmp_path, "data.csv", garbage)
    assert errors(result) == [("format-error", None, None)]
    assert not table_exists(con)


def test_json_that_is_not_a_table(con, tmp_path):
    result = load(con, tmp_path, "data.json", '{"a": 1}')
    assert errors(result) == [("format-error", None, None)]
    result = load(con, tmp_path, "data.json", "[1, 2]")
    assert errors(result) == [("format-error", None, None)]


# Empty, header-only, ragged, blank


def test_an_empty_file_is_invalid(con, tmp_path):
    result = load(con, tmp_path, "data.csv", "")
    assert not result.valid
    assert errors(result) == [("source-error", None, None)]
    assert result.report["errors"][0]["note"] == "the source is empty"
    assert result.rows == 0
    assert not table_exists(con)


def test_a_header_only_table_is_valid_and_empty(con, tmp_path):
    result = load(con, tmp_path, "data.csv", "a,b\n")
    assert result.valid
    assert result.inferred
    assert result.schema == {
        "fields": [{"name": "a", "type": "string"}, {"name": "b", "type": "string"}],
        "missingValues": [""],
    }
    assert result.rows == 0
    assert columns(con) == [("a", "VARCHAR"), ("b", "VARCHAR")]
    assert rows(con) == []


def test_ragged_rows_are_reported_with_frictionless_row_numbers(con, tmp_path):
    # The same file Frictionless reports these five errors for, at these rows.
    text = 'a,b,c\n1,,x\n2,"q,1\nline2"\n\n3,4,5,6\n"4","",""\n5,6,7,8,9\n6,7,8\n'
    result = load(con, tmp_path, "data.csv", text)
    assert errors(result) == [
        ("missing-cell", 3, "c"),
        ("blank-row", 4, None),
        ("extra-cell", 5, ""),
        ("extra-cell", 7, ""),
        ("extra-cell", 7, ""),
    ]
    assert [e.get("fieldNumber") for e in result.report["errors"]] == [3, None, 4, 4, 5]
    assert [e.get("cell") for e in result.report["errors"]] == ["", None, "6", "8", "9"]
    assert result.report["stats"]["rows"] == 7
    assert not table_exists(con)


def test_blank_lines_shift_the_row_numbers_after_them(con, tmp_path):
    schema = {"fields": [{"name": "n", "type": "integer"}]}
    result = load(con, tmp_path, "data.csv", "n\n1\n\n\nx\n2\n\n", schema=schema)
    assert errors(result) == [
        ("blank-row", 3, None),
        ("blank-row", 4, None),
        ("type-error", 5, "n"),
        ("blank-row", 7, None),
    ]


def test_a_row_of_empty_cells_is_blank(con, tmp_path):
    result = load(con, tmp_path, "data.csv", "a,b\n1,2\n,\n3,4\n")
    assert errors(result) == [("blank-row", 3, None)]


# Schema checks


SCHEMA = {
    "fields": [
        {
            "name": "a",
            "type": "integer",
            "constraints": {"unique": True, "minimum": 2, "enum": [1, 2]},
        },
        {"name": "B", "type": "integer", "constraints": {"required": True, "maximum": 4}},
        {"name": "c", "type": "string", "format": "email", "constraints": {"minLength": 7}},
        {"name": "d", "type": "date", "constraints": {"minimum": "2000-01-01"}},
    ],
    "primaryKey": ["a"],
}
CHECKED = (
    "a,b,c,d\n1,2,x@y.org,2020-01-01\n2,x,bad,2020-13-01\n1,,a@b.co,\n"
    "3,4,c@d.ef,2020-02-02T10:00:00\n,5,e@f.gh,1999-12-31\n"
)


def test_types_and_constraints_are_checked_like_frictionless(con, tmp_path):
    result = load(con, tmp_path, "data.csv", CHECKED, schema=SCHEMA)
    assert not result.valid
    assert not table_exists(con)
    assert [
        (t, r, e.get("fieldNumber"))
        for (t, r, _), e in zip(errors(result), result.report["errors"], strict=True)
    ] == [
        ("incorrect-label", None, 2),
        ("constraint-error", 2, 1),
        ("type-error", 3, 2),
        ("type-error", 3, 3),
        ("type-error", 3, 4),
        ("constraint-error", 4, 1),
        ("constraint-error", 4, 2),
        ("constraint-error", 4, 3),
        ("unique-error", 4, 1),
        ("primary-key", 4, None),
        ("constraint-error", 5, 1),
        ("constraint-error", 5, 3),
        ("type-error", 5, 4),
        ("constraint-error", 6, 2),
        ("constraint-error", 6, 3),
        ("constraint-error", 6, 4),
        ("primary-key", 6, None),
    ]
    by_row = {
        (e["type"], e.get("rowNumber"), e.get("fieldNumber")): e for e in result.report["errors"]
    }
    assert by_row[("type-error", 3, 2)]["message"] == (
        'Type error in the cell "x" in row "3" and field "B" at position "2": type is "integer/default"'
    )
    assert by_row[("type-error", 3, 2)]["cell"] == "x"
    assert by_row[("constraint-error", 4, 2)]["note"] == 'constraint "required" is "True"'
    assert by_row[("constraint-error", 5, 1)]["note"] == 'constraint "enum" is "[1, 2]"'
    assert by_row[("unique-error", 4, 1)]["note"] == "the same as in the row at position 2"
    assert (
        by_row[("primary-key", 6, None)]["note"]
        == 'cells composing the primary keys are all "None"'
    )
    assert by_row[("incorrect-label", None, 2)]["message"] == (
        'Label "b" in field B at position "2" does not match the field name in the schema'
    )
    assert result.report["stats"]["errors"] == 17
    assert result.report["stats"]["rows"] == 5


def test_string_constraints(con, tmp_path):
    schema = {
        "fields": [
            {"name": "code", "constraints": {"pattern": "[A-Z]{2}", "maxLength": 2}},
            {"name": "size", "constraints": {"enum": ["S", "M"], "minLength": 1}},
        ]
    }
    result = load(con, tmp_path, "data.csv", "code,size\nAB,S\nABC,M\nab,L\n", schema=schema)
    assert [(e["rowNumber"], e["fieldName"], e["note"]) for e in result.report["errors"]] == [
        (3, "code", 'constraint "maxLength" is "2"'),
        (3, "code", 'constraint "pattern" is "[A-Z]{2}"'),
        (4, "code", 'constraint "pattern" is "[A-Z]{2}"'),
        (4, "size", "constraint \"enum\" is \"['S', 'M']\""),
    ]


def test_a_composite_primary_key(con, tmp_path):
    schema = {
        "fields": [{"name": "k1", "type": "integer"}, {"name": "k2"}, {"name": "v"}],
        "primaryKey": ["k1", "k2"],
    }
    text = "k1,k2,v\n1,a,x\n1,b,y\n1,a,z\n,b,w\n"
    result = load(con, tmp_path, "data.csv", text, schema=schema)
    assert errors(result) == [("primary-key", 4, None), ("constraint-error", 5, "k1")]


def test_header_label_errors(con, tmp_path):
    result = load(con, tmp_path, "data.csv", "a,,a\n1,2,3\n")
    assert errors(result) == [("blank-label", None, "field2"), ("duplicate-label", None, "a2")]
    assert result.report["errors"][1]["note"] == 'at position "1"'
    schema = {"fields": [{"name": "a"}, {"name": "b"}, {"name": "c"}]}
    result = load(con, tmp_path, "data.csv", "a,b\n1,2\n", schema=schema)
    assert errors(result) == [("missing-label", None, "c")]
    result = load(con, tmp_path, "data.csv", "a,b,c\n1,2,3\n", schema={"fields": [{"name": "a"}]})
    assert [e["type"] for e in result.report["errors"]] == ["extra-label", "extra-label"]


def test_field_names_that_differ_only_by_case(con, tmp_path):
    # DuckDB's column names ignore case: a schema cannot use both, an inferred one renames.
    schema = {"fields": [{"name": "a"}, {"name": "A"}]}
    result = load(con, tmp_path, "data.csv", "a,A\n1,2\n", schema=schema)
    assert errors(result) == [("schema-error", None, None)]
    result = load(con, tmp_path, "data.csv", "a,A\n1,2\n")
    assert result.valid
    assert columns(con) == [("a", "BIGINT"), ("A2", "BIGINT")]


def test_errors_are_capped_but_all_counted(con, tmp_path):
    text = "n\n" + "x\n" * (MAX_ERRORS + 500)
    result = load(
        con, tmp_path, "data.csv", text, schema={"fields": [{"name": "n", "type": "integer"}]}
    )
    assert len(result.report["errors"]) == MAX_ERRORS
    assert result.report["stats"]["errors"] == MAX_ERRORS + 500
    assert result.report["errors"][-1]["rowNumber"] == MAX_ERRORS + 1


def test_a_schema_that_cannot_be_used(con, tmp_path):
    bad_pattern = {"fields": [{"name": "a", "constraints": {"pattern": "("}}]}
    assert errors(load(con, tmp_path, "data.csv", "a\n1\n", schema=bad_pattern)) == [
        ("schema-error", None, None)
    ]
    unknown = {"fields": [{"name": "a", "type": "money"}]}
    assert errors(load(con, tmp_path, "data.csv", "a\n1\n", schema=unknown)) == [
        ("schema-error", None, None)
    ]


# Types


def one_column(
    con, tmp_path, field: dict[str, Any], values: list[str], **schema: Any
) -> TableResult:
    text = "v\n" + "".join(f'"{v}"\n' for v in values)
    return load(
        con, tmp_path, "data.csv", text, schema={"fields": [{"name": "v", **field}], **schema}
    )


def bad_rows(result: TableResult) -> list[int]:
    return [e["rowNumber"] for e in result.report["errors"]]


def test_integers_are_strict(con, tmp_path):
    result = one_column(
        con, tmp_path, {"type": "integer"}, ["1", "+2", "-3", "1.0", "1e3", "0x10", "1.5"]
    )
    assert bad_rows(result) == [5, 6, 7, 8]


def test_numbers(con, tmp_path):
    values = ["1", "-2.5", ".5", "1e3", "NaN", "INF", "-INF", "1,5", "1_000"]
    assert bad_rows(one_column(con, tmp_path, {"type": "number"}, values)) == [9, 10]
    european = {"type": "number", "decimalChar": ",", "groupChar": "."}
    result = one_column(con, tmp_path, european, ["1.234,5", "2"])
    assert result.valid
    assert rows(con) == [(1234.5,), (2.0,)]
    result = one_column(con, tmp_path, {"type": "number", "bareNumber": False}, ["€95", "12%"])
    assert rows(con) == [(95.0,), (12.0,)]


def test_booleans_with_custom_values(con, tmp_path):
    result = one_column(con, tmp_path, {"type": "boolean"}, ["true", "FALSE", "1", "yes"])
    assert bad_rows(result) == [5]
    field = {"type": "boolean", "trueValues": ["yes"], "falseValues": ["no"]}
    assert one_column(con, tmp_path, field, ["yes", "no"]).valid
    assert rows(con) == [(True,), (False,)]


def test_dates(con, tmp_path):
    result = one_column(
        con,
        tmp_path,
        {"type": "date"},
        ["2020-01-02", "2020-1-2", "2020-02-30", "2020-01-02T00:00", "02/01/2020"],
    )
    assert bad_rows(result) == [4, 5, 6]
    assert one_column(con, tmp_path, {"type": "date", "format": "%d/%m/%Y"}, ["02/01/2020"]).valid
    assert rows(con) == [(datetime.date(2020, 1, 2),)]
    assert one_column(
        con, tmp_path, {"type": "date", "format": "any"}, ["2020-01-02", "03/01/2020", "5 Feb 2020"]
    ).valid
    assert rows(con) == [
        (datetime.date(2020, 1, 2),),
        (datetime.date(2020, 1, 3),),
        (datetime.date(2020, 2, 5),),
    ]


def test_datetimes_times_and_years(con, tmp_path):
    values = [
        "2020-01-02T03:04:05",
        "2020-01-02 03:04:05Z",
        "2020-01-02T03:04:05.5+01:00",
        "2020-01-02",
    ]
    result = one_column(con, tmp_path, {"type": "datetime"}, values)
    assert bad_rows(result) == [5]
    assert one_column(con, tmp_path, {"type": "datetime"}, values[:3]).valid
    assert rows(con) == [
        (datetime.datetime(2020, 1, 2, 3, 4, 5),),
        (datetime.datetime(2020, 1, 2, 3, 4, 5),),
        (datetime.datetime(2020, 1, 2, 2, 4, 5, 500000),),
    ]
    assert bad_rows(
        one_column(con, tmp_path, {"type": "time"}, ["10:11:12", "25:00:00", "10:11"])
    ) == [3, 4]
    assert bad_rows(one_column(con, tmp_path, {"type": "year"}, ["2020", "20", "02020"])) == [3, 4]


def test_text_types_are_checked_and_kept_as_text(con, tmp_path):
    cases = {
        "yearmonth": (["2020-01", "2020-13"], [3]),
        "duration": (["P1Y2M", "PT5M", "P", "5 days"], [4, 5]),
        "geopoint": (["10.5, -3", "north"], [3]),
        "object": (['{""a"": 1}', "[1]", "{"], [3, 4]),
        "array": (["[1, 2]", '{""a"": 1}'], [3]),
        "any": (["whatever"], []),
    }
    for kind, (values, bad) in cases.items():
        assert bad_rows(one_column(con, tmp_path, {"type": kind}, values)) == bad, kind
        assert duckdb_type({"type": kind}) == "VARCHAR"


def test_missing_values(con, tmp_path):
    schema = {
        "fields": [{"name": "n", "type": "integer"}, {"name": "s"}],
        "missingValues": ["NA", "-"],
    }
    result = load(con, tmp_path, "data.csv", "n,s\n1,a\nNA,b\n,c\n-,d\n", schema=schema)
    assert errors(result) == [("type-error", 4, "n")]  # "" is a value now, and not an integer
    assert load(con, tmp_path, "data.csv", "n,s\n1,a\nNA,-b\n-,\n", schema=schema).valid
    assert rows(con) == [(1, "a"), (None, "-b"), (None, "")]
    # A row whose every cell is missing is blank.
    assert errors(load(con, tmp_path, "data.csv", "n,s\n1,a\nNA,-\n", schema=schema)) == [
        ("blank-row", 3, None)
    ]


def test_duckdb_types():
    assert [
        duckdb_type({"type": t})
        for t in ["integer", "number", "boolean", "date", "datetime", "time", "year", "string"]
    ] == [
        "BIGINT",
        "DOUBLE",
        "BOOLEAN",
        "DATE",
        "TIMESTAMP",
        "TIME",
        "INTEGER",
        "VARCHAR",
    ]
    assert duckdb_type({"name": "no type"}) == "VARCHAR"


# Inference


def test_inference_picks_the_narrowest_type(con, tmp_path):
    text = (
        "int,num,flag,day,at,text,code,empty\n"
        "1,1.5,true,2020-01-01,2020-01-01T10:00:00,a,007,\n"
        "-2,3,FALSE,2020-12-31,2020-01-01 11:00:00,2,010,\n"
        ",,,,,,,\n"
    )
    result = load(con, tmp_path, "data.csv", text)
    assert errors(result) == [("blank-row", 4, None)]
    assert [f["type"] for f in result.schema["fields"]] == [
        "integer",
        "number",
        "boolean",
        "date",
        "datetime",
        "string",
        "string",
        "string",
    ]
    assert result.inferred


def test_inference_checks_every_row_not_just_the_first(con, tmp_path):
    text = "n\n" + "1\n" * 20_000 + "x\n"
    result = load(con, tmp_path, "data.csv", text)
    assert result.valid
    assert result.schema["fields"] == [{"name": "n", "type": "string"}]


def test_rows_keep_file_order_in_a_large_file(con, tmp_path):
    text = "n,s\n" + "".join(f"{i},v{i}\n" for i in range(200_000))
    result = load(con, tmp_path, "data.csv", text)
    assert result.valid
    assert result.rows == 200_000
    mismatches = con.execute(
        'SELECT count(*) FROM (SELECT n, row_number() OVER () - 1 AS i FROM "t") WHERE n <> i'
    )
    assert mismatches.fetchone() == (0,)


# The table's life


def test_an_invalid_load_drops_an_older_table_and_a_valid_one_replaces_it(con, tmp_path):
    schema = {"fields": [{"name": "n", "type": "integer"}]}
    assert load(con, tmp_path, "data.csv", "n\n1\n", schema=schema).valid
    assert load(con, tmp_path, "data.csv", "n\n1\n2\n", schema=schema).valid
    assert rows(con) == [(1,), (2,)]
    assert not load(con, tmp_path, "data.csv", "n\nx\n", schema=schema).valid
    assert not table_exists(con)
    leftovers = con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name LIKE '_dphub%'")
    assert leftovers.fetchone() == (0,)


def test_is_tabular(tmp_path):
    assert is_tabular({"path": "a.csv"})
    assert is_tabular({"path": "a.TSV"})
    assert is_tabular({"path": "x.bin", "schema": {"fields": []}})
    assert is_tabular({"path": "x", "format": "xlsx"})
    assert is_tabular({"path": "x", "mediatype": "text/csv"})
    assert is_tabular({"path": "x.jsonl"})
    assert is_tabular({"path": "x", "profile": "tabular-data-resource"})
    assert not is_tabular({"path": "a.pdf"})
    assert not is_tabular({"path": "a.xls"})
    (tmp_path / "rows.json").write_text(' [ {"a": 1} ]')
    (tmp_path / "config.json").write_text('{"a": 1}')
    assert is_tabular({"path": "rows.json"}, source=tmp_path / "rows.json")
    assert not is_tabular({"path": "config.json"}, source=tmp_path / "config.json")


# Export


def make_export_table(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(
        """CREATE TABLE "t" AS SELECT * FROM (VALUES
        (1, 'a,b', 'say "hi"', 1.5::DOUBLE, true, DATE '2020-01-02', TIMESTAMP '2020-01-02 03:04:05', TIME '10:11:12'),
        (2, 'line 1' || chr(10) || 'line 2', '', 'NaN'::DOUBLE, NULL, NULL, TIMESTAMP '2020-01-02 03:04:05.25', NULL),
        (3, NULL, 'x', 'inf'::DOUBLE, false, DATE '1999-12-31', NULL, NULL)
        ) v("id", "text", "quote", "x", "ok", "day", "at", "clock")"""
    )


def test_export_csv(con, tmp_path):
    make_export_table(con)
    export_csv(con, "t", tmp_path / "out.csv")
    assert (tmp_path / "out.csv").read_bytes().decode() == (
        "id,text,quote,x,ok,day,at,clock\n"
        '1,"a,b","say ""hi""",1.5,true,2020-01-02,2020-01-02T03:04:05,10:11:12\n'
        '2,"line 1\nline 2","",NaN,,,2020-01-02T03:04:05.25,\n'
        "3,,x,INF,false,1999-12-31,,\n"
    )


def test_export_json_and_preview(con, tmp_path):
    make_export_table(con)
    export_json(con, "t", tmp_path / "out.json")
    expected = [
        {
            "id": 1,
            "text": "a,b",
            "quote": 'say "hi"',
            "x": 1.5,
            "ok": True,
            "day": "2020-01-02",
            "at": "2020-01-02T03:04:05",
            "clock": "10:11:12",
        },
        {
            "id": 2,
            "text": "line 1\nline 2",
            "quote": "",
            "x": None,
            "ok": None,
            "day": None,
            "at": "2020-01-02T03:04:05.25",
            "clock": None,
        },
        {
            "id": 3,
            "text": None,
            "quote": "x",
            "x": None,
            "ok": False,
            "day": "1999-12-31",
            "at": None,
            "clock": None,
        },
    ]
    assert json.loads((tmp_path / "out.json").read_text(encoding="utf-8")) == expected
    assert preview(con, "t") == expected
    assert preview(con, "t", rows=1) == expected[:1]


def test_an_empty_table_exports_as_a_header_and_an_empty_array(con, tmp_path):
    assert load(con, tmp_path, "data.csv", "a,b\n").valid
    export_csv(con, "t", tmp_path / "out.csv")
    export_json(con, "t", tmp_path / "out.json")
    assert (tmp_path / "out.csv").read_text() == "a,b\n"
    assert json.loads((tmp_path / "out.json").read_text()) == []
    assert preview(con, "t") == []


def test_loaded_values_round_trip_through_the_exports(con, tmp_path):
    text = 'id,when,at,note\n1,2020-01-02,2020-01-02 03:04:05,"x, ""y"""\n'
    assert load(con, tmp_path, "data.csv", text).valid
    export_csv(con, "t", tmp_path / "out.csv")
    assert (tmp_path / "out.csv").read_text() == (
        'id,when,at,note\n1,2020-01-02,2020-01-02T03:04:05,"x, ""y"""\n'
    )
