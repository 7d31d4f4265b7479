"""Web benchmark: the server time of a dataset's page and of a search results page, each next to
the JSON API requests a page built in the browser would send for the same content.

    python benchmarks/web.py [--rows 1000000] [--packages 10000] [--requests 100] [--seed 7]
                             [--workdir DIR] [--keep]

One embedded hub (SQLite metastore, DuckDB datastore, local disk: ``dphub serve --data-dir DIR``
with its defaults) holds both data sets. Before the hub starts, ``--packages`` packages are
generated straight into its freshly migrated metastore with search.py's generator (rows of
``packages``, their search documents and facet values; no push). Then the hub starts on loopback,
the publisher logs in, and the table of ingest.py (``--rows`` rows, 8 columns) is pushed with
``dphub push`` and processed, so its datastore table, chart and preview are real.

Over one keep-alive httpx connection, one request at a time, it times:

- the showcase page, ``GET /bench/web`` with ``Accept: text/html``, against the reference of
  ``GET /api/package/bench/web`` plus ``GET /api/datastore/search?resource_id=bench/web/data&limit=20``
  (the two added up: what a page drawn in the browser would fetch);
- the search results page, ``GET /search?q=...``, against ``GET /api/search/package?q=...`` with
  the same words; ``--requests`` different queries (one word, two words, a phrase, a prefix), each
  matching at least one package.

Each page and its reference alternate: a few untimed rounds, then ``--requests`` timed ones. Every
answer is checked (status 200; the page shows the dataset's title, its row count and 20 preview
rows, or the number of matches the API counted and the API's first result). The target is a page
p95 of at most 100 ms each.

Exit code 0 when every answer was right, 1 otherwise; a missed target is reported, not a failure.
This is not a test and never runs with the suite.
"""

from __future__ import annotations

import argparse
import html
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

import _hub
import push as bench
import search
from dphub.metastore.db import make_engine, make_sessionmaker, upgrade
from push import MIB, PUBLISHER, BenchmarkFailed

PACKAGE = "web"
TITLE = "dphub web benchmark"
RESOURCE_ID = f"{PUBLISHER}/{PACKAGE}/{_hub.RESOURCE}"
PREVIEW_ROWS = 20
TARGET_P95_MS = 100.0
WARMUP = 10
SLOWEST = 5
BYTES_PER_ROW = 80
QUERY_KINDS = (("one word", 50), ("two words", 25), ("phrase", 15), ("prefix", 10))
"""The mix of searches, in shares of 100 (search.py's kinds with words and nothing else)."""
HTML = {"Accept": "text/html,application/xhtml+xml"}

Fetch = Callable[[], list[httpx.Response]]
"""One side of a round: its requests, each read to the end."""
Round = tuple[str, Fetch, Fetch]
"""What was asked, the page's fetch and the reference's."""
Check = Callable[[list[httpx.Response], list[httpx.Response]], None]
"""Takes the page's answers and the reference's; raises BenchmarkFailed when one is wrong."""


# Timing


@dataclass
class Samples:
    seconds: list[float] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)

    def quantile(self, q: float) -> float:
        return search.quantile(self.seconds, q)

    def text(self) -> str:
        return (
            f"p50 {self.quantile(0.5) * 1000:6.1f} ms  p95 {self.quantile(0.95) * 1000:6.1f} ms"
            f"  ({statistics.median(self.sizes) / 1000:,.1f} kB)"
        )


@dataclass
class Compared:
    label: str
    page: Samples = field(default_factory=Samples)
    reference: Samples = field(default_factory=Samples)
    notes: list[str] = field(default_factory=list)
    """Per timed round: what was asked (for the slowest list)."""

    def ratio(self, q: float) -> float:
        return self.page.quantile(q) / self.reference.quantile(q)


