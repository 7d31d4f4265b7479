"""The DataProxy streams: rows leave before the file is read, memory does not grow with the file,
and an answer that is closed, abandoned or broken releases what it holds."""

from __future__ import annotations

import gc
import json
import subprocess
import sys
import threading
import tracemalloc
import zipfile
from collections.abc import Iterator
from pathlib import Path

import duckdb
import openpyxl
import pytest

from dphub.dataproxy import Options, open_table
from dphub.errors import InvalidRequest

BIG_ROWS = 2_400_000  # about 200 MB of CSV


@pytest.fixture(scope="module")
def big_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("big") / "big.csv"
    duckdb.connect().execute(
        "COPY (SELECT i AS id, 'name ' || (i % 977) AS name, round(i * 0.25, 2) AS amount,"
        " i % 3 = 0 AS flag, DATE '2024-01-01' + (i % 365)::INT AS day,"
        " 'a longer text value, with a comma, for row ' || i AS note,"
        " 'Kraków' AS city, i * 7 AS other FROM range($n) t(i)) TO $path (HEADER)",
        {"n": BIG_ROWS, "path": str(path)},
    )
    assert path.stat().st_size > 150_000_000
    return path


def bytes_read() -> int:
    """Bytes this process has read from files so far (Linux)."""
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise AssertionError("no rchar in /proc/self/io")


needs_proc = pytest.mark.skipif(
    not Path("/proc/self/io").exists(), reason="reads /proc/self/io to count bytes read"
)


@needs_proc
@pytest.mark.parametrize("fmt", ["json", "csv"])
def test_the_first_chunk_leaves_before_the_file_is_read(
    big_csv: Path, tmp_path: Path, fmt: str
) -> None:
    size = big_csv.stat().st_size
    before = bytes_read()
    prepared = open_table(
        big_csv, None, name="big.csv", options=Options(format=fmt), workdir=tmp_path, url="u"
    )
    chunks = prepared.chunks()
    first = next(chunks)
    assert bytes_read() - before < size // 4
    assert first.startswith(b'{"url":"u"' if fmt == "json" else b"id,name,amount")
    # and the answer goes on in chunks of bounded size
    sizes = [len(next(chunks)) for _ in range(20)]
    assert max(sizes) < 4 << 20
    assert bytes_read() - before < size // 2
    prepared.close()


