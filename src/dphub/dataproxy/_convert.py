"""Any tabular file of the hub as JSON, NDJSON or CSV: :func:`open_table`.

What happens before the first byte is sent, and so can still fail with a clean 4xx:

1. The format, encoding and CSV dialect are decided from the first MiB (``_sniff``).
2. The column names come from the header (or the schema, or are ``field1``...). More than
   :data:`MAX_COLUMNS` columns is refused: DuckDB's memory grows with a table's width (a 250
   column CSV takes about 290 MB; 250 keys of NDJSON about 400 MB). Tables wider than
   ``WIDE_COLUMNS`` (64) are read on a single thread: that memory is taken once, not per core.
3. Without a Table Schema the types are inferred from a sample: the first :data:`SAMPLE_ROWS`
   (10,000) rows, fewer for tables wider than 50 columns (500,000 cells at most). Values past the
   sample that do not fit the inferred type are given as their text. Inferred types are remembered
   per file (path, size and modification time), so the next page of a file skips this step.
4. The query starts and its first batch of rows is read.

Then the rows stream (``_stream``): DuckDB reads the file in order and writes each row as text
(``_render``); LIMIT and OFFSET are part of the query, so a page of a large file reads the file
only up to that page. Should DuckDB stop on bytes that are not UTF-8 past the first MiB, the query
starts again through a pipe that replaces them with U+FFFD, at the row where it stopped. An error
after the first byte (a file damaged past its first rows) can no longer change the answer's
status: it is raised from the iterator and the server ends the response early, so a client sees a
broken body, never a complete-looking one.

An empty file (or whitespace only, an empty sheet, an empty JSON array) is an empty table: no
fields, no rows. ``total`` is given when it is known without reading the file twice: from
Parquet's metadata, or when the whole table fits in the inference sample.
"""

# ruff: noqa: S608 - SQL text is built from quoted identifiers and fixed parts; values are parameters

from __future__ import annotations

import atexit
import itertools
import shutil
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import duckdb

from dphub.dataproxy import _feeds, _render
from dphub.dataproxy._readers import (
    CsvReader,
    JsonReader,
    ParquetReader,
    Reader,
    json_first_array,
    json_shape,
    parquet_columns,
    query,
)
from dphub.dataproxy._render import SAMPLE_ROWS, WIDE_COLUMNS, Column
from dphub.dataproxy._sniff import UTF8, Text, decode_head, read_head, source_format, text_encoding
from dphub.dataproxy._stream import Prepared, Rows, Segment, prepared
from dphub.dataproxy._xlsx import Sheet
from dphub.errors import InvalidRequest
from dphub.pipeline._sources import Params, _first_record, _sniff_delimiter
from dphub.pipeline.tables import _field_names, _schema_problems

MAX_COLUMNS = 250
FORMATS = ("json", "ndjson", "csv")
__all__ = ["MAX_COLUMNS", "SAMPLE_ROWS", "Options", "Prepared", "open_table"]


@dataclass(frozen=True)
class Options:
    """What the caller asks for; see :func:`open_table`."""

    format: Literal["json", "ndjson", "csv"] = "json"
    limit: int | None = None  # rows; None = all
    offset: int = 0
    fields: tuple[str, ...] | None = None  # subset and order of columns
    encoding: str | None = None  # overrides detection
    delimiter: str | None = None  # overrides sniffing
    sheet: str | int | None = None  # XLSX: a name or a 1-based index (default: the first)
    header: bool = True


@dataclass
class _Table:
    """A file looked at: how to read its rows and its sample, and the header's labels."""

    segments: list[Segment]  # the rows, in one or more parts read one after the other
    sample: Reader
    labels: list[str]  # empty when there is no header row
    width: int
    how: tuple[Any, ...]  # what, besides the file, decides the inferred types


# In-memory DuckDBs for the process, each answer with a connection (cursor) of its own: one that
# uses every core, and one that uses a single thread for tables wider than WIDE_COLUMNS (DuckDB's
# memory grows with the width times the threads). A memory limit bounds what each may keep (see
# ``_readers``); what a pipe's buffers need beyond it goes to a temporary directory of its own.
DUCKDB_MEMORY_LIMITS = {False: "160MB", True: "256MB"}  # by one_thread
_databases: dict[bool, duckdb.DuckDBPyConnection] = {}
_databases_lock = threading.Lock()

