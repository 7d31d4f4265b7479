"""The SQL guard: turn a user's SQL into one read-only query over the tables they may read.

Users write standard SQL and name tables by resource id, as quoted identifiers:
``SELECT year, sum(value) FROM "alice/rain/values" GROUP BY 1`` (or ``"alice/rain@3/values"`` for a
fixed revision). The guard parses the text with sqlglot, refuses anything that is not exactly one
read-only query, swaps each resource id for the backend table it names, and prints SQL for the backend.

Why an AST and not a regular expression: the backend only ever sees SQL that sqlglot *generated* from a
tree the guard checked node by node, so nothing the guard did not see (a comment, a second statement, a
clever quote) reaches the database. Why allow-lists: DuckDB and PostgreSQL both ship functions that read
files, the network, settings or the catalog (``read_csv``, ``pg_read_file``, ``current_setting``...) and
each release adds more; naming the functions known to be safe keeps a new release from opening a hole.

The guard is one layer. The backends should still run these queries on a read-only connection with a
statement timeout; for DuckDB with ``enable_external_access = false``, ``lock_configuration = true``
and ``python_enable_replacements = false``, so a name the guard got wrong reads nothing.

Scope rules, chosen to be at least as strict as both backends:

- A table in FROM/JOIN is a CTE of the query when a WITH in scope defines that name (unquoted names
  compare in lower case, quoted ones exactly): in the body of the query that owns the WITH, or in a later
  CTE of the same WITH (or the same one, under WITH RECURSIVE). Any other name is a resource id.
- A resource id the caller did not map is refused; so are schema-qualified names, system catalogs and
  table functions other than ``generate_series``, ``range`` and ``unnest``.
- A resource id used without an alias gets itself as alias, so ``"alice/rain/values".year`` still works.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Literal

import sqlglot
from sqlglot import exp
from sqlglot.errors import ErrorLevel, ParseError, SqlglotError, TokenError

from dphub.errors import InvalidQuery

Dialect = Literal["duckdb", "postgres"]

MAX_SQL_LENGTH = 100_000
"""Longer text is refused before parsing: the parser's time and recursion grow with it."""

# Statements and clauses that write, change the session or reach outside the query. Looked up by name so
# that a sqlglot release without one of them still imports.
_REFUSED_NODES: dict[str, str] = {
    "Insert": "INSERT",
    "Update": "UPDATE",
    "Delete": "DELETE",
    "Merge": "MERGE",
    "Create": "CREATE",
    "Drop": "DROP",
    "Alter": "ALTER",
    "AlterTable": "ALTER",
    "TruncateTable": "TRUNCATE",
    "Command": "a command",
    "Copy": "COPY",
    "Set": "SET",
    "SetItem": "SET",
    "Pragma": "PRAGMA",
    "Attach": "ATTACH",
    "Detach": "DETACH",
    "Install": "INSTALL",
    "Use": "USE",
    "Transaction": "a transaction",
    "Commit": "COMMIT",
    "Rollback": "ROLLBACK",
    "Describe": "DESCRIBE",
    "Summarize": "SUMMARIZE",
    "Show": "SHOW",
    "LoadData": "LOAD",
    "Grant": "GRANT",
    "Revoke": "REVOKE",
    "Analyze": "ANALYZE",
    "Cache": "CACHE",
    "Uncache": "UNCACHE",
    "Refresh": "REFRESH",
    "Kill": "KILL",
    "Export": "EXPORT",
    "Comment": "COMMENT",
    "Declare": "DECLARE",
    "Execute": "EXECUTE",
}
_REFUSED_TYPES: dict[type[exp.Expr], str] = {
    getattr(exp, name): word for name, word in _REFUSED_NODES.items() if hasattr(exp, name)
}
_REFUSED_CLASSES = tuple(_REFUSED_TYPES)


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_EMPTY_STATEMENTS: tuple[type[exp.Expr], ...] = tuple(
    getattr(exp, name) for name in ("Semicolon",) if hasattr(exp, name)
)
_ROOT_TYPES: tuple[type[exp.Expr], ...] = (exp.Select, exp.SetOperation, exp.Subquery)

