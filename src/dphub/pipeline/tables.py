"""Load a tabular resource into DuckDB, validate it against its Table Schema, and export it.

Validation is set-based: the file is read once into a raw table of text cells (see ``_sources``),
then every check is a SQL condition over the whole table. One aggregate query counts the failures
of all checks at once; only the checks that failed are queried again for their first rows. A valid
table is then created with typed columns in one ``CREATE TABLE ... AS SELECT``. Python never looks
at the rows one by one, except for the few it reports.

Type choices, for the record:

* ``number`` is ``DOUBLE``: Table Schema numbers include exponents, ``NaN`` and ``INF`` and carry no
  precision or scale, which a ``DECIMAL`` would have to fix up front (and then reject values that do
  not fit). Digits past the 15th-17th significant one are not kept exactly.
* ``datetime`` is a ``TIMESTAMP`` in UTC: a ``Z`` is accepted and an offset (``+02:00``) is applied.
* ``object``, ``array`` and ``geojson`` are checked to be JSON of the right kind and kept as text.
"""

# ruff: noqa: S608 - SQL text is built from quoted identifiers and fixed parts; values are parameters

from __future__ import annotations

import datetime
import decimal
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from dphub.pipeline._sources import Params, RawTable, make_error, quote, read_source, table_format

MAX_ERRORS = 1000

_TYPES = {
    "integer": "BIGINT",
    "number": "DOUBLE",
    "boolean": "BOOLEAN",
    "date": "DATE",
    "datetime": "TIMESTAMP",
    "time": "TIME",
    "year": "INTEGER",
}
_TEXT_TYPES = {"string", "any", "yearmonth", "duration", "geopoint", "geojson", "object", "array"}
_TRUE_VALUES = ["true", "True", "TRUE", "1"]
_FALSE_VALUES = ["false", "False", "FALSE", "0"]
# Inference tries these in order and keeps the first every non-missing value of a column fits.
_INFERRED = ("integer", "number", "boolean", "date", "datetime", "time")
_SAMPLE_ROWS = 10_000

_INTEGER = r"\s*[+-]?[0-9]+\s*"
_NUMBER = r"\s*[+-]?(([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?|(?i:nan|inf|infinity))\s*"
_LEADING_ZERO = r"\s*[+-]?0[0-9]+(\.[0-9]*)?\s*"
_DATE = r"[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}"
_DATETIME = r"[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?"
_OFFSET = r"[+-][0-9]{2}:?[0-9]{2}"
_TIME = r"[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?Z?"
_YEAR = r"[0-9]{4}"
_YEARMONTH = r"[0-9]{4}-(0[1-9]|1[0-2])"
_DURATION = (
    r"P([0-9]+Y)?([0-9]+M)?([0-9]+W)?([0-9]+D)?(T([0-9]+H)?([0-9]+M)?([0-9]+(\.[0-9]+)?S)?)?"
)
_GEOPOINT = r"\s*[+-]?[0-9]+(\.[0-9]*)?\s*,\s*[+-]?[0-9]+(\.[0-9]*)?\s*"
_STRING_FORMATS = {
    "email": r"[^@\s]+@[^@\s]+\.[^@\s]+",
    "uri": r"[A-Za-z][A-Za-z0-9+.-]*:\S+",
    "uuid": r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}",
}
# Tried in order for format "any": day-first wins when a date reads both ways.
_ANY_DATES: tuple[str, ...] = ("%Y/%m/%d", "%d/%m/%Y", "%m/%d/%Y", "%d.%m.%Y", "%d-%m-%Y", "%Y%m%d")
_ANY_DATES += ("%d %b %Y", "%d %B %Y", "%b %d, %Y", "%B %d, %Y")
_ANY_DATETIMES = ("%d/%m/%Y %H:%M:%S", "%m/%d/%Y %H:%M:%S", "%d/%m/%Y %H:%M", "%Y-%m-%d %H:%M")


@dataclass
class TableResult:
    """What :func:`load_table` found: the schema used, the Frictionless task report, the row count."""

    valid: bool
    schema: dict[str, Any]
    inferred: bool
    report: dict[str, Any]
    rows: int
    encoding: str = "utf-8"  # how the file's bytes were read (detected or declared)
    dialect: dict[str, Any] = field(default_factory=dict)  # delimiter and header, for CSV


