"""Fixtures of the unit tests that work on a real metastore (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from dphub.metastore.db import make_engine, make_sessionmaker, upgrade


@pytest.fixture
def engine(metastore_url: str) -> Iterator[Engine]:
    """A migrated, empty metastore on each backend."""
    engine = make_engine(metastore_url)
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def db(engine: Engine) -> sessionmaker[Session]:
    return make_sessionmaker(engine)