def get(client: httpx.Client, path: str, params: Any = None, headers: Any = None) -> httpx.Response:
    """A GET whose body is read to the end; non-200 answers fail the benchmark."""
    response = client.get(path, params=params, headers=headers)
    response.read()
    if response.status_code != 200:
        raise BenchmarkFailed(
            f"GET {path} {params or ''} answered {response.status_code}: {response.text[:500]}"
        )
    return response


def timed(action: Fetch) -> tuple[float, list[httpx.Response]]:
    began = time.perf_counter()
    answers = action()
    return time.perf_counter() - began, answers


def compare(
    label: str,
    rounds: Sequence[Round],
    check: Check,
    warmup: int,
) -> Compared:
    """Each round: the page, then its reference, both checked; the first ``warmup`` untimed."""
    result = Compared(label)
    for index, (note, page, reference) in enumerate(rounds):
        page_seconds, pages = timed(page)
        reference_seconds, references = timed(reference)
        check(pages, references)
        if index < warmup:
            continue
        result.page.seconds.append(page_seconds)
        result.page.sizes.append(sum(len(r.content) for r in pages))
        result.reference.seconds.append(reference_seconds)
        result.reference.sizes.append(sum(len(r.content) for r in references))
        result.notes.append(note)
    return result


# The showcase


def showcase_rounds(client: httpx.Client, count: int) -> list[Round]:
    path = f"/{PUBLISHER}/{PACKAGE}"

    def page() -> list[httpx.Response]:
        return [get(client, path, headers=HTML)]

    def reference() -> list[httpx.Response]:
        return [
            get(client, f"/api/package/{PUBLISHER}/{PACKAGE}"),
            get(
                client,
                "/api/datastore/search",
                params={"resource_id": RESOURCE_ID, "limit": str(PREVIEW_ROWS)},
            ),
        ]

    return [(path, page, reference)] * (WARMUP + count)


def showcase_check(rows: int) -> Check:
    def check(pages: list[httpx.Response], references: list[httpx.Response]) -> None:
        page = pages[0]
        text = page.text
        if not page.headers.get("content-type", "").startswith("text/html"):
            raise BenchmarkFailed(f"The showcase answered {page.headers.get('content-type')}")
        wanted = (
            f'<h1 id="dataset-title">{html.escape(TITLE)}</h1>',
            f'id="row-count">{rows:,} rows</li>',
            'id="view-spec-1"',
        )
        missing = [w for w in wanted if w not in text]
        preview = text.count('<td class="n">')
        if missing or preview != PREVIEW_ROWS:
            raise BenchmarkFailed(
                f"The showcase lacks {missing} or shows {preview} preview rows, not {PREVIEW_ROWS}"
            )
        described, rows_page = (r.json() for r in references)
        if described.get("name") != PACKAGE or described.get("title") != TITLE:
            raise BenchmarkFailed(f"The package API answered {str(described)[:300]}")
        records = rows_page.get("records") or []
        if len(records) != PREVIEW_ROWS or rows_page.get("total") != rows:
            raise BenchmarkFailed(
                f"The datastore answered {len(records)} rows of {rows_page.get('total')}"
            )

    return check


# Search


@dataclass(frozen=True)
class Found:
    q: str
    kind: str
    total: int


def choose_queries(client: httpx.Client, corpus: search.Corpus, count: int) -> list[Found]:
    """``count`` different searches of QUERY_KINDS, each matching at least one package (asked of
    the API, untimed)."""
    rng = random.Random(corpus.rng.random())
    makers: dict[str, Callable[[], str]] = {
        "one word": corpus.query_word,
        "two words": lambda: f"{corpus.query_word()} {corpus.query_word()}",
        "phrase": lambda: search._phrase(rng, corpus),
        "prefix": lambda: corpus.query_word()[:4] + "*",
    }
    scale = count / sum(n for _, n in QUERY_KINDS)
    chosen: list[Found] = []
    seen: set[str] = set()
    for kind, share in QUERY_KINDS:
        wanted = max(1, round(share * scale))
        have = 0
        for _ in range(wanted * 50):
            q = makers[kind]()
            if q in seen:
                continue
            seen.add(q)
            answer = get(client, "/api/search/package", params={"q": q}).json()
            if int(answer["total_count"]) > 0:
                chosen.append(Found(q, kind, int(answer["total_count"])))
                have += 1
            if have == wanted:
                break
        else:
            raise BenchmarkFailed(f"Found {have} {kind} searches with matches, not {wanted}")
    rng.shuffle(chosen)
    return chosen[:count]


