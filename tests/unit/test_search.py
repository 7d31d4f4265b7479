"""Package search: the query language and its translation, and searches on both metastores."""

from __future__ import annotations

import contextlib
import random
import sqlite3
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session, sessionmaker

from dphub.auth.principal import Principal
from dphub.errors import InvalidQuery, InvalidRequest
from dphub.findability import (
    SearchRequest,
    parse_query,
    reindex,
    reindex_all,
    search,
    search_packages,
)
from dphub.findability.query import MAX_QUERY_CHARS, MAX_WORDS
from dphub.metastore.db import transaction
from dphub.metastore.models import (
    Collaborator,
    Package,
    Revision,
    SearchDocument,
    SearchTerm,
    User,
)

Sessions = sessionmaker[Session]
BASE = "http://hub.test"
ANN = Principal(user_id=1, username="ann", email="ann@example.org")
BOB = Principal(user_id=2, username="bob", email="bob@example.org")
ADMIN = Principal(user_id=3, username="root", email="root@example.org", is_admin=True)
DAY = datetime(2026, 1, 1, tzinfo=UTC)

NASTY = [
    '"',
    '""',
    '"unclosed phrase',
    "*",
    "**",
    "a*",
    "*gdp",
    "g*d*p",
    "NEAR",
    "NEAR(gdp population)",
    "gdp NEAR/2 population",
    "AND",
    "OR",
    "NOT",
    "AND OR NOT",
    "gdp OR",
    "OR gdp",
    "gdp OR OR population",
    "-",
    "--",
    "- -",
    "-gdp",
    "NOT gdp",
    "(",
    ")",
    "((gdp)",
    "gdp)",
    "title:gdp",
    "{title readme}: gdp",
    "^gdp",
    "gdp^2",
    "'",
    "''",
    "gdp's",
    "\\",
    "a & b | !c",
    "<->",
    "gdp:*",
    "gdp:A",
    "+gdp",
    "%",
    "_",
    "__init__",
    "\x00",
    "gdp\x00population",
    "日本語",
    "données",
    "🙂",
    "١٢٣",
    "½",
    "e\u0301",
    "\u200b",
    "x" * MAX_QUERY_CHARS,
    "x" * 10_000,
    "gdp " * (MAX_WORDS + 1),
    "a " * 2000,
    '"NEAR" "AND" "OR"',
    "SELECT * FROM packages; --",
    "' OR 1=1 --",
]


# The query language


@pytest.mark.parametrize(
    ("typed", "fts5", "tsquery"),
    [
        ("gdp", '"gdp"', "'gdp'"),
        ("GDP Europe", '"gdp" AND "europe"', "'gdp' & 'europe'"),
        ('"world bank"', '"world bank"', "'world' <-> 'bank'"),
        ("gdp_per_capita", '"gdp per capita"', "'gdp' <-> 'per' <-> 'capita'"),
        ("popul*", '"popul" *', "'popul':*"),
        ("p*", '"p"', "'p'"),
        ("gdp -europe", '("gdp") NOT ("europe")', "'gdp' & !('europe')"),
        ("gdp NOT europe", '("gdp") NOT ("europe")', "'gdp' & !('europe')"),
        ("gdp OR population", '("gdp" OR "population")', "('gdp' | 'population')"),
        ("gdp AND population", '"gdp" AND "population"', "'gdp' & 'population'"),
        ('-"world bank" gdp', '("gdp") NOT ("world bank")', "'gdp' & !('world' <-> 'bank')"),
        ("NEAR(a b)", '"near a" AND "b"', "'near' <-> 'a' & 'b'"),
        ("title:gdp", '"title gdp"', "'title' <-> 'gdp'"),
        ("gdp OR", '"gdp"', "'gdp'"),
        ("OR gdp", '"gdp"', "'gdp'"),
        ("Données", '"données"', "'données'"),
    ],
)
def test_typed_text_becomes_quoted_expressions(typed: str, fts5: str, tsquery: str) -> None:
    query = parse_query(typed)
    assert query.fts5() == fts5
    assert query.tsquery() == tsquery


@pytest.mark.parametrize("typed", ["*", '""', "-", "AND OR NOT", "()", "-gdp", "NOT gdp", "\x00"])
def test_text_with_nothing_to_look_for_is_refused(typed: str) -> None:
    with pytest.raises(InvalidQuery) as caught:
        parse_query(typed)
    assert caught.value.code == "invalid-query"
    assert caught.value.status == 400


