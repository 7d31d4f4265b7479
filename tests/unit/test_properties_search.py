"""Properties of the search box's language: whatever is typed is read into words or refused as
``invalid-query``, and what it is read into is an FTS5 expression SQLite always accepts and that
finds exactly the packages holding the words."""

from __future__ import annotations

import sqlite3
import string
from collections.abc import Iterator

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from dphub.errors import InvalidQuery
from dphub.findability.query import MAX_QUERY_CHARS, MAX_WORDS, parse_query

PROPERTY = settings(derandomize=True, database=None, deadline=None, max_examples=200)
WORD = r"[^\W_]+"
OPERATOR_TEXT = st.text(
    alphabet=string.ascii_letters + string.digits + ' "-*()^:&!|~+_.,éÉß中', max_size=60
)
words = st.text(alphabet=string.ascii_lowercase + string.digits, min_size=1, max_size=8).filter(
    lambda w: w not in ("and", "or", "not")
)


@pytest.fixture(scope="module")
def index() -> Iterator[sqlite3.Connection]:
    """An FTS5 table as the metastore makes it (same tokenizer), with a few documents."""
    con = sqlite3.connect(":memory:")
    con.execute(
        "CREATE VIRTUAL TABLE docs USING fts5(body,"
        " tokenize='porter unicode61 remove_diacritics 2')"
    )
    con.executemany(
        "INSERT INTO docs(rowid, body) VALUES (?, ?)",
        [(1, "gdp europe"), (2, "covid-19 cases"), (3, "rain fall 2020"), (4, "Über straße")],
    )
    yield con
    con.close()


@PROPERTY
@given(st.one_of(OPERATOR_TEXT, st.text(max_size=80)))
@example('"unclosed')
@example("NEAR(a b)")
@example("a OR OR b")
@example("-a")
@example("NOT")
@example("a^b:c")
@example("x" * (MAX_QUERY_CHARS + 1))
@example(" ".join(["w"] * (MAX_WORDS + 1)))
def test_what_is_typed_is_a_query_sqlite_accepts_or_invalid_query(
    index: sqlite3.Connection, text: str
) -> None:
    try:
        query = parse_query(text)
    except InvalidQuery:
        with pytest.raises(InvalidQuery) as refused:
            parse_query(text)
        assert refused.value.details == {"parameter": "q"}
        assert refused.value.status == 400
        return
    assert query.required
    assert 0 < len(query.words) <= MAX_WORDS
    for word in query.words:
        assert word == word.lower()
    index.execute("SELECT rowid FROM docs WHERE docs MATCH ?", (query.fts5(),)).fetchall()
    assert query.tsquery()


@PROPERTY
@given(st.lists(words, min_size=1, max_size=6))
def test_plain_words_are_all_required(typed: list[str]) -> None:
    query = parse_query(" ".join(typed))
    assert query.words == typed
    assert [c.negated for c in query.clauses] == [False] * len(typed)
    assert [[t.words for t in c.alternatives] for c in query.clauses] == [[(w,)] for w in typed]


@PROPERTY
@given(words, words, words)
def test_or_joins_alternatives_and_a_dash_leaves_out(
    first: str, second: str, left_out: str
) -> None:
    query = parse_query(f"{first} OR {second} -{left_out}")
    assert len(query.required) == 1
    assert [t.words for t in query.required[0].alternatives] == [(first,), (second,)]
    assert [[t.words for t in c.alternatives] for c in query.excluded] == [[(left_out,)]]


@PROPERTY
@given(st.lists(words, min_size=2, max_size=4), st.sampled_from(["_", "-", "."]))
def test_words_joined_without_spaces_are_a_phrase(parts: list[str], joint: str) -> None:
    (clause,) = parse_query(joint.join(parts)).clauses
    assert [t.words for t in clause.alternatives] == [tuple(parts)]


@pytest.mark.parametrize(
    ("typed", "found"),
    [
        ("gdp", [1]),
        ("GDP Europe", [1]),
        ("gdp OR rain", [1, 3]),
        ("covid-19", [2]),
        ('"fall 2020"', [3]),
        ("ra*", [3]),
        ("gdp -europe", []),
        ("uber", [4]),
        ('^gdp: (europe! ^"', [1]),
    ],
)
def test_the_expression_finds_the_packages_holding_the_words(
    index: sqlite3.Connection, typed: str, found: list[int]
) -> None:
    expression = parse_query(typed).fts5()
    rows = index.execute("SELECT rowid FROM docs WHERE docs MATCH ? ORDER BY rowid", (expression,))
    assert [row[0] for row in rows] == found
