"""Reading a tabular resource's file into a raw DuckDB table of text cells, whatever its format.

Every format ends up the same way: a temporary table with one row per record in file order (its
``rowid`` is the record's position among the records kept), plus one SQL expression per column that
gives the cell as text, NULL when the row has no such cell. CSV is read by DuckDB itself after one
streaming pass that checks the bytes are UTF-8 (they are transcoded into ``workdir`` when they are
not); XLSX is streamed to a CSV with openpyxl first; JSON arrays and NDJSON go through DuckDB's JSON
reader. Nothing holds a whole file in Python memory.

Row numbers follow Frictionless: the header is row 1 and blank rows count. DuckDB skips empty lines
and the rows it rejects, so those row numbers are kept aside (``RawTable.absent``) and
:meth:`RawTable.row_number` maps a ``rowid`` back to the row number a person sees.
"""

# ruff: noqa: S608 - SQL text is built from quoted identifiers and fixed parts; values are parameters

from __future__ import annotations

import bisect
import codecs
import csv
import datetime
import io
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

CHUNK_BYTES = 1 << 20
SAMPLE_BYTES = 1 << 20
DELIMITERS = (",", ";", "\t", "|")
# The NULL string DuckDB is given never occurs in real data, so an empty cell reads as '' and NULL
# is left to mean "this row has no such cell" (null_padding).
NO_NULL = "\x01dphub-no-null\x02"
# Two line terminators in a row mean a blank line may exist (or a quoted value holds one).
_BLANK_LINE_MARKS = (b"\n\n", b"\n\r", b"\r\r")
_COLUMN_COUNT_REJECTS = ("TOO MANY COLUMNS", "MISSING COLUMNS")
_MAX_WIDENING = 3

_FORMATS = {"csv": "csv", "tsv": "tsv", "tab": "tsv", "xlsx": "xlsx", "json": "json"}
_FORMATS |= {"ndjson": "ndjson", "jsonl": "ndjson"}
_MEDIATYPES = {
    "text/csv": "csv",
    "text/tab-separated-values": "tsv",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "xlsx",
    "application/json": "json",
    **dict.fromkeys(["application/x-ndjson", "application/ndjson", "application/jsonl"], "ndjson"),
}

# Frictionless' error catalog, so a report reads like one Frictionless writes:
# type -> (title, tags, message template, description).
_ROW, _CELL, _LABEL = (
    ("#table", "#row"),
    ("#table", "#row", "#cell"),
    ("#table", "#header", "#label"),
)
# fmt: off
ERRORS: dict[str, tuple[str, tuple[str, ...], str, str]] = {
    "type-error": ("Type Error", _CELL,
        'Type error in the cell "{cell}" in row "{rowNumber}" and field "{fieldName}" at position "{fieldNumber}": {note}',
        "The value does not match the schema type and format for this field."),
    "constraint-error": ("Constraint Error", _CELL,
        'The cell "{cell}" in row at position "{rowNumber}" and field "{fieldName}" at position "{fieldNumber}" does not conform to a constraint: {note}',
        "A field value does not conform to a constraint."),
    "unique-error": ("Unique Error", _CELL,
        'Row at position "{rowNumber}" has unique constraint violation in field "{fieldName}" at position "{fieldNumber}": {note}',
        "This field is a unique field but it contains a value that has been used in another row."),
    "missing-cell": ("Missing Cell", _CELL,
        'Row at position "{rowNumber}" has a missing cell in field "{fieldName}" at position "{fieldNumber}"',
        "This row has less values compared to the header row (the first row in the data source)."),
    "extra-cell": ("Extra Cell", _CELL,
        'Row at position "{rowNumber}" has an extra value in field at position "{fieldNumber}"',
        "This row has more values compared to the header row (the first row in the data source)."),
    "blank-row": ("Blank Row", _ROW,
        'Row at position "{rowNumber}" is completely blank',
        "This row is empty. A row should contain at least one value."),
    "primary-key": ("PrimaryKey Error", _ROW,
        'Row at position "{rowNumber}" violates the primary key: {note}',
        "Values in the primary key fields should be unique for every row"),
    "blank-header": ("Blank Header", ("#table", "#header"),
        "Header is completely blank",
        "This header is empty. A header should contain at least one value."),
    "blank-label": ("Blank Label", _LABEL,
        'Label in the header in field at position "{fieldNumber}" is blank',
        "A label in the header row is missing a value. Label should be provided and not be blank."),
    "duplicate-label": ("Duplicate Label", _LABEL,
        'Label "{label}" in the header at position "{fieldNumber}" is duplicated to a label: {note}',
        "Two columns in the header row have the same value. Column names should be unique."),
    "incorrect-label": ("Incorrect Label", _LABEL,
        'Label "{label}" in field {fieldName} at position "{fieldNumber}" does not match the field name in the schema',
        "One of the data source header does not match the field name defined in the schema."),
    "extra-label": ("Extra Label", _LABEL,
        'There is an extra label "{label}" in header at position "{fieldNumber}"',
        "The header of the data source contains label that does not exist in the provided schema."),
    "missing-label": ("Missing Label", _LABEL,
        'There is a missing label in the header\'s field "{fieldName}" at position "{fieldNumber}"',
        "Based on the schema there should be a label that is missing in the data's header."),
    "source-error": ("Source Error", (),
        "The data source has not supported or has inconsistent contents: {note}",
        "Data reading error because of not supported or inconsistent contents."),
    "format-error": ("Format Error", (),
        "The data source could not be successfully parsed: {note}",
        "Data reading error because of incorrect format."),
    "encoding-error": ("Encoding Error", (),
        "The data source could not be successfully decoded: {note}",
        "Data reading error because of an encoding problem."),
    "schema-error": ("Schema Error", (), "Schema is not valid: {note}", "Provided schema is not valid."),
}
# fmt: on