# Inferred types per file: (path, size, mtime, how it is read) -> (types, total)
_inferred: OrderedDict[tuple[Any, ...], tuple[list[str], int | None]] = OrderedDict()
_inferred_lock = threading.Lock()
_INFERRED_KEPT = 256


def _connect(*, one_thread: bool = False) -> duckdb.DuckDBPyConnection:
    with _databases_lock:
        if one_thread not in _databases:
            spill = tempfile.mkdtemp(prefix="dphub-dataproxy-")
            atexit.register(shutil.rmtree, spill, ignore_errors=True)
            config: dict[str, str | bool | int | float | list[str]] = {
                "memory_limit": DUCKDB_MEMORY_LIMITS[one_thread],
                "temp_directory": spill,
            }
            if one_thread:
                config["threads"] = 1
            _databases[one_thread] = duckdb.connect(":memory:", config=config)
        con = _databases[one_thread].cursor()
    con.execute("SET enable_progress_bar = false")
    return con


def open_table(
    source: Path,
    resource: Mapping[str, Any] | None,
    *,
    name: str,
    options: Options,
    workdir: Path,
    url: str,
) -> Prepared:
    """Get ``source`` ready to stream as ``options.format``.

    ``source`` is a local file, ``name`` its original file name (its extension hints the format),
    ``resource`` its Data Package resource when there is one: its ``schema`` types the values (by
    position for CSV and arrays, by key for JSON objects); its ``format``, ``mediatype``,
    ``encoding`` and ``dialect`` (``delimiter``, ``quoteChar``, ``doubleQuote``, ``escapeChar``,
    ``header``, ``sheet``) are hints the options override (either ``header`` false means no header
    row). Without a schema the types are inferred. ``url`` is echoed in the JSON answer. Pipes are
    made in ``workdir``; the caller removes it once the answer is done.

    Raises :class:`~dphub.errors.InvalidRequest` for a request or a file that cannot be answered
    (bad options, unknown field, a damaged workbook...) and
    :class:`~dphub.errors.UnsupportedMediaType` for a file that is not a table it reads.
    """
    _check(options)
    con = _connect()
    closers: list[Callable[[], None]] = [con.close]
    try:
        return _prepare(con, source, resource or None, name, options, workdir, url, closers)
    except BaseException:
        for close in closers:
            close()
        raise


def _check(options: Options) -> None:
    if options.format not in FORMATS:
        raise InvalidRequest(
            f"format {options.format!r} is not one the DataProxy writes: use json, ndjson or csv."
        )
    if options.limit is not None and (isinstance(options.limit, bool) or options.limit < 0):
        raise InvalidRequest("limit must be a whole number, 0 or more.")
    if isinstance(options.offset, bool) or options.offset < 0:
        raise InvalidRequest("offset must be a whole number, 0 or more.")
    if options.fields is not None:
        if not options.fields:
            raise InvalidRequest("fields names no column: leave it out to get them all.")
        twice = sorted({f for f in options.fields if options.fields.count(f) > 1})
        if twice:
            raise InvalidRequest(f'fields lists "{twice[0]}" more than once.', field=twice[0])
    d = options.delimiter
    if d is not None and (len(d) != 1 or d in '\r\n"' or (d.isspace() and d != "\t")):
        raise InvalidRequest("delimiter must be one character (not a quote, space or line break).")