def is_tabular(resource: dict[str, Any], *, source: Path | None = None) -> bool:
    """Whether :func:`load_table` should read this resource as a table.

    A schema or the ``tabular-data-resource`` profile says so; otherwise the format (from
    ``format``, ``mediatype`` or the path's extension) must be CSV, TSV, XLSX, JSON or NDJSON. A
    ``.json`` file is a table only when it holds an array of objects or arrays: pass ``source`` to
    have its first bytes checked.
    """
    if isinstance(resource.get("schema"), dict | str):
        return True
    if resource.get("profile") == "tabular-data-resource" or resource.get("type") == "table":
        return True
    data = resource.get("data")
    if isinstance(data, list) and "path" not in resource:
        return bool(data) and all(isinstance(row, dict | list) for row in data)
    fmt = table_format(resource)
    if fmt == "json" and source is not None:
        with source.open("rb") as f:
            head = f.read(1 << 16).decode("utf-8-sig", errors="replace").lstrip()
        return head.startswith("[") and head[1:].lstrip()[:1] in ("{", "[", "]")
    return fmt is not None


def duckdb_type(field: dict[str, Any]) -> str:
    """The DuckDB column type of a Table Schema field (text for the types DuckDB has no match for)."""
    return _TYPES.get(str(field.get("type", "string")), "VARCHAR")


def load_table(
    con: duckdb.DuckDBPyConnection,
    source: Path,
    resource: dict[str, Any],
    *,
    table: str,
    workdir: Path,
) -> TableResult:
    """Read ``source`` (the bytes of ``resource``) into the DuckDB table ``table``, validated.

    The table is created only when the data is valid: afterwards ``table`` (one identifier, in the
    connection's current schema) exists exactly when ``result.valid``; an older table of that name
    is replaced, or dropped when the data is invalid. Its columns are the schema's fields, typed by
    :func:`duckdb_type`, in order; rows are in file order; missing values are NULL. Without a
    schema one is inferred and used. Intermediate files (transcoded text, a sheet as CSV) go in
    ``workdir``; the caller removes it.

    An empty file is invalid, with a ``source-error``, as Frictionless reports it. JSON objects
    are matched to a given schema by key (other keys are ignored); without one, every key any
    object has becomes a field. Blank lines of NDJSON are skipped without counting as rows.
    """
    started = time.perf_counter()
    params = Params()
    given = resource.get("schema")
    fields: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    raw = RawTable(name=None)
    plan: _Plan | None = None
    try:
        if given is not None:
            errors = _schema_problems(con, given)
            fields = list(given["fields"]) if not errors else []
        if not errors:
            names = [str(f["name"]) for f in fields] if given is not None else None
            raw = read_source(con, source, resource, names=names, workdir=workdir, params=params)
            errors = list(raw.errors)
        if raw.name is not None and given is None:
            fields = _infer(con, raw, params)
        schema = given if isinstance(given, dict) else {"fields": fields, "missingValues": [""]}
        count, rows = len(errors), 0
        if raw.name is not None:
            if not fields:
                errors.append(make_error("source-error", note="the table has no columns"))
            errors[:0] = _label_errors(raw, [str(f["name"]) for f in fields], given is not None)
            count = len(errors)
            if fields:
                plan = _Plan(raw, fields, schema, params)
                found, rows = plan.run(con)
                count += sum(n for n, _ in found)
                errors.extend(e for _, es in found for e in es)
            header = raw.row_number(0) if raw.first_rowid else 0
            rows += sum(1 for n in raw.absent if n > header)
        # Header errors first, then by row; within a row, cells in field order, then unique-error,
        # then primary-key (a stable sort keeps the checks' order for the rest).
        errors.sort(key=lambda e: (e.get("rowNumber", 0), e.get("_rank", (0, 0))))
        for error in errors:
            error.pop("_rank", None)
        valid = count == 0 and plan is not None
        if plan is not None and valid:
            plan.create(con, table)
        else:
            con.execute(f"DROP TABLE IF EXISTS {quote(table)}")
    finally:
        raw.drop(con)
    report = {
        "valid": valid,
        "stats": {
            "rows": rows,
            "fields": len(fields),
            "errors": count,
            "bytes": source.stat().st_size,
            "seconds": round(time.perf_counter() - started, 3),
        },
        "labels": raw.labels or [],
        "errors": errors[:MAX_ERRORS],
        "warnings": _warnings(raw),
    }
    return TableResult(valid, schema, given is None, report, rows, raw.encoding, raw.dialect)