def make_error(kind: str, *, note: str = "", **fields: Any) -> dict[str, Any]:
    """One error entry of a Frictionless task report."""
    title, tags, template, description = ERRORS[kind]
    return {
        "type": kind,
        "title": title,
        "description": description,
        "message": template.format(note=note, **fields),
        "tags": list(tags),
        "note": note,
        **fields,
    }


def quote(name: str) -> str:
    """``name`` as a DuckDB identifier."""
    return '"' + name.replace('"', '""') + '"'


class Params:
    """Named query parameters: :meth:`ref` hands out ``$pN``; :meth:`bind` gives a statement's."""

    _QUOTED = re.compile(r"\"(?:[^\"]|\"\")*\"|'(?:[^']|'')*'")
    _REF = re.compile(r"\$(p\d+)\b")

    def __init__(self) -> None:
        self.values: dict[str, object] = {}

    def ref(self, value: object) -> str:
        name = f"p{len(self.values)}"
        self.values[name] = value
        return "$" + name

    def bind(self, sql: str) -> dict[str, object]:
        # DuckDB refuses parameters a statement does not use; identifiers and literals are skipped
        # so a column named "$p1" is not mistaken for one.
        used = set(self._REF.findall(self._QUOTED.sub("", sql)))
        return {k: v for k, v in self.values.items() if k in used}


@dataclass
class Extra:
    """Cells beyond the header at one position: ``when`` (SQL) holds on rows that have one."""

    position: int
    when: str
    cell: str


@dataclass
class RawTable:
    """A resource read as text: see the module docstring."""

    name: str | None  # None when nothing could be read; ``errors`` says why
    cells: list[str] = field(default_factory=list)
    absent_cell: list[str] = field(default_factory=list)  # per column: SQL, true if no such cell
    labels: list[str] | None = None  # None when the source has no header row
    first_rowid: int = 0  # rowid of the first data row
    row_base: int = 1  # row number of rowid 0
    absent: list[int] = field(default_factory=list)  # row numbers of records not in the table
    extras: list[Extra] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    encoding: str = "utf-8"
    dialect: dict[str, Any] = field(default_factory=dict)
    extra_tables: list[str] = field(default_factory=list)
    _stored_before: list[int] = field(default_factory=list)

    def row_number(self, rowid: int) -> int:
        """The Frictionless row number of the record stored at ``rowid``."""
        if len(self._stored_before) != len(self.absent):
            # How many stored records come before each absent row, to bisect on.
            self._stored_before = [row - self.row_base - i for i, row in enumerate(self.absent)]
        return rowid + self.row_base + bisect.bisect_right(self._stored_before, rowid)

    def drop(self, con: duckdb.DuckDBPyConnection) -> None:
        for name in [self.name, *self.extra_tables]:
            if name is not None:
                con.execute(f"DROP TABLE IF EXISTS {quote(name)}")


