"""Properties of ``datastore_search``'s parameters: filters, text search, sort, fields and paging
select exactly the rows a plain Python reading of them selects, in the same order, when run on a
real DuckDB table; and any text a client sends as filters, q, sort or fields is either such a
query or refused as ``invalid-query``, never another exception and never a database error."""

from __future__ import annotations

import json
import string
from collections.abc import Iterator
from typing import Any

import duckdb
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from dphub.datastore.interfaces import ROW_ID
from dphub.datastore.search import (
    Column,
    SearchQuery,
    build_search,
    parse_fields,
    parse_filters,
    parse_q,
    parse_sort,
)
from dphub.errors import InvalidQuery

PROPERTY = settings(derandomize=True, database=None, deadline=None, max_examples=150)
COLUMNS = [Column("n", "integer"), Column("t", "string"), Column("b", "boolean")]
BY_NAME = {c.name: c for c in COLUMNS}
TYPED = [
    *COLUMNS,
    Column("x", "number"),
    Column("y", "year"),
    Column("d", "date"),
    Column("dt", "datetime"),
    Column("tm", "time"),
]
"""A column of every Table Schema type the datastore converts filter values to."""
TEXT = "aAbB%_\\ -"

ints = st.one_of(st.none(), st.integers(min_value=-3, max_value=3))
texts = st.one_of(st.none(), st.text(alphabet=TEXT, max_size=4))
bools = st.one_of(st.none(), st.booleans())
tables = st.lists(st.tuples(ints, texts, bools), max_size=12)


def _spellings(column: str, value: Any) -> st.SearchStrategy[Any]:
    """The ways a client may write ``value`` for the column: the value, or its text."""
    if column == "n" and value is not None:
        return st.sampled_from([value, str(value), f" {value} ", float(value)])
    if column == "b" and value is not None:
        words = ["true", "1", "yes", "TRUE"] if value else ["false", "0", "no", "False"]
        return st.sampled_from([value, *words])
    return st.just(value)


@st.composite
def filters(draw: st.DrawFn) -> dict[str, Any]:
    """A filter per column, as a client writes it: equality, a list (IN), null, or a range."""
    chosen: dict[str, Any] = {}
    for column in draw(st.sets(st.sampled_from(list(BY_NAME)))):
        values = {"n": ints, "t": texts, "b": bools}[column]
        kind = draw(st.sampled_from(["eq", "in", "range"] if column == "n" else ["eq", "in"]))
        if kind == "eq":
            chosen[column] = draw(values.flatmap(lambda v, c=column: _spellings(c, v)))
        elif kind == "in":
            chosen[column] = draw(st.lists(values, max_size=3))
        else:
            operators = draw(st.sets(st.sampled_from(["gt", "gte", "lt", "lte"]), min_size=1))
            chosen[column] = {op: draw(st.integers(-3, 3)) for op in sorted(operators)}
    return chosen


@pytest.fixture(scope="module")
def con() -> Iterator[duckdb.DuckDBPyConnection]:
    connection = duckdb.connect(":memory:")
    yield connection
    connection.close()


def _load(con: duckdb.DuckDBPyConnection, rows: list[tuple[Any, ...]]) -> None:
    con.execute('CREATE OR REPLACE TABLE tab ("_id" BIGINT, n BIGINT, t VARCHAR, b BOOLEAN)')
    if rows:
        con.executemany(
            "INSERT INTO tab VALUES (?, ?, ?, ?)",
            [(index, *row) for index, row in enumerate(rows, start=1)],
        )


def _as_integer(value: Any) -> int:
    return int(value.strip()) if isinstance(value, str) else int(value)


def _as_boolean(value: Any) -> bool:
    return value if isinstance(value, bool) else str(value).strip().lower() in ("true", "1", "yes")


def _typed(column: str, value: Any) -> Any:
    if value is None:
        return None
    return {"n": _as_integer, "b": _as_boolean}.get(column, lambda v: v)(value)


def _shown(value: Any) -> str | None:
    """A cell as the backend prints it as text (what q is looked for in)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _matches(row: dict[str, Any], wanted: dict[str, Any], q: str | None) -> bool:
    for column, condition in wanted.items():
        cell = row[column]
        if isinstance(condition, list):
            if cell not in [_typed(column, v) for v in condition]:
                return False
        elif isinstance(condition, dict):
            tests = {"gt": cell.__gt__, "gte": cell.__ge__, "lt": cell.__lt__, "lte": cell.__le__}
            if cell is None or not all(tests[op](bound) for op, bound in condition.items()):
                return False
        elif cell != _typed(column, condition):
            return False
    needle = (q or "").strip().lower()
    shown = [_shown(row[c.name]) for c in COLUMNS]
    return not needle or any(text is not None and needle in text.lower() for text in shown)


def _ordered(rows: list[dict[str, Any]], sort: list[tuple[str, bool]]) -> list[dict[str, Any]]:
    """The rows in the sort's order, missing values last either way, then in file order."""
    ordered = sorted(rows, key=lambda row: row[ROW_ID])
    for column, descending in reversed(sort):
        present = [r for r in ordered if r[column] is not None]
        missing = [r for r in ordered if r[column] is None]
        # Python's sort is stable in both directions: ties keep the order of the later keys
        ordered = sorted(present, key=lambda r, c=column: r[c], reverse=descending) + missing
    return ordered