def search_rounds(client: httpx.Client, queries: list[Found]) -> list[Round]:
    def round_of(found: Found) -> Round:
        def page() -> list[httpx.Response]:
            return [get(client, "/search", params={"q": found.q}, headers=HTML)]

        def reference() -> list[httpx.Response]:
            return [get(client, "/api/search/package", params={"q": found.q})]

        return (f"{found.total:>6,} matches  {found.kind:<9}  q={found.q}", page, reference)

    return [round_of(f) for f in queries[:WARMUP]] + [round_of(f) for f in queries]


def search_check(pages: list[httpx.Response], references: list[httpx.Response]) -> None:
    text = pages[0].text
    answer = references[0].json()
    total = int(answer["total_count"])
    counted = f'id="result-count">{total:,} dataset'
    first = answer["items"][0] if answer["items"] else None
    link = f'href="/{first["owner"]}/{first["name"]}"' if first else ""
    if total == 0 or counted not in text or link not in text:
        raise BenchmarkFailed(
            f"The search page does not show {total:,} matches and the first one ({link})"
        )


# The run


def report(compared: Compared, what: str, reference: str) -> bool:
    p95_ms = compared.page.quantile(0.95) * 1000
    ok = p95_ms <= TARGET_P95_MS
    print(f"{compared.label + ':':24}{compared.page.text()}  {what}")
    print(f"  reference:            {compared.reference.text()}  {reference}")
    print(
        f"  page / reference:     p50 {compared.ratio(0.5):.2f}x  p95 {compared.ratio(0.95):.2f}x"
    )
    print(f"  target page p95 <= {TARGET_P95_MS:.0f} ms: {p95_ms:.1f} ms  {_hub.verdict(ok)}")
    return ok