# Functions sqlglot models as their own node: the class names, checked against every such node.
# Built from the DuckDB and PostgreSQL names users write (see SAFE_FUNCTION_NAMES); syntax and operators
# that sqlglot also models as functions (AND, OR, @>, CAST, CASE, EXTRACT, EXISTS, [..], {..}) too.
SAFE_FUNCTION_NODES = _words(
    """
    And Or Xor ArrayContainsAll ArrayContainedBy ArrayOverlaps JSONArrayContains JSONBContains
    JSONBContainsAllTopKeys JSONBContainsAnyTopKeys JSONBContainsTopKey JSONBExtract
    JSONBExtractScalar JSONBPathExists Grouping ToMap
    Abs Acos AnyValue ApproxDistinct ApproxQuantile ArgMax ArgMin Array ArrayAgg ArrayAll
    ArrayAny ArrayAppend ArrayConcat ArrayContains ArrayDistinct ArrayFilter ArrayMax ArrayMin
    ArrayPosition ArrayPrepend ArraySize ArraySlice ArraySort ArrayToString Ascii Asin Atan
    Atan2 Avg BitLength BitwiseAndAgg BitwiseOrAgg BitwiseXorAgg Case Cast Cbrt Ceil Chr
    Coalesce Collate Columns Concat ConcatWs Contains Corr Cos Cosh Cot Count CountIf CovarPop
    CovarSamp CumeDist CurrentDate CurrentTime CurrentTimestamp Date DateAdd DateBin DateDiff
    DateFromParts DateSub DateTrunc Day DayOfMonth DayOfWeek DayOfWeekIso DayOfYear Dayname
    Degrees DenseRank EndsWith Exists Exp Explode ExplodingGenerateSeries Extract Factorial
    First FirstValue Flatten Floor Format FromBase64 GenerateSeries Greatest GroupConcat Hex
    Hour If Initcap IsInf IsNan JSONArray JSONArrayAgg JSONExtract JSONExtractScalar JSONKeys
    JSONObject JSONObjectAgg JSONType JarowinklerSimilarity JustifyDays JustifyHours
    JustifyInterval Kurtosis Lag Last LastDay LastValue Lead Least Left Length Levenshtein List
    Ln Localtime Localtimestamp Log LogicalAnd LogicalOr Lower MD5 MakeInterval Map MapKeys Max
    Median Min Minute Mode Month Monthname NthValue Ntile Nullif Overlay Pad PercentRank
    PercentileCont PercentileDisc Pi Pow Quantile Quarter Radians Rand Rank RegexpCount
    RegexpExtract RegexpExtractAll RegexpFullMatch RegexpILike RegexpInstr RegexpLike
    RegexpReplace RegexpSplit RegexpSubstr RegrAvgx RegrAvgy RegrCount RegrIntercept RegrR2
    RegrSlope RegrSxx RegrSxy RegrSyy Repeat Replace Reverse Right Round RowNumber SHA SHA2
    SHA2Digest Second Sign Sin Sinh Skewness Split SplitPart Sqrt StartsWith Stddev StddevPop
    StddevSamp StrPosition StrToDate StrToTime StringToArray Struct StructExtract Substring Sum
    Tan Tanh Time TimeFromParts TimeStrToTime TimeToStr TimeToUnix Timestamp TimestampFromParts
    TimestampTrunc ToBase64 ToChar ToDays ToNumber Transform Translate Trim Trunc TryCast
    TsOrDsToDate Typeof Unicode UnixToTime Unnest Upper Uuid Variance VariancePop Week
    WeekOfYear WidthBucket Year
    """
)

