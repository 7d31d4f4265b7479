"""Datastore: one queryable table per tabular resource and revision, on DuckDB files or PostgreSQL."""

from __future__ import annotations

from dphub.config import Settings
from dphub.datastore.interfaces import ROW_ID, Answer, Datastore, Field, table_name

__all__ = ["ROW_ID", "Answer", "Datastore", "Field", "open_datastore", "table_name"]


def open_datastore(settings: Settings) -> Datastore:
    """The backend ``DPHUB_DATASTORE_URL`` names (see ``Settings.resolved_datastore_url``)."""
    url = settings.resolved_datastore_url
    if url.startswith("postgresql"):
        from dphub.datastore.postgres import PostgresDatastore, engine_for

        return PostgresDatastore(
            engine_for(url), timeout=settings.query_timeout, max_rows=settings.query_max_rows
        )
    from dphub.datastore.embedded import EmbeddedDatastore

    return EmbeddedDatastore(
        settings.data_dir / "datastore",
        timeout=settings.query_timeout,
        max_rows=settings.query_max_rows,
    )
