"""The DataProxy's conversions: every input format to every answer format, typed values, the
options, and a well-defined answer (or a 4xx) for each kind of bad input."""

from __future__ import annotations

import csv
import datetime
import io
import json
from pathlib import Path
from typing import Any

import duckdb
import openpyxl
import pytest

from dphub.dataproxy import MAX_COLUMNS, SAMPLE_ROWS, Options, Prepared, open_table
from dphub.errors import InvalidRequest, UnsupportedMediaType

URL = "http://hub.test/owner/pkg/r/data.csv"


def prepare(
    tmp_path: Path,
    name: str,
    content: str | bytes | None,
    resource: dict[str, Any] | None = None,
    **options: Any,
) -> Prepared:
    path = tmp_path / name
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8", newline="")
    elif isinstance(content, bytes):
        path.write_bytes(content)
    workdir = tmp_path / "work"
    workdir.mkdir(exist_ok=True)
    return open_table(
        path, resource, name=name, options=Options(**options), workdir=workdir, url=URL
    )


def body(prepared: Prepared) -> bytes:
    return b"".join(prepared.chunks())


def as_json(tmp_path: Path, name: str, content: str | bytes | None, **kw: Any) -> dict[str, Any]:
    answer = json.loads(body(prepare(tmp_path, name, content, **kw)))
    assert isinstance(answer, dict)
    return answer


def as_records(tmp_path: Path, name: str, content: str | bytes | None, **kw: Any) -> list[Any]:
    lines = body(prepare(tmp_path, name, content, format="ndjson", **kw)).decode().splitlines()
    return [json.loads(line) for line in lines]


def as_csv(tmp_path: Path, name: str, content: str | bytes | None, **kw: Any) -> list[list[str]]:
    text = body(prepare(tmp_path, name, content, format="csv", **kw)).decode("utf-8")
    return list(csv.reader(io.StringIO(text, newline="")))


SAMPLE = (
    "id,name,price,ok,day,stamp\n"
    "1,apple,1.5,true,2024-01-31,2024-01-31T10:00:00\n"
    '2,"pear, green",2,false,2024-02-01,2024-02-01 11:30:00\n'
    "3,,,,,\n"
)
TYPES = ["integer", "string", "number", "boolean", "date", "datetime"]
ROWS = [
    [1, "apple", 1.5, True, "2024-01-31", "2024-01-31T10:00:00"],
    [2, "pear, green", 2.0, False, "2024-02-01", "2024-02-01T11:30:00"],
    [3, None, None, None, None, None],
]
NAMES = ["id", "name", "price", "ok", "day", "stamp"]


def xlsx(path: Path, sheets: dict[str, list[list[Any]]]) -> bytes:
    book = openpyxl.Workbook()
    book.remove(book.active)
    for title, rows in sheets.items():
        sheet = book.create_sheet(title)
        for row in rows:
            sheet.append(row)
    book.save(path)
    return path.read_bytes()


def parquet(path: Path) -> bytes:
    con = duckdb.connect()
    con.execute(
        "COPY (SELECT i AS id, ['apple', 'pear, green', NULL][i] AS name,"
        " [1.5, 2.0, NULL][i]::DOUBLE AS price, [true, false, NULL][i] AS ok,"
        " [DATE '2024-01-31', DATE '2024-02-01', NULL][i] AS day,"
        " [TIMESTAMP '2024-01-31 10:00:00', TIMESTAMP '2024-02-01 11:30:00', NULL][i] AS stamp"
        " FROM range(1, 4) t(i)) TO $path (FORMAT parquet)",
        {"path": str(path)},
    )
    return path.read_bytes()


def sample_in(fmt: str, tmp_path: Path) -> tuple[str, bytes]:
    """The same table in each input format."""
    if fmt == "csv":
        return "data.csv", SAMPLE.encode()
    if fmt == "tsv":
        return "data.tsv", SAMPLE.replace(",", "\t").replace(
            '"pear\t green"', "pear, green"
        ).encode()
    if fmt == "semicolon":
        return "data.csv", SAMPLE.replace(",", ";").replace('"pear; green"', "pear, green").encode()
    if fmt == "xlsx":
        rows: list[list[Any]] = [NAMES]
        rows.append(
            [1, "apple", 1.5, True, datetime.date(2024, 1, 31), datetime.datetime(2024, 1, 31, 10)]
        )
        rows.append(
            [
                2,
                "pear, green",
                2,
                False,
                datetime.date(2024, 2, 1),
                datetime.datetime(2024, 2, 1, 11, 30),
            ]
        )
        rows.append([3])
        book = xlsx(tmp_path / "made.xlsx", {"Data": rows})
        return "data.xlsx", book
    records = [dict(zip(NAMES, r, strict=True)) for r in ROWS]
    if fmt == "json":
        return "data.json", json.dumps(records).encode()
    if fmt == "json-arrays":
        return "data.json", json.dumps([NAMES, *ROWS]).encode()
    if fmt == "ndjson":
        return "data.ndjson", "\n".join(json.dumps(r) for r in records).encode()
    assert fmt == "parquet"
    return "data.parquet", parquet(tmp_path / "made.parquet")