def _warnings(raw: RawTable) -> list[str]:
    if raw.encoding in ("utf-8", "utf-8-sig", "ascii"):
        return []
    return [f'the file is not UTF-8; it was read as "{raw.encoding}"']


# Schema


def _schema_problems(con: duckdb.DuckDBPyConnection, schema: object) -> list[dict[str, Any]]:
    def problem(note: str) -> list[dict[str, Any]]:
        return [make_error("schema-error", note=note)]

    if not isinstance(schema, dict):
        return problem("the schema must be an object (resolve a schema given by path first)")
    fields = schema.get("fields")
    if not isinstance(fields, list) or not all(isinstance(f, dict) for f in fields):
        return problem('"fields" must be a list of field objects')
    names = [f.get("name") for f in fields]
    if not all(isinstance(n, str) and n for n in names):
        return problem("every field needs a non-empty name")
    if len({str(n).lower() for n in names}) != len(names):
        return problem("field names must be unique, and differ by more than case (DuckDB's do)")
    for f in fields:
        kind, fmt = f.get("type", "string"), _format(f)
        if kind not in _TYPES and kind not in _TEXT_TYPES:
            return problem(f'field "{f["name"]}" has an unknown type "{kind}"')
        probes: list[tuple[str, str]] = []
        if kind in ("date", "datetime", "time") and fmt not in ("default", "any"):
            probes.append(("SELECT try_strptime('2000-01-01', $x)", fmt))
        pattern = (f.get("constraints") or {}).get("pattern")
        if isinstance(pattern, str):
            probes.append(("SELECT regexp_full_match('', $x)", pattern))
        for probe, value in probes:
            try:
                con.execute(probe, {"x": value})
            except duckdb.Error as exc:
                return problem(f'field "{f["name"]}": {str(exc).splitlines()[0]}')
    return []


def _format(field: dict[str, Any]) -> str:
    fmt = str(field.get("format") or "default")
    return fmt[4:] if fmt.startswith("fmt:") else fmt


def _lit(text: str) -> str:
    # Only for the fixed patterns of this module; values from descriptors go through Params.
    return "'" + text.replace("'", "''") + "'"


def _matches(value: str, pattern: str) -> str:
    return f"regexp_full_match({value}, {_lit(pattern)})"


def _parse(field: dict[str, Any], m: str, p: Params) -> str:
    """SQL turning the text ``m`` into the field's typed value: NULL when it does not parse."""
    kind, fmt = str(field.get("type", "string")), _format(field)
    if kind in ("integer", "number"):
        v = m
        if field.get("bareNumber", True) is False:
            v = f"regexp_replace({v}, '^[^0-9+.-]+|[^0-9.]+$', '', 'g')"
        if field.get("groupChar"):
            v = f"replace({v}, {p.ref(str(field['groupChar']))}, '')"
        if kind == "number" and field.get("decimalChar", ".") != ".":
            v = f"replace({v}, {p.ref(str(field['decimalChar']))}, '.')"
        regex, target = (_INTEGER, "BIGINT") if kind == "integer" else (_NUMBER, "DOUBLE")
        return f"CASE WHEN {_matches(v, regex)} THEN TRY_CAST({v} AS {target}) END"
    if kind == "boolean":
        trues = ", ".join(p.ref(str(v)) for v in field.get("trueValues", _TRUE_VALUES))
        falses = ", ".join(p.ref(str(v)) for v in field.get("falseValues", _FALSE_VALUES))
        return f"CASE WHEN {m} IN ({trues or 'NULL'}) THEN true WHEN {m} IN ({falses or 'NULL'}) THEN false END"
    if kind in ("date", "datetime", "time"):
        return _parse_temporal(kind, fmt, m, p)
    if kind == "year":
        return f"CASE WHEN {_matches(m, _YEAR)} THEN TRY_CAST({m} AS INTEGER) END"
    json_kind: str | None = {"geojson": "OBJECT", "object": "OBJECT", "array": "ARRAY"}.get(kind)
    if kind == "geopoint" and fmt in ("array", "object"):
        json_kind = fmt.upper()
    if json_kind is not None:
        return f"CASE WHEN json_type(TRY_CAST({m} AS JSON)) = '{json_kind}' THEN {m} END"
    pattern: str | None = {"yearmonth": _YEARMONTH, "geopoint": _GEOPOINT}.get(kind)
    if kind == "string":
        pattern = _STRING_FORMATS.get(fmt)
    if kind == "duration":
        return f"CASE WHEN {_matches(m, _DURATION)} AND {m} <> 'P' AND NOT ends_with({m}, 'T') THEN {m} END"
    return m if pattern is None else f"CASE WHEN {_matches(m, pattern)} THEN {m} END"


