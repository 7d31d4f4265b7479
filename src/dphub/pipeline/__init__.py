"""Pipeline (the Data Ingestor): process every revision into validated, derived, queryable data."""