# Functions sqlglot leaves as plain calls (``exp.Anonymous``), by the name the user writes (lower case).
# The common names are listed even where sqlglot models them today, so a sqlglot release that stops
# modelling one does not refuse a query that works now. Nothing here reads a file, the network, the
# environment, a setting or the catalog, and nothing changes state.
SAFE_FUNCTION_NAMES = _words(
    """
    count count_if sum avg mean min max stddev stddev_samp stddev_pop variance var_samp var_pop
    median mode quantile quantile_cont quantile_disc percentile_cont percentile_disc
    approx_quantile approx_count_distinct any_value arbitrary first last arg_min arg_max argmin
    argmax min_by max_by bool_and bool_or every corr covar_pop covar_samp regr_avgx regr_avgy
    regr_count regr_intercept regr_r2 regr_slope regr_sxx regr_sxy regr_syy string_agg listagg
    group_concat array_agg list histogram entropy kurtosis skewness product bit_and bit_or
    bit_xor mad fsum sumkahan kahan_sum favg abs sign round round_even floor ceil ceiling trunc
    sqrt cbrt exp ln log log10 log2 power pow mod pi random degrees radians sin cos tan asin
    acos atan atan2 cot sinh cosh tanh isnan isinf isfinite even factorial gcd lcm width_bucket
    bit_count lower upper lcase ucase length char_length character_length octet_length
    bit_length len strlen substr substring trim ltrim rtrim btrim replace concat concat_ws left
    right lpad rpad repeat reverse position strpos instr starts_with ends_with contains
    split_part string_split string_to_array array_to_string initcap ascii chr translate overlay
    format printf md5 sha1 sha256 hash to_base64 from_base64 to_hex unicode ord strip_accents
    levenshtein damerau_levenshtein hamming jaccard jaro_similarity jaro_winkler_similarity
    to_number regexp_matches regexp_replace regexp_extract regexp_extract_all regexp_full_match
    regexp_split_to_array regexp_split_to_table regexp_like regexp_count regexp_substr
    regexp_instr coalesce nullif ifnull nvl greatest least if iff typeof try_cast date_trunc
    date_part datepart date_add date_sub date_diff datediff age now current_date
    current_timestamp current_time localtimestamp localtime today strftime strptime to_char
    to_date to_timestamp make_date make_time make_timestamp make_interval year month day hour
    minute second millisecond microsecond week weekofyear weekday dayofweek dayofmonth dayofyear
    quarter isodow isoyear yearweek epoch epoch_ms century decade millennium era julian last_day
    monthname dayname time_bucket date_bin justify_days justify_hours justify_interval to_days
    to_months to_years to_hours to_minutes to_seconds timezone row_number rank dense_rank
    percent_rank cume_dist ntile lag lead first_value last_value nth_value json_extract
    json_extract_string json_extract_path json_extract_path_text jsonb_extract_path
    jsonb_extract_path_text json_array_length jsonb_array_length json_keys json_type json_typeof
    jsonb_typeof json_valid to_json to_jsonb json_object json_array json_build_object
    jsonb_build_object json_build_array json_agg jsonb_agg json_object_agg json_group_array
    json_group_object json_value json_contains json_exists list_value list_sum list_avg list_min
    list_max list_count list_extract list_element list_aggregate list_sort list_reverse_sort
    list_distinct list_unique list_transform list_filter list_contains list_has list_position
    list_slice list_concat list_cat array_length array_contains array_position array_append
    array_prepend array_cat array_slice array_distinct array_sort cardinality flatten unnest
    generate_series range struct_pack struct_extract map map_keys map_values element_at
    gen_random_uuid uuid
    """
)

# Table functions allowed in FROM: they compute rows and read nothing.
_SAFE_TABLE_FUNCTIONS: tuple[type[exp.Expr], ...] = tuple(
    getattr(exp, name)
    for name in ("GenerateSeries", "ExplodingGenerateSeries", "Unnest", "Explode")
    if hasattr(exp, name)
)

_SYSTEM_NAMES = frozenset(
    {
        "information_schema",
        "pg_catalog",
        "pg_toast",
        "sqlite_master",
        "sqlite_schema",
        "sqlite_temp_master",
        "sqlite_temp_schema",
    }
)
_SYSTEM_PREFIXES = ("pg_", "duckdb_", "sqlite_")


