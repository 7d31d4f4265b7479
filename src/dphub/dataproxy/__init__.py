"""The DataProxy: any tabular file of the hub (CSV, TSV, XLSX, JSON, NDJSON, Parquet) as JSON,
NDJSON or CSV, streamed in bounded memory. See :func:`open_table`."""

from dphub.dataproxy._convert import MAX_COLUMNS, SAMPLE_ROWS, Options, Prepared, open_table

__all__ = ["MAX_COLUMNS", "SAMPLE_ROWS", "Options", "Prepared", "open_table"]
