"""package search: one search document per package, its facet values, and a full-text index

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29

The full-text index is the database's own: on SQLite an FTS5 table over ``package_search`` kept in
step by triggers, on PostgreSQL a generated ``tsvector`` column with a GIN index. Packages pushed
before this revision get their documents from ``dphub search reindex``.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import dphub.metastore.models

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

UTC_DATETIME = dphub.metastore.models.UTCDateTime(timezone=True)

FTS_COLUMNS = ("name", "title", "keywords", "description", "resources", "fields", "readme")
"""The columns of ``package_search`` the SQLite index covers, in the order its ranking weighs them."""

SQLITE_FTS = """
CREATE VIRTUAL TABLE package_search_fts USING fts5(
    {columns},
    content='package_search',
    content_rowid='package_id',
    tokenize='porter unicode61 remove_diacritics 2'
)
"""
SQLITE_TRIGGERS = {
    "package_search_fts_insert": """
CREATE TRIGGER package_search_fts_insert AFTER INSERT ON package_search BEGIN
    INSERT INTO package_search_fts(rowid, {columns}) VALUES (new.package_id, {new});
END
""",
    "package_search_fts_delete": """
CREATE TRIGGER package_search_fts_delete AFTER DELETE ON package_search BEGIN
    INSERT INTO package_search_fts(package_search_fts, rowid, {columns})
    VALUES ('delete', old.package_id, {old});
END
""",
    "package_search_fts_update": """
CREATE TRIGGER package_search_fts_update AFTER UPDATE ON package_search BEGIN
    INSERT INTO package_search_fts(package_search_fts, rowid, {columns})
    VALUES ('delete', old.package_id, {old});
    INSERT INTO package_search_fts(rowid, {columns}) VALUES (new.package_id, {new});
END
""",
}

# Weights: A title and name, B keywords and description, C resource and field names, D the README.
POSTGRES_DOCUMENT = """
ALTER TABLE package_search ADD COLUMN document tsvector GENERATED ALWAYS AS (
    setweight(to_tsvector('english'::regconfig, coalesce(title, '') || ' ' || name), 'A')
    || setweight(jsonb_to_tsvector('english'::regconfig, keywords, '["string"]'), 'B')
    || setweight(to_tsvector('english'::regconfig, coalesce(description, '')), 'B')
    || setweight(jsonb_to_tsvector('english'::regconfig, resources, '["string"]'), 'C')
    || setweight(jsonb_to_tsvector('english'::regconfig, fields, '["string"]'), 'C')
    || setweight(to_tsvector('english'::regconfig, coalesce(readme, '')), 'D')
) STORED
"""
# What the rank reads: the A and B parts alone, small enough to stay in the row, where the whole
# document (README included) is compressed out of line and costly to read back for every match.
POSTGRES_RANK_DOCUMENT = """
ALTER TABLE package_search ADD COLUMN rank_document tsvector GENERATED ALWAYS AS (
    setweight(to_tsvector('english'::regconfig, coalesce(title, '') || ' ' || name), 'A')
    || setweight(jsonb_to_tsvector('english'::regconfig, keywords, '["string"]'), 'B')
    || setweight(to_tsvector('english'::regconfig, coalesce(description, '')), 'B')
) STORED
"""
POSTGRES_INDEX = "CREATE INDEX ix_package_search_document ON package_search USING gin (document)"


def _document() -> sa.JSON:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["package_id"],
        ["packages.id"],
        name=op.f(f"fk_{table}_package_id_packages"),
        ondelete="CASCADE",
    )


def upgrade() -> None:
    op.create_table(
        "package_search",
        sa.Column("package_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("owner", sa.String(length=100), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("title", sa.Text(), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("readme", sa.Text(), nullable=True),
        sa.Column("keywords", _document(), nullable=False),
        sa.Column("licenses", _document(), nullable=False),
        sa.Column("formats", _document(), nullable=False),
        sa.Column("resources", _document(), nullable=False),
        sa.Column("fields", _document(), nullable=False),
        sa.Column("updated", UTC_DATETIME, nullable=False),
        _fk("package_search"),
        sa.PrimaryKeyConstraint("package_id", name=op.f("pk_package_search")),
    )
    op.create_index("ix_package_search_updated", "package_search", ["updated"], unique=False)
    op.create_index(
        "ix_package_search_name_owner", "package_search", ["name", "owner"], unique=False
    )
    op.create_table(
        "package_search_terms",
        sa.Column("facet", sa.String(length=16), nullable=False),
        sa.Column("value", sa.String(length=200), nullable=False),
        sa.Column("package_id", sa.Integer(), autoincrement=False, nullable=False),
        _fk("package_search_terms"),
        sa.PrimaryKeyConstraint(
            "facet", "value", "package_id", name=op.f("pk_package_search_terms")
        ),
        sqlite_with_rowid=False,
    )
    op.create_index(
        "ix_package_search_terms_package_id",
        "package_search_terms",
        ["package_id"],
        unique=False,
    )
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        _create_sqlite_index()
    elif dialect == "postgresql":
        op.execute(POSTGRES_DOCUMENT)
        op.execute(POSTGRES_RANK_DOCUMENT)
        op.execute(POSTGRES_INDEX)


def _create_sqlite_index() -> None:
    columns = ", ".join(FTS_COLUMNS)
    try:
        op.execute(SQLITE_FTS.format(columns=columns))
    except sa.exc.OperationalError as exc:
        raise RuntimeError(
            "This Python's SQLite has no FTS5, which package search needs: use a Python whose"
            " sqlite3 module has it (Debian's and the python.org builds do), or PostgreSQL."
        ) from exc
    new = ", ".join(f"new.{c}" for c in FTS_COLUMNS)
    old = ", ".join(f"old.{c}" for c in FTS_COLUMNS)
    for trigger in SQLITE_TRIGGERS.values():
        op.execute(trigger.format(columns=columns, new=new, old=old))


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for name in SQLITE_TRIGGERS:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
        op.execute("DROP TABLE IF EXISTS package_search_fts")
    elif dialect == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_package_search_document")
    op.drop_index("ix_package_search_terms_package_id", table_name="package_search_terms")
    op.drop_table("package_search_terms")
    op.drop_index("ix_package_search_name_owner", table_name="package_search")
    op.drop_index("ix_package_search_updated", table_name="package_search")
    op.drop_table("package_search")