def _parse_temporal(kind: str, fmt: str, m: str, p: Params) -> str:
    target = _TYPES[kind]
    if fmt not in ("default", "any"):
        return f"CAST(try_strptime({m}, {p.ref(fmt)}) AS {target})"
    if kind == "date":
        strict = f"CASE WHEN {_matches(m, _DATE)} THEN TRY_CAST({m} AS DATE) END"
        others = [f"CAST(try_strptime({m}, {_lit(f)}) AS DATE)" for f in _ANY_DATES]
    elif kind == "time":
        strict = f"CASE WHEN {_matches(m, _TIME)} THEN TRY_CAST(rtrim({m}, 'Z') AS TIME) END"
        others = [f"TRY_CAST({m} AS TIME)"]
    else:
        # DuckDB's cast ignores a UTC offset, so it is cut off and subtracted here.
        local = f"TRY_CAST(regexp_replace({m}, '{_OFFSET}$', '') AS TIMESTAMP)"
        sign = f"(CASE WHEN regexp_extract({m}, '([+-])[0-9]{{2}}:?[0-9]{{2}}$', 1) = '-' THEN -1 ELSE 1 END)"
        hours = f"TRY_CAST(regexp_extract({m}, '([0-9]{{2}}):?[0-9]{{2}}$', 1) AS BIGINT)"
        minutes = f"TRY_CAST(right({m}, 2) AS BIGINT)"
        strict = (
            f"CASE WHEN {_matches(m, _DATETIME + 'Z?')} THEN TRY_CAST({m} AS TIMESTAMP)"
            f" WHEN {_matches(m, _DATETIME + _OFFSET)}"
            f" THEN {local} - to_minutes({sign} * ({hours} * 60 + {minutes})) END"
        )
        others = [f"TRY_CAST({m} AS TIMESTAMP)"]
        others += [f"CAST(try_strptime({m}, {_lit(f)}) AS TIMESTAMP)" for f in _ANY_DATETIMES]
    return strict if fmt == "default" else f"coalesce({strict}, {', '.join(others)})"


def _missing(values: object, r: str, p: Params) -> str:
    if not isinstance(values, list) or values == [""]:
        return f"NULLIF({r}, '')"
    if not values:
        return r
    return f"CASE WHEN {r} IN ({', '.join(p.ref(str(v)) for v in values)}) THEN NULL ELSE {r} END"


# Inference