def _prepare(
    con: duckdb.DuckDBPyConnection,
    source: Path,
    resource: Mapping[str, Any] | None,
    name: str,
    options: Options,
    workdir: Path,
    url: str,
    closers: list[Callable[[], None]],
) -> Prepared:
    head = read_head(source)
    stat = source.stat()
    declared = options.encoding or _text(resource, "encoding")
    fmt = source_format(head, resource, name, declared_text=declared is not None)
    dialect = resource.get("dialect") if resource else None
    dialect = dialect if isinstance(dialect, dict) else {}
    schema = _schema(con, resource, fmt)
    names = [str(f["name"]) for f in schema["fields"]] if schema else None
    header = options.header and dialect.get("header", True) is not False

    def answer(columns: list[Column], segments: list[Segment], total: int | None) -> Prepared:
        rows = None
        if segments:
            rows = Rows(
                con,
                segments,
                columns,
                fmt=options.format,
                offset=options.offset,
                limit=options.limit,
            )
        return prepared(
            options.format,
            columns,
            rows,
            total=total,
            offset=options.offset,
            limit=options.limit,
            url=url,
            closers=closers,
        )

    table: _Table | None = None
    if fmt == "parquet":
        described, rows = parquet_columns(con, source)
        _check_width(len(described))
        parquet = ParquetReader(source, [n for n, _ in described])
        columns = _select(
            [
                Column(n, _render.schema_type(t), c, duckdb_type=t)
                for (n, t), c in zip(described, parquet.cells, strict=True)
            ],
            options,
        )
        return answer(columns, [(parquet, rows)], rows)
    if fmt == "xlsx":
        sheet = Sheet(source, options.sheet if options.sheet is not None else dialect.get("sheet"))
        closers.append(sheet.close)
        table = _sheet_table(sheet, workdir, header)
    elif head.strip():
        text = text_encoding(head, declared, whole=len(head) == stat.st_size)
        if fmt in ("json", "ndjson"):
            table = _json_table(con, source, head, text, workdir, header, names)
        else:
            table = _csv_table(
                source, head, text, fmt, workdir, options, dialect, header, stat.st_size
            )
    if table is None:  # nothing in the file
        return answer([], [], 0)
    if table.width > WIDE_COLUMNS:
        con = _connect(one_thread=True)
        closers.append(con.close)
    total: int | None
    if schema is not None:
        fields = [dict(f) for f in schema["fields"]]
        total = _count(con, table.sample, _render.sample_rows(table.width))
    else:
        key = (str(source.resolve()), stat.st_size, stat.st_mtime_ns, fmt, declared, *table.how)
        types, total = _infer(con, table.sample, key, table.width)
        labels = _field_names(table.labels or None, table.width)
        fields = [{"name": n, "type": t} for n, t in zip(labels, types, strict=True)]
    cells = table.sample.cells + ["NULL::VARCHAR"] * (len(fields) - table.width)
    missing = schema.get("missingValues") if schema is not None else None
    columns = [
        Column(str(f["name"]), str(f.get("type", "string")), c, f, missing)
        for f, c in zip(fields, cells, strict=False)
    ]
    return answer(_select(columns, options), table.segments, total)


def _text(resource: Mapping[str, Any] | None, key: str) -> str | None:
    value = resource.get(key) if resource else None
    return value if isinstance(value, str) and value.strip() else None


def _schema(
    con: duckdb.DuckDBPyConnection, resource: Mapping[str, Any] | None, fmt: str
) -> dict[str, Any] | None:
    """The resource's Table Schema when it is one the pipeline accepts (else types are inferred)."""
    schema = resource.get("schema") if resource else None
    if fmt == "parquet" or not isinstance(schema, dict) or _schema_problems(con, schema):
        return None
    return schema if schema["fields"] else None


def _check_width(width: int) -> None:
    if width > MAX_COLUMNS:
        raise InvalidRequest(
            f"The table has {width} columns; the DataProxy reads tables of up to {MAX_COLUMNS}.",
            columns=width,
            max_columns=MAX_COLUMNS,
        )


def _csv_table(
    source: Path,
    head: bytes,
    text: Text,
    fmt: str,
    workdir: Path,
    options: Options,
    dialect: Mapping[str, Any],
    header: bool,
    size: int,
) -> _Table | None:
    sample = decode_head(head, text, whole=len(head) == size)
    quotechar = str(dialect.get("quoteChar", '"'))[:1]
    delimiter = options.delimiter or dialect.get("delimiter")
    if not isinstance(delimiter, str) or len(delimiter) != 1:
        delimiter = "\t" if fmt == "tsv" else _sniff_delimiter(sample, quotechar)
    first = _first_record(sample, delimiter, quotechar)
    if first is None:
        return None
    _check_width(len(first))
    if len(head) < size and "\n" not in sample and "\r" not in sample:
        raise InvalidRequest("The first row is longer than 1 MiB: this is not a table to convert.")
    escape = dialect.get("escapeChar")
    if not isinstance(escape, str):
        escape = quotechar if dialect.get("doubleQuote", True) is not False else ""
    width = len(first)
    reader = CsvReader(source, text, workdir, width, delimiter, quotechar, escape[:1], header)
    how = (text.label, delimiter, quotechar, escape, header)
    return _Table([(reader, None)], reader, first if header else [], width, how)


