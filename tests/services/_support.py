"""Helpers shared by the service tests: cheap password hashing, statement counting, members."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
from argon2 import PasswordHasher

from dbops.db import Database
from dbops.models import Role
from dbops.services._base import Actor

#: argon2id at its cheapest: the tests create many users; the real default is far slower.
FAST_HASHER = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
SYSTEM = Actor.system("tests")
PASSWORD = "correct horse battery"

#: Every statement this database executed (pg_stat_statements), except the counting itself.
STATEMENT_CALLS = """
SELECT coalesce(sum(calls), 0)::bigint
FROM pg_stat_statements
WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND query NOT LIKE '%%pg_stat_statements%%'
"""


def statement_calls(conn: psycopg.Connection[Any]) -> int:
    """Statements run so far in the test database (needs an autocommit connection)."""
    row = conn.execute(STATEMENT_CALLS).fetchone()
    assert row is not None
    return int(row[0])


def add_member(db: Database, team_id: uuid.UUID, user_id: uuid.UUID, role: Role) -> None:
    """Put a membership row in place directly (the membership service is tested elsewhere)."""
    with db.connection() as conn:
        conn.execute(
            "INSERT INTO team_members (team_id, user_id, role) VALUES (%s, %s, %s)",
            (team_id, user_id, role.value),
        )