def _infer(con: duckdb.DuckDBPyConnection, raw: RawTable, p: Params) -> list[dict[str, Any]]:
    """The narrowest type of each column that all its non-missing values parse as.

    Every candidate type is tried on the first rows; over the whole table only each column's
    narrowest survivor is checked (again with the next one, in the rare case it fails there).
    """
    width = len(raw.cells)
    names = _field_names(raw.labels, width)
    failed = _tally(
        con, raw, p, [_fails(i, t, p) for i in range(1, width + 1) for t in _INFERRED], sample=True
    )
    step = len(_INFERRED)
    candidates = {
        i: [t for n, t in enumerate(_INFERRED) if not failed[(i - 1) * step + n]]
        for i in range(1, width + 1)
    }
    counts = [f"count(m{i})" for i in range(1, width + 1)]
    counts += [
        f"count(*) FILTER (WHERE {_matches(f'm{i}', _LEADING_ZERO)})" for i in range(1, width + 1)
    ]
    totals = _tally(con, raw, p, counts)
    for i in range(1, width + 1):
        if not totals[i - 1]:
            candidates[i] = []  # nothing but missing values: a string
        elif totals[width + i - 1]:
            # "007" is an identifier: numbers with leading zeros stay strings.
            candidates[i] = [t for t in candidates[i] if t not in ("integer", "number")]
    settled: dict[int, str] = {}
    pending = [i for i in range(1, width + 1) if candidates[i]]
    while pending:
        failures = _tally(con, raw, p, [_fails(i, candidates[i][0], p) for i in pending])
        retry = []
        for i, bad in zip(pending, failures, strict=True):
            if not bad:
                settled[i] = candidates[i][0]
            elif candidates[i].pop(0) and candidates[i]:
                retry.append(i)
        pending = retry
    return [{"name": name, "type": settled.get(i, "string")} for i, name in enumerate(names, 1)]


def _fails(i: int, kind: str, p: Params) -> str:
    return f"count(*) FILTER (WHERE m{i} IS NOT NULL AND ({_parse({'type': kind}, f'm{i}', p)}) IS NULL)"


def _tally(
    con: duckdb.DuckDBPyConnection,
    raw: RawTable,
    p: Params,
    counts: list[str],
    *,
    sample: bool = False,
) -> list[int]:
    """The ``counts`` over the raw cells (``m1``, ``m2``...; empty text as NULL), or the first rows."""
    cells = ", ".join(f"NULLIF({c}, '') AS m{i}" for i, c in enumerate(raw.cells, 1))
    where = f"rowid >= {raw.first_rowid}"
    if sample:
        where += f" AND rowid < {raw.first_rowid + _SAMPLE_ROWS}"
    sql = f"SELECT {', '.join(counts) or 'NULL'} FROM (SELECT {cells or 'NULL'} FROM {quote(raw.name or '')} WHERE {where})"
    row = con.execute(sql, p.bind(sql)).fetchone() or ()
    return [int(v or 0) for v in row]


def _field_names(labels: list[str] | None, width: int) -> list[str]:
    """Field names from header labels, as Frictionless makes them: blank ones numbered, repeats too."""
    names: list[str] = []
    taken: set[str] = set()  # DuckDB's column names ignore case
    for i, label in enumerate(labels if labels is not None else [""] * width, 1):
        name, n = label or f"field{i}", 1
        while (name if n == 1 else f"{name}{n}").lower() in taken:
            n += 1
        names.append(name if n == 1 else f"{name}{n}")
        taken.add(names[-1].lower())
    return names


def _label_errors(raw: RawTable, names: list[str], given: bool) -> list[dict[str, Any]]:
    labels = raw.labels
    if labels is None:
        return []
    at: dict[str, Any] = {"rowNumbers": [raw.row_number(0) if raw.first_rowid else 1]}
    if labels and all(label == "" for label in labels):
        return [make_error("blank-header", **at)]
    errors, seen = [], dict[str, int]()
    derived = _field_names(labels, len(labels))
    for i, label in enumerate(labels, 1):
        name = names[i - 1] if i <= len(names) else derived[i - 1]
        where: dict[str, Any] = {"label": label, "fieldName": name, "fieldNumber": i, **at}
        if label == "":
            errors.append(make_error("blank-label", **where))
        elif label in seen:
            note = f'at position "{seen[label]}"'
            errors.append(make_error("duplicate-label", note=note, **where))
        elif given and i <= len(names) and label != name:
            errors.append(make_error("incorrect-label", **where))
        seen.setdefault(label, i)
        if given and i > len(names):
            errors.append(make_error("extra-label", **where))
    errors += [
        make_error("missing-label", label="", fieldName=names[i - 1], fieldNumber=i, **at)
        for i in range(len(labels) + 1, len(names) + 1)
    ]
    return errors


# Validation


