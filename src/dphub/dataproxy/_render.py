"""SQL that reads cells as Table Schema values and writes each row as one line of the answer.

The rows never pass through Python one value at a time: DuckDB reads the cells, casts them and
writes each row's JSON array, JSON object or CSV line; Python only joins those lines into chunks.

Values. A text cell (CSV, XLSX, JSON) is first compared with the field's missing values (``""`` by
default): a missing value is ``null`` in JSON and an empty cell in CSV. Then it is read with the
pipeline's own parser for the field's type and format (``tables._parse``), so the DataProxy and the
datastore agree on what a value is: integers and numbers become JSON numbers, booleans ``true`` or
``false``, dates ``YYYY-MM-DD``, date-times ISO 8601 with a ``T`` (an offset is applied and the
value shown in UTC, as the datastore stores it), times ``HH:MM:SS``; ``object``, ``array`` and
``geojson`` cells that hold JSON of that kind are given as that JSON. **A cell that does not read as
its field's type is given as the original text**: the DataProxy converts, it does not validate. A
number that is not finite (``NaN``, ``INF``) is given as its text too, JSON having no such numbers.
The CSV answer writes the same values as text (``true``, ``2024-01-31``, ``2024-01-31T10:00:00``).

A typed cell (Parquet) keeps its type: numbers, booleans, dates, date-times with a ``T``, lists and
structs as JSON arrays and objects; a number that is not finite is ``null`` in JSON and ``NaN``,
``INF`` or ``-INF`` in CSV, as the pipeline's CSV files write it.

Rows whose every cell reads as its type (nearly all of them) are written from the typed values
straight away; only the others go through the slower form that can fall back to the text.

Tables wider than :data:`WIDE_COLUMNS` are written through one list expression over all cells
instead of one expression per column: DuckDB sets memory aside for every expression of a query
and every row of its 2,048-row vectors, so the per-column form grows with the width much faster.
"""

# ruff: noqa: S608 - SQL text is built from quoted identifiers and fixed parts; values are parameters

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from dphub.pipeline._sources import Params, quote
from dphub.pipeline.tables import _INFERRED, _LEADING_ZERO, _matches, _missing, _parse

WIDE_COLUMNS = 64
SAMPLE_ROWS = 10_000
SAMPLE_CELLS = 500_000
PROBE_ROWS = 1000

_JSON_KINDS = {"object": "object", "array": "array", "geojson": "object"}
_NOT_SPEC = ("name", "title", "description", "example", "rdfType", "constraints")


@dataclass(frozen=True)
class Column:
    """One column of the answer.

    ``cell`` is SQL over a row of the reader: the cell's text (NULL when the row has no such cell)
    when ``field`` is the Table Schema field to read it as, or a typed value when ``field`` is None
    and ``duckdb_type`` says which.
    """

    name: str
    type: str
    cell: str
    field: Mapping[str, Any] | None = None
    missing: object = None  # the schema's missingValues, for fields without their own
    duckdb_type: str = "VARCHAR"

    def spec(self) -> bytes:
        """What decides how the cell is read: columns with the same spec share one expression."""
        field = {k: v for k, v in (self.field or {}).items() if k not in _NOT_SPEC}
        missing = (self.field or {}).get("missingValues", self.missing)
        return orjson.dumps([field, missing, self.duckdb_type], option=orjson.OPT_SORT_KEYS)