def table_format(resource: dict[str, Any]) -> str | None:
    """``csv``, ``tsv``, ``xlsx``, ``json`` or ``ndjson`` when the descriptor says which, else None."""
    fmt = resource.get("format")
    if isinstance(fmt, str) and fmt.lower().lstrip(".") in _FORMATS:
        return _FORMATS[fmt.lower().lstrip(".")]
    mediatype = resource.get("mediatype")
    if isinstance(mediatype, str) and mediatype.lower().split(";")[0].strip() in _MEDIATYPES:
        return _MEDIATYPES[mediatype.lower().split(";")[0].strip()]
    path = resource.get("path")
    if isinstance(path, list) and path:
        path = path[0]
    if isinstance(path, str):
        return _FORMATS.get(path.rsplit("/", 1)[-1].rpartition(".")[2].lower())
    return None


def read_source(
    con: duckdb.DuckDBPyConnection,
    source: Path,
    resource: dict[str, Any],
    *,
    names: list[str] | None,
    workdir: Path,
    params: Params,
) -> RawTable:
    """Read ``source`` into a raw table. ``names`` are the schema's field names, when there is one."""
    dialect = resource.get("dialect")
    dialect = dialect if isinstance(dialect, dict) else {}
    fmt = table_format(resource) or ("json" if "data" in resource else "csv")
    declared = resource.get("encoding")
    declared = declared if isinstance(declared, str) and declared.strip() else None
    if source.stat().st_size == 0:
        return _failed("source-error", "the source is empty")
    if fmt == "xlsx":
        try:
            csv_path = _xlsx_to_csv(source, dialect.get("sheet"), workdir)
        except Exception as exc:  # a damaged workbook fails in many ways, all of them the file's
            return _failed("format-error", f"the workbook cannot be read ({exc})")
        csv_dialect = {"delimiter": ",", "header": dialect.get("header", True) is not False}
        return _read_csv(con, csv_path, csv_dialect, names, checked=True, workdir=workdir)
    if fmt in ("json", "ndjson"):
        return _read_json(con, source, dialect, names, fmt, declared, workdir, params)
    if fmt == "tsv":
        dialect = {"delimiter": "\t", **dialect}
    return _read_csv(con, source, dialect, names, declared=declared, workdir=workdir)


def _failed(kind: str, note: str) -> RawTable:
    return RawTable(name=None, errors=[make_error(kind, note=note)])


def _temp_name(kind: str) -> str:
    return f"_dphub_{kind}_{uuid.uuid4().hex}"


# Encodings


def _keep_as_latin1(exc: UnicodeError) -> tuple[str, int]:
    # The five bytes Windows-1252 leaves undefined are read as their Latin-1 characters.
    if isinstance(exc, UnicodeDecodeError):
        return exc.object[exc.start : exc.end].decode("latin-1"), exc.end
    raise exc


codecs.register_error("dphub-latin-1", _keep_as_latin1)


@dataclass
class _Text:
    path: Path
    encoding: str
    blank_lines: bool  # the text may hold blank lines (or a quoted value with an empty line)
    error: dict[str, Any] | None = None


def _as_utf8(source: Path, declared: str | None, workdir: Path) -> _Text:
    """``source`` as UTF-8 text: itself when it is, else a transcoded copy in ``workdir``."""
    if declared is not None:
        try:
            name = codecs.lookup(declared).name
        except LookupError:
            unknown = make_error("encoding-error", note=f'unknown encoding "{declared}"')
            return _Text(source, declared, False, unknown)
        if name in ("utf-8", "utf-8-sig", "ascii"):
            return _check_utf8(source)
        return _transcode(source, name, "strict", workdir)
    with source.open("rb") as f:
        head = f.read(4)
    if head.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):
        return _transcode(source, "utf-32", "strict", workdir)
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return _transcode(source, "utf-16", "strict", workdir)
    text = _check_utf8(source)
    if text.error is None:
        return text
    return _transcode(source, "cp1252", "dphub-latin-1", workdir)


def _check_utf8(source: Path) -> _Text:
    decoder = codecs.getincrementaldecoder("utf-8")()
    blank = False
    tail = b"\n"  # a newline first in the file is a blank line too
    offset = 0
    with source.open("rb") as f:
        while chunk := f.read(CHUNK_BYTES):
            blank = blank or _may_have_blank_line(tail, chunk)
            tail = chunk[-1:]
            try:
                if not chunk.isascii():
                    decoder.decode(chunk)
            except UnicodeDecodeError as exc:
                note = f"byte {offset + exc.start} is not UTF-8"
                return _Text(source, "utf-8", blank, make_error("encoding-error", note=note))
            offset += len(chunk)
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            note = "the file ends in the middle of a UTF-8 character"
            return _Text(source, "utf-8", blank, make_error("encoding-error", note=note))
    return _Text(source, "utf-8", blank)