@dataclass
class _Check:
    kind: str
    when: str  # SQL over the staged columns: true where the error is
    number: int  # field number (position)
    name: str
    cell: str  # SQL of the cell shown in the report
    note: str = ""
    rank: int = 0  # errors of a row are sorted by (rank, field number, check order)
    key: list[str] | None = None  # for unique-error and primary-key: the typed columns compared


class _Plan:
    """The checks of one table, as SQL over a "staged" query that has, per field i: the cell text
    ``r{i}``, whether the row lacks the cell ``a{i}``, the value after missing values ``m{i}`` and
    the typed value ``t{i}``."""

    def __init__(
        self, raw: RawTable, fields: list[dict[str, Any]], schema: dict[str, Any], p: Params
    ) -> None:
        self.raw, self.fields, self.params = raw, fields, p
        width = len(raw.cells)
        cells, values, typed = ["rowid AS __rowid"], ["*"], ["*"]
        self.checks: list[_Check] = []
        keys = schema.get("primaryKey") or []
        keys = [keys] if isinstance(keys, str) else list(keys)
        in_key = [i for i, f in enumerate(fields, 1) if f["name"] in keys]
        no_key = " AND ".join(f"m{i} IS NULL" for i in in_key) if len(in_key) == len(keys) else ""
        for i, f in enumerate(fields, 1):
            cell, absent = (
                (raw.cells[i - 1], raw.absent_cell[i - 1])
                if i <= width
                else ("NULL::VARCHAR", "FALSE")
            )
            missing = _missing(f.get("missingValues", schema.get("missingValues")), f"r{i}", p)
            cells += [f"{cell} AS r{i}", f"{absent} AS a{i}"]
            values.append(f"{missing} AS m{i}")
            typed.append(f"CAST({_parse(f, f'm{i}', p)} AS {duckdb_type(f)}) AS t{i}")
            if i <= width:
                # The parts of a composite key are required, unless the whole key is missing.
                part = no_key if no_key and i in in_key and len(in_key) > 1 else None
                self.checks += _field_checks(i, f, p, key_missing=part)
        for extra in raw.extras:
            cells += [f"{extra.when} AS x{extra.position}", f"{extra.cell} AS xc{extra.position}"]
            cell = f"coalesce(xc{extra.position}, '')"
            self.checks.append(_Check("extra-cell", f"x{extra.position}", extra.position, "", cell))
        if no_key:
            none = 'cells composing the primary keys are all "None"'
            same = "the same as in the row at position {first}"
            key_columns = [f"t{i}" for i in in_key]
            self.checks.append(_Check("primary-key", no_key, 0, "", "''", none, 2))
            self.checks.append(_Check("primary-key", "", 0, "", "''", same, 2, key_columns))
        blank = " AND ".join(f"m{i} IS NULL" for i in range(1, len(fields) + 1))
        typed.append(f"({blank}) AS __blank")
        self.staged = (
            f"SELECT {', '.join(typed)} FROM (SELECT {', '.join(values)} FROM (SELECT"
            f" {', '.join(cells)} FROM {quote(raw.name or '')} WHERE rowid >= {raw.first_rowid}))"
        )

    def _query(self, con: duckdb.DuckDBPyConnection, sql: str) -> list[tuple[Any, ...]]:
        return con.execute(sql, self.params.bind(sql)).fetchall()

    def run(
        self, con: duckdb.DuckDBPyConnection
    ) -> tuple[list[tuple[int, list[dict[str, Any]]]], int]:
        """Count every check's failures in one pass; report the first rows of those that failed."""
        counts = ["count(*)", "count(*) FILTER (WHERE __blank)"]
        for c in self.checks:
            if c.key is None:
                counts.append(f"count(*) FILTER (WHERE NOT __blank AND ({c.when}))")
            else:
                known = " AND ".join(f"{k} IS NOT NULL" for k in c.key)
                counts.append(
                    f"count(*) FILTER (WHERE {known})"
                    f" - count(DISTINCT ({', '.join(c.key)})) FILTER (WHERE {known})"
                )
        rows, blanks, *failures = self._query(
            con, f"SELECT {', '.join(counts)} FROM ({self.staged})"
        )[0]
        found = []
        if blanks:
            sql = f"SELECT __rowid FROM ({self.staged}) WHERE __blank ORDER BY __rowid LIMIT {MAX_ERRORS}"
            reported = [
                self._error(_Check("blank-row", "", 0, "", ""), r) for (r,) in self._query(con, sql)
            ]
            found.append((int(blanks), reported))
        for check, failed in zip(self.checks, failures, strict=True):
            if failed:
                found.append((int(failed), self._details(con, check)))
        return found, int(rows)

    def _details(self, con: duckdb.DuckDBPyConnection, check: _Check) -> list[dict[str, Any]]:
        if check.key is None:
            sql = (
                f"SELECT __rowid, {check.cell} FROM ({self.staged})"
                f" WHERE NOT __blank AND ({check.when}) ORDER BY __rowid LIMIT {MAX_ERRORS}"
            )
            return [self._error(check, r, cell) for r, cell in self._query(con, sql)]
        known = " AND ".join(f"{k} IS NOT NULL" for k in check.key)
        sql = (
            f"SELECT __rowid, cell, first FROM (SELECT __rowid, {check.cell} AS cell,"
            f" min(__rowid) OVER (PARTITION BY {', '.join(check.key)}) AS first"
            f" FROM ({self.staged}) WHERE {known}) WHERE __rowid <> first"
            f" ORDER BY __rowid LIMIT {MAX_ERRORS}"
        )
        return [
            self._error(check, r, cell, note=check.note.format(first=self.raw.row_number(first)))
            for r, cell, first in self._query(con, sql)
        ]

    def _error(
        self, check: _Check, rowid: int, cell: object = None, *, note: str | None = None
    ) -> dict[str, Any]:
        where: dict[str, Any] = {"rowNumber": self.raw.row_number(rowid)}
        if check.kind not in ("blank-row", "primary-key"):
            where.update(
                cell="" if cell is None else str(cell),
                fieldName=check.name,
                fieldNumber=check.number,
            )
        error = make_error(check.kind, note=check.note if note is None else note, **where)
        error["_rank"] = (check.rank, check.number)
        return error

    def create(self, con: duckdb.DuckDBPyConnection, table: str) -> None:
        columns = ", ".join(
            f"t{i} AS {quote(str(f['name']))}" for i, f in enumerate(self.fields, 1)
        )
        sql = f"CREATE OR REPLACE TABLE {quote(table)} AS SELECT {columns} FROM ({self.staged}) ORDER BY __rowid"
        con.execute(sql, self.params.bind(sql))


