"""The ``datastore_search`` query builder: filters, text search, sort and paging over one table.

The semantics follow CKAN's ``datastore_search``, so its users find their way:

- ``filters`` is a JSON object: ``{"col": value}`` is equality, ``{"col": [v1, v2]}`` is IN,
  ``{"col": {"gte": 1, "lt": 5}}`` is a range (``gt``, ``gte``, ``lt``, ``lte``, combinable), and
  ``null`` (alone or in a list) matches missing values. Values are converted to the column's Table
  Schema type first, so a mistake is a clear 400 here rather than a database error later.
- ``q`` is a case-insensitive *substring* match: a row matches when any column, as the backend prints
  it as text, contains the string (``%`` and ``_`` match themselves). ``{"col": "text"}`` restricts
  it to columns, every one of which must match. No ranking, no stemming: it is not full-text search.
- ``sort`` is ``"a, b desc"``; missing values sort last in both directions on both backends.
- Rows keep their file order by default: each table has a row id (``_id``, 1..n) that orders the
  rows and breaks ties after the user's sort, so paging with ``offset`` is stable. ``_id`` is not
  returned unless named in ``fields``, and may be used in ``filters`` and ``sort``.

Why it is safe to build SQL text here: a column name enters the text only after it was found among
the table's columns, and then only as a quoted identifier; every value (including ``limit`` and
``offset``) is a bind parameter. DuckDB takes ``?`` placeholders, psycopg ``%s``. psycopg reads every
``%`` of a statement that comes with parameters, so for PostgreSQL a ``%`` in a name is written ``%%``
in such a statement, and left as it is in one without parameters (a count with no filter): execute
each statement as ``execute(sql, params or None)``, which is how psycopg sends parameterless text
verbatim.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Any

from dphub.datastore.interfaces import ROW_ID, Field
from dphub.datastore.sqlguard import Dialect
from dphub.errors import InvalidQuery

DEFAULT_LIMIT = 100
MAX_LIMIT = 32000
MAX_OFFSET = 2**63 - 1
MAX_IN_VALUES = 1000
"""The most values one ``{"col": [...]}`` filter may list."""

RANGE_OPERATORS = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
_INT64 = (-(2**63), 2**63 - 1)
TOO_DEEP = "nests arrays or objects deeper than the JSON reader goes"
"""Python's JSON reader stops at about a thousand levels (RecursionError), far past any filter."""
_TRUE = frozenset({"true", "1", "yes"})
_FALSE = frozenset({"false", "0", "no"})


# a column of a datastore table, typed with Table Schema's words (integer, number, date...)
Column = Field


@dataclass(frozen=True)
class SearchQuery:
    """The statement for one page of rows, and the one counting every matching row."""

    sql: str
    params: list[Any]
    count_sql: str
    count_params: list[Any]
    fields: list[Column]


def parse_filters(raw: str | None) -> dict[str, Any]:
    """The ``filters`` request parameter (JSON object text) as a dict; blank means no filter."""
    if raw is None or not raw.strip():
        return {}
    try:
        value = json.loads(raw, parse_constant=_refuse_constant)
    except (json.JSONDecodeError, ValueError) as error:
        detail = (
            f"{error.msg} at column {error.colno}"
            if isinstance(error, json.JSONDecodeError)
            else str(error)
        )
        raise InvalidQuery(f"filters is not valid JSON: {detail}.") from None
    except RecursionError:
        raise InvalidQuery(f"filters {TOO_DEEP}.") from None
    if not isinstance(value, dict):
        raise InvalidQuery('filters must be a JSON object, such as {"year": 2020}.')
    return value


def parse_q(raw: str | None) -> str | dict[str, str] | None:
    """The ``q`` request parameter: a JSON object of column → text, or else the text itself."""
    if raw is None or not raw.strip():
        return None
    if raw.lstrip().startswith("{"):
        try:
            value = json.loads(raw)
        except (json.JSONDecodeError, RecursionError):
            return raw
        if isinstance(value, dict) and all(isinstance(v, str) for v in value.values()):
            return value
    return raw