def _may_have_blank_line(before: bytes, chunk: bytes) -> bool:
    if before in (b"\r", b"\n") and chunk[:1] in (b"\r", b"\n"):
        return True
    if b"\r" not in chunk:  # a one-byte search is fast, and most files end lines with LF alone
        return b"\n\n" in chunk
    return any(mark in chunk for mark in _BLANK_LINE_MARKS)


def _transcode(source: Path, encoding: str, errors: str, workdir: Path) -> _Text:
    target = workdir / f"{uuid.uuid4().hex}.utf8"
    decoder = codecs.getincrementaldecoder(encoding)(errors=errors)
    blank = False
    tail = b"\n"
    label = "windows-1252" if encoding == "cp1252" else encoding
    with source.open("rb") as f, target.open("wb") as out:
        while True:
            chunk = f.read(CHUNK_BYTES)
            try:
                text = decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError as exc:
                note = f'the bytes are not "{label}" text ({exc.reason})'
                return _Text(source, label, blank, make_error("encoding-error", note=note))
            data = text.encode("utf-8", errors="surrogatepass")
            blank = blank or _may_have_blank_line(tail, data)
            tail = data[-1:] or tail
            out.write(data)
            if not chunk:
                break
    return _Text(target, label, blank)


# CSV


def _sample(path: Path) -> str:
    with path.open("rb") as f:
        raw = f.read(SAMPLE_BYTES)
    return raw.decode("utf-8-sig", errors="replace")


def _sniff_delimiter(sample: str, quotechar: str) -> str:
    """The candidate that splits the first records into the most, equally long, rows."""
    lines = sample if len(sample) < SAMPLE_BYTES else sample[: sample.rfind("\n") + 1]
    best, best_score = ",", (0, 0)
    for candidate in DELIMITERS:
        reader = csv.reader(io.StringIO(lines), delimiter=candidate, quotechar=quotechar or '"')
        try:
            rows = [row for _, row in zip(range(50), reader, strict=False) if row]
        except csv.Error:
            continue
        width = len(rows[0]) if rows else 0
        score = (sum(len(r) == width for r in rows), width) if width > 1 else (0, 0)
        if score > best_score:
            best, best_score = candidate, score
    return best


def _first_record(sample: str, delimiter: str, quotechar: str) -> list[str] | None:
    reader = csv.reader(io.StringIO(sample), delimiter=delimiter, quotechar=quotechar or '"')
    try:
        return next((row for row in reader if row), None)
    except csv.Error:
        return None


def _read_csv(
    con: duckdb.DuckDBPyConnection,
    source: Path,
    dialect: dict[str, Any],
    names: list[str] | None,
    *,
    workdir: Path,
    declared: str | None = None,
    checked: bool = False,
) -> RawTable:
    text = _Text(source, "utf-8", False) if checked else _as_utf8(source, declared, workdir)
    if text.error is not None:
        return RawTable(name=None, errors=[text.error], encoding=text.encoding)
    sample = _sample(text.path)
    quotechar = str(dialect.get("quoteChar", '"'))
    delimiter = dialect.get("delimiter")
    if not isinstance(delimiter, str) or len(delimiter) != 1:
        delimiter = _sniff_delimiter(sample, quotechar)
    header = dialect.get("header", True) is not False
    first = _first_record(sample, delimiter, quotechar)
    if first is None:
        return RawTable(name=None, errors=[make_error("source-error", note="the source is empty")])
    escape = dialect.get("escapeChar")
    if not isinstance(escape, str):
        escape = quotechar if dialect.get("doubleQuote", True) is not False else ""
    options = {"delim": delimiter, "quote": quotechar, "escape": escape}
    width = len(first) if header or not names else len(names)
    raw = RawTable(name=None, encoding=text.encoding, first_rowid=1 if header else 0)
    raw.dialect = {"delimiter": delimiter, "header": header}
    read_width, padded = width, False
    try:
        rejects = _load_csv(con, raw, text.path, options, width, padded=False)
        for _ in range(_MAX_WIDENING):
            if not any(kind in _COLUMN_COUNT_REJECTS for _, kind, _, _ in rejects):
                break
            # Some rows are longer or shorter than the header: read again, padding short rows
            # with NULL, as wide as the longest rejected line can be (a delimiter may start a cell).
            longest = max(line.count(delimiter) + 1 for _, _, line, _ in rejects)
            read_width = max(read_width * 2 if padded else read_width, longest)
            padded = True
            rejects = _load_csv(con, raw, text.path, options, read_width, padded=True)
    except duckdb.Error as exc:
        raw.drop(con)
        return _failed("format-error", f"not a CSV file ({str(exc).splitlines()[0]})")
    raw.absent = sorted({line for line, _, _, _ in rejects})
    for line, kind, _, message in sorted({r[0]: r for r in rejects}.values()):
        error = "encoding-error" if kind == "INVALID ENCODING" else "source-error"
        raw.errors.append(
            make_error(error, note=f'row at position "{line}": {message}', rowNumber=line)
        )
    if text.blank_lines:
        blanks = _blank_rows(text.path, delimiter, quotechar)
        raw.errors.extend(make_error("blank-row", rowNumber=n) for n in blanks)
        raw.absent = sorted({*raw.absent, *blanks})
    raw.cells = [quote(f"c{i}") for i in range(1, width + 1)]
    raw.absent_cell = [f"({c} IS NULL)" if padded else "FALSE" for c in raw.cells]
    raw.extras = [
        Extra(i, f"({quote(f'c{i}')} IS NOT NULL)", quote(f"c{i}"))
        for i in range(width + 1, read_width + 1)
    ]
    if header and raw.name is not None:
        row = con.execute(f"SELECT * FROM {quote(raw.name)} WHERE rowid = 0").fetchone()
        raw.labels = ["" if v is None else str(v) for v in (row or ())][:width]
    return raw