def test_long_text_is_refused() -> None:
    parse_query("x" * MAX_QUERY_CHARS)
    with pytest.raises(InvalidQuery, match="at most 500"):
        parse_query("x" * (MAX_QUERY_CHARS + 1))
    with pytest.raises(InvalidQuery, match=f"at most {MAX_WORDS} are accepted"):
        parse_query("gdp " * (MAX_WORDS + 1))


def _fts5_accepts(expression: str) -> None:
    with sqlite3.connect(":memory:") as con:
        con.execute("CREATE VIRTUAL TABLE t USING fts5(a, tokenize='porter unicode61')")
        con.execute("INSERT INTO t VALUES ('gdp and population of the world')")
        con.execute("SELECT rowid FROM t WHERE t MATCH ?", (expression,)).fetchall()


@pytest.mark.parametrize("typed", NASTY)
def test_nasty_text_is_refused_or_makes_an_expression_fts5_accepts(typed: str) -> None:
    try:
        query = parse_query(typed)
    except InvalidQuery:
        return
    _fts5_accepts(query.fts5())


def test_random_text_never_breaks_fts5() -> None:
    rng = random.Random(7)
    alphabet = "ab \"*-()^:+.,'_\\/&|!<>{}NEARORTD\x00é日🙂"
    for _ in range(2000):
        typed = "".join(rng.choice(alphabet) for _ in range(rng.randrange(1, 40)))
        try:
            query = parse_query(typed)
        except InvalidQuery:
            continue
        _fts5_accepts(query.fts5())


# Searching, on SQLite and PostgreSQL


def add_package(
    db: sessionmaker[Session],
    owner: str,
    name: str,
    *,
    findability: str = "published",
    readme: str | None = None,
    processed: bool = True,
    updated: datetime = DAY,
    **descriptor: Any,
) -> int:
    with transaction(db) as session:
        package = Package(
            owner=owner,
            name=name,
            findability=findability,
            latest_revision=1,
            successful_revision=1 if processed else None,
        )
        session.add(package)
        session.flush()
        session.add(
            Revision(
                package_id=package.id,
                number=1,
                state="SUCCEEDED" if processed else "QUEUED",
                descriptor={"name": name, **descriptor},
                readme=readme,
                modified_at=updated,
            )
        )
        session.flush()
        reindex(session, package.id)
        return package.id


def find(
    db: sessionmaker[Session], principal: Principal | None = None, **asked: Any
) -> dict[str, Any]:
    for key in ("owner", "license", "format", "keyword", "findability"):
        if isinstance(asked.get(key), str):
            asked[key] = (asked[key],)
    with db() as session:
        return search_packages(session, principal, SearchRequest(**asked), base_url=BASE)


def names(answer: dict[str, Any]) -> list[str]:
    return [f"{item['owner']}/{item['name']}" for item in answer["items"]]


def facet(answer: dict[str, Any], name: str) -> dict[str, int]:
    return {entry["value"]: entry["count"] for entry in answer["facets"][name]}


CSV_RESOURCE = {
    "name": "observations",
    "path": "data/observations.csv",
    "schema": {"fields": [{"name": "station_id"}, {"name": "rainfall_mm"}]},
}


@pytest.fixture
def catalog(db: sessionmaker[Session]) -> sessionmaker[Session]:
    """Six packages of three publishers, of every findability, one deleted, one unprocessed."""
    add_package(
        db,
        "core",
        "world-gdp",
        title="World GDP",
        description="Gross domestic product of every country.",
        keywords=["economy", "gdp"],
        licenses=[{"name": "CC0-1.0"}],
        resources=[{"name": "gdp", "path": "gdp.csv"}],
        updated=DAY + timedelta(days=3),
    )
    add_package(
        db,
        "core",
        "population",
        title="Population",
        description="People counted, with the GDP of each country for comparison.",
        readme="# Population\n\nCensus figures; GDP GDP GDP appears here often, gdp again.",
        keywords=["people"],
        licenses=[{"name": "ODC-BY-1.0"}],
        resources=[{"name": "population", "path": "population.json"}],
        updated=DAY + timedelta(days=1),
    )
    add_package(
        db,
        "met",
        "rain",
        title="Rainfall",
        description="Daily rain measurements.",
        readme="Collected by volunteers at weather stations.",
        keywords=["weather"],
        licenses=[{"name": "CC0-1.0"}],
        resources=[CSV_RESOURCE],
        updated=DAY + timedelta(days=2),
    )
    add_package(db, "ann", "secret-plans", findability="private", title="Secret rain plans")
    add_package(db, "ann", "draft", findability="unlisted", title="Draft rain gauge")
    add_package(db, "met", "queued", title="Queued rain", processed=False)
    gone = add_package(db, "met", "gone", title="Deleted rain")
    with transaction(db) as session:
        session.execute(update(Package).where(Package.id == gone).values(deleted_at=DAY))
    return db