def sample_rows(width: int) -> int:
    """How many rows inference looks at: :data:`SAMPLE_ROWS`, fewer for very wide tables."""
    return max(100, min(SAMPLE_ROWS, SAMPLE_CELLS // max(width, 1)))


# Values
#
# A value is SQL of one of two kinds: VARCHAR, which json_array and struct_pack write as a JSON
# string (and which is the cheaper kind: DuckDB escapes it once), or JSON, written as it is.


def _typed(field: Mapping[str, Any], m: str, p: Params) -> str:
    return _parse(dict(field), m, p)


def _json_value(field: Mapping[str, Any], m: str, t: str) -> tuple[str, bool]:
    """SQL of a text cell's JSON value, and whether that SQL is JSON (else VARCHAR): ``m`` is the
    text after missing values, ``t`` its typed value."""
    kind = str(field.get("type", "string"))
    fmt = str(field.get("format") or "default")
    if kind in ("integer", "year", "boolean"):
        return f"coalesce(to_json({t}), to_json({m}))", True
    if kind == "number":
        return f"CASE WHEN isfinite({t}) THEN to_json({t}) ELSE to_json({m}) END", True
    if kind in ("date", "time"):
        return f"coalesce(CAST({t} AS VARCHAR), {m})", False
    if kind == "datetime":
        return f"coalesce(replace(CAST({t} AS VARCHAR), ' ', 'T'), {m})", False
    if kind in _JSON_KINDS or (kind == "geopoint" and fmt in ("array", "object")):
        return f"CASE WHEN {t} IS NOT NULL THEN json({t}) ELSE to_json({m}) END", True
    return m, False


def _csv_quoted(s: str) -> str:
    """``s`` as a CSV cell: empty for NULL, in double quotes when it holds one, a comma or a line
    break."""
    return (
        f"CASE WHEN {s} IS NULL THEN '' WHEN contains({s}, ',') OR contains({s}, '\"')"
        f" OR contains({s}, chr(10)) OR contains({s}, chr(13))"
        f" THEN '\"' || replace({s}, '\"', '\"\"') || '\"' ELSE {s} END"
    )


def _csv_value(field: Mapping[str, Any], m: str, t: str) -> str:
    """SQL of a text cell as written in the CSV answer (quoted), with the values of
    :func:`_json_value`; a value that was read as its type needs no quotes."""
    kind = str(field.get("type", "string"))
    if kind in ("integer", "year", "boolean", "date", "time"):
        return f"coalesce(CAST({t} AS VARCHAR), {_csv_quoted(m)})"
    if kind == "number":
        return f"CASE WHEN isfinite({t}) THEN CAST({t} AS VARCHAR) ELSE {_csv_quoted(m)} END"
    if kind == "datetime":
        return f"coalesce(replace(CAST({t} AS VARCHAR), ' ', 'T'), {_csv_quoted(m)})"
    return _csv_quoted(m)


def _fitting(field: Mapping[str, Any], m: str, t: str, fmt: str) -> tuple[str, str] | None:
    """For a typed field: SQL that holds when the cell is missing or reads as its type, and the
    value to write then, typed (json_array and struct_pack write it themselves, which is cheaper
    than :func:`_json_value`'s JSON). None for fields whose values are always text."""
    if not _needs_typed(field):
        return None
    kind = str(field.get("type", "string"))
    fits = f"({m} IS NULL OR {t} IS NOT NULL)"
    if kind == "number":
        fits = f"({m} IS NULL OR coalesce(isfinite({t}), false))"
    if kind == "datetime":
        value = f"replace(CAST({t} AS VARCHAR), ' ', 'T')"
    elif kind in _JSON_KINDS or kind == "geopoint":
        value = _csv_quoted(m) if fmt == "csv" else f"json({t})"
        return fits, value
    else:
        value = f"CAST({t} AS VARCHAR)" if fmt == "csv" else t
    return fits, (f"coalesce({value}, '')" if fmt == "csv" else value)


def _needs_typed(field: Mapping[str, Any]) -> bool:
    kind = str(field.get("type", "string"))
    return kind not in ("string", "any", "yearmonth", "duration") and not (
        kind == "geopoint" and str(field.get("format") or "default") == "default"
    )


def _stored_value(duckdb_type: str, c: str) -> str:
    """SQL of a typed (Parquet) value for json_array and struct_pack, which write numbers,
    booleans, dates, lists and structs as JSON themselves."""
    kind = duckdb_type.upper()
    if kind in ("DOUBLE", "FLOAT", "REAL"):
        return f"CASE WHEN isfinite({c}) THEN {c} END"  # JSON has no NaN or infinity: null
    if kind.startswith("TIMESTAMP"):
        return f"replace(CAST({c} AS VARCHAR), ' ', 'T')"
    if _is_number(kind) or kind in ("BOOLEAN", "DATE", "VARCHAR") or _is_nested(kind):
        return c
    return f"CAST({c} AS VARCHAR)"


def _stored_csv(duckdb_type: str, c: str) -> str:
    kind = duckdb_type.upper()
    if kind in ("DOUBLE", "FLOAT", "REAL"):  # the words the pipeline's CSV files use
        return (
            f"CASE WHEN isnan({c}) THEN 'NaN' WHEN isinf({c}) AND {c} > 0 THEN 'INF'"
            f" WHEN isinf({c}) THEN '-INF' ELSE coalesce(CAST({c} AS VARCHAR), '') END"
        )
    if kind.startswith("TIMESTAMP"):
        return f"coalesce(replace(CAST({c} AS VARCHAR), ' ', 'T'), '')"
    if _is_nested(kind):
        return _csv_quoted(f"CAST(to_json({c}) AS VARCHAR)")
    if _is_number(kind) or kind in ("BOOLEAN", "DATE"):
        return f"coalesce(CAST({c} AS VARCHAR), '')"
    return _csv_quoted(f"CAST({c} AS VARCHAR)")


def _is_nested(kind: str) -> bool:
    return kind.endswith("]") or kind.startswith(("STRUCT", "MAP", "UNION"))


def _is_number(kind: str) -> bool:
    return kind.startswith("DECIMAL") or kind in _INTEGER_TYPES or kind in ("DOUBLE", "FLOAT")


_INTEGER_TYPES = {
    "TINYINT",
    "SMALLINT",
    "INTEGER",
    "BIGINT",
    "HUGEINT",
    "UTINYINT",
    "USMALLINT",
    "UINTEGER",
    "UBIGINT",
    "UHUGEINT",
}


def schema_type(duckdb_type: str) -> str:
    """The Table Schema type of a DuckDB column type."""
    kind = duckdb_type.upper()
    if kind in _INTEGER_TYPES:
        return "integer"
    if _is_number(kind) or kind == "REAL":
        return "number"
    if kind.startswith("TIMESTAMP"):
        return "datetime"
    if kind.endswith("]"):
        return "array"
    if kind.startswith(("STRUCT", "MAP")):
        return "object"
    return {"BOOLEAN": "boolean", "DATE": "date", "TIME": "time"}.get(kind, "string")


# Rows


def row_sql(fmt: str, columns: Sequence[Column], relation: str, page: str, p: Params) -> str:
    """A query giving one VARCHAR per row of ``relation`` (after ``page``, its LIMIT/OFFSET): the
    row as a JSON array (``json``), a JSON object (``ndjson``) or a CSV line (``csv``)."""
    if len(columns) > WIDE_COLUMNS and all(c.field is not None for c in columns):
        return _wide_row_sql(fmt, columns, relation, page, p)
    cells = ", ".join(f"{c.cell} AS r{i}" for i, c in enumerate(columns, 1)) or "NULL AS r0"
    values, typed, out, fast, fits = ["*"], ["*"], [], [], []
    for i, c in enumerate(columns, 1):
        r, m, t = f"r{i}", f"m{i}", f"t{i}"
        if c.field is None:
            values.append(f"{r} AS {m}")
            stored = _stored_csv if fmt == "csv" else _stored_value
            out.append(stored(c.duckdb_type, m))
            fast.append(out[-1])
            continue
        missing = c.field.get("missingValues", c.missing)
        values.append(f"{_missing(missing, r, p)} AS {m}")
        if _needs_typed(c.field):
            typed.append(f"{_typed(c.field, m, p)} AS {t}")
        out.append(_csv_value(c.field, m, t) if fmt == "csv" else _json_value(c.field, m, t)[0])
        fitting = _fitting(c.field, m, t, fmt)
        fast.append(out[-1] if fitting is None else fitting[1])
        fits += [] if fitting is None else [fitting[0]]
    names = [c.name for c in columns]
    line = _line(fmt, out, names)
    if fits:
        # Rows whose every cell reads as its type (nearly all of them) take the cheaper form.
        line = f"CASE WHEN {' AND '.join(fits)} THEN {_line(fmt, fast, names)} ELSE {line} END"
    return (
        f"SELECT {line} FROM (SELECT {', '.join(typed)} FROM (SELECT {', '.join(values)}"
        f" FROM (SELECT {cells} FROM {relation} {page})))"
    )


def _line(fmt: str, values: list[str], names: list[str]) -> str:
    if not values:
        return {"json": "'[]'", "ndjson": "'{}'"}.get(fmt, "''")
    if fmt == "json":
        return f"CAST(json_array({', '.join(values)}) AS VARCHAR)"
    if fmt == "ndjson":
        pairs = ", ".join(f"{quote(n)} := {v}" for n, v in zip(names, values, strict=True))
        return f"CAST(to_json(struct_pack({pairs})) AS VARCHAR)"
    line = f"concat_ws(',', {', '.join(values)})"
    # a lone empty cell would make an empty line, which CSV readers skip
    return f"CASE WHEN {line} = '' THEN '\"\"' ELSE {line} END" if len(values) == 1 else line


def _wide_row_sql(fmt: str, columns: Sequence[Column], relation: str, page: str, p: Params) -> str:
    specs: dict[bytes, int] = {}
    ids = [specs.setdefault(c.spec(), len(specs) + 1) for c in columns]
    branches = []
    for n in specs.values():
        field = columns[ids.index(n)].field
        assert field is not None
        m = _missing(field.get("missingValues", columns[ids.index(n)].missing), "x", p)
        t = _typed(field, m, p) if _needs_typed(field) else "NULL"
        if fmt == "csv":
            branches.append((n, _csv_value(field, m, t)))
        else:
            value, is_json = _json_value(field, m, t)
            branches.append((n, value if is_json else f"to_json({value})"))
    value = branches[0][1]
    if len(branches) > 1:
        kinds = "[" + ", ".join(map(str, ids)) + "]"
        value = f"CASE {kinds}[i] " + " ".join(f"WHEN {n} THEN {v}" for n, v in branches) + " END"
    each = f"list_transform(l, lambda x, i: {value})"
    if fmt == "csv":
        line = f"array_to_string({each}, ',')"
    elif fmt == "json":
        line = f"CAST(to_json({each}) AS VARCHAR)"
    else:
        keys = p.ref([orjson.dumps(c.name).decode() + ":" for c in columns])
        pairs = f"list_transform({each}, lambda v, i: {keys}[i] || coalesce(CAST(v AS VARCHAR), 'null'))"
        line = f"'{{' || array_to_string({pairs}, ',') || '}}'"
    cells = ", ".join(c.cell for c in columns)
    return f"SELECT {line} FROM (SELECT [{cells}] AS l FROM {relation} {page})"


# Inference

Query = Callable[[Callable[[str, Params], str]], list[tuple[Any, ...]]]


def infer_types(run: Query, cells: Sequence[str], rows: int) -> tuple[list[str], int]:
    """The type of each column over the first ``rows`` rows, and how many rows there were.

    A column's type is the first of ``_INFERRED`` that every non-missing value reads as (with the
    pipeline's parser); a column of missing values only is a string, and so is one with numbers
    written with leading zeros ("007": identifiers). Every type is tried on the first
    :data:`PROBE_ROWS` rows; over all ``rows``, each column's first survivor only (again with the
    next one, in the rare case it fails there). ``run`` runs a query over the table's relation.
    """
    width = len(cells)
    probing = min(rows, PROBE_ROWS)
    probe = run(lambda rel, p: _tally_sql(cells, rel, probing, list(_INFERRED), p))
    candidates: list[list[str]] = [[] for _ in range(width)]
    seen = 0
    for col, count, _, *failures in probe:
        seen = int(count)
        candidates[int(col) - 1] = [k for k, n in zip(_INFERRED, failures, strict=True) if not n]
    if seen == probing < rows:
        seen = -1  # more rows than the probe saw: counted below
    types = ["string"] * width
    while any(candidates) or seen < 0:
        tried = [c[0] if c else None for c in candidates]
        found = run(functools.partial(_tally_one, cells, rows, tried))
        seen = max(seen, 0)
        for col, count, present, failed, zeros in found:
            i, seen = int(col) - 1, int(count)
            kind = tried[i]
            if kind is None:
                continue
            if not present:
                candidates[i] = []
            elif failed or (zeros and kind in ("integer", "number")):
                candidates[i].pop(0)
            else:
                types[i], candidates[i] = kind, []
    return types, seen


def _tally_one(
    cells: Sequence[str], rows: int, kinds: list[str | None], relation: str, p: Params
) -> str:
    return _tally_sql(cells, relation, rows, kinds, p)


def _tally_sql(
    cells: Sequence[str], relation: str, rows: int, kinds: list[str | None], p: Params
) -> str:
    """Per column of the first ``rows`` rows: (column, rows, non-missing values, failures...).

    With every type of ``_INFERRED`` in ``kinds``: the failures of each, for every column. With
    one type (or None) per column: the failures of that column's type, then the count of numbers
    with leading zeros. One query whatever the width: the sample is unpivoted into (column, value)
    pairs first."""
    if kinds == list(_INFERRED):
        checks = [
            f"count(*) FILTER (WHERE m IS NOT NULL AND ({_parse({'type': k}, 'm', p)}) IS NULL)"
            for k in _INFERRED
        ]
    else:
        branches = " ".join(
            f"WHEN {i} THEN ({_parse({'type': k}, 'm', p)}) IS NULL"
            for i, k in enumerate(kinds, 1)
            if k is not None
        )
        checks = [
            f"count(*) FILTER (WHERE m IS NOT NULL AND CASE col {branches} ELSE false END)",
            f"count(*) FILTER (WHERE {_matches('m', _LEADING_ZERO)})",
        ]
    listed = "[" + ", ".join(cells) + "]"
    return (
        f"SELECT col, count(*), count(m), {', '.join(checks)} FROM (SELECT col, NULLIF(v, '') AS m"
        f" FROM (SELECT generate_subscripts(l, 1) AS col, unnest(l) AS v FROM (SELECT {listed}"
        f" AS l FROM {relation} LIMIT {int(rows)}))) GROUP BY col ORDER BY col"
    )