def parse_sort(
    raw: str | None, columns: Sequence[Column], *, row_id: str | None = ROW_ID
) -> list[tuple[str, bool]]:
    """``"a, b desc"`` → ``[("a", False), ("b", True)]`` (name, descending); names are checked.

    A name may be double-quoted (``"first name" desc``), and a column whose name has a comma cannot
    be named here; a column is listed once (its first mention wins).
    """
    if raw is None or not raw.strip():
        return []
    known = _known_columns(columns, row_id)
    order: list[tuple[str, bool]] = []
    for piece in raw.split(","):
        text = piece.strip()
        if not text:
            continue
        descending = False
        if text not in known:
            head, _, last = text.rpartition(" ")
            if head.strip() and last.lower() in ("asc", "desc"):
                text, descending = head.strip(), last.lower() == "desc"
        name = _unquote(text)
        _lookup(name, known, "sort")
        if all(name != seen for seen, _ in order):
            order.append((name, descending))
    return order


def parse_fields(
    raw: str | None, columns: Sequence[Column], *, row_id: str | None = ROW_ID
) -> list[Column]:
    """``"a,b"`` (or a JSON list of names) → those columns in that order; blank means every column.

    The row id is returned only when named.
    """
    if raw is None or not raw.strip():
        return list(columns)
    known = _known_columns(columns, row_id)
    names: list[str]
    if raw.lstrip().startswith("["):
        try:
            value = json.loads(raw)
        except json.JSONDecodeError as error:
            raise InvalidQuery(f"fields is not a valid JSON list: {error.msg}.") from None
        except RecursionError:
            raise InvalidQuery(f"fields {TOO_DEEP}.") from None
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise InvalidQuery('fields must list column names, as in "a,b" or ["a", "b"].')
        names = value
    else:
        names = [_unquote(piece.strip()) for piece in raw.split(",") if piece.strip()]
    chosen: dict[str, Column] = {}
    for name in names:
        chosen.setdefault(name, _lookup(name, known, "fields"))
    return list(chosen.values()) or list(columns)


def build_search(
    *,
    table: str,
    columns: Sequence[Column],
    dialect: Dialect,
    q: str | Mapping[str, str] | None = None,
    filters: Mapping[str, Any] | None = None,
    fields: Sequence[Column] | None = None,
    sort: Sequence[tuple[str, bool]] = (),
    limit: int = DEFAULT_LIMIT,
    offset: int = 0,
    row_id: str | None = ROW_ID,
) -> SearchQuery:
    """The page query and the count query for ``table`` (a trusted table expression).

    ``row_id`` names the table's row-number column (default order and tiebreaker); ``None`` for a
    table without one, whose rows then come in the backend's order.
    """
    if dialect not in ("duckdb", "postgres"):
        raise ValueError(f"unknown dialect: {dialect!r}")
    if "\x00" in table:
        raise ValueError(f"not a table expression: {table!r}")
    if not isinstance(limit, int) or isinstance(limit, bool) or not 0 <= limit <= MAX_LIMIT:
        raise InvalidQuery(f"limit must be a whole number from 0 to {MAX_LIMIT}.")
    if not isinstance(offset, int) or isinstance(offset, bool) or not 0 <= offset <= MAX_OFFSET:
        raise InvalidQuery("offset must be a whole number, 0 or more.")
    sql = _Sql(dialect)
    known = _known_columns(columns, row_id)
    chosen = [_lookup(c.name, known, "fields") for c in fields] if fields else list(columns)
    if not chosen:
        raise InvalidQuery("This table has no columns to return.")

    conditions: list[str] = []
    params: list[Any] = []
    for name, value in (filters or {}).items():
        column = _lookup(str(name), known, "filters")
        condition, values = _filter(sql, column, value)
        conditions.append(condition)
        params.extend(values)
    if q:
        condition, values = _text_search(sql, q, columns, known)
        if condition:
            conditions.append(condition)
            params.extend(values)
    where = f" WHERE {' AND '.join(conditions)}" if conditions else ""

    order = []
    for name, descending in sort:
        column = _lookup(name, known, "sort")
        order.append(f"{sql.ident(column.name)} {'DESC' if descending else 'ASC'} NULLS LAST")
    if row_id is not None and all(name != row_id for name, _ in sort):
        order.append(f"{sql.ident(row_id)} ASC")
    order_by = f" ORDER BY {', '.join(order)}" if order else ""

    select = ", ".join(sql.ident(c.name) for c in chosen)
    # Names are quoted identifiers of known columns and values are placeholders (see the docstring).
    page = f"SELECT {select} FROM {table}{where}{order_by} LIMIT {sql.ph} OFFSET {sql.ph}"  # noqa: S608
    count = f"SELECT count(*) FROM {table}{where}"  # noqa: S608
    return SearchQuery(
        sql=sql.finish(page, has_params=True),
        params=[*params, limit, offset],
        count_sql=sql.finish(count, has_params=bool(params)),
        count_params=list(params),
        fields=chosen,
    )


