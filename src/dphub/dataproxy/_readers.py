"""The DuckDB readers of each format, and the small queries that look at a file before its rows.

A reader gives the SQL relation the rows come from and the cells of a row; each time it is opened
it may start a feed (a pipe, see ``_feeds``), closed once the query is done. When DuckDB stops on
something it cannot read, :meth:`Reader.lenient` moves the reader one step down its ladder of
more forgiving forms, if it has one left, and the query runs again:

- CSV in UTF-8 is read by DuckDB straight from the file, in parallel. Ragged rows are read the same
  way on every step: a missing cell is NULL (``null_padding``), extra cells are dropped
  (``strict_mode = false``), blank lines are skipped. DuckDB's parallel scanner cannot pad rows
  when a quoted value holds a line break, so the next step reads on one thread. The last step reads
  through a pipe that replaces bytes that are not UTF-8 with U+FFFD, and skips the rare rows DuckDB
  cannot split at all (``ignore_errors``). CSV in another encoding goes through that pipe from the
  start (transcoded to UTF-8).
- JSON (an array of objects or of arrays) and NDJSON are read by ``read_json_objects``; the
  forgiving form is the same pipe. Malformed JSON has no forgiving form.
- Parquet is read by ``read_parquet``, typed, and needs no forgiving form.

DuckDB keeps the buffers its one-thread CSV scanner has read until the query ends: for a file they
are a cache it drops under its memory limit, for a pipe they go to its temporary directory. So the
one-thread and pipe forms use temporary disk space in proportion to what they have read.
"""

# ruff: noqa: S608 - SQL text is built from quoted identifiers and fixed parts; values are parameters

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import duckdb
import orjson

from dphub.dataproxy._feeds import Feed, direct, transcoded
from dphub.dataproxy._render import WIDE_COLUMNS
from dphub.dataproxy._sniff import UTF8, UTF8_LENIENT, Text
from dphub.errors import DphubError, InvalidRequest, ServiceUnavailable
from dphub.pipeline._sources import NO_NULL, Params, quote

# DuckDB reads a CSV in buffers of 32 MiB by default, three of them before the first rows of a
# page: smaller ones cost nothing in speed. From a pipe it fills a whole buffer before it gives
# a row, so a pipe's buffer is as small as DuckDB allows for rows of up to 2 MiB (its default).
FILE_BUFFER = 4 << 20
PIPE_BUFFER = 2 << 20


class Reader(Protocol):
    @property
    def cells(self) -> list[str]:
        """SQL of each cell of a row of the relation."""
        ...

    def open(self, p: Params) -> tuple[str, list[Feed]]:
        """The relation to select rows from, and the feeds to close once the query is done."""
        ...

    def lenient(self) -> bool:
        """Switch to the forgiving form of reading; False when there is none (left)."""
        ...


def _text_feed(source: Path, text: Text, forgiving: bool, workdir: Path) -> Feed:
    if text == UTF8 and not forgiving:
        return direct(source)
    return transcoded(source, UTF8_LENIENT if text == UTF8 else text, workdir)


