"""pytest-alembic fixtures: the migration history against a fresh empty database per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from alembic.config import Config
from sqlalchemy import Engine, create_engine
from sqlalchemy.pool import NullPool

from dbops.config import to_sqlalchemy_url
from dbops.ops.migrate import alembic_config as make_alembic_config
from tests.fixtures.db import make_settings


@pytest.fixture
def alembic_config(empty_database: str) -> Config:
    """The same alembic Config `dbops migrate` builds (script location, lock settings)."""
    return make_alembic_config(empty_database, make_settings(empty_database))


@pytest.fixture
def alembic_engine(empty_database: str) -> Iterator[Engine]:
    """The engine pytest-alembic hands to env.py as ``config.attributes["connection"]``."""
    engine = create_engine(to_sqlalchemy_url(empty_database), poolclass=NullPool)
    yield engine
    engine.dispose()