def _sheet_table(sheet: Sheet, workdir: Path, header: bool) -> _Table | None:
    """The worksheet as CSV: its first rows written to a file (the sample, and the first segment
    of the answer), the rest streamed through a pipe as DuckDB reads it (the second segment)."""
    rows = sheet.rows()
    first = next(rows, None)
    if first is None:
        return None
    width = len(first)
    _check_width(width)
    wanted = _render.sample_rows(width)
    sample = [first, *itertools.islice(rows, wanted - (0 if header else 1))]
    path = workdir / "sheet-sample.csv"
    _feeds.write_csv(sample, path)
    sampled = CsvReader(path, UTF8, workdir, width, ",", header=header)
    how = ("xlsx", sheet.name, header)
    labels = first if header else []
    counted = len(sample) - (1 if header else 0)
    if counted < wanted:  # the whole sheet
        return _Table([(sampled, counted)], sampled, labels, width, how)
    rest = CsvReader(
        path, UTF8, workdir, width, ",", header=False, fixed=lambda: _feeds.csv_rows(rows, workdir)
    )
    return _Table([(sampled, counted), (rest, None)], sampled, labels, width, how)


def _json_table(
    con: duckdb.DuckDBPyConnection,
    source: Path,
    head: bytes,
    text: Text,
    workdir: Path,
    header: bool,
    names: list[str] | None,
) -> _Table | None:
    start = decode_head(head[:4096], text, whole=True).lstrip()[:1]
    fmt = "array" if start == "[" else "newline_delimited"
    probe = JsonReader(source, text, workdir, fmt)
    kind, keys, first_length, longest = json_shape(con, probe, SAMPLE_ROWS)
    if kind is None:
        return None
    if kind not in ("OBJECT", "ARRAY"):
        raise InvalidRequest(
            "The rows of a JSON table must be objects or arrays, not plain values."
        )
    if kind == "OBJECT":
        keys = names if names is not None else keys  # a schema's fields are found by key
        _check_width(len(keys))
        reader = JsonReader(source, text, workdir, fmt, keys=keys, forgiving=probe.forgiving)
        return _Table([(reader, None)], reader, keys, len(keys), (text.label, "objects", *keys))
    width = first_length if header else longest
    _check_width(width)
    labels = json_first_array(con, probe)[:width] if header else []
    reader = JsonReader(
        source, text, workdir, fmt, width=width, skip_first=header, forgiving=probe.forgiving
    )
    return _Table([(reader, None)], reader, labels, width, (text.label, "arrays", header, width))


def _count(con: duckdb.DuckDBPyConnection, reader: Reader, rows: int) -> int | None:
    """The row count when the table has fewer than ``rows`` rows, else None."""
    found = query(
        con,
        reader,
        lambda rel, p: f"SELECT count(*) FROM (SELECT 1 FROM {rel} LIMIT {int(rows)})",
        what="a table",
    )
    counted = int(found[0][0]) if found else 0
    return counted if counted < rows else None


def _infer(
    con: duckdb.DuckDBPyConnection, reader: Reader, key: tuple[Any, ...], width: int
) -> tuple[list[str], int | None]:
    with _inferred_lock:
        if key in _inferred:
            _inferred.move_to_end(key)
            types, total = _inferred[key]
            return list(types), total
    rows = _render.sample_rows(width)

    def run(build: Callable[[str, Params], str]) -> list[tuple[Any, ...]]:
        return query(con, reader, build, what="a table")

    types, seen = _render.infer_types(run, reader.cells, rows)
    total = seen if seen < rows else None
    with _inferred_lock:
        _inferred[key] = (types, total)
        while len(_inferred) > _INFERRED_KEPT:
            _inferred.popitem(last=False)
    return list(types), total


def _select(columns: list[Column], options: Options) -> list[Column]:
    if options.fields is None:
        return columns
    by_name = {c.name: c for c in columns}
    unknown = [f for f in options.fields if f not in by_name]
    if unknown:
        raise InvalidRequest(
            f'The table has no field "{unknown[0]}".',
            field=unknown[0],
            fields=[c.name for c in columns],
        )
    return [by_name[f] for f in options.fields]
