"""The answer's body: a prefix, the rows as DuckDB writes them, batch after batch, and a suffix.

``json``: ``{"url", "fields", "data": [`` then one JSON array per row, then
``], "offset", "limit", "total"?}``. ``ndjson``: one JSON object per line. ``csv``: a header line
then one line per row (UTF-8, comma, ``"`` quotes, ``\\n`` line ends).
"""

from __future__ import annotations

import csv
import io
import itertools
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import duckdb
import orjson

from dphub.dataproxy import _render
from dphub.dataproxy._feeds import Feed
from dphub.dataproxy._readers import Reader, unreadable
from dphub.dataproxy._render import Column
from dphub.errors import InvalidRequest
from dphub.pipeline._sources import Params

BATCH_CELLS = 100_000  # cells per batch of rows fetched from DuckDB (so 12,500 rows of 8 columns)
FIRST_BATCH_ROWS = 256  # the first batches are small, for an early first byte


class _Body:
    """Closes its query and feeds when read to the end, when abandoned, or when garbage collected
    without ever being read."""

    def __init__(
        self,
        fmt: str,
        prefix: bytes,
        suffix: bytes,
        batches: Iterator[list[str]],
        closers: list[Callable[[], None]],
    ) -> None:
        self._fmt, self._prefix, self._suffix, self._batches = fmt, prefix, suffix, batches
        self._finalizer = weakref.finalize(self, _close_all, closers)
        self._iterator: Iterator[bytes] | None = None

    def chunks(self) -> Iterator[bytes]:
        if self._iterator is None:
            self._iterator = self._generate()
        return self._iterator

    def _generate(self) -> Iterator[bytes]:
        try:
            head, first = self._prefix, True
            for lines in self._batches:
                if self._fmt == "json":
                    text = ("\n" if first else ",\n") + ",\n".join(lines)
                else:
                    text = "\n".join(lines) + "\n"
                yield head + text.encode("utf-8")
                head, first = b"", False
            yield head + self._suffix
        finally:
            self.close()

    def close(self) -> None:
        self._finalizer()


def _close_all(closers: list[Callable[[], None]]) -> None:
    for close in closers:
        close()


@dataclass(frozen=True)
class Prepared:
    """An answer ready to stream: its fields, its row count when known, and its body."""

    fields: list[dict[str, str]]  # [{"name", "type"}] Table Schema types
    total: int | None  # known without a second pass (e.g. Parquet metadata), else None
    _body: _Body = field(repr=False, compare=False)

    def chunks(self) -> Iterator[bytes]:
        """The body, generated lazily. There is one iterator per answer: a second call gives the
        same one. Reading it to the end (or closing it) releases the query and the file."""
        return self._body.chunks()

    def close(self) -> None:
        """Release the query and the file of an answer that will not be read to its end."""
        self._body.close()


Segment = tuple[Reader, "int | None"]  # a reader, and its row count when known


class Rows:
    """The answer's lines in batches, from one or more segments of the table read one after the
    other. When DuckDB stops on something it cannot read, the segment's reader is switched to its
    forgiving form and the query starts again at the row where it stopped."""

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        segments: list[Segment],
        columns: list[Column],
        *,
        fmt: str,
        offset: int,
        limit: int | None,
    ) -> None:
        self._con, self._segments, self._columns, self._fmt = con, list(segments), columns, fmt
        self._skip, self._left = int(offset), None if limit is None else int(limit)
        self._given = 0  # rows given from the current segment
        self._batch = FIRST_BATCH_ROWS
        self._most = max(16, min(16_384, BATCH_CELLS // max(len(columns), 1)))
        self._feeds: list[Feed] = []
        self._running = False

    def start(self) -> Iterator[list[str]]:
        """The batches, the first one read already (so that its errors are raised here)."""
        first = self._next()
        return itertools.chain([first] if first else [], iter(self._next, []))

    def _execute(self, reader: Reader) -> None:
        p = Params()
        relation, self._feeds = reader.open(p)
        page = "" if self._left is None else f"LIMIT {self._left}"
        if self._skip + self._given:
            page += f" OFFSET {self._skip + self._given}"
        sql = _render.row_sql(self._fmt, self._columns, relation, page, p)
        self._con.execute(sql, p.bind(sql))
        self._running = True

    def _next(self) -> list[str]:
        while self._segments and self._left != 0:
            reader, count = self._segments[0]
            if not self._running and count is not None and self._skip >= count:
                self._skip -= count  # the whole segment is before the page
                self._segments.pop(0)
                continue
            try:
                if not self._running:
                    self._execute(reader)
                rows = self._con.fetchmany(self._batch)
            except duckdb.Error as exc:
                self.release()
                if not isinstance(exc, duckdb.OutOfMemoryException) and reader.lenient():
                    continue
                raise unreadable(exc, "a table") from None
            if rows:
                self._given += len(rows)
                self._left = None if self._left is None else self._left - len(rows)
                self._batch = min(self._batch * 4, self._most)
                return [r[0] for r in rows]
            feeds = self._feeds
            self.release()  # waits for the feeds' writers
            failed = next((f.error for f in feeds if f.error is not None), None)
            if isinstance(failed, InvalidRequest):
                raise failed
            if failed is not None:
                raise InvalidRequest(f"The file cannot be read to its end: {failed}")
            self._skip = max(0, self._skip - count) if count is not None else 0
            self._given = 0
            self._segments.pop(0)
        self.release()
        return []

    def release(self) -> None:
        self._running = False
        feeds, self._feeds = self._feeds, []
        for feed in feeds:
            feed.close()


def prepared(
    fmt: str,
    columns: list[Column],
    rows: Rows | None,
    *,
    total: int | None,
    offset: int,
    limit: int | None,
    url: str,
    closers: list[Callable[[], None]],
) -> Prepared:
    """The answer to stream (its first batch of rows is read here)."""
    fields = [{"name": c.name, "type": c.type} for c in columns]
    batches: Iterator[list[str]] = iter(())
    if rows is not None:
        closers.insert(0, rows.release)
        try:
            batches = rows.start()
        except BaseException:
            _close_all(closers)
            raise
    if fmt == "json":
        prefix = (
            b'{"url":' + orjson.dumps(url) + b',"fields":' + orjson.dumps(fields) + b',"data":['
        )
        tail: dict[str, Any] = {"offset": offset, "limit": limit}
        if total is not None:
            tail["total"] = total
        suffix = b"\n]," + orjson.dumps(tail)[1:] + b"\n"
    elif fmt == "csv" and fields:
        out = io.StringIO()
        csv.writer(out, lineterminator="\n").writerow([c.name for c in columns])
        prefix, suffix = out.getvalue().encode("utf-8"), b""
    else:
        prefix, suffix = b"", b""
    return Prepared(fields, total, _Body(fmt, prefix, suffix, batches, closers))