INPUTS = ["csv", "tsv", "semicolon", "xlsx", "json", "json-arrays", "ndjson", "parquet"]


@pytest.mark.parametrize("fmt", INPUTS)
def test_every_input_as_json(tmp_path: Path, fmt: str) -> None:
    name, content = sample_in(fmt, tmp_path)
    answer = as_json(tmp_path, name, content)
    assert answer["url"] == URL
    assert answer["fields"] == [{"name": n, "type": t} for n, t in zip(NAMES, TYPES, strict=True)]
    assert answer["data"] == ROWS
    assert (answer["offset"], answer["limit"], answer["total"]) == (0, None, 3)


@pytest.mark.parametrize("fmt", INPUTS)
def test_every_input_as_ndjson(tmp_path: Path, fmt: str) -> None:
    name, content = sample_in(fmt, tmp_path)
    records = as_records(tmp_path, name, content)
    assert records == [dict(zip(NAMES, r, strict=True)) for r in ROWS]
    assert [list(r) for r in records] == [NAMES] * 3  # keys in field order


@pytest.mark.parametrize("fmt", INPUTS)
def test_every_input_as_csv(tmp_path: Path, fmt: str) -> None:
    name, content = sample_in(fmt, tmp_path)
    assert as_csv(tmp_path, name, content) == [
        NAMES,
        ["1", "apple", "1.5", "true", "2024-01-31", "2024-01-31T10:00:00"],
        ["2", "pear, green", "2.0", "false", "2024-02-01", "2024-02-01T11:30:00"],
        ["3", "", "", "", "", ""],
    ]


def test_csv_answer_quotes_what_needs_it(tmp_path: Path) -> None:
    text = 'a,b\n"x, y","say ""hi"""\n"two\nlines",plain\n'
    raw = body(prepare(tmp_path, "q.csv", text, format="csv")).decode()
    assert raw == 'a,b\n"x, y","say ""hi"""\n"two\nlines",plain\n'


def test_prepared_knows_fields_and_total_before_streaming(tmp_path: Path) -> None:
    prepared = prepare(tmp_path, "data.csv", SAMPLE)
    assert prepared.fields[0] == {"name": "id", "type": "integer"}
    assert prepared.total == 3
    prepared.close()


# Typed values


def test_a_value_that_does_not_fit_its_type_is_given_as_text(tmp_path: Path) -> None:
    schema = {
        "fields": [
            {"name": "n", "type": "integer"},
            {"name": "x", "type": "number"},
            {"name": "d", "type": "date"},
            {"name": "b", "type": "boolean"},
        ]
    }
    text = "n,x,d,b\n1,2.5,2024-01-02,true\nabc,NaN,31/12/2024,maybe\n99999999999999999999,1e3,,0\n"
    answer = as_json(tmp_path, "s.csv", text, resource={"schema": schema})
    assert answer["data"] == [
        [1, 2.5, "2024-01-02", True],
        ["abc", "NaN", "31/12/2024", "maybe"],
        ["99999999999999999999", 1000.0, None, False],
    ]
    assert as_csv(tmp_path, "s.csv", None, resource={"schema": schema})[2] == [
        "abc",
        "NaN",
        "31/12/2024",
        "maybe",
    ]


def test_the_schema_options_are_the_pipelines(tmp_path: Path) -> None:
    schema = {
        "fields": [
            {"name": "id", "type": "integer"},
            {"name": "when", "type": "datetime"},
            {"name": "amount", "type": "number", "groupChar": ","},
            {"name": "flag", "type": "boolean", "trueValues": ["yes"], "falseValues": ["no"]},
            {"name": "day", "type": "date", "format": "%d/%m/%Y"},
            {"name": "tags", "type": "array"},
        ],
        "missingValues": ["", "NA"],
    }
    text = (
        "id,when,amount,flag,day,tags\n"
        '007,2024-01-02T10:00:00+02:00,"1,000.5",yes,31/12/2024,"[1, ""a""]"\n'
        "NA,NA,NA,no,NA,NA\n"
    )
    answer = as_json(tmp_path, "s.csv", text, resource={"schema": schema})
    assert answer["fields"][3] == {"name": "flag", "type": "boolean"}
    assert answer["data"] == [
        [7, "2024-01-02T08:00:00", 1000.5, True, "2024-12-31", [1, "a"]],
        [None, None, None, False, None, None],
    ]