def _field_checks(i: int, f: dict[str, Any], p: Params, *, key_missing: str | None) -> list[_Check]:
    name, kind, fmt = str(f["name"]), str(f.get("type", "string")), _format(f)
    m, t, cell, target = f"m{i}", f"t{i}", f"coalesce(r{i}, '')", duckdb_type(f)
    constraints = f.get("constraints") or {}
    checks = [_Check("missing-cell", f"a{i}", i, name, "''")]

    def add(kind: str, when: str, note: str, rank: int = 0, key: list[str] | None = None) -> None:
        checks.append(_Check(kind, when, i, name, cell, note, rank, key))

    def constraint(key: str, when: str) -> None:
        value = constraints.get(key, True)
        shown = value if isinstance(value, str) else str(value)
        add("constraint-error", f"{t} IS NOT NULL AND {when}", f'constraint "{key}" is "{shown}"')

    add("type-error", f"{m} IS NOT NULL AND {t} IS NULL", f'type is "{kind}/{fmt}"')
    if constraints.get("required") is True or key_missing:
        unless = f" AND NOT ({key_missing})" if constraints.get("required") is not True else ""
        add(
            "constraint-error",
            f"{m} IS NULL AND NOT a{i}{unless}",
            'constraint "required" is "True"',
        )
    bounds = {"minimum": "<", "maximum": ">", "exclusiveMinimum": "<=", "exclusiveMaximum": ">="}
    for key, op in bounds.items():
        if key in constraints:
            bound = constraints[key]
            bound = str(bound).lower() if isinstance(bound, bool) else str(bound)
            constraint(key, f"{t} {op} TRY_CAST({p.ref(bound)} AS {target})")
    lengths = {"array": f"json_array_length({t})", "object": f"len(json_keys({t}))"}
    for key, op in (("minLength", "<"), ("maxLength", ">")):
        if isinstance(constraints.get(key), int) and target == "VARCHAR":
            constraint(
                key, f"{lengths.get(kind, f'length({t})')} {op} {p.ref(int(constraints[key]))}"
            )
    if isinstance(constraints.get("pattern"), str):
        constraint("pattern", f"NOT regexp_full_match({m}, {p.ref(constraints['pattern'])})")
    if isinstance(constraints.get("enum"), list):
        options = [_enum_option(v, kind, target, p) for v in constraints["enum"]]
        constraint("enum", f"{t} NOT IN ({', '.join(options) or 'NULL'})")
    if constraints.get("unique") is True:
        add("unique-error", "", "the same as in the row at position {first}", 1, [t])
    return checks