class _Sql:
    """Placeholders and identifier quoting for one backend's driver.

    Statements are built with a placeholder token that no quoted name can contain (the NUL
    character, which neither backend accepts in an identifier); :meth:`finish` escapes ``%`` for
    psycopg and only then turns the tokens into placeholders.
    """

    ph = "\x00"

    def __init__(self, dialect: Dialect) -> None:
        self.postgres = dialect == "postgres"

    def ident(self, name: str) -> str:
        if "\x00" in name:
            raise InvalidQuery("Column names may not contain the NUL character.")
        return '"' + name.replace('"', '""') + '"'

    def finish(self, statement: str, *, has_params: bool) -> str:
        if not self.postgres:
            return statement.replace(self.ph, "?")
        if has_params:
            statement = statement.replace("%", "%%")
        return statement.replace(self.ph, "%s")


def _filter(sql: _Sql, column: Column, value: Any) -> tuple[str, list[Any]]:
    target = sql.ident(column.name)
    if value is None:
        return f"{target} IS NULL", []
    if isinstance(value, list):
        if len(value) > MAX_IN_VALUES:
            raise InvalidQuery(
                f"filters: at most {MAX_IN_VALUES} values may be listed for column {column.name}."
            )
        values = list(dict.fromkeys(_coerce(v, column) for v in value if v is not None))
        parts = []
        if values:
            parts.append(f"{target} IN ({', '.join(sql.ph for _ in values)})")
        if any(v is None for v in value):
            parts.append(f"{target} IS NULL")
        if not parts:
            return "FALSE", []
        return (parts[0] if len(parts) == 1 else f"({' OR '.join(parts)})"), values
    if isinstance(value, dict):
        if not value:
            raise InvalidQuery(f"filters: give gt, gte, lt or lte for column {column.name}.")
        parts, values = [], []
        for operator, bound in value.items():
            symbol = RANGE_OPERATORS.get(str(operator))
            if symbol is None:
                raise InvalidQuery(
                    f"filters: {operator!r} is not an operator for column {column.name};"
                    " use gt, gte, lt or lte."
                )
            if bound is None:
                raise InvalidQuery(
                    f"filters: {operator} needs a value for column {column.name}, not null."
                )
            parts.append(f"{target} {symbol} {sql.ph}")
            values.append(_coerce(bound, column))
        return " AND ".join(parts), values
    return f"{target} = {sql.ph}", [_coerce(value, column)]


def _text_search(
    sql: _Sql, q: str | Mapping[str, str], columns: Sequence[Column], known: Mapping[str, Column]
) -> tuple[str, list[Any]]:
    """``q`` as SQL: ILIKE over each column's text form, with the needle's wildcards escaped."""
    if isinstance(q, str):
        needle = _pattern(q, "q")
        if needle is None or not columns:
            return "", []
        tests = [_ilike(sql, c.name) for c in columns]
        return f"({' OR '.join(tests)})", [needle] * len(tests)
    if not isinstance(q, Mapping):
        raise InvalidQuery('q must be text, or a JSON object such as {"name": "text"}.')
    tests, values = [], []
    for name, text in q.items():
        column = _lookup(str(name), known, "q")
        needle = _pattern(text, f"q for column {column.name}")
        if needle is not None:
            tests.append(_ilike(sql, column.name))
            values.append(needle)
    return " AND ".join(tests), values