def test_the_schema_names_the_columns_by_position(tmp_path: Path) -> None:
    schema = {
        "fields": [{"name": "first", "type": "integer"}, {"name": "second"}, {"name": "third"}]
    }
    answer = as_json(tmp_path, "s.csv", "a,b\n1,x\n", resource={"schema": schema})
    assert [f["name"] for f in answer["fields"]] == ["first", "second", "third"]
    assert answer["fields"][1]["type"] == "string"
    assert answer["data"] == [[1, "x", None]]


def test_json_objects_are_matched_to_the_schema_by_key(tmp_path: Path) -> None:
    schema = {"fields": [{"name": "b", "type": "integer"}, {"name": "a", "type": "string"}]}
    text = json.dumps([{"a": "x", "b": "1"}, {"b": 2, "c": True}])
    answer = as_json(tmp_path, "s.json", text, resource={"schema": schema})
    assert answer["data"] == [[1, "x"], [2, None]]


def test_a_schema_the_pipeline_would_refuse_is_ignored_for_inference(tmp_path: Path) -> None:
    schema = {"fields": [{"name": "a", "type": "no-such-type"}]}
    answer = as_json(tmp_path, "s.csv", "a\n1\n", resource={"schema": schema})
    assert answer["fields"] == [{"name": "a", "type": "integer"}]


def test_inference_follows_the_pipelines_rules(tmp_path: Path) -> None:
    text = "zip,flag,when,t,empty,mixed\n007,1,2024-01-02 10:00:00,10:00:00,,1\n012,0,2024-01-03 11:00:00,11:30:00,,x\n"
    answer = as_json(tmp_path, "i.csv", text)
    assert [f["type"] for f in answer["fields"]] == [
        "string",  # numbers with leading zeros are identifiers
        "integer",  # 1 and 0 read as integers before booleans
        "datetime",
        "time",
        "string",
        "string",
    ]
    assert answer["data"][0] == ["007", 1, "2024-01-02T10:00:00", "10:00:00", None, "1"]


def test_types_are_inferred_from_a_sample_and_later_misfits_kept_as_text(tmp_path: Path) -> None:
    lines = ["n"] + [str(i) for i in range(SAMPLE_ROWS)] + ["oops"]
    answer = as_json(tmp_path, "late.csv", "\n".join(lines) + "\n", offset=SAMPLE_ROWS - 1)
    assert answer["fields"] == [{"name": "n", "type": "integer"}]
    assert answer["data"] == [[SAMPLE_ROWS - 1], ["oops"]]
    assert "total" not in answer  # more rows than the sample: unknown up front


def test_header_names_are_made_unique_and_never_blank(tmp_path: Path) -> None:
    answer = as_json(tmp_path, "h.csv", "a,A,,a\n1,2,3,4\n")
    assert [f["name"] for f in answer["fields"]] == ["a", "A2", "field3", "a3"]


def test_parquet_keeps_its_types_and_knows_its_total(tmp_path: Path) -> None:
    path = tmp_path / "t.parquet"
    duckdb.connect().execute(
        "COPY (SELECT i, 'NaN'::DOUBLE AS nan, [i, i] AS pair, {'k': i} AS obj,"
        " 12.50::DECIMAL(5, 2) AS dec FROM range(25) t(i)) TO $p (FORMAT parquet)",
        {"p": str(path)},
    )
    prepared = prepare(tmp_path, "t.parquet", None, limit=2, offset=3)
    assert prepared.total == 25
    answer = json.loads(body(prepared))
    assert [f["type"] for f in answer["fields"]] == [
        "integer",
        "number",
        "array",
        "object",
        "number",
    ]
    assert answer["data"] == [[3, None, [3, 3], {"k": 3}, 12.5], [4, None, [4, 4], {"k": 4}, 12.5]]
    assert answer["total"] == 25
    assert as_csv(tmp_path, "t.parquet", None, limit=1)[1] == [
        "0",
        "NaN",
        "[0,0]",
        '{"k":0}',
        "12.50",
    ]