def test_finds_by_title_description_readme_keyword_and_names(catalog: Sessions) -> None:
    assert names(find(catalog, q="domestic")) == ["core/world-gdp"]
    assert names(find(catalog, q="census")) == ["core/population"]
    assert names(find(catalog, q="volunteers")) == ["met/rain"]
    assert names(find(catalog, q="economy")) == ["core/world-gdp"]
    assert names(find(catalog, q="observations")) == ["met/rain"]
    assert names(find(catalog, q="rainfall_mm")) == ["met/rain"]
    assert names(find(catalog, q="station")) == ["met/rain"]
    assert names(find(catalog, q="world-gdp")) == ["core/world-gdp"]


def test_the_title_ranks_first(catalog: Sessions) -> None:
    # "population" holds gdp five times in its description and README; "world-gdp" once, in its
    # title (and its name and keywords).
    answer = find(catalog, q="gdp")
    assert names(answer) == ["core/world-gdp", "core/population"]
    assert answer["total_count"] == 2
    assert names(find(catalog, q="population")) == ["core/population"]


def test_stems_phrases_prefixes_exclusions_and_or(catalog: Sessions) -> None:
    assert names(find(catalog, q="measurement")) == ["met/rain"]
    assert names(find(catalog, q='"domestic product"')) == ["core/world-gdp"]
    assert names(find(catalog, q='"product domestic"')) == []
    assert names(find(catalog, q="volunt*")) == ["met/rain"]
    assert names(find(catalog, q="gdp -census")) == ["core/world-gdp"]
    assert set(names(find(catalog, q="census OR volunteers"))) == {"core/population", "met/rain"}


def test_lists_only_what_the_caller_may_see_listed(catalog: Sessions) -> None:
    everyone = {"core/world-gdp", "core/population", "met/rain"}
    assert set(names(find(catalog))) == everyone
    assert set(names(find(catalog, BOB))) == everyone
    assert set(names(find(catalog, ANN))) == everyone | {"ann/secret-plans", "ann/draft"}
    assert set(names(find(catalog, ADMIN))) == everyone | {"ann/secret-plans", "ann/draft"}
    assert names(find(catalog, q="secret")) == []
    assert names(find(catalog, BOB, q="draft")) == []
    assert names(find(catalog, ANN, q="secret")) == ["ann/secret-plans"]


def test_a_collaborator_sees_that_package_listed(catalog: Sessions) -> None:
    with transaction(catalog) as session:
        plans = session.scalar(select(Package.id).where(Package.name == "secret-plans"))
        assert plans is not None
        session.add(User(id=BOB.user_id, username=BOB.username, email=BOB.email))
        session.flush()
        session.add(Collaborator(package_id=plans, user_id=BOB.user_id, role="viewer"))
    assert names(find(catalog, BOB, q="secret")) == ["ann/secret-plans"]
    assert names(find(catalog, BOB, q="draft")) == []
    limited = Principal(user_id=2, username="bob", email="b@example.org", package=("met", "rain"))
    assert names(find(catalog, limited, q="secret")) == []


def test_deleted_and_unprocessed_packages_never_appear(catalog: Sessions) -> None:
    for caller in (None, ADMIN):
        found = names(find(catalog, caller, q="rain"))
        assert "met/gone" not in found
        assert "met/queued" not in found
    with transaction(catalog) as session:
        session.execute(update(Package).where(Package.name == "gone").values(deleted_at=None))
    assert names(find(catalog, q="deleted")) == ["met/gone"]


def test_findability_changes_show_at_once(catalog: Sessions) -> None:
    with transaction(catalog) as session:
        session.execute(update(Package).where(Package.name == "rain").values(findability="private"))
    assert names(find(catalog, q="rainfall")) == []
    with transaction(catalog) as session:
        session.execute(
            update(Package).where(Package.name == "draft").values(findability="published")
        )
    assert names(find(catalog, q="gauge")) == ["ann/draft"]