@dataclass
class CsvReader:
    """A CSV file read as ``width`` text columns ``c1``...; ``fixed`` is a feed that can be read
    only once (a worksheet streamed as CSV), used instead of the file."""

    source: Path
    text: Text
    workdir: Path
    width: int
    delimiter: str
    quote: str = '"'
    escape: str = '"'
    header: bool = True
    fixed: Callable[[], Feed] | None = None
    forgiving: bool = False
    parallel: bool = True
    cells: list[str] = field(init=False)
    single_use: bool = field(init=False)

    def __post_init__(self) -> None:
        self.cells = [f"c{i}" for i in range(1, self.width + 1)]
        self.single_use = self.fixed is not None
        # DuckDB's memory per thread grows with the width: wide tables are read on one thread
        self.parallel = self.parallel and self.width <= WIDE_COLUMNS

    def open(self, p: Params) -> tuple[str, list[Feed]]:
        if self.fixed is not None:
            feed, self.fixed = self.fixed(), None
        else:
            feed = _text_feed(self.source, self.text, self.forgiving, self.workdir)
        piped = feed.path != self.source
        parallel = self.parallel and not piped
        buffers = f", buffer_size = {PIPE_BUFFER if piped else FILE_BUFFER}"
        columns = dict.fromkeys(self.cells, "VARCHAR")
        relation = (
            f"read_csv({p.ref(str(feed.path))}, header = {str(self.header).lower()},"
            f" auto_detect = false, columns = {p.ref(columns)}, delim = {p.ref(self.delimiter)},"
            f" quote = {p.ref(self.quote)}, escape = {p.ref(self.escape)}, strict_mode = false,"
            f" null_padding = true, parallel = {str(parallel).lower()}, nullstr = {p.ref(NO_NULL)},"
            f" ignore_errors = {str(self.forgiving).lower()}{buffers}, max_line_size = {PIPE_BUFFER})"
        )
        return relation, [feed]

    def lenient(self) -> bool:
        if self.forgiving or self.single_use:
            return False
        if self.parallel and self.text == UTF8:
            self.parallel = False
        else:
            self.forgiving = True
        return True


@dataclass
class JsonReader:
    """A JSON array or NDJSON file, one row per value. With ``keys``, rows are objects and the
    cells are the values of those keys; with ``width``, rows are arrays and the cells their first
    ``width`` items; the cells are text (JSON text for nested values). With neither, the relation
    has the raw values as ``json``."""

    source: Path
    text: Text
    workdir: Path
    fmt: str  # DuckDB's name: "array" or "newline_delimited"
    keys: list[str] | None = None
    width: int | None = None
    skip_first: bool = False  # the first array holds the column names
    forgiving: bool = False

    @property
    def cells(self) -> list[str]:
        if self.keys is not None and self._by_struct():
            return [f"struct_extract_at(s, {i})" for i in range(1, len(self.keys) + 1)]
        count = len(self.keys) if self.keys is not None else self.width or 0
        return [f"s[{i}]" for i in range(1, count + 1)]

    def open(self, p: Params) -> tuple[str, list[Feed]]:
        feed = _text_feed(self.source, self.text, self.forgiving, self.workdir)
        values = f"read_json_objects({p.ref(str(feed.path))}, format = {p.ref(self.fmt)})"
        if self.keys is None and self.width is None:
            return values, [feed]
        skip = " OFFSET 1" if self.skip_first else ""
        return f"(SELECT {self._parsed(p)} AS s FROM {values}{skip})", [feed]

    def _by_struct(self) -> bool:
        """Whether from_json can take the keys (not empty, not the same but for case)."""
        folded = {k.lower() for k in self.keys or []}
        return bool(folded) and "" not in folded and len(folded) == len(self.keys or [])

    def _parsed(self, p: Params) -> str:
        """SQL of a row read for its cells. ``from_json`` parses a row once; looking the keys up
        one by one (``json_extract_string``) takes twice as long, but takes any keys."""
        if self.keys is None:
            return "from_json(json, '[\"VARCHAR\"]')"
        if self._by_struct():
            shape = orjson.dumps(dict.fromkeys(self.keys, "VARCHAR")).decode().replace("'", "''")
            return f"from_json(json, '{shape}')"
        paths = ["/" + k.replace("~", "~0").replace("/", "~1") for k in self.keys]
        return f"json_extract_string(json, {p.ref(paths)})" if paths else "[]::VARCHAR[]"

    def lenient(self) -> bool:
        if self.forgiving:
            return False
        self.forgiving = True
        return True


