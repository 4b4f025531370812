"""Migrations: thin wrappers over ``alembic.command`` with a Config built from dbops settings."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine
from sqlalchemy.pool import NullPool

from dbops.config import Settings, to_sqlalchemy_url
from dbops.errors import translate_db_errors

__all__ = ["MIGRATIONS_DIR", "alembic_config", "upgrade"]

#: The alembic script directory (``migrations/`` at the repository root).
MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"


def alembic_config(url: str, settings: Settings) -> Config:
    """An alembic Config pointing at ``migrations/`` and ``url``, carrying the safety settings."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", to_sqlalchemy_url(url).replace("%", "%%"))
    cfg.attributes["lock_timeout_ms"] = settings.migration_lock_timeout_ms
    cfg.attributes["migration_wait_s"] = settings.migration_wait_s
    return cfg


def upgrade(url: str, settings: Settings, revision: str = "head") -> None:
    """Upgrade the database at ``url`` to ``revision``."""
    cfg = alembic_config(url, settings)
    engine = create_engine(to_sqlalchemy_url(url), poolclass=NullPool)
    with translate_db_errors(), engine.connect() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
    engine.dispose()
