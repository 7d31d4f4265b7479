"""Findability: package search over one search document per package, with facets.

:mod:`~dphub.findability.query` reads the search box's language into expressions that cannot break a
full-text parser, :mod:`~dphub.findability.index` builds and rewrites the documents, and
:mod:`~dphub.findability.search` answers searches on SQLite (FTS5) and PostgreSQL (``tsvector``).
"""

from __future__ import annotations

from dphub.findability.index import reindex, reindex_all
from dphub.findability.query import TextQuery, parse_query
from dphub.findability.search import SearchRequest, search_packages

ENGINE_TABLES = frozenset(
    {
        "package_search_fts",
        "package_search_fts_data",
        "package_search_fts_idx",
        "package_search_fts_docsize",
        "package_search_fts_config",
    }
)
"""SQLite's full-text index and its shadow tables: the engine's, not the models'."""
ENGINE_COLUMNS = frozenset({("package_search", "document"), ("package_search", "rank_document")})
"""PostgreSQL's generated ``tsvector`` columns (what is matched, what is ranked), not in the
models."""
ENGINE_INDEXES = frozenset({"ix_package_search_document"})
"""PostgreSQL's GIN index over that column."""

__all__ = [
    "ENGINE_COLUMNS",
    "ENGINE_INDEXES",
    "ENGINE_TABLES",
    "SearchRequest",
    "TextQuery",
    "parse_query",
    "reindex",
    "reindex_all",
    "search_packages",
]