def test_python_memory_does_not_grow_with_the_answer(big_csv: Path, tmp_path: Path) -> None:
    # a quarter of the file: tracemalloc slows every allocation down
    options = Options(format="ndjson", limit=BIG_ROWS // 4)
    prepared = open_table(big_csv, None, name="big.csv", options=options, workdir=tmp_path, url="u")
    tracemalloc.start()
    try:
        rows = chunks = 0
        for chunk in prepared.chunks():
            rows += chunk.count(b"\n")
            chunks += 1
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert rows == BIG_ROWS // 4
    assert chunks > 40
    assert peak < 40 << 20  # a few batches, never the answer


# VmHWM, not getrusage's ru_maxrss: Linux carries ru_maxrss over an exec from the memory of the
# process that forked it (here, the whole test run), while VmHWM is this program's own peak
_RSS_PROBE = """
import re, sys
from pathlib import Path
from dphub.dataproxy import Options, open_table
prepared = open_table(Path(sys.argv[1]), None, name="big.csv", options=Options(format="json"),
                      workdir=Path(sys.argv[2]), url="u")
size = sum(len(chunk) for chunk in prepared.chunks())
peak_kb = int(re.search(r"VmHWM:\\s+(\\d+)", Path("/proc/self/status").read_text()).group(1))
print(size, peak_kb // 1024)
"""


def test_peak_resident_memory_stays_bounded(big_csv: Path, tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _RSS_PROBE, str(big_csv), str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    written, peak_mb = map(int, done.stdout.split())
    assert written > big_csv.stat().st_size  # the whole answer went through
    assert peak_mb < 300, f"peak RSS {peak_mb} MB"


def test_a_page_of_a_large_file(big_csv: Path, tmp_path: Path) -> None:
    prepared = open_table(
        big_csv,
        None,
        name="big.csv",
        options=Options(offset=2_000_000, limit=2),
        workdir=tmp_path,
        url="u",
    )
    answer = json.loads(b"".join(prepared.chunks()))
    assert [row[0] for row in answer["data"]] == [2_000_000, 2_000_001]
    assert answer["fields"][3] == {"name": "flag", "type": "boolean"}
    assert "total" not in answer


# Worksheets: the first rows from a file, the rest through a pipe


@pytest.fixture(scope="module")
def big_sheet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sheet") / "big.xlsx"
    book = openpyxl.Workbook(write_only=True)
    sheet = book.create_sheet("rows")
    sheet.append(["id", "name", "value"])
    for i in range(30_000):
        sheet.append([i, f"n{i}", i / 2])
    book.save(path)
    return path


def records(chunks: Iterator[bytes]) -> list[dict[str, object]]:
    return [json.loads(line) for line in b"".join(chunks).splitlines()]


def test_a_large_sheet_streams_every_row_in_order(big_sheet: Path, tmp_path: Path) -> None:
    prepared = open_table(
        big_sheet,
        None,
        name="big.xlsx",
        options=Options(format="ndjson"),
        workdir=tmp_path,
        url="u",
    )
    assert prepared.total is None
    rows = records(prepared.chunks())
    assert len(rows) == 30_000
    assert [r["id"] for r in rows] == list(range(30_000))
    assert rows[-1] == {"id": 29_999, "name": "n29999", "value": 14_999.5}


@pytest.mark.parametrize(("offset", "limit"), [(9_998, 4), (20_000, 3), (0, 2), (29_999, 10)])
def test_pages_of_a_large_sheet(big_sheet: Path, tmp_path: Path, offset: int, limit: int) -> None:
    options = Options(format="ndjson", offset=offset, limit=limit)
    prepared = open_table(
        big_sheet, None, name="big.xlsx", options=options, workdir=tmp_path, url="u"
    )
    ids = [r["id"] for r in records(prepared.chunks())]
    assert ids == list(range(offset, min(offset + limit, 30_000)))


def feed_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "dphub-dataproxy-feed"]


def test_closing_an_answer_releases_its_pipe(big_sheet: Path, tmp_path: Path) -> None:
    prepared = open_table(
        big_sheet, None, name="big.xlsx", options=Options(format="csv"), workdir=tmp_path, url="u"
    )
    chunks = prepared.chunks()
    while not list(tmp_path.glob("*.pipe")):
        next(chunks)  # read until the rows come from the pipe
    prepared.close()
    assert not feed_threads()
    assert not list(tmp_path.glob("*.pipe"))
    prepared.close()  # twice is fine


def test_an_abandoned_answer_is_released_when_collected(big_sheet: Path, tmp_path: Path) -> None:
    prepared = open_table(
        big_sheet, None, name="big.xlsx", options=Options(), workdir=tmp_path, url="u"
    )
    chunks = prepared.chunks()
    while not list(tmp_path.glob("*.pipe")):
        next(chunks)
    del prepared, chunks
    gc.collect()
    assert not feed_threads()
    assert not list(tmp_path.glob("*.pipe"))


def test_an_answer_never_read_releases_its_query(tmp_path: Path) -> None:
    path = tmp_path / "small.csv"
    path.write_text("a\n1\n")
    prepared = open_table(
        path, None, name="small.csv", options=Options(), workdir=tmp_path, url="u"
    )
    finalizer = prepared._body._finalizer  # what a dropped answer relies on
    assert finalizer.alive
    del prepared
    gc.collect()
    assert not finalizer.alive


def test_a_sheet_damaged_past_its_first_rows_breaks_the_stream(tmp_path: Path) -> None:
    # a workbook that gives its dimensions (openpyxl reads a whole sheet up front when it
    # does not, and would find the damage before the first byte)
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["id", "name"])
    for i in range(15_000):
        sheet.append([i, f"n{i}"])
    whole = tmp_path / "whole.xlsx"
    book.save(whole)
    damaged = tmp_path / "damaged.xlsx"
    with zipfile.ZipFile(whole) as source, zipfile.ZipFile(damaged, "w") as target:
        for item in source.infolist():
            data = source.read(item)
            if item.filename.startswith("xl/worksheets/"):
                data = data[: int(len(data) * 0.9)]  # the sheet's XML stops mid-way
            target.writestr(item, data)
    prepared = open_table(
        damaged,
        None,
        name="damaged.xlsx",
        options=Options(format="ndjson"),
        workdir=tmp_path,
        url="u",
    )
    sent: list[bytes] = []
    with pytest.raises(InvalidRequest):
        sent.extend(prepared.chunks())
    # every row before the damage was sent: the sample's 10,000 and those read after them
    assert 10_000 < b"".join(sent).count(b"\n") < 15_000