def test_facets_count_the_whole_result(catalog: Sessions) -> None:
    answer = find(catalog, limit=1)
    assert len(answer["items"]) == 1
    assert answer["total_count"] == 3
    assert facet(answer, "owner") == {"core": 2, "met": 1}
    assert facet(answer, "license") == {"CC0-1.0": 2, "ODC-BY-1.0": 1}
    assert facet(answer, "format") == {"csv": 2, "json": 1}
    assert facet(answer, "keyword") == {"economy": 1, "gdp": 1, "people": 1, "weather": 1}
    assert answer["facets"]["owner"][0] == {"value": "core", "count": 2}
    assert "findability" not in answer["facets"]
    mine = find(catalog, ANN)
    assert facet(mine, "findability") == {"private": 1, "unlisted": 1}
    assert facet(find(catalog, ADMIN), "findability") == {
        "published": 3,
        "private": 1,
        "unlisted": 1,
    }
    narrowed = find(catalog, q="gdp")
    assert facet(narrowed, "owner") == {"core": 2}
    assert facet(narrowed, "license") == {"CC0-1.0": 1, "ODC-BY-1.0": 1}
    assert find(catalog, facet_limit=1)["facets"]["license"] == [{"value": "CC0-1.0", "count": 2}]
    assert find(catalog, facet_limit=0)["facets"]["owner"] == []


def test_filters(catalog: Sessions) -> None:
    assert set(names(find(catalog, owner="core"))) == {"core/world-gdp", "core/population"}
    assert names(find(catalog, license="ODC-BY-1.0")) == ["core/population"]
    assert set(names(find(catalog, license=("ODC-BY-1.0", "CC0-1.0")))) == {
        "core/world-gdp",
        "core/population",
        "met/rain",
    }
    assert names(find(catalog, format="json")) == ["core/population"]
    assert names(find(catalog, keyword="weather")) == ["met/rain"]
    assert names(find(catalog, owner="core", license="CC0-1.0")) == ["core/world-gdp"]
    assert names(find(catalog, q="gdp", owner="met")) == []
    assert names(find(catalog, owner="nobody")) == []
    assert names(find(catalog, ANN, findability="private")) == ["ann/secret-plans"]
    assert names(find(catalog, BOB, findability="published")) == []
    assert len(names(find(catalog, ADMIN, findability="published"))) == 3
    with pytest.raises(InvalidRequest, match="log in"):
        find(catalog, findability="published")
    with pytest.raises(InvalidRequest, match="not one of"):
        find(catalog, ANN, findability="hidden")
    with pytest.raises(InvalidRequest):
        find(catalog, owner="x\x00")


def test_sorts(catalog: Sessions) -> None:
    newest = ["core/world-gdp", "met/rain", "core/population"]
    assert names(find(catalog)) == newest
    assert names(find(catalog, sort="updated")) == newest
    assert names(find(catalog, sort="name")) == ["core/population", "met/rain", "core/world-gdp"]
    assert names(find(catalog, sort="relevance")) == newest
    assert names(find(catalog, q="gdp", sort="updated")) == ["core/world-gdp", "core/population"]
    with pytest.raises(InvalidRequest, match="sort"):
        find(catalog, sort="random")


def test_paging(catalog: Sessions) -> None:
    pages = [names(find(catalog, limit=1, offset=n)) for n in range(3)]
    assert pages == [["core/world-gdp"], ["met/rain"], ["core/population"]]
    past = find(catalog, limit=20, offset=3)
    assert past["items"] == []
    assert past["total_count"] == 3
    far = find(catalog, offset=2**31 - 1)
    assert (far["items"], far["total_count"]) == ([], 3)
    counted = find(catalog, limit=0)
    assert (counted["items"], counted["total_count"]) == ([], 3)
    wrongs: list[dict[str, Any]] = [
        {"limit": 101},
        {"limit": -1},
        {"offset": -1},
        {"offset": 2**31},
    ]
    for wrong in wrongs:
        with pytest.raises(InvalidRequest):
            find(catalog, None, **wrong)


def test_items_carry_the_listing_fields(catalog: Sessions) -> None:
    (item,) = find(catalog, q="domestic")["items"]
    assert item == {
        "owner": "core",
        "name": "world-gdp",
        "title": "World GDP",
        "description": "Gross domestic product of every country.",
        "findability": "published",
        "updated": (DAY + timedelta(days=3)).isoformat(),
        "licenses": ["CC0-1.0"],
        "formats": ["csv"],
        "keywords": ["economy", "gdp"],
        "url": f"{BASE}/core/world-gdp",
    }


