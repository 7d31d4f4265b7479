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

from dphub.dataproxy import SAMPLE_ROWS, Options, Prepared, open_table
from dphub.errors import InvalidRequest

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