# Options


def test_limit_and_offset(tmp_path: Path) -> None:
    text = "n\n" + "".join(f"{i}\n" for i in range(10))
    answer = as_json(tmp_path, "n.csv", text, offset=3, limit=4)
    assert answer["data"] == [[3], [4], [5], [6]]
    assert (answer["offset"], answer["limit"], answer["total"]) == (3, 4, 10)
    assert as_json(tmp_path, "n.csv", None, limit=0)["data"] == []


def test_offset_past_the_end_is_an_empty_page(tmp_path: Path) -> None:
    answer = as_json(tmp_path, "n.csv", "n\n1\n2\n", offset=50)
    assert answer["data"] == []
    assert answer["total"] == 2
    assert as_records(tmp_path, "n.csv", None, offset=50) == []
    assert as_csv(tmp_path, "n.csv", None, offset=50) == [["n"]]


def test_fields_choose_and_order_the_columns(tmp_path: Path) -> None:
    answer = as_json(tmp_path, "data.csv", SAMPLE, fields=("ok", "id"), limit=1)
    assert answer["fields"] == [
        {"name": "ok", "type": "boolean"},
        {"name": "id", "type": "integer"},
    ]
    assert answer["data"] == [[True, 1]]
    assert as_records(tmp_path, "data.csv", None, fields=("name",), limit=1) == [{"name": "apple"}]


def test_an_unknown_field_is_named_in_the_error(tmp_path: Path) -> None:
    with pytest.raises(InvalidRequest) as caught:
        prepare(tmp_path, "data.csv", SAMPLE, fields=("id", "nope"))
    assert caught.value.status == 400
    assert caught.value.code == "invalid-request"
    assert "nope" in caught.value.message
    assert caught.value.details["field"] == "nope"
    assert caught.value.details["fields"] == NAMES


@pytest.mark.parametrize(
    "options",
    [
        {"format": "xml"},
        {"limit": -1},
        {"offset": -5},
        {"fields": ()},
        {"fields": ("id", "id")},
        {"delimiter": ";;"},
        {"delimiter": '"'},
    ],
)
def test_bad_options_are_invalid_requests(tmp_path: Path, options: dict[str, Any]) -> None:
    with pytest.raises(InvalidRequest):
        prepare(tmp_path, "data.csv", SAMPLE, **options)


def test_delimiter_and_header_options(tmp_path: Path) -> None:
    text = "1|a,b\n2|c\n"
    answer = as_json(tmp_path, "p.txt", text, delimiter="|", header=False)
    assert answer["fields"] == [
        {"name": "field1", "type": "integer"},
        {"name": "field2", "type": "string"},
    ]
    assert answer["data"] == [[1, "a,b"], [2, "c"]]


def test_the_resource_dialect_is_a_hint(tmp_path: Path) -> None:
    resource = {"dialect": {"delimiter": ":", "header": False}}
    assert as_json(tmp_path, "d.csv", "1:2\n", resource=resource)["data"] == [[1, 2]]


def test_sheets_by_name_and_by_position(tmp_path: Path) -> None:
    content = xlsx(tmp_path / "s.xlsx", {"One": [["a"], [1]], "Two": [["b", "c"], ["x", 2.5]]})
    assert as_json(tmp_path, "book.xlsx", content)["data"] == [[1]]
    assert as_records(tmp_path, "book.xlsx", None, sheet="Two") == [{"b": "x", "c": 2.5}]
    assert as_records(tmp_path, "book.xlsx", None, sheet=2) == [{"b": "x", "c": 2.5}]
    with pytest.raises(InvalidRequest) as caught:
        prepare(tmp_path, "book.xlsx", None, sheet="Three")
    assert caught.value.details["sheets"] == ["One", "Two"]
    with pytest.raises(InvalidRequest):
        prepare(tmp_path, "book.xlsx", None, sheet=3)


def test_a_stored_blob_without_extension_is_recognised(tmp_path: Path) -> None:
    book = xlsx(tmp_path / "s.xlsx", {"S": [["a"], [1]]})
    assert as_json(tmp_path, "blob", book)["data"] == [[1]]
    assert as_json(tmp_path, "blob2", json.dumps([{"a": 1}]))["data"] == [[1]]
    assert as_json(tmp_path, "blob3", '{"a": 1}\n{"a": 2}\n')["data"] == [[1], [2]]
    assert as_json(tmp_path, "blob4", "a;b\n1;2\n")["data"] == [[1, 2]]


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
    width = 300
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
