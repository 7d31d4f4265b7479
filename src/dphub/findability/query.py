"""The search box's language, and its translation into full-text expressions that cannot fail.

What people type is never handed to a full-text parser as it is: FTS5 and ``to_tsquery`` both have
operators (``NEAR``, ``*``, ``:``, ``^``, ``&``, ``!``, parentheses, quotes) that turn a stray character
into a syntax error. Instead the text is read here into words, and every word is quoted when the
expression is written back, so the only operators in it are the ones this module puts there.

The language:

- words are all required: ``gdp europe`` finds packages with both;
- ``"a phrase"`` finds the words next to each other, in that order;
- ``word*`` finds words that start with it (at least two characters before the ``*``);
- ``-word``, ``-"a phrase"`` or ``NOT word`` leaves out packages that have it;
- ``this OR that`` finds packages with either;
- ``AND`` may be written and changes nothing.

A word is a run of letters and digits; anything else separates words, and a run of several words
written without spaces (``gdp_per_capita``, ``covid-19``) is read as a phrase. Everything that is not
part of the language (stray operators, brackets, quotes, punctuation) is ignored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from dphub.errors import InvalidQuery

MAX_QUERY_CHARS = 500
MAX_WORDS = 32
MIN_PREFIX_CHARS = 2

_WORD = re.compile(r"[^\W_]+")
_PREFIX = re.compile(r"[^\W_]\*+$")
_TOKEN = re.compile(r'(?P<neg>-?)"(?P<phrase>[^"]*)"?|(?P<chunk>[^\s"]+)')


@dataclass(frozen=True)
class Term:
    """Words that must appear in this order, the last one perhaps only as a prefix."""

    words: tuple[str, ...]
    prefix: bool = False

    def fts5(self) -> str:
        # FTS5 reads a quoted string as a phrase, with its own tokenizer; the words hold only
        # letters and digits, so no quote inside needs escaping.
        return f'"{" ".join(self.words)}"' + (" *" if self.prefix else "")

    def tsquery(self) -> str:
        lexemes = [f"'{word}'" for word in self.words]
        if self.prefix:
            lexemes[-1] += ":*"
        return " <-> ".join(lexemes)


@dataclass(frozen=True)
class Clause:
    """One of several terms (``OR``), required, or excluded when ``negated``."""

    alternatives: tuple[Term, ...]
    negated: bool = False

    def fts5(self) -> str:
        return _group([t.fts5() for t in self.alternatives], " OR ")

    def tsquery(self) -> str:
        return _group([t.tsquery() for t in self.alternatives], " | ")


@dataclass(frozen=True)
class TextQuery:
    """A parsed search: packages must match every positive clause and no negated one."""

    clauses: tuple[Clause, ...]

    @property
    def required(self) -> list[Clause]:
        return [c for c in self.clauses if not c.negated]

    @property
    def excluded(self) -> list[Clause]:
        return [c for c in self.clauses if c.negated]

    def fts5(self) -> str:
        """The query as an SQLite FTS5 expression."""
        expression = " AND ".join(_wrap(c.fts5(), c) for c in self.required)
        if self.excluded:
            excluded = " OR ".join(_wrap(c.fts5(), c) for c in self.excluded)
            expression = f"({expression}) NOT ({excluded})"
        return expression

    def tsquery(self) -> str:
        """The query as PostgreSQL ``to_tsquery`` input."""
        parts = [_wrap(c.tsquery(), c) for c in self.required]
        parts += [f"!{_wrap(c.tsquery(), c, always=True)}" for c in self.excluded]
        return " & ".join(parts)

    @property
    def words(self) -> list[str]:
        return [w for c in self.clauses for t in c.alternatives for w in t.words]


def _group(parts: list[str], operator: str) -> str:
    return parts[0] if len(parts) == 1 else operator.join(parts)


def _wrap(text: str, clause: Clause, *, always: bool = False) -> str:
    return f"({text})" if always or len(clause.alternatives) > 1 else text


def _term(text: str, *, allow_prefix: bool) -> Term | None:
    words = tuple(w.lower() for w in _WORD.findall(text))
    if not words:
        return None
    prefix = (
        allow_prefix and _PREFIX.search(text) is not None and len(words[-1]) >= MIN_PREFIX_CHARS
    )
    return Term(words, prefix)


def parse_query(text: str) -> TextQuery:
    """Read what someone typed; raises :class:`InvalidQuery` when it is too long or has no word
    to look for."""
    if len(text) > MAX_QUERY_CHARS:
        raise InvalidQuery(
            f"The search text is {len(text)} characters long; at most {MAX_QUERY_CHARS} are"
            " accepted.",
            parameter="q",
        )
    clauses: list[Clause] = []
    pending_or = pending_not = False
    for match in _TOKEN.finditer(text):
        chunk = match.group("chunk")
        if chunk in ("AND", "OR", "NOT"):
            pending_or = chunk == "OR" and bool(clauses)
            pending_not = chunk == "NOT"
            continue
        if chunk is not None:
            negated = chunk.startswith("-")
            term = _term(chunk.lstrip("-"), allow_prefix=True)
        else:
            negated = bool(match.group("neg"))
            term = _term(match.group("phrase"), allow_prefix=False)
        if term is None:
            continue
        negated = negated or pending_not
        last = clauses[-1] if clauses else None
        if pending_or and last is not None and not last.negated and not negated:
            clauses[-1] = Clause((*last.alternatives, term))
        else:
            clauses.append(Clause((term,), negated))
        pending_or = pending_not = False
    query = TextQuery(tuple(clauses))
    if len(query.words) > MAX_WORDS:
        raise InvalidQuery(
            f"The search text has {len(query.words)} words; at most {MAX_WORDS} are accepted.",
            parameter="q",
        )
    if not query.required:
        raise InvalidQuery(
            "The search text has no word to look for"
            + (" besides the ones it leaves out." if query.excluded else ".")
            + " Words are letters and digits; leave q out to list every package.",
            parameter="q",
        )
    return query