@dataclass
class ParquetReader:
    source: Path
    names: list[str]
    cells: list[str] = field(init=False)

    def __post_init__(self) -> None:
        self.cells = [quote(n) for n in self.names]

    def open(self, p: Params) -> tuple[str, list[Feed]]:
        return f"read_parquet({p.ref(str(self.source))})", []

    def lenient(self) -> bool:
        return False


def unreadable(exc: duckdb.Error, what: str) -> DphubError:
    if isinstance(exc, duckdb.OutOfMemoryException):
        return ServiceUnavailable("The DataProxy is short of memory right now; try again shortly.")
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    # the paths are the hub's business (and may be a pipe's): the client knows which file it asked
    reason = re.sub(r'(?:in |of )?file "[^"]*",? ?', "", reason).removeprefix(
        "Invalid Input Error: "
    )
    return InvalidRequest(f"The file cannot be read as {what}: {reason}")


def query(
    con: duckdb.DuckDBPyConnection,
    reader: Reader,
    build: Callable[[str, Params], str],
    *,
    what: str,
) -> list[tuple[Any, ...]]:
    """Every row of a small query over ``reader``'s relation, trying its forgiving form on errors."""
    while True:
        p = Params()
        relation, feeds = reader.open(p)
        try:
            sql = build(relation, p)
            rows = con.execute(sql, p.bind(sql)).fetchall()
        except duckdb.Error as exc:
            if not isinstance(exc, duckdb.OutOfMemoryException) and reader.lenient():
                continue
            raise unreadable(exc, what) from None
        finally:
            for feed in feeds:
                feed.close()
        failed = next((f.error for f in feeds if f.error is not None), None)
        if isinstance(failed, InvalidRequest):
            raise failed
        if failed is not None:
            raise InvalidRequest(f"The file cannot be read as {what}: {failed}")
        return rows


def json_shape(
    con: duckdb.DuckDBPyConnection, reader: JsonReader, rows: int
) -> tuple[str | None, list[str], int, int]:
    """The kind of the first value (``OBJECT``, ``ARRAY``, another JSON type, None when there is
    none), every object key of the first ``rows`` values in order of appearance, and the length of
    the first array and of the longest one among them."""
    found = query(
        con,
        reader,
        lambda rel, p: (
            "SELECT json_type(json), CASE WHEN json_type(json) = 'OBJECT' THEN json_keys(json) END,"
            " CASE WHEN json_type(json) = 'ARRAY' THEN json_array_length(json) END"
            f" FROM {rel} LIMIT {int(rows)}"
        ),
        what="JSON",
    )
    if not found:
        return None, [], 0, 0
    keys: dict[str, None] = {}
    for _, row_keys, _ in found:
        keys.update(dict.fromkeys(row_keys or []))
    lengths = [int(n) for _, _, n in found if n is not None]
    return str(found[0][0]), list(keys), (lengths[0] if lengths else 0), max(lengths, default=0)


def json_first_array(con: duckdb.DuckDBPyConnection, reader: JsonReader) -> list[str]:
    found = query(
        con,
        reader,
        lambda rel, p: f"SELECT json_extract_string(json, '$[*]') FROM {rel} LIMIT 1",
        what="JSON",
    )
    values = found[0][0] if found else None
    return ["" if v is None else str(v) for v in values or []]


def parquet_columns(
    con: duckdb.DuckDBPyConnection, source: Path
) -> tuple[list[tuple[str, str]], int]:
    """The (name, DuckDB type) of each column and the row count the file's metadata gives."""
    try:
        described = con.execute(
            "DESCRIBE SELECT * FROM read_parquet($path)", {"path": str(source)}
        ).fetchall()
        counted = con.execute(
            "SELECT sum(num_rows) FROM parquet_file_metadata($path)", {"path": str(source)}
        ).fetchone()
    except duckdb.Error as exc:
        raise unreadable(exc, "Parquet") from None
    total = int(counted[0]) if counted and counted[0] is not None else 0
    return [(str(r[0]), str(r[1])) for r in described], total