def _ilike(sql: _Sql, name: str) -> str:
    return f"CAST({sql.ident(name)} AS TEXT) ILIKE {sql.ph} ESCAPE '\\'"


def _pattern(text: object, what: str) -> str | None:
    if not isinstance(text, str):
        raise InvalidQuery(f"{what} must be text.")
    text = text.strip()
    if not text:
        return None
    _check_text(text, what)
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _coerce(value: Any, column: Column) -> Any:
    """``value`` as the Python value the drivers bind for the column's type."""
    kind = column.type
    if isinstance(value, list | dict):
        raise InvalidQuery(
            f"filters: {json.dumps(value)} is not a single value for column {column.name}."
        )

    def wrong(what: str) -> InvalidQuery:
        return InvalidQuery(f"filters: {value!r} is not {what} for column {column.name}.")

    if kind in ("integer", "year"):
        number: int
        if isinstance(value, bool):
            raise wrong("an integer")
        if isinstance(value, int):
            number = value
        elif isinstance(value, float) and value.is_integer():
            number = int(value)
        elif isinstance(value, str):
            try:
                number = int(value.strip())
            except ValueError:
                raise wrong("an integer") from None
        else:
            raise wrong("an integer")
        if not _INT64[0] <= number <= _INT64[1]:
            raise wrong("an integer in range")
        return number
    if kind == "number":
        if isinstance(value, bool):
            raise wrong("a number")
        if isinstance(value, int) and _INT64[0] <= value <= _INT64[1]:
            return value
        try:
            real = float(value.strip() if isinstance(value, str) else value)
        except (TypeError, ValueError):
            raise wrong("a number") from None
        except OverflowError:  # an integer of more than 308 digits
            raise wrong("a number in range") from None
        if not math.isfinite(real):
            raise wrong("a finite number")
        return real
    if kind == "boolean":
        if isinstance(value, bool):
            return value
        if isinstance(value, int | str) and str(value).strip().lower() in _TRUE | _FALSE:
            return str(value).strip().lower() in _TRUE
        raise wrong("a boolean (true or false)")
    if kind == "date":
        if isinstance(value, date) and not isinstance(value, datetime):
            return value
        try:
            return date.fromisoformat(str(value).strip())
        except ValueError:
            raise wrong("a date (YYYY-MM-DD)") from None
    if kind == "datetime":
        if not isinstance(value, datetime):
            try:
                value = datetime.fromisoformat(str(value).strip())
            except ValueError:
                raise wrong("a datetime (YYYY-MM-DDThh:mm:ss)") from None
        # The datastore keeps datetimes without a zone; one given with an offset is read as UTC.
        if value.tzinfo is not None:
            try:
                value = value.astimezone(UTC).replace(tzinfo=None)
            except OverflowError:  # 0001-01-01T00:00+01:00 is before the first datetime
                raise wrong("a datetime in range") from None
        return value
    if kind == "time":
        parsed = value if isinstance(value, time) else None
        if parsed is None:
            try:
                parsed = time.fromisoformat(str(value).strip())
            except ValueError:
                raise wrong("a time (hh:mm:ss)") from None
        if parsed.tzinfo is not None:
            raise wrong("a time without a UTC offset")
        return parsed
    text = ("true" if value else "false") if isinstance(value, bool) else str(value)
    _check_text(text, f"filters for column {column.name}")
    return text


def _check_text(text: str, what: str) -> None:
    if "\x00" in text:
        raise InvalidQuery(f"{what}: text may not contain the NUL character.")


def _known_columns(columns: Sequence[Column], row_id: str | None) -> dict[str, Column]:
    known = {c.name: c for c in columns}
    if row_id is not None:
        known.setdefault(row_id, Column(row_id, "integer"))
    return known


def _lookup(name: str, known: Mapping[str, Column], what: str) -> Column:
    column = known.get(name)
    if column is None:
        names = list(known)
        listed = ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")
        raise InvalidQuery(
            f"{what}: {name!r} is not a column of this table; it has {listed}.", column=name
        )
    return column


def _unquote(name: str) -> str:
    if len(name) >= 2 and name[0] == name[-1] == '"':
        return name[1:-1].replace('""', '"')
    return name


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a value JSON allows")