def referenced_tables(sql: str, *, dialect: Dialect = "duckdb") -> list[str]:
    """The resource ids ``sql`` reads, in first-seen order, after every check but the permission one.

    The caller resolves these ids (and raises ``TableNotFound`` for unknown ones) before calling
    :func:`rewrite_sql` with the map of what it found.
    """
    _, references = _checked_tree(sql, dialect)
    return list(dict.fromkeys(name for _, name in references))


def rewrite_sql(sql: str, *, dialect: Dialect, tables: Mapping[str, str]) -> str:
    """Check ``sql`` and return it as one statement for ``dialect`` over the backend tables.

    ``tables`` maps each resource id the caller may read to a backend table reference (``t0``,
    ``datastore."r12_0"``): trusted SQL, inserted as the table of each reference to that id. Run the
    result without bind parameters (with psycopg, ``execute(sql)``, so a ``%`` in it stays as it is).
    """
    tree, references = _checked_tree(sql, dialect)
    targets = {name: _target_table(fragment, dialect) for name, fragment in tables.items()}
    _check_cte_names(tree, targets.values())
    for table, name in references:
        target = targets.get(name)
        if target is None:
            raise InvalidQuery(f'The table "{name}" is not one this query may read.', table=name)
        alias = table.args.get("alias")
        for part in ("this", "db", "catalog"):
            value = target.args.get(part)
            table.set(part, value.copy() if value is not None else None)
        if alias is None:
            table.set("alias", exp.TableAlias(this=exp.to_identifier(name, quoted=True)))
    if dialect == "postgres":
        _round_numeric(tree)
    try:
        out = tree.sql(
            dialect=dialect, comments=False, identify="safe", unsupported_level=ErrorLevel.RAISE
        )
    except SqlglotError as error:
        raise InvalidQuery(
            f"This query cannot be written for {dialect}: {_one_line(str(error))}"
        ) from error
    except RecursionError as error:
        raise InvalidQuery("The query is nested too deeply to be written.") from error
    _check_output(out, dialect)
    return out


def _round_numeric(tree: exp.Expr) -> None:
    """PostgreSQL rounds to N places only a numeric, and ``number`` columns are double precision:
    ``round(x, 2)`` works as on DuckDB once ``x`` is cast."""
    for node in list(tree.find_all(exp.Round)):
        if node.args.get("decimals") is not None:
            value = node.this
            node.set("this", exp.Cast(this=value.copy(), to=exp.DataType.build("numeric")))


def _checked_tree(sql: str, dialect: Dialect) -> tuple[exp.Expr, list[tuple[exp.Table, str]]]:
    """Parse and check ``sql``; return the tree and its resource-id references (node, id)."""
    tree = _parse_one(sql, dialect)
    references: list[tuple[exp.Table, str]] = []
    for node in _walk(tree):
        if isinstance(node, _REFUSED_CLASSES):
            raise InvalidQuery(f"Only SELECT is accepted; this query contains {_word(node)}.")
        if isinstance(node, exp.Into):
            raise InvalidQuery("SELECT ... INTO is not accepted: queries cannot create tables.")
        if isinstance(node, exp.Lock):
            raise InvalidQuery("Locking clauses (FOR UPDATE, FOR SHARE) are not accepted.")
        if isinstance(node, exp.Placeholder | exp.Parameter | exp.SessionParameter):
            raise InvalidQuery("Query parameters are not accepted: write the values in the query.")
        if isinstance(node, exp.Func):
            _check_function(node)
        elif isinstance(node, exp.Table):
            name = _table_reference(node)
            if name is not None:
                references.append((node, name))
        elif isinstance(node, exp.Column | exp.Dot):
            _check_qualifiers(node)
    # Text order, so "first seen" means what the user reads (the tree keeps WITH after the body).
    references.sort(key=lambda ref: int(ref[0].this.meta.get("start", MAX_SQL_LENGTH)))
    return tree, references


