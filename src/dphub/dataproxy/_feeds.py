"""The files DuckDB reads: the source itself, or a named pipe that a thread fills as DuckDB reads.

A pipe lets DuckDB's readers stream bytes it cannot read as they are stored (text in another
encoding, a worksheet) without converting the whole file first: the thread writes while DuckDB
reads, a full pipe makes the thread wait, and DuckDB stopping early (a LIMIT reached, the answer
abandoned) ends the thread with a broken pipe. Memory stays at one chunk on each side.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import io
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import BinaryIO

from dphub.dataproxy._sniff import Text

CHUNK_BYTES = 1 << 20
_CLOSE_SECONDS = 5.0

Writer = Callable[[BinaryIO, threading.Event], None]


class Feed:
    """A file DuckDB can read at ``path``. ``error`` is what stopped a pipe's writer, if anything."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.error: BaseException | None = None

    def close(self) -> None:
        """Release the feed; call it once DuckDB no longer reads it."""


class PipeFeed(Feed):
    """A named pipe in ``workdir`` that ``write`` fills from a thread of its own."""

    def __init__(self, workdir: Path, write: Writer) -> None:
        super().__init__(workdir / f"{uuid.uuid4().hex}.pipe")
        os.mkfifo(self.path, 0o600)
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(write,), name="dphub-dataproxy-feed", daemon=True
        )
        self._thread.start()

    def _run(self, write: Writer) -> None:
        try:
            with self.path.open("wb") as out:  # waits until a reader opens the pipe
                try:
                    if not self._stop.is_set():
                        write(out, self._stop)
                except BrokenPipeError:
                    raise
                except BaseException as exc:
                    # kept for the reader's side to report, before the pipe closes: the reader
                    # must not take the end of the pipe for the end of the data
                    self.error = exc
        except BrokenPipeError:
            pass  # the reader had enough: a LIMIT was reached or the answer was abandoned

    def close(self) -> None:
        self._stop.set()
        deadline = time.monotonic() + _CLOSE_SECONDS
        while self._thread.is_alive() and time.monotonic() < deadline:
            # A writer still waiting for its reader, or blocked on a full pipe, is released by a
            # reader that opens the pipe, drains it and goes away.
            with contextlib.suppress(OSError):
                fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)
                try:
                    while os.read(fd, CHUNK_BYTES):
                        pass
                except BlockingIOError:
                    pass
                finally:
                    os.close(fd)
            self._thread.join(0.01)
        self.path.unlink(missing_ok=True)


def direct(path: Path) -> Feed:
    return Feed(path)


def transcoded(source: Path, text: Text, workdir: Path) -> Feed:
    """``source`` decoded with ``text`` and written as UTF-8 into a pipe."""

    def write(out: BinaryIO, stop: threading.Event) -> None:
        decoder = codecs.getincrementaldecoder(text.codec)(errors=text.errors)
        utf8 = text.is_utf8
        first = True
        with source.open("rb") as f:
            while not stop.is_set():
                chunk = f.read(CHUNK_BYTES)
                if utf8 and not first and chunk.isascii() and not decoder.getstate()[0]:
                    out.write(chunk)  # most chunks of a mostly valid UTF-8 file pass as they are
                else:
                    data = decoder.decode(chunk, final=not chunk)
                    out.write(data.encode("utf-8", errors="replace"))
                first = False
                if not chunk:
                    break

    return PipeFeed(workdir, write)


def csv_rows(rows: Iterable[list[str]], workdir: Path) -> Feed:
    """``rows`` written as UTF-8 CSV (comma, double quotes) into a pipe."""

    def write(out: BinaryIO, stop: threading.Event) -> None:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")

        def flush() -> None:
            out.write(buffer.getvalue().encode("utf-8", errors="replace"))
            buffer.seek(0)
            buffer.truncate()

        try:
            for row in rows:
                if stop.is_set():
                    return
                writer.writerow(row)
                if buffer.tell() >= CHUNK_BYTES // 4:
                    flush()
        finally:
            if not stop.is_set():
                with contextlib.suppress(OSError):  # the rows read before a failure still count
                    flush()

    return PipeFeed(workdir, write)


def write_csv(rows: Iterable[list[str]], path: Path) -> None:
    """``rows`` as a UTF-8 CSV file (comma, double quotes) at ``path``."""
    with path.open("w", encoding="utf-8", errors="replace", newline="") as out:
        csv.writer(out, lineterminator="\n").writerows(rows)