def _enum_option(value: object, kind: str, target: str, p: Params) -> str:
    if kind == "boolean" and isinstance(value, bool):
        return p.ref(value)
    text = str(value).lower() if isinstance(value, bool) else str(value)
    return f"TRY_CAST({p.ref(text)} AS {target})"


# Export


def _exported(con: duckdb.DuckDBPyConnection, table: str, *, for_csv: bool) -> str:
    """The select list that writes each column the way dphub's files show it."""
    exprs = []
    for name, dtype, *_ in con.execute(f"DESCRIBE {quote(table)}").fetchall():
        c, kind = quote(str(name)), str(dtype).upper()
        if kind.startswith("TIMESTAMP"):
            e = f"replace(CAST({c} AS VARCHAR), ' ', 'T')"
        elif kind in ("DOUBLE", "FLOAT", "REAL"):
            e = (
                f"CASE WHEN isnan({c}) THEN 'NaN' WHEN isinf({c}) AND {c} > 0 THEN 'INF'"
                f" WHEN isinf({c}) THEN '-INF' ELSE CAST({c} AS VARCHAR) END"
                if for_csv
                else f"CASE WHEN isfinite({c}) THEN {c} END"
            )
        elif kind.startswith("DECIMAL") and not for_csv:
            e = f"CAST({c} AS DOUBLE)"
        elif kind in ("BLOB", "INTERVAL", "UUID") or (for_csv and kind.endswith(("]", ")"))):
            e = f"CAST({c} AS VARCHAR)"
        else:
            e = c
        exprs.append(f"{e} AS {c}")
    return ", ".join(exprs)


def export_csv(con: duckdb.DuckDBPyConnection, table: str, path: Path) -> None:
    """Write ``table`` as CSV: UTF-8, comma, a header, RFC 4180 quoting, ISO 8601 dates and times
    (datetimes with a "T"), ``NaN``/``INF``/``-INF`` for the numbers that are not finite."""
    sql = f"COPY (SELECT {_exported(con, table, for_csv=True)} FROM {quote(table)}) TO $path"
    con.execute(
        sql + " (FORMAT csv, HEADER true, DELIMITER ',', QUOTE '\"', ESCAPE '\"')",
        {"path": str(path)},
    )


def export_json(con: duckdb.DuckDBPyConnection, table: str, path: Path) -> None:
    """Write ``table`` as one JSON array of objects: numbers, booleans and nulls as such, dates and
    times as ISO 8601 strings (datetimes with a "T"), non-finite numbers as null."""
    sql = f"COPY (SELECT {_exported(con, table, for_csv=False)} FROM {quote(table)}) TO $path"
    con.execute(sql + " (FORMAT json, ARRAY true)", {"path": str(path)})


def preview(
    con: duckdb.DuckDBPyConnection, table: str, *, rows: int = 1000
) -> list[dict[str, Any]]:
    """The first ``rows`` rows of ``table`` as JSON-ready dicts, valued as :func:`export_json` writes."""
    cursor = con.execute(
        f"SELECT {_exported(con, table, for_csv=False)} FROM {quote(table)} LIMIT $n", {"n": rows}
    )
    names = [str(d[0]) for d in cursor.description or []]
    return [dict(zip(names, map(_plain, row), strict=True)) for row in cursor.fetchall()]


def _plain(value: object) -> object:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value