def _parse_one(sql: str, dialect: Dialect) -> exp.Expr:
    if len(sql) > MAX_SQL_LENGTH:
        raise InvalidQuery(f"The query is longer than {MAX_SQL_LENGTH} characters.")
    try:
        statements = _statements(sql, dialect)
    except ParseError as error:
        detail = error.errors[0] if error.errors else {}
        where = f" (line {detail['line']}, column {detail['col']})" if "line" in detail else ""
        message = detail.get("description") or str(error)
        raise InvalidQuery(
            f"The query could not be parsed: {_one_line(str(message))}{where}."
        ) from error
    except TokenError as error:
        raise InvalidQuery(f"The query could not be read: {_one_line(str(error))}.") from error
    except SqlglotError as error:
        raise InvalidQuery(f"The query could not be parsed: {_one_line(str(error))}.") from error
    except RecursionError as error:
        raise InvalidQuery("The query is nested too deeply to be read.") from error
    if not statements:
        raise InvalidQuery("The query is empty.")
    if len(statements) > 1:
        raise InvalidQuery(
            f"Only one SELECT statement is accepted; this has {len(statements)}.",
        )
    tree = statements[0]
    if not isinstance(tree, _ROOT_TYPES) or not isinstance(tree.unnest(), exp.Query):
        word = _first_word(sql, dialect)
        if not word.isalpha() or word == "WITH":
            word = _word(tree.unnest())
        raise InvalidQuery(f"Only SELECT is accepted, not {word}.")
    return tree


def _statements(sql: str, dialect: Dialect) -> list[exp.Expr]:
    """The statements of ``sql``; empty ones (``;;``, or a comment after the last ``;``) do not count."""
    parsed = sqlglot.parse(sql, read=dialect)
    return [s for s in parsed if s is not None and not isinstance(s, _EMPTY_STATEMENTS)]


def _walk(tree: exp.Expr) -> Iterator[exp.Expr]:
    """Every node, iteratively: deep trees must not hit Python's recursion limit here."""
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        stack.extend(reversed(list(node.iter_expressions())))


def _check_function(node: exp.Func) -> None:
    if isinstance(node, exp.Anonymous):
        name = node.name.lower()
        if name in SAFE_FUNCTION_NAMES:
            return
    elif type(node).__name__ in SAFE_FUNCTION_NODES:
        return
    else:
        name = node.sql_name().lower()
    raise InvalidQuery(f"The function {name} is not available in datastore queries.", function=name)


def _table_reference(table: exp.Table) -> str | None:
    """The resource id ``table`` names, ``None`` for a CTE or an allowed table function."""
    target = table.this
    if not isinstance(target, exp.Identifier):
        if isinstance(target, _SAFE_TABLE_FUNCTIONS):
            return None
        name = target.sql_name().lower() if isinstance(target, exp.Func) else target.sql()
        if isinstance(target, exp.Anonymous):
            name = target.name.lower()
        raise InvalidQuery(
            f"The table function {name} is not accepted in FROM; only generate_series, range and"
            " unnest are.",
        )
    parts = [p.name for p in (table.args.get("catalog"), table.args.get("db")) if p is not None]
    if parts:
        if any(_is_system_name(p) for p in parts):
            raise InvalidQuery(f"System catalogs such as {parts[-1]} are not accessible.")
        full = ".".join([*parts, table.name])
        raise InvalidQuery(
            f"Schema-qualified names such as {full} are not accepted; name tables by resource id,"
            ' as in "owner/package/resource".',
        )
    if _is_cte(table):
        return None
    if "/" not in table.name and _is_system_name(table.name):
        raise InvalidQuery(f"System catalogs such as {table.name} are not accessible.")
    return table.name


def _is_cte(table: exp.Table) -> bool:
    """Whether a WITH in scope of ``table`` defines its name (see the module docstring)."""
    key = _normalized(table.this)
    child: exp.Expr = table
    parent = table.parent
    while parent is not None:
        if isinstance(parent, exp.With):
            # ``child`` is one of its CTEs: earlier ones are visible, itself only when recursive.
            ctes = list(parent.expressions)
            index = next((i for i, cte in enumerate(ctes) if cte is child), len(ctes))
            visible = ctes[: index + 1] if parent.args.get("recursive") else ctes[:index]
            if any(_cte_key(cte) == key for cte in visible):
                return True
            # Skip the query owning this WITH: its other CTEs are not in scope here.
            child, parent = parent, parent.parent
            if parent is None:
                break
            child, parent = parent, parent.parent
            continue
        with_ = _with_of(parent)
        if with_ is not None and any(_cte_key(cte) == key for cte in with_.expressions):
            return True
        child, parent = parent, parent.parent
    return False