def _load_csv(
    con: duckdb.DuckDBPyConnection,
    raw: RawTable,
    path: Path,
    options: dict[str, str],
    width: int,
    *,
    padded: bool,
) -> list[tuple[int, str, str, str]]:
    """(Re)create ``raw``'s table from the CSV; the rejected lines as (row, kind, text, message)."""
    raw.drop(con)
    raw.name, rejects, scans = _temp_name("raw"), _temp_name("rejects"), _temp_name("scans")
    raw.extra_tables = [rejects, scans]
    columns = {f"c{i}": "VARCHAR" for i in range(1, width + 1)}
    con.execute(
        f"CREATE TEMP TABLE {quote(raw.name)} AS SELECT * FROM read_csv($path, header = false,"
        " auto_detect = false, all_varchar = true, columns = $columns, delim = $delim,"
        " quote = $quote, escape = $escape, nullstr = $nullstr, null_padding = $padded,"
        " parallel = $parallel, store_rejects = true, rejects_table = $rejects,"
        " rejects_scan = $scans)",
        {
            "path": str(path),
            "columns": columns,
            "nullstr": NO_NULL,
            # DuckDB's parallel scanner cannot pad rows when values hold line breaks.
            "padded": padded,
            "parallel": not padded,
            "rejects": rejects,
            "scans": scans,
            **options,
        },
    )
    found = con.execute(
        f"SELECT line, CAST(error_type AS VARCHAR), coalesce(csv_line, ''), error_message"
        f" FROM {quote(rejects)} ORDER BY line"
    ).fetchall()
    return [(int(a), str(b), str(c), str(d)) for a, b, c, d in found]


def _blank_rows(path: Path, delimiter: str, quotechar: str) -> list[int]:
    """Row numbers of the empty records (DuckDB drops them): a rare, row-by-row pass."""
    with path.open(encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f, delimiter=delimiter, quotechar=quotechar or '"')
        try:
            return [n for n, row in enumerate(reader, 1) if not row]
        except csv.Error:
            return []


# XLSX


def _xlsx_to_csv(source: Path, sheet: object, workdir: Path) -> Path:
    # the DataProxy's reader: one reading of worksheets for both (it raises for a bad sheet)
    from dphub.dataproxy._xlsx import Sheet

    chosen = sheet if isinstance(sheet, str | int) and not isinstance(sheet, bool) else None
    target = workdir / f"{uuid.uuid4().hex}.csv"
    with target.open("w", encoding="utf-8", errors="replace", newline="") as out:
        csv.writer(out, lineterminator="\n").writerows(Sheet(source, chosen).rows())
    return target


def _xlsx_cell(value: object, number_format: str) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime.datetime):
        # Excel has no date type: a date is a datetime shown with a format that has no time part.
        shown = re.sub(r'"[^"]*"|\[[^]]*\]', "", number_format.lower())
        if value.time() == datetime.time() and not any(t in shown for t in ("h", "s", "am/pm")):
            return value.date().isoformat()
        return value.isoformat()
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return str(int(value))
    return str(value)