def test_nasty_queries_answer_or_refuse(catalog: Sessions) -> None:
    answered = refused = 0
    for typed in NASTY:
        try:
            answer = find(catalog, q=typed)
        except InvalidQuery as exc:
            problem: InvalidQuery | None = exc
        else:
            problem = None
            assert isinstance(answer["total_count"], int), typed
            answered += 1
        if problem is not None:
            assert (problem.status, problem.code) == (400, "invalid-query"), typed
            refused += 1
    assert answered > 20
    assert refused > 5


def test_random_queries_answer_or_refuse(catalog: Sessions) -> None:
    rng = random.Random(11)
    alphabet = "gdp rain \"*-()^:+.,'_\\/&|!<>{}NEAROT\x00é日🙂½١"
    for _ in range(200):
        typed = "".join(rng.choice(alphabet) for _ in range(rng.randrange(1, 30)))
        with contextlib.suppress(InvalidQuery):
            find(catalog, q=typed)


def test_a_new_revision_rewrites_the_document(catalog: Sessions) -> None:
    with transaction(catalog) as session:
        package = session.scalar(select(Package).where(Package.name == "rain"))
        assert package is not None
        session.add(
            Revision(
                package_id=package.id,
                number=2,
                state="SUCCEEDED",
                descriptor={"name": "rain", "title": "Snowfall", "keywords": ["winter"]},
                modified_at=DAY + timedelta(days=9),
            )
        )
        package.successful_revision = 2
        session.flush()
        reindex(session, package.id)
    assert names(find(catalog, q="rainfall")) == []
    assert names(find(catalog, q="snowfall")) == ["met/rain"]
    assert names(find(catalog))[0] == "met/rain"
    assert facet(find(catalog), "keyword")["winter"] == 1
    assert "weather" not in facet(find(catalog), "keyword")


def test_a_purged_package_leaves_no_document(catalog: Sessions) -> None:
    with transaction(catalog) as session:
        rain = session.scalar(select(Package.id).where(Package.name == "rain"))
        session.execute(delete(Package).where(Package.id == rain))
    with catalog() as session:
        assert session.get(SearchDocument, rain) is None
        assert session.scalars(select(SearchTerm).where(SearchTerm.package_id == rain)).all() == []
    assert names(find(catalog, q="rainfall")) == []
    assert names(find(catalog, q="volunteers")) == []


def test_reindex_all_builds_every_processed_package(catalog: Sessions) -> None:
    with transaction(catalog) as session:
        session.execute(delete(SearchTerm))
        session.execute(delete(SearchDocument))
    assert find(catalog)["total_count"] == 0
    assert reindex_all(catalog, batch=2) == 6
    assert names(find(catalog, q="gdp")) == ["core/world-gdp", "core/population"]
    assert set(names(find(catalog, ANN))) >= {"ann/secret-plans"}
    assert reindex_all(catalog) == 6


def test_odd_descriptors_are_indexed_without_error(db: Sessions) -> None:
    add_package(
        db,
        "odd",
        "shapes",
        title=["not", "a", "string"],
        description=42,
        keywords="not-a-list",
        licenses=["MIT", {"title": "Some licence"}, {"path": "https://x.test/l"}, 7, {}],
        resources=[
            "not-a-resource",
            {"path": ["part1.CSV", "part2.csv"]},
            {"path": "https://x.test/data.geojson?raw=1", "schema": "schema.json"},
            {"format": " XLSX ", "schema": {"fields": [{"name": 5}, "x", {"name": "ok_field"}]}},
        ],
    )
    answer = find(db, q="ok_field")
    assert names(answer) == ["odd/shapes"]
    (item,) = answer["items"]
    assert item["title"] is None
    assert item["keywords"] == []
    assert item["licenses"] == ["MIT", "Some licence", "https://x.test/l"]
    assert item["formats"] == ["csv", "geojson", "xlsx"]


def test_pages_read_in_order_or_sorted_from_the_matches_agree(
    catalog: Sessions, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[dict[str, Any]] = [
        {},
        {"sort": "name"},
        {"owner": "core"},
        {"q": "gdp", "sort": "updated"},
        {"limit": 1, "offset": 1},
    ]
    sorted_from_matches = [names(find(catalog, **a)) for a in asked]
    monkeypatch.setattr(search, "FEW", 0)
    assert [names(find(catalog, **a)) for a in asked] == sorted_from_matches