def _with_of(node: exp.Expr) -> exp.With | None:
    found = node.args.get("with_") or node.args.get("with")
    return found if isinstance(found, exp.With) else None


def _cte_key(cte: exp.Expr) -> str | None:
    alias = cte.args.get("alias")
    identifier = alias.this if isinstance(alias, exp.TableAlias) else None
    return _normalized(identifier) if isinstance(identifier, exp.Identifier) else None


def _normalized(identifier: object) -> str | None:
    """Unquoted names fold to lower case (as in both backends); quoted ones stay as written."""
    if not isinstance(identifier, exp.Identifier):
        return None
    return identifier.name if identifier.quoted else identifier.name.lower()


def _check_qualifiers(node: exp.Column | exp.Dot) -> None:
    if isinstance(node, exp.Column):
        qualifiers = [node.args.get(part) for part in ("table", "db", "catalog")]
    else:
        qualifiers = [node.this]
    for qualifier in qualifiers:
        if isinstance(qualifier, exp.Identifier) and _is_system_name(qualifier.name):
            raise InvalidQuery(f"System catalogs such as {qualifier.name} are not accessible.")


def _is_system_name(name: str) -> bool:
    lowered = name.lower()
    return lowered in _SYSTEM_NAMES or lowered.startswith(_SYSTEM_PREFIXES)


def _target_table(fragment: str, dialect: Dialect) -> exp.Table:
    """Parse the caller's backend table reference; a bad one is a programming error, not the user's."""
    try:
        target = exp.to_table(fragment, dialect=dialect)
    except SqlglotError as error:
        raise ValueError(f"not a table reference: {fragment!r}") from error
    if not isinstance(target.this, exp.Identifier) or target.args.get("alias") is not None:
        raise ValueError(f"not a plain table reference: {fragment!r}")
    return target


def _check_cte_names(tree: exp.Expr, targets: Iterable[exp.Table]) -> None:
    """Refuse a CTE named like an unqualified backend table: it would shadow the real one."""
    names = {t.name.lower() for t in targets if t.args.get("db") is None}
    for cte in tree.find_all(exp.CTE):
        if cte.alias.lower() in names:
            raise InvalidQuery(f"The name {cte.alias} is reserved; give this CTE another name.")


def _check_output(out: str, dialect: Dialect) -> None:
    """Read the generated SQL back: it must still be one query (a guard on the generator itself)."""
    try:
        statements = _statements(out, dialect)
    except (SqlglotError, RecursionError) as error:
        raise InvalidQuery("This query cannot be written safely for the datastore.") from error
    if len(statements) != 1 or not isinstance(statements[0], _ROOT_TYPES):
        raise InvalidQuery("This query cannot be written safely for the datastore.")


def _word(node: exp.Expr) -> str:
    """The statement keyword a person would use for ``node`` (DELETE for a Delete node...)."""
    for kind in type(node).__mro__:
        if kind in _REFUSED_TYPES:
            return _REFUSED_TYPES[kind]
    return type(node).__name__.upper()


def _first_word(sql: str, dialect: Dialect) -> str:
    try:
        tokens = sqlglot.Dialect.get_or_raise(dialect).tokenize(sql)
    except SqlglotError:
        return "this statement"
    for token in tokens:
        if token.token_type != sqlglot.TokenType.SEMICOLON:
            return token.text.upper()
    return "this statement"


def _one_line(text: str) -> str:
    """The parser's message without ANSI underlines, on one line, at most 200 characters."""
    cleaned = " ".join(text.replace("\x1b[4m", "").replace("\x1b[0m", "").split())
    return cleaned if len(cleaned) <= 200 else cleaned[:197] + "..."