# JSON


def _read_json(
    con: duckdb.DuckDBPyConnection,
    source: Path,
    dialect: dict[str, Any],
    names: list[str] | None,
    fmt: str,
    declared: str | None,
    workdir: Path,
    params: Params,
) -> RawTable:
    text = _as_utf8(source, declared, workdir)
    if text.error is not None:
        return RawTable(name=None, errors=[text.error], encoding=text.encoding)
    values = _temp_name("json")
    try:
        con.execute(
            f"CREATE TEMP TABLE {quote(values)} AS SELECT json AS j FROM read_json_objects($path,"
            " format = $format)",
            {"path": str(text.path), "format": "newline_delimited" if fmt == "ndjson" else "array"},
        )
    except duckdb.Error as exc:
        return _failed("format-error", str(exc).splitlines()[0])
    raw = RawTable(name=_temp_name("raw"), encoding=text.encoding, extra_tables=[values])
    first = con.execute(f"SELECT json_type(j) FROM {quote(values)} WHERE rowid = 0").fetchone()
    kind = None if first is None else str(first[0])
    if kind not in ("OBJECT", "ARRAY"):
        raw.drop(con)
        note = "the source is empty" if kind is None else "rows must be JSON objects or arrays"
        return _failed("source-error" if kind is None else "format-error", note)
    header = dialect.get("header", True) is not False
    if kind == "OBJECT":
        keys = names if names is not None else _object_keys(con, values)
        paths = ["/" + k.replace("~", "~0").replace("/", "~1") for k in keys]
        raw.labels, raw.row_base, width = list(keys), 2, len(keys)
    else:
        first_width, longest = _one(
            con,
            f"SELECT first(json_array_length(j) ORDER BY rowid), max(json_array_length(j))"
            f" FROM {quote(values)} WHERE json_type(j) = 'ARRAY'",
        )
        width = int(first_width) if header or names is None else len(names)
        paths = [f"/{i}" for i in range(max(width, int(longest)))]
        raw.first_rowid = 1 if header else 0
    extract = f"json_extract_string(j, {params.ref(paths)})" if paths else "[]::VARCHAR[]"
    sql = (
        f"CREATE TEMP TABLE {quote(raw.name or '')} AS SELECT json_type(j) AS k,"
        f" json_array_length(j) AS n, {extract} AS v FROM {quote(values)}"
    )
    con.execute(sql, params.bind(sql))
    raw.cells = [f"v[{i}]" for i in range(1, width + 1)]
    if kind == "OBJECT":
        raw.absent_cell = ["FALSE"] * width
    else:
        raw.absent_cell = [f"(n < {i})" for i in range(1, width + 1)]
        raw.extras = [Extra(i, f"(n >= {i})", f"v[{i}]") for i in range(width + 1, len(paths) + 1)]
        if header:
            (labels,) = _one(con, f"SELECT first(v) FROM {quote(raw.name or '')} WHERE rowid = 0")
            raw.labels = ["" if v is None else str(v) for v in labels or []][:width]
    odd = con.execute(
        f"SELECT rowid FROM {quote(raw.name or '')} WHERE k <> $kind ORDER BY rowid LIMIT 100",
        {"kind": kind},
    ).fetchall()
    raw.errors.extend(
        make_error(
            "source-error",
            note=f'row at position "{raw.row_number(r)}" is not a JSON {kind.lower()}',
            rowNumber=raw.row_number(r),
        )
        for (r,) in odd
    )
    return raw


def _one(con: duckdb.DuckDBPyConnection, sql: str) -> tuple[Any, ...]:
    row = con.execute(sql).fetchone()
    assert row is not None  # an aggregate always answers one row
    return tuple(0 if v is None else v for v in row)


def _object_keys(con: duckdb.DuckDBPyConnection, values: str) -> list[str]:
    """Every key of the objects, in the order they first appear."""
    rows = con.execute(
        "SELECT k FROM (SELECT rowid AS r, unnest(json_keys(j)) AS k,"
        f" unnest(range(len(json_keys(j)))) AS p FROM {quote(values)}"
        " WHERE json_type(j) = 'OBJECT') GROUP BY k ORDER BY min(r), arg_min(p, r)"
    ).fetchall()
    return [str(k) for (k,) in rows]
