"""run_workload() against the test database: a paced, mixed load through the services."""

from __future__ import annotations

import threading
import time

import psycopg
import pytest

from dbops.config import to_libpq_url
from dbops.db import Database
from dbops.errors import InvalidInput, NotFound
from dbops.ops.seed import seed
from dbops.ops.workload import KINDS, run_workload
from dbops.services import MemoryCache

STATEMENT_CALLS = (
    "SELECT coalesce(sum(calls), 0) FROM pg_stat_statements "
    "WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) "
    "AND query ILIKE %(like)s"
)


@pytest.fixture
def seeded(clean_db: Database, database_url: str) -> Database:
    seed(clean_db, users=50, teams=5, seed=7)
    with psycopg.connect(to_libpq_url(database_url), autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    return clean_db


def _calls(database_url: str, like: str) -> int:
    with psycopg.connect(to_libpq_url(database_url)) as conn:
        row = conn.execute(STATEMENT_CALLS, {"like": like}).fetchone()
    assert row is not None
    return int(row[0])


def test_a_second_of_workload_runs_many_kinds_without_unexpected_errors(
    seeded: Database, database_url: str
) -> None:
    before = _calls(database_url, "%FROM teams AS t%")
    cache = MemoryCache(ttl_s=30)
    result = run_workload(seeded, duration_s=1.5, rate=80, seed=3, cache=cache, threads=2)

    assert result.unexpected == {}, result.last_unexpected
    assert result.total > 40
    assert len(result.ops) >= 6, result.ops
    assert set(result.ops) <= set(KINDS)
    # Expected errors are counted per kind, never more than the operations of that kind.
    assert all(result.errors[k] <= result.ops[k] for k in result.errors)
    # Paced: close to the asked rate, never a burst far above it.
    assert 30 < result.rate <= 80 * 1.15, result.rate
    assert 1.4 <= result.duration_s < 4
    # The database and the shared cache saw it.
    assert _calls(database_url, "%FROM teams AS t%") > before
    stats = cache.stats()
    assert stats.hits + stats.misses > 0


def test_stop_event_ends_an_open_ended_run(seeded: Database) -> None:
    stop = threading.Event()
    timer = threading.Timer(0.5, stop.set)
    timer.start()
    started = time.monotonic()
    result = run_workload(seeded, duration_s=None, rate=50, stop=stop, seed=1)
    assert time.monotonic() - started < 3
    assert result.total > 5
    assert result.unexpected == {}, result.last_unexpected


def test_wrong_passwords_are_expected_errors(seeded: Database, monkeypatch) -> None:
    monkeypatch.setattr("dbops.ops.workload.KINDS", {"login": 1})
    monkeypatch.setattr("dbops.ops.workload.WRONG_PASSWORD_SHARE", 1.0)
    result = run_workload(seeded, duration_s=0.5, rate=20, seed=2, threads=1)
    assert result.ops["login"] > 0
    assert result.errors == {"login": result.ops["login"]}
    assert result.unexpected == {}


def test_created_teams_are_deleted_again(seeded: Database, database_url: str, monkeypatch) -> None:
    monkeypatch.setattr("dbops.ops.workload.KINDS", {"team_create": 1})
    result = run_workload(seeded, duration_s=0.5, rate=30, seed=4, threads=1)
    assert result.ops["team_create"] >= 5
    assert result.unexpected == {}, result.last_unexpected
    with psycopg.connect(to_libpq_url(database_url)) as conn:
        row = conn.execute(
            "SELECT count(*) FILTER (WHERE deleted_at IS NULL), count(*) FROM teams "
            "WHERE slug LIKE 'wl-%'"
        ).fetchone()
    assert row == (0, result.ops["team_create"])


def test_without_demo_data_it_says_what_to_do(clean_db: Database) -> None:
    with pytest.raises(NotFound, match="dbops seed"):
        run_workload(clean_db, duration_s=0.1, rate=10)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"duration_s": 1, "rate": 0}, "rate"),
        ({"duration_s": 1, "rate": 5, "threads": 0}, "threads"),
        ({"duration_s": None, "rate": 5}, "duration_s"),
    ],
)
def test_bad_arguments(clean_db: Database, kwargs, field: str) -> None:
    with pytest.raises(InvalidInput) as err:
        run_workload(clean_db, **kwargs)
    assert err.value.field == field


def test_a_rate_below_one_per_second_is_a_rate(seeded: Database) -> None:
    """Any rate above 0 is valid: one operation every two seconds is a quiet demo, not an error."""
    result = run_workload(seeded, duration_s=0.2, rate=0.5, seed=5, threads=1)
    assert result.unexpected == {}, result.last_unexpected
    assert result.total <= 1


def test_only_a_share_of_logins_use_a_wrong_password(seeded: Database, monkeypatch) -> None:
    """WRONG_PASSWORD_SHARE (20 %) of the logins fail on purpose, not all of them.

    A login hashes a password (a few per second here); the seeded random stream makes the
    draws the same on every run, so a handful of logins is enough.
    """
    monkeypatch.setattr("dbops.ops.workload.KINDS", {"login": 1})
    result = run_workload(seeded, duration_s=1.5, rate=40, seed=6, threads=1)
    logins, failed = result.ops["login"], result.errors.get("login", 0)
    assert logins >= 2
    assert failed < logins, (failed, logins)
    assert result.unexpected == {}
