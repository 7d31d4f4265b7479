"""Metastore schema: Alembic migrations build it, match the models, and timestamps stay in UTC."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect, select, text
from sqlalchemy.exc import StatementError

from dphub.findability import ENGINE_COLUMNS, ENGINE_INDEXES, ENGINE_TABLES
from dphub.metastore.db import (
    alembic_config,
    current_revision,
    make_engine,
    make_sessionmaker,
    transaction,
    upgrade,
)
from dphub.metastore.models import Base, Package, User

TABLES = {
    "users",
    "api_keys",
    "packages",
    "revisions",
    "revision_files",
    "upload_sessions",
    "upload_session_files",
    "multipart_uploads",
    "jobs",
    "revision_outputs",
    "datastore_tables",
    "publishers",
    "memberships",
    "collaborators",
    "signing_keys",
    "audit_events",
    "rate_counters",
    "trusted_publishers",
    "oidc_identities",
    "oidc_logins",
    "package_tags",
    "publisher_quotas",
    "events",
    "webhooks",
    "webhook_deliveries",
    "package_search",
    "package_search_terms",
}


@pytest.fixture
def engine(metastore_url: str) -> Iterator[Engine]:
    engine = make_engine(metastore_url)
    yield engine
    engine.dispose()


@pytest.fixture
def migrated(engine: Engine) -> Engine:
    upgrade(engine)
    return engine


def test_a_fresh_database_has_no_revision(engine: Engine) -> None:
    assert current_revision(engine) is None
    assert inspect(engine).get_table_names() == []


def _tables(engine: Engine) -> set[str]:
    """The tables of the models (and Alembic's), leaving out the full-text index's own."""
    return set(inspect(engine).get_table_names()) - ENGINE_TABLES


def test_upgrade_creates_every_table(migrated: Engine) -> None:
    assert _tables(migrated) == TABLES | {"alembic_version"}
    assert set(Base.metadata.tables) == TABLES


def test_upgrade_creates_the_full_text_index(migrated: Engine) -> None:
    inspector = inspect(migrated)
    if migrated.dialect.name == "sqlite":
        assert set(inspector.get_table_names()) >= ENGINE_TABLES
    else:
        columns = {c["name"] for c in inspector.get_columns("package_search")}
        assert {column for _, column in ENGINE_COLUMNS} <= columns
        indexes = {i["name"] for i in inspector.get_indexes("package_search")}
        assert indexes >= ENGINE_INDEXES


def test_upgrade_is_idempotent_and_reaches_head(migrated: Engine) -> None:
    head = ScriptDirectory.from_config(alembic_config(migrated)).get_current_head()
    assert head == "0006"
    assert current_revision(migrated) == head
    upgrade(migrated)
    assert current_revision(migrated) == "0006"
    assert _tables(migrated) == TABLES | {"alembic_version"}


def test_upgrade_keeps_existing_rows(migrated: Engine) -> None:
    factory = make_sessionmaker(migrated)
    with transaction(factory) as session:
        session.add(User(username="ann", email="ann@example.org"))
    upgrade(migrated)
    with factory() as session:
        assert session.scalars(select(User.username)).all() == ["ann"]


def _include_name(name: str | None, type_: str, parent_names: dict[str, Any]) -> bool:
    return not (type_ == "table" and name in ENGINE_TABLES)


def _include_object(
    item: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
) -> bool:
    """Leave out what the full-text engine keeps beside the models (see dphub.findability)."""
    if type_ == "column":
        return (item.table.name, name) not in ENGINE_COLUMNS
    if type_ == "index":
        return name not in ENGINE_INDEXES
    return not (type_ == "table" and name in ENGINE_TABLES)


def test_the_migrations_match_the_models(migrated: Engine) -> None:
    opts = {
        "compare_type": True,
        "include_name": _include_name,
        "include_object": _include_object,
    }
    with migrated.connect() as connection:
        context = MigrationContext.configure(connection, opts=opts)
        differences = compare_metadata(context, Base.metadata)
    assert differences == []


def test_the_comparison_sees_the_engine_objects_unless_told(migrated: Engine) -> None:
    # Guards the test above: without the filter, the full-text engine's objects show up.
    with migrated.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, Base.metadata)
    removed: set[object] = set()
    for diff in differences:
        if isinstance(diff, tuple) and diff[0] in ("remove_table", "remove_index"):
            removed.add(diff[1].name)
        elif isinstance(diff, tuple) and diff[0] == "remove_column":
            removed.add((diff[2], diff[3].name))
    if migrated.dialect.name == "sqlite":
        assert removed == set(ENGINE_TABLES)
    else:
        assert removed == set(ENGINE_INDEXES) | set(ENGINE_COLUMNS)


def test_sqlite_connections_enforce_foreign_keys(tmp_path: Path) -> None:
    migrated = make_engine(f"sqlite:///{tmp_path / 'pragmas.db'}")
    with migrated.connect() as connection:
        assert connection.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"


def test_transaction_rolls_back_on_error(migrated: Engine) -> None:
    factory = make_sessionmaker(migrated)

    def add_then_fail() -> None:
        with transaction(factory) as session:
            session.add(User(username="bob", email="bob@example.org"))
            session.flush()
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        add_then_fail()
    with factory() as session:
        assert session.scalars(select(User)).all() == []


def _package(created: datetime) -> Package:
    return Package(
        owner="core", name="gdp", findability="published", created_at=created, modified_at=created
    )


def test_utc_datetime_round_trips_timezone_aware(migrated: Engine) -> None:
    factory = make_sessionmaker(migrated)
    paris = timezone(timedelta(hours=2))
    created = datetime(2024, 5, 17, 14, 30, 15, 123456, tzinfo=paris)
    with transaction(factory) as session:
        session.add(_package(created))
    with factory() as session:
        package = session.scalars(select(Package)).one()
    assert package.created_at.tzinfo is not None
    assert package.created_at.utcoffset() == timedelta(0)
    assert package.created_at == created
    assert package.created_at == datetime(2024, 5, 17, 12, 30, 15, 123456, tzinfo=UTC)


def test_default_timestamps_are_timezone_aware(migrated: Engine) -> None:
    factory = make_sessionmaker(migrated)
    before = datetime.now(UTC)
    with transaction(factory) as session:
        session.add(User(username="cy", email="cy@example.org"))
    with factory() as session:
        created = session.scalars(select(User.created_at)).one()
    assert created.tzinfo is not None
    assert before - timedelta(seconds=1) <= created <= datetime.now(UTC)


def test_utc_datetime_refuses_naive_datetimes(migrated: Engine) -> None:
    factory = make_sessionmaker(migrated)

    def add_naive() -> None:
        with transaction(factory) as session:
            session.add(_package(datetime(2024, 5, 17, 14, 30)))

    with pytest.raises(StatementError, match="naive datetime"):
        add_naive()
    with factory() as session:
        assert session.scalars(select(Package)).all() == []


def test_downgrade_to_base_and_up_again(migrated: Engine) -> None:
    command.downgrade(alembic_config(migrated), "base")
    assert current_revision(migrated) is None
    assert set(inspect(migrated).get_table_names()) == {"alembic_version"}
    upgrade(migrated)
    assert current_revision(migrated) == "0006"
    assert _tables(migrated) == TABLES | {"alembic_version"}


def test_compare_metadata_sees_a_missing_schema(engine: Engine) -> None:
    # Guards the test above: on an empty database the comparison must report every table.
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, Base.metadata)
    added = {diff[1].name for diff in differences if diff[0] == "add_table"}
    assert added == TABLES