def _first_mentions(sort: list[tuple[str, bool]]) -> list[tuple[str, bool]]:
    first: dict[str, bool] = {}
    for name, descending in sort:
        first.setdefault(name, descending)
    return list(first.items())


@PROPERTY
@given(
    tables,
    filters(),
    st.one_of(st.none(), st.text(alphabet=TEXT, max_size=3)),
    st.lists(st.tuples(st.sampled_from(list(BY_NAME)), st.booleans()), max_size=3),
    st.lists(st.sampled_from([*BY_NAME, ROW_ID]), max_size=4),
    st.integers(min_value=0, max_value=5),
    st.integers(min_value=0, max_value=5),
)
def test_a_search_selects_the_rows_its_parameters_name(
    con: duckdb.DuckDBPyConnection,
    rows: list[tuple[Any, ...]],
    wanted: dict[str, Any],
    q: str | None,
    sort: list[tuple[str, bool]],
    fields: list[str],
    limit: int,
    offset: int,
) -> None:
    _load(con, rows)
    sort_text = ", ".join(f'"{name}"' + (" desc" if desc else "") for name, desc in sort)
    order = parse_sort(sort_text, COLUMNS)
    assert order == _first_mentions(sort)
    chosen = parse_fields(",".join(fields), COLUMNS)
    assert [c.name for c in chosen] == (list(dict.fromkeys(fields)) or [c.name for c in COLUMNS])
    query = build_search(
        table="tab",
        columns=COLUMNS,
        dialect="duckdb",
        q=parse_q(q),
        filters=parse_filters(json.dumps(wanted)),
        fields=chosen,
        sort=order,
        limit=limit,
        offset=offset,
    )
    records = [
        {ROW_ID: index, "n": n, "t": t, "b": b} for index, (n, t, b) in enumerate(rows, start=1)
    ]
    matching = [r for r in records if _matches(r, wanted, q)]
    expected = [
        tuple(r[c.name] for c in chosen) for r in _ordered(matching, order)[offset : offset + limit]
    ]
    assert con.execute(query.sql, query.params).fetchall() == expected
    assert con.execute(query.count_sql, query.count_params).fetchone() == (len(matching),)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
client_text = st.one_of(
    st.text(max_size=40),
    json_values.map(json.dumps),
    st.dictionaries(
        st.sampled_from([*(c.name for c in TYPED), ROW_ID, "nope", ""]), json_values, max_size=3
    ).map(json.dumps),
)


@PROPERTY
@given(client_text, client_text, client_text, client_text)
@example("[" * 100_000, None, None, None)
@example('{"n": 1' + "0" * 400 + "}", None, None, None)
@example('{"x": {"gt": 1e400}}', None, None, None)
@example('{"x": 1' + "0" * 400 + "}", None, None, None)
@example('{"dt": "0001-01-01T00:00:00+01:00"}', None, None, None)
@example('{"dt": "9999-12-31T23:59:59-01:00"}', None, None, None)
@example('{"tm": "12:00:00+01:00"}', None, None, None)
@example(None, "{" * 100_000, None, None)
@example(None, None, None, "[" * 100_000)
@example('{"t": "a\\u0000"}', None, None, None)
@example(None, None, '"x', '"')
def test_anything_a_client_sends_is_a_query_or_invalid_query(
    con: duckdb.DuckDBPyConnection,
    filters_text: str | None,
    q: str | None,
    sort: str | None,
    fields: str | None,
) -> None:
    con.execute(
        'CREATE OR REPLACE TABLE typed ("_id" BIGINT, n BIGINT, t VARCHAR, b BOOLEAN, x DOUBLE,'
        " y BIGINT, d DATE, dt TIMESTAMP, tm TIME)"
    )
    con.execute(
        "INSERT INTO typed VALUES (1, 1, 'a', true, 1.5, 2020, '2020-01-02',"
        " '2020-01-02 03:04:05', '03:04:05'), (2, NULL, NULL, NULL, NULL, NULL, NULL,"
        " NULL, NULL)"
    )

    def build() -> SearchQuery:
        return build_search(
            table="typed",
            columns=TYPED,
            dialect="duckdb",
            q=parse_q(q),
            filters=parse_filters(filters_text),
            fields=parse_fields(fields, TYPED),
            sort=parse_sort(sort, TYPED),
        )

    try:
        query = build()
    except InvalidQuery:
        with pytest.raises(InvalidQuery) as refused:
            build()
        assert refused.value.status == 400
        assert refused.value.code == "invalid-query"
        assert refused.value.message
        return
    rows = con.execute(query.sql, query.params).fetchall()
    assert con.execute(query.count_sql, query.count_params).fetchone() == (len(rows),)


@PROPERTY
@given(
    st.lists(
        st.tuples(
            st.text(alphabet=string.printable.replace(",", ""), min_size=1, max_size=6),
            st.booleans(),
        ),
        max_size=4,
    )
)
def test_a_sort_of_quoted_names_reads_back(order: list[tuple[str, bool]]) -> None:
    columns = [Column(name, "string") for name, _ in order]
    text = ", ".join(
        '"' + name.replace('"', '""') + '"' + (" desc" if desc else " asc") for name, desc in order
    )
    assert parse_sort(text, columns, row_id=None) == _first_mentions(order)
