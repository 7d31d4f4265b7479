"""Search benchmark: package search over 100,000 packages, on SQLite (FTS5) and PostgreSQL.

    python benchmarks/search.py [--packages 100000] [--queries 200] [--metastore sqlite,postgres]
                                [--seed 7] [--workdir DIR] [--keep]

For each metastore it generates ``--packages`` packages straight into a freshly migrated metastore
(rows of ``packages`` and, through dphub's own document builder, their search documents and facet
values, in batches: no push, no processing), starts a real hub on loopback (``python -m dphub
serve``) on that metastore, and sends ``--queries`` varied searches, all with facets, one at a time
over one keep-alive connection: first every query once untimed, then every query timed. Then, in
this process, it times each query twice more:

- in-process: ``dphub.findability.search_packages`` on a session of its own (what the route runs,
  without HTTP, the token check and the JSON answer);
- raw SQL: the statements that call sent to the database (caught with a SQLAlchemy event), replayed
  on a bare DBAPI connection (``sqlite3`` or ``psycopg``), each executed and fetched to the end.

The raw SQL time is the reference: what the database needs for the same answer, so the gap to it
is what dphub adds (building the statements, the rows into JSON, HTTP). The target is an HTTP p95
under 50 ms. The answers are checked: the HTTP and in-process ones must list the same packages
with the same total. PostgreSQL is a throwaway cluster started with tests/services.py (the
``postgres`` server binaries are needed); it is skipped with a note when none can be had.

Exit code 0 when every answer agreed, 1 otherwise; a missed target is reported, not a failure.
This is not a test and never runs with the suite.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Engine, event, insert, select
from sqlalchemy.orm import Session, sessionmaker

import _hub
import push as bench
from dphub.auth.principal import Principal
from dphub.findability import SearchRequest, search_packages
from dphub.findability.index import build, write
from dphub.metastore.db import make_engine, make_sessionmaker, transaction, upgrade
from dphub.metastore.models import Membership, Package, Publisher, User
from push import BenchmarkFailed

TARGET_P95_MS = 50.0
SLOWEST = 8
BATCH = 5_000
BENCH_USER = "bench"
BENCH_ORG = "bench-org"
PUBLISHERS = 3_000
VOCABULARY = 6_000
KEYWORDS = 400
FIELD_NAMES = 500
LICENSES = (
    ("CC-BY-4.0", 30),
    ("CC0-1.0", 25),
    ("ODC-BY-1.0", 12),
    ("ODbL-1.0", 10),
    ("PDDL-1.0", 8),
    ("CC-BY-SA-4.0", 8),
    ("OGL-UK-3.0", 4),
    ("other-open", 3),
)
FORMATS = (("csv", 60), ("json", 12), ("xlsx", 10), ("geojson", 6), ("zip", 5), ("pdf", 4))
FINDABILITY = (("published", 90), ("unlisted", 5), ("private", 5))
QUERY_RANKS = (30, VOCABULARY)
"""Words queried are drawn log-uniformly between these frequency ranks: from words in about half
of the packages to words in a few hundred (the 30 most frequent act as stop words)."""
SYLLABLES = [
    c + v
    for c in ("b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "ch", "st")
    for v in ("a", "e", "i", "o", "u", "ai", "ou")
]


# The corpus


@dataclass
class Corpus:
    rng: random.Random
    words: list[str]
    """Pseudo-words, most frequent first; sampled with Zipf weights."""
    cumulative: list[float]
    keywords: list[str]
    keyword_weights: list[float]
    fields: list[str]
    owners: list[str]
    owner_weights: list[float]
    titles: list[str] = field(default_factory=list)
    """A sample of generated titles, for phrase queries."""

    def text(self, count: int) -> str:
        return " ".join(self.rng.choices(self.words, cum_weights=self.cumulative, k=count))

    def ranked(self, rank: int) -> str:
        return self.words[min(rank, len(self.words)) - 1]

    def query_word(self) -> str:
        low, high = QUERY_RANKS
        return self.ranked(int(math.exp(self.rng.uniform(math.log(low), math.log(high)))))


def _pseudo_words(rng: random.Random, count: int) -> list[str]:
    found: dict[str, None] = {}
    while len(found) < count:
        word = "".join(rng.choice(SYLLABLES) for _ in range(rng.choice((2, 2, 3, 3, 3, 4))))
        found.setdefault(word, None)
    return list(found)


def _zipf(count: int, exponent: float = 1.0, shift: float = 2.7) -> list[float]:
    return [1.0 / (rank + shift) ** exponent for rank in range(1, count + 1)]


def make_corpus(seed: int) -> Corpus:
    rng = random.Random(seed)
    words = _pseudo_words(rng, VOCABULARY + KEYWORDS + FIELD_NAMES // 2 + PUBLISHERS)
    vocabulary = words[:VOCABULARY]
    rest = words[VOCABULARY:]
    keywords, rest = rest[:KEYWORDS], rest[KEYWORDS:]
    stems, rest = rest[: FIELD_NAMES // 2], rest[FIELD_NAMES // 2 :]
    fields = [f"{a}_{b}" for a, b in zip(stems, reversed(stems), strict=True)] + stems
    owners = [f"{w}-{i}" for i, w in enumerate(rest[:PUBLISHERS])]
    cumulative: list[float] = []
    total = 0.0
    for weight in _zipf(len(vocabulary)):
        total += weight
        cumulative.append(total)
    return Corpus(
        rng=rng,
        words=vocabulary,
        cumulative=cumulative,
        keywords=keywords,
        keyword_weights=_zipf(len(keywords), 0.8),
        fields=fields,
        owners=owners,
        owner_weights=_zipf(len(owners), 1.1),
    )


def _pick(rng: random.Random, table: Sequence[tuple[str, int]]) -> str:
    return rng.choices([v for v, _ in table], weights=[w for _, w in table])[0]


def _descriptor(corpus: Corpus, name: str) -> dict[str, Any]:
    rng = corpus.rng
    title = corpus.text(rng.randint(3, 7)).title()
    if len(corpus.titles) < 2_000 and rng.random() < 0.05:
        corpus.titles.append(title)
    resources = []
    for index in range(rng.choice((1, 1, 1, 2, 2, 3))):
        fmt = _pick(rng, FORMATS)
        resource: dict[str, Any] = {
            "name": f"{corpus.text(1)}-{index}",
            "path": f"data/part{index}.{fmt}",
            "format": fmt,
        }
        if fmt in ("csv", "xlsx", "json"):
            names = rng.sample(corpus.fields, rng.randint(3, 12))
            resource["schema"] = {"fields": [{"name": n, "type": "string"} for n in names]}
        resources.append(resource)
    drawn = rng.choices(corpus.keywords, weights=corpus.keyword_weights, k=rng.randint(1, 5))
    keywords = set(drawn)
    return {
        "name": name,
        "title": title,
        "description": corpus.text(rng.randint(15, 60)).capitalize() + ".",
        "keywords": sorted(keywords),
        "licenses": [{"name": _pick(rng, LICENSES)}],
        "resources": resources,
    }


def _readme(corpus: Corpus) -> str:
    paragraphs = [corpus.text(corpus.rng.randint(20, 80)) + "." for _ in range(3)]
    return "# About\n\n" + "\n\n".join(paragraphs)


@dataclass(frozen=True)
class Loaded:
    seconds: float
    packages: int
    documents: int
    bench_user_id: int
    bench_packages: int


def load(sessions: sessionmaker[Session], corpus: Corpus, count: int) -> Loaded:
    """``count`` packages and their search documents, in batches; a tenth of a percent of them
    (and a publisher's worth in an organization) belong to the benchmark's signed-in user."""
    began = time.perf_counter()
    rng = corpus.rng
    now = datetime(2026, 11, 1, tzinfo=UTC)
    with transaction(sessions) as db:
        user_id = db.scalar(select(User.id).where(User.username == BENCH_USER))
        if user_id is None:
            raise BenchmarkFailed(f"No user {BENCH_USER!r} in the metastore.")
        org = Publisher(name=BENCH_ORG, kind="organization", title="Benchmark org")
        db.add(org)
        db.flush()
        db.add(Membership(publisher_id=org.id, user_id=user_id, role="viewer"))
    documents = bench_packages = 0
    for start in range(1, count + 1, BATCH):
        packages, built = [], []
        for package_id in range(start, min(start + BATCH, count + 1)):
            roll = rng.random()
            if roll < 0.003:
                owner = BENCH_USER
            elif roll < 0.02:
                owner = BENCH_ORG
            else:
                owner = rng.choices(corpus.owners, weights=corpus.owner_weights)[0]
            bench_packages += owner in (BENCH_USER, BENCH_ORG)
            name = f"{corpus.text(1)}-{package_id}"
            updated = now - timedelta(seconds=rng.randrange(3 * 365 * 86400))
            processed = rng.random() >= 0.01
            packages.append(
                {
                    "id": package_id,
                    "owner": owner,
                    "name": name,
                    "findability": _pick(rng, FINDABILITY),
                    "created_at": updated,
                    "modified_at": updated,
                    "latest_revision": 1,
                    "successful_revision": 1 if processed else None,
                    "deleted_at": now if rng.random() < 0.01 else None,
                }
            )
            if processed:
                built.append(
                    build(
                        package_id=package_id,
                        owner=owner,
                        name=name,
                        revision=1,
                        descriptor=_descriptor(corpus, name),
                        readme=_readme(corpus),
                        updated=updated,
                    )
                )
        with transaction(sessions) as db:
            db.execute(insert(Package), packages)
            documents += write(db, built)
        print(f"  loaded {start + len(packages) - 1:,} packages", file=sys.stderr)
    return Loaded(time.perf_counter() - began, count, documents, user_id, bench_packages)


# The queries


@dataclass(frozen=True)
class Query:
    kind: str
    params: list[tuple[str, str]]
    signed_in: bool = False

    def request(self) -> SearchRequest:
        values: dict[str, Any] = {}
        for key, value in self.params:
            if key in ("owner", "license", "format", "keyword", "findability"):
                values[key] = (*values.get(key, ()), value)
            elif key in ("limit", "offset"):
                values[key] = int(value)
            else:
                values[key] = value
        return SearchRequest(**values)


KINDS = (
    ("one word", 60),
    ("two words", 40),
    ("phrase", 15),
    ("prefix", 15),
    ("word + filter", 20),
    ("filter, no words", 20),
    ("no words (browse)", 10),
    ("signed in", 20),
)


def make_queries(corpus: Corpus, total: int) -> list[Query]:
    rng = random.Random(corpus.rng.random())
    scale = total / sum(n for _, n in KINDS)
    queries: list[Query] = []

    def filters() -> list[tuple[str, str]]:
        choice = rng.randrange(4)
        if choice == 0:
            return [("license", _pick(rng, LICENSES))]
        if choice == 1:
            return [("format", _pick(rng, FORMATS))]
        if choice == 2:
            keyword = rng.choices(corpus.keywords, weights=corpus.keyword_weights)[0]
            return [("keyword", keyword)]
        return [("owner", rng.choices(corpus.owners[:200], weights=corpus.owner_weights[:200])[0])]

    makers: dict[str, Callable[[], Query]] = {
        "one word": lambda: Query("one word", [("q", corpus.query_word())]),
        "two words": lambda: Query(
            "two words", [("q", f"{corpus.query_word()} {corpus.query_word()}")]
        ),
        "phrase": lambda: Query("phrase", [("q", _phrase(rng, corpus))]),
        "prefix": lambda: Query("prefix", [("q", corpus.query_word()[:4] + "*")]),
        "word + filter": lambda: Query("word + filter", [("q", corpus.query_word()), *filters()]),
        "filter, no words": lambda: Query("filter, no words", filters()),
        "no words (browse)": lambda: Query(
            "no words (browse)",
            [("sort", rng.choice(("updated", "name"))), ("offset", str(20 * rng.randrange(5)))],
        ),
        "signed in": lambda: Query(
            "signed in",
            [("q", corpus.query_word())]
            if rng.random() < 0.7
            else [("findability", rng.choice(("private", "unlisted")))],
            signed_in=True,
        ),
    }
    seen: set[tuple[bool, tuple[tuple[str, str], ...]]] = set()
    for kind, count in KINDS:
        wanted = max(1, round(count * scale))
        for _ in range(wanted * 50):
            query = makers[kind]()
            key = (query.signed_in, tuple(query.params))
            if key not in seen:
                seen.add(key)
                queries.append(query)
            if sum(q.kind == kind for q in queries) == wanted:
                break
    rng.shuffle(queries)
    return queries[:total]


def _phrase(rng: random.Random, corpus: Corpus) -> str:
    words = rng.choice(corpus.titles).split()
    start = rng.randrange(max(1, len(words) - 1))
    return '"' + " ".join(words[start : start + 2]) + '"'


# Timing


def quantile(samples: Sequence[float], q: float) -> float:
    """Nearest rank, as benchmarks/query.py computes it."""
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:7.1f} ms"


@dataclass
class Timed:
    http: list[float] = field(default_factory=list)
    inproc: list[float] = field(default_factory=list)
    raw: list[float] = field(default_factory=list)
    matches: list[int] = field(default_factory=list)
    queries: list[Query] = field(default_factory=list)


class Capture:
    """The statements a session sends, caught on their way to the DBAPI cursor."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.statements: list[tuple[str, Any]] = []

    def _seen(self, conn: Any, cursor: Any, statement: str, parameters: Any, *rest: Any) -> None:
        self.statements.append((statement, parameters))

    @contextlib.contextmanager
    def catching(self) -> Iterator[list[tuple[str, Any]]]:
        self.statements = []
        event.listen(self.engine, "before_cursor_execute", self._seen)
        try:
            yield self.statements
        finally:
            event.remove(self.engine, "before_cursor_execute", self._seen)


def run_queries(
    url: str,
    engine: Engine,
    queries: list[Query],
    token: str,
    principal: Principal,
) -> tuple[dict[str, Timed], int]:
    """Time every query over HTTP, in-process and as raw SQL; returns the timings by kind and the
    number of answers that disagreed."""
    headers = {"Authorization": f"Bearer {token}"}
    sessions = make_sessionmaker(engine)
    capture = Capture(engine)
    by_kind: dict[str, Timed] = {}
    disagreements = 0
    with httpx.Client(base_url=url, timeout=120) as client:

        def get(query: Query) -> tuple[float, dict[str, Any]]:
            began = time.perf_counter()
            response = client.get(
                "/api/search/package",
                params=tuple(query.params),
                headers=headers if query.signed_in else None,
            )
            body = response.content
            elapsed = time.perf_counter() - began
            if response.status_code != 200:
                raise BenchmarkFailed(f"{query.params} answered {response.status_code}: {body!r}")
            answer: dict[str, Any] = response.json()
            return elapsed, answer

        for query in queries:  # warm-up: every query once
            get(query)
        answers = []
        for query in queries:
            elapsed, answer = get(query)
            timed = by_kind.setdefault(query.kind, Timed())
            timed.http.append(elapsed)
            timed.matches.append(int(answer["total_count"]))
            timed.queries.append(query)
            answers.append(answer)
    raw = engine.raw_connection()
    try:
        for query, answer in zip(queries, answers, strict=True):
            caller = principal if query.signed_in else None
            with sessions() as db, capture.catching() as statements:
                began = time.perf_counter()
                mine = search_packages(db, caller, query.request(), base_url=url)
                elapsed = time.perf_counter() - began
            by_kind[query.kind].inproc.append(elapsed)
            if [i["url"] for i in mine["items"]] != [i["url"] for i in answer["items"]] or (
                mine["total_count"] != answer["total_count"]
            ):
                disagreements += 1
            by_kind[query.kind].raw.append(_replay(raw, statements))
    finally:
        raw.close()
    return by_kind, disagreements


def _replay(connection: Any, statements: list[tuple[str, Any]]) -> float:
    cursor = connection.cursor()
    try:
        began = time.perf_counter()
        for statement, parameters in statements:
            cursor.execute(statement, parameters)
            cursor.fetchall()
        elapsed = time.perf_counter() - began
    finally:
        cursor.close()
    connection.rollback()
    return elapsed


def report(label: str, by_kind: dict[str, Timed]) -> bool:
    every = Timed()
    for timed in by_kind.values():
        every.http += timed.http
        every.inproc += timed.inproc
        every.raw += timed.raw
        every.matches += timed.matches
    p95 = quantile(every.http, 0.95)
    ok = p95 * 1000 < TARGET_P95_MS
    print(
        f"{label}: HTTP p50 {ms(quantile(every.http, 0.5))}  p95 {ms(p95)}"
        f"  (target p95 < {TARGET_P95_MS:.0f} ms) {_hub.verdict(ok)}"
    )
    print(
        f"{'':{len(label)}}  in-process p50 {ms(quantile(every.inproc, 0.5))}"
        f"  p95 {ms(quantile(every.inproc, 0.95))}"
        f"  | raw SQL p50 {ms(quantile(every.raw, 0.5))}  p95 {ms(quantile(every.raw, 0.95))}"
    )
    print(
        f"  {'kind':<19} {'n':>3}  {'HTTP p50':>10} {'HTTP p95':>10} {'HTTP max':>10}"
        f" {'raw p95':>10}  matches (median, max)"
    )
    for kind, _ in KINDS:
        entry = by_kind.get(kind)
        if entry is None:
            continue
        print(
            f"  {kind:<19} {len(entry.http):>3}  {ms(quantile(entry.http, 0.5)):>10}"
            f" {ms(quantile(entry.http, 0.95)):>10} {ms(max(entry.http)):>10}"
            f" {ms(quantile(entry.raw, 0.95)):>10}"
            f"  {int(statistics.median(entry.matches)):>7,}, {max(entry.matches):,}"
        )
    slowest = sorted(
        (
            (seconds, kind, query, matches)
            for kind, timed in by_kind.items()
            for seconds, query, matches in zip(
                timed.http, timed.queries, timed.matches, strict=True
            )
        ),
        key=lambda entry: -entry[0],
    )[:SLOWEST]
    print("  slowest:")
    for seconds, kind, query, matches in slowest:
        asked = "&".join(f"{k}={v}" for k, v in query.params)
        print(f"    {ms(seconds)}  {kind:<19} {matches:>7,} matches  {asked}")
    return ok


# One metastore


def run_one(
    metastore: str, args: argparse.Namespace, work: Path, services: Any, quiet: _hub.Quiet
) -> bool:
    """Load, serve, query and report one metastore; returns whether every answer agreed."""
    root = work / metastore
    data_dir = root / "data"
    home = root / "home"
    home.mkdir(parents=True)
    env = bench.isolated_env(home)
    postgres = None
    if metastore == "postgres":
        postgres = services.start_postgres()
        database_url = postgres.create_database()
        env["DPHUB_DATABASE_URL"] = database_url
        where = f"PostgreSQL on {database_url.rsplit('@', 1)[-1]}"
    else:
        database_url = f"sqlite:///{data_dir / 'metastore.db'}"
        where = "SQLite (FTS5) in the hub's data dir"
    try:
        created = subprocess.run(
            [
                *(sys.executable, "-m", "dphub", "user", "create", BENCH_USER),
                *("--email", f"{BENCH_USER}@example.org", "--data-dir", str(data_dir)),
            ],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        api_key = created.stdout.strip().splitlines()[-1]
        engine = make_engine(database_url)
        upgrade(engine)
        corpus = make_corpus(args.seed)
        loaded = load(make_sessionmaker(engine), corpus, args.packages)
        if metastore == "postgres":
            _analyze(engine)
        queries = make_queries(corpus, args.queries)
        principal = Principal(loaded.bench_user_id, BENCH_USER, f"{BENCH_USER}@example.org")
        with bench.running_hub(data_dir, env, root / "server.log") as url:
            token = httpx.post(
                f"{url}/api/auth/token",
                json={"username": BENCH_USER, "secret": api_key},
                timeout=30,
            ).json()["token"]
            by_kind, disagreements = run_queries(url, engine, queries, token, principal)
        engine.dispose()
    finally:
        if postgres is not None:
            quiet.add(_hub.postmaster_cpu(postgres))
            postgres.stop()
    print(f"metastore:          {where}")
    print(
        f"corpus:             {loaded.packages:,} packages ({loaded.documents:,} processed, so"
        f" indexed; 90% published, 5% unlisted, 5% private; 1% deleted), {PUBLISHERS:,} publishers"
        f" + the signed-in user's {loaded.bench_packages:,}; loaded in {loaded.seconds:.0f} s"
    )
    report(f"{metastore:<8} {len(queries)} queries", by_kind)
    if disagreements:
        print(f"answers: {disagreements} of {len(queries)} differed between HTTP and in-process")
    else:
        print("answers: HTTP and in-process gave the same packages and totals: OK")
    return disagreements == 0


def _analyze(engine: Engine) -> None:
    """Fresh planner statistics after the bulk load, as autovacuum would gather soon after."""
    with engine.connect() as connection:
        connection.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("ANALYZE")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--packages", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--metastore", default="sqlite,postgres", help="sqlite, postgres or both")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--keep", action="store_true", help="Keep the work folder.")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    metastores = [m.strip() for m in args.metastore.split(",") if m.strip()]
    unknown = set(metastores) - {"sqlite", "postgres"}
    if unknown or not metastores:
        print(f"--metastore takes sqlite, postgres or both, not {args.metastore!r}")
        return 2
    work = Path(tempfile.mkdtemp(prefix="dphub-search-", dir=args.workdir))
    quiet = _hub.Quiet()
    ok = True
    try:
        print(bench.machine_line(work))
        services = None
        if "postgres" in metastores:
            services = bench.test_services()
            missing = _hub.postgres_missing(services)
            if missing:
                print(f"postgres: skipped: {missing}")
                metastores.remove("postgres")
        for metastore in metastores:
            ok = run_one(metastore, args, work, services, quiet) and ok
        print(quiet.line())
    except BenchmarkFailed as exc:
        print(f"FAILED: {exc}")
        return 1
    finally:
        if args.keep:
            print(f"work folder kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