def slowest(compared: Compared) -> None:
    ranked = sorted(
        zip(compared.page.seconds, compared.reference.seconds, compared.notes, strict=True),
        key=lambda entry: -entry[0],
    )[:SLOWEST]
    print("  slowest pages (page ms, reference ms, the search):")
    for page, reference, note in ranked:
        print(f"    {page * 1000:6.1f}  {reference * 1000:6.1f}  {note}")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--rows", type=int, default=1_000_000, help="rows of the pushed table (default 1000000)"
    )
    parser.add_argument(
        "--packages",
        type=int,
        default=10_000,
        help="generated packages to search (default 10000)",
    )
    parser.add_argument(
        "--requests", type=int, default=100, help="timed requests of each page (default 100)"
    )
    parser.add_argument("--seed", type=int, default=7, help="seed of the generated packages")
    parser.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="where to put the table and the hub (default: the temp dir)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args(argv)
    if args.rows < PREVIEW_ROWS:
        parser.error(f"--rows must be at least {PREVIEW_ROWS}")
    if args.packages < 100 or args.requests < 1:
        parser.error("--packages must be at least 100 and --requests at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    # The CSV and the hub's copies of it (see ingest.py), and the generated packages.
    needed = 14 * args.rows * BYTES_PER_ROW + 256 * MIB + args.packages * 20_000
    return bench.in_workdir(args, prefix="dphub-web-bench-", needed=needed, run=run)


def run(args: argparse.Namespace, work: Path) -> None:
    home = work / "home"
    home.mkdir()
    env = bench.isolated_env(home)
    progress = sys.stderr
    quiet = _hub.Quiet()
    data_dir = work / "hub"

    print(f"generating {args.rows:,} rows ...", file=progress)
    table = _hub.write_table(work / "package", rows=args.rows, package=PACKAGE, title=TITLE)
    csv_bytes = table.csv.stat().st_size

    print(f"generating {args.packages:,} packages into the metastore ...", file=progress)
    created = subprocess.run(
        [
            *(sys.executable, "-m", "dphub", "user", "create", PUBLISHER),
            *("--email", f"{PUBLISHER}@example.org", "--data-dir", str(data_dir)),
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    api_key = created.stdout.strip().splitlines()[-1]
    engine = make_engine(f"sqlite:///{data_dir / 'metastore.db'}")
    upgrade(engine)
    corpus = search.make_corpus(args.seed)
    loaded = search.load(make_sessionmaker(engine), corpus, args.packages)
    engine.dispose()
    bench.settle()

    with bench.running_hub(data_dir, env, work / "server.log") as url:
        # The key goes through the environment, not the command line other users can read.
        bench.run_timed(
            [*bench.dphub_command(), "login", "--server", url, "--username", PUBLISHER],
            env={**env, "DPHUB_SECRET": api_key},
        )
        print("dphub push (upload, then the hub's processing) ...", file=progress)
        pushed = _hub.timed_push([*bench.dphub_command(), "push", str(table.csv.parent)], env)
        done = _hub.processing(url, PACKAGE, pushed.revision)
        if _hub.datastore_total(url, RESOURCE_ID) != args.rows:
            raise BenchmarkFailed(f"The datastore does not hold {args.rows:,} rows")
        bench.settle()
        with httpx.Client(base_url=url, timeout=60) as client:
            print("showcase ...", file=progress)
            showcase = compare(
                "showcase page",
                showcase_rounds(client, args.requests),
                showcase_check(args.rows),
                WARMUP,
            )
            print("choosing searches ...", file=progress)
            queries = choose_queries(client, corpus, args.requests)
            print("search ...", file=progress)
            found = compare("search page", search_rounds(client, queries), search_check, WARMUP)

    kinds = [q.kind for q in queries]
    print(bench.machine_line(work))
    print(quiet.line())
    print(
        "setup:                  embedded hub (SQLite metastore, DuckDB datastore, local disk),"
        " one `dphub serve` process with its worker"
    )
    print(
        f"dataset:                {table.rows:,} rows x {len(_hub.FIELDS)} columns,"
        f" {csv_bytes / MIB:.1f} MiB of CSV; pushed and processed in {pushed.seconds:.1f} s"
        f" (steps {done.step_seconds:.1f} s)"
    )
    print(
        f"search corpus:          {loaded.packages:,} generated packages ({loaded.documents:,}"
        f" processed, so indexed), loaded in {loaded.seconds:.1f} s; {len(queries)} searches:"
        f" {', '.join(f'{kinds.count(kind)} {kind}' for kind, _ in QUERY_KINDS)}; matches median"
        f" {int(statistics.median(q.total for q in queries)):,}, max"
        f" {max(q.total for q in queries):,}"
    )
    print(
        f"requests:               {args.requests} timed rounds of each page and its reference,"
        f" alternating, one at a time after {WARMUP} untimed; httpx {httpx.__version__},"
        " one keep-alive connection"
    )
    ok = report(
        showcase,
        f"GET /{PUBLISHER}/{PACKAGE} (Accept: text/html)",
        f"GET /api/package/{PUBLISHER}/{PACKAGE} + GET /api/datastore/search"
        f"?resource_id={RESOURCE_ID}&limit={PREVIEW_ROWS}",
    )
    ok = report(found, "GET /search?q=...", "GET /api/search/package?q=...") and ok
    slowest(found)
    print(
        "answers: every page showed the expected title, rows, counts and results;"
        " the API answers agreed: OK"
    )
    print(f"targets: {'both met' if ok else 'MISSED'}")


if __name__ == "__main__":
    sys.exit(main())
