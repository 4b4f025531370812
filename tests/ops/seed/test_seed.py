"""seed() against PostgreSQL: counts, idempotence, replacing, personas, locations, atomicity."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from argon2 import PasswordHasher
from psycopg import sql

from dbops.config import to_libpq_url
from dbops.db import Database, open_database
from dbops.errors import Conflict, InvalidInput, WouldReplaceData
from dbops.ops.migrate import upgrade
from dbops.ops.seed import DEMO_PASSWORD, MAX_USERS, PERSONAS, SeedResult, seed
from dbops.services import Actor, TeamService
from tests.fixtures.db import make_settings

SMALL: dict[str, Any] = {"users": 2_000, "teams": 200}

SEEDED_COUNTS = """
SELECT (SELECT count(*) FROM users WHERE profile ? 'seed') AS users,
       (SELECT count(*) FROM teams WHERE settings ? 'seed') AS teams,
       (SELECT count(*) FROM team_members tm JOIN teams t ON t.id = tm.team_id
         WHERE t.settings ? 'seed') AS memberships,
       (SELECT count(*) FROM invitations i JOIN teams t ON t.id = i.team_id
         WHERE t.settings ? 'seed') AS invitations,
       (SELECT count(*) FROM team_locations l JOIN teams t ON t.id = l.team_id
         WHERE t.settings ? 'seed') AS locations
"""


def _counts(db: Database) -> tuple[int, int, int, int, int]:
    with db.connection() as conn:
        row = conn.execute(SEEDED_COUNTS).fetchone()
    assert row is not None
    return tuple(row)


def _expected(result: SeedResult) -> tuple[int, int, int, int, int]:
    return (result.users, result.teams, result.memberships, result.invitations, result.locations)


def _scalar(db: Database, query: str, params: dict[str, Any] | None = None) -> Any:
    with db.connection() as conn:
        row = conn.execute(query, params).fetchone()
    assert row is not None
    return row[0]


def _rows(db: Database, query: str, params: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
    with db.connection() as conn:
        return conn.execute(query, params).fetchall()


def _truncate(db: Database) -> None:
    with db.connection() as conn:
        conn.execute("TRUNCATE invitations, team_members, teams, users CASCADE")


def _identity(db: Database) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    users = _rows(db, "SELECT id, email FROM users WHERE profile ? 'seed' ORDER BY id")
    teams = _rows(db, "SELECT id, slug FROM teams WHERE settings ? 'seed' ORDER BY id")
    return users, teams


@pytest.fixture
def seeded(clean_db: Database) -> tuple[Database, SeedResult]:
    """The shared database with a small seed (seed 42) loaded."""
    return clean_db, seed(clean_db, **SMALL)


def test_counts_match_and_every_table_is_logged(
    clean_db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="dbops.ops.seed"):
        started = time.perf_counter()
        result = seed(clean_db, **SMALL)
        took = time.perf_counter() - started
    assert result.created is True
    # The ANALYZE's duration in the log lies within the whole run's.
    (analyzed,) = [r.getMessage() for r in caplog.records if "analyzed in" in r.getMessage()]
    assert 0 <= float(analyzed.split("analyzed in ")[1].split(" s")[0]) <= took
    assert result.users == SMALL["users"] + len(PERSONAS)
    assert result.teams == SMALL["teams"]
    assert result.memberships >= SMALL["teams"]  # at least the owners
    assert result.invitations > 0
    assert result.locations > 0
    assert result.replaced_rows == 0
    assert _counts(clean_db) == _expected(result)
    logged = {r.table: r.rows for r in caplog.records if hasattr(r, "table")}  # type: ignore[attr-defined]
    assert logged == {
        "users": result.users,
        "teams": result.teams,
        "team_members": result.memberships,
        "invitations": result.invitations,
        "team_locations": result.locations,
    }


def test_same_seed_gives_same_rows_and_another_seed_replaces_them(clean_db: Database) -> None:
    first = seed(clean_db, **SMALL)
    users_a, teams_a = _identity(clean_db)
    _truncate(clean_db)
    again = seed(clean_db, **SMALL)
    assert again.created is True
    assert _identity(clean_db) == (users_a, teams_a)
    assert _expected(again) == _expected(first)

    # Seed 7 happens to make fewer memberships than seed 42: replacing asks first.
    with pytest.raises(WouldReplaceData):
        seed(clean_db, **SMALL, seed=7)
    other = seed(clean_db, **SMALL, seed=7, replace=True)
    users_b, teams_b = _identity(clean_db)
    assert other.created is True
    assert other.replaced_rows == sum(_expected(again))
    assert not {u[0] for u in users_a} & {u[0] for u in users_b}
    assert [u[1] for u in users_a] != [u[1] for u in users_b]
    assert not {t[0] for t in teams_a} & {t[0] for t in teams_b}
    # Replaced, not added to: only the new seed's rows are there.
    assert _counts(clean_db) == _expected(other)


def test_second_run_with_same_arguments_is_a_no_op(seeded: tuple[Database, SeedResult]) -> None:
    db, first = seeded
    marker_xmin = "SELECT xmin::text FROM users WHERE email = %(email)s"
    before = _scalar(db, marker_xmin, {"email": PERSONAS[0].email})
    second = seed(db, **SMALL)
    assert second.created is False
    assert second.replaced_rows == 0
    assert _expected(second) == _expected(first)
    assert _counts(db) == _expected(first)
    assert _scalar(db, marker_xmin, {"email": PERSONAS[0].email}) == before  # nothing rewritten


def test_missing_seeded_rows_are_restored(seeded: tuple[Database, SeedResult]) -> None:
    db, first = seeded
    with db.connection() as conn:
        conn.execute(
            "DELETE FROM users WHERE id IN "
            "(SELECT id FROM users WHERE email LIKE '%%@example.com' LIMIT 5)"
        )
    result = seed(db, **SMALL)
    assert result.created is True
    assert _counts(db) == _expected(first)


def test_an_extra_seeded_team_makes_the_next_run_replace_the_seed(
    seeded: tuple[Database, SeedResult],
) -> None:
    """The counts must match both ways: a row that looks seeded but was not is noticed too."""
    db, first = seeded
    with db.connection() as conn:
        conn.execute(
            "INSERT INTO teams (name, slug, settings) VALUES "
            "('Stray', 'stray-team', '{\"seed\": 42, \"plan\": \"free\"}')"
        )
    result = seed(db, **SMALL, replace=True)
    assert result.created is True
    assert _counts(db) == _expected(first)
    assert _scalar(db, "SELECT count(*) FROM teams WHERE slug = 'stray-team'") == 0


def test_other_arguments_replace_the_seed_and_keep_other_rows(clean_db: Database) -> None:
    with clean_db.connection() as conn:
        conn.execute(
            "INSERT INTO users (id, email, password_hash, display_name) VALUES "
            "('00000000-0000-4000-8000-000000000001', 'real.person@corp.test', 'x', 'Real')"
        )
        conn.execute(
            "INSERT INTO teams (id, name, slug) VALUES "
            "('00000000-0000-4000-8000-0000000000aa', 'Real Team', 'real-team')"
        )
        conn.execute(
            "INSERT INTO team_members (team_id, user_id, role) VALUES "
            "('00000000-0000-4000-8000-0000000000aa', '00000000-0000-4000-8000-000000000001', "
            "'OWNER')"
        )
    first = seed(clean_db, users=1_000, teams=100)
    result = seed(clean_db, users=1_500, teams=50)  # loads more rows than it deletes: no question
    assert result.created is True
    assert result.replaced_rows == sum(_expected(first))
    assert _counts(clean_db) == _expected(result)
    assert _scalar(clean_db, "SELECT count(*) FROM users") == result.users + 1
    assert _scalar(clean_db, "SELECT count(*) FROM teams") == result.teams + 1
    assert _rows(
        clean_db,
        "SELECT u.email, t.slug, tm.role::text FROM team_members tm "
        "JOIN users u ON u.id = tm.user_id JOIN teams t ON t.id = tm.team_id "
        "WHERE NOT t.settings ? 'seed'",
    ) == [("real.person@corp.test", "real-team", "OWNER")]


def test_a_seed_of_users_only_is_replaced_by_one_with_teams(clean_db: Database) -> None:
    """Seeded users and no seeded team: the next run still removes the previous rows."""
    users_only = seed(clean_db, users=40, teams=0, seed=3)
    assert (users_only.users, users_only.teams) == (40 + len(PERSONAS), 0)
    result = seed(clean_db, users=40, teams=4, seed=3)
    assert result.created is True
    assert result.replaced_rows == sum(_expected(users_only))
    assert _counts(clean_db) == _expected(result)


def test_the_default_seed_is_ten_thousand_users_in_a_thousand_teams(clean_db: Database) -> None:
    """What `seed(db)` loads without arguments (the README's demo size), seed 42."""
    result = seed(clean_db)
    assert (result.users, result.teams) == (10_000 + len(PERSONAS), 1_000)
    assert _scalar(clean_db, "SELECT count(*) FROM users") == 10_000 + len(PERSONAS)
    again = seed(clean_db, users=10_000, teams=1_000, seed=42)
    assert again.created is False  # the same arguments: nothing to do


def test_personas_exist_with_their_memberships(seeded: tuple[Database, SeedResult]) -> None:
    db, _ = seeded
    rows = _rows(
        db,
        "SELECT u.email, u.role::text, u.password_hash, "
        "       count(tm.team_id) FILTER (WHERE tm.role = 'OWNER'), "
        "       count(tm.team_id) FILTER (WHERE tm.role = 'MEMBER') "
        "FROM users u LEFT JOIN team_members tm ON tm.user_id = u.id "
        "WHERE u.email LIKE '%%@demo.dbops.dev' GROUP BY u.id ORDER BY u.email",
    )
    by_email = {r[0]: r for r in rows}
    assert set(by_email) == {p.email for p in PERSONAS}
    for persona in PERSONAS:
        _, role, password_hash, owner_of, member_of = by_email[persona.email]
        assert role == persona.role
        assert (owner_of, member_of) == (persona.owner_of, persona.member_of)
        assert PasswordHasher().verify(password_hash, DEMO_PASSWORD)
    assert by_email["ada.admin@demo.dbops.dev"][1] == "OWNER"
    assert by_email["olivia.owner@demo.dbops.dev"][3] >= 3
    assert by_email["max.member@demo.dbops.dev"][4] >= 20
    marker = _scalar(
        db, "SELECT profile -> 'seed_run' FROM users WHERE email = 'ada.admin@demo.dbops.dev'"
    )
    assert marker["seed"] == 42
    assert (marker["users"], marker["teams"]) == (SMALL["users"], SMALL["teams"])


def test_every_team_has_an_owner_and_sizes_are_skewed(seeded: tuple[Database, SeedResult]) -> None:
    db, _ = seeded
    ownerless = _scalar(
        db,
        "SELECT count(*) FROM teams t WHERE NOT EXISTS "
        "(SELECT 1 FROM team_members tm WHERE tm.team_id = t.id AND tm.role = 'OWNER')",
    )
    assert ownerless == 0
    median, biggest = _rows(
        db,
        "SELECT percentile_disc(0.5) WITHIN GROUP (ORDER BY n), max(n) FROM "
        "(SELECT count(*) AS n FROM team_members GROUP BY team_id) sizes",
    )[0]
    assert median <= 3  # most teams are small ...
    assert biggest >= 10 * median  # ... and a few are big


def test_rows_have_realistic_shapes(seeded: tuple[Database, SeedResult]) -> None:
    db, _ = seeded
    bad_emails = _scalar(
        db,
        "SELECT count(*) FROM users WHERE profile ? 'seed' AND email !~ "
        "'^[a-z]+\\.[a-z]+[0-9]*@(example\\.com|demo\\.dbops\\.dev)$'",
    )
    assert bad_emails == 0
    profile_keys = _rows(
        db, "SELECT DISTINCT jsonb_object_keys(profile) FROM users WHERE profile ? 'seed'"
    )
    assert {"locale", "timezone", "title", "seed"} <= {k for (k,) in profile_keys}
    assert _scalar(db, "SELECT count(*) FROM users WHERE cardinality(tags) > 0") > 0
    # Three years of history (HISTORY_DAYS): sign-ups and teams spread over them, none later
    # than the seed's "now".
    span = _rows(
        db,
        "SELECT min(created_at) < now() - interval '2 years', "
        "min(created_at) > now() - interval '3 years 1 day', max(created_at) <= now() "
        "FROM users WHERE profile ? 'seed'",
    )
    assert span == [(True, True, True)]
    # ... at any time of day: minutes and seconds take all their values.
    variety = _rows(
        db,
        "SELECT count(DISTINCT extract(minute FROM created_at)), "
        "count(DISTINCT floor(extract(second FROM created_at))), "
        "count(DISTINCT extract(hour FROM created_at)) FROM users WHERE profile ? 'seed'",
    )
    assert variety == [(60, 60, 24)]
    plans = _rows(db, "SELECT DISTINCT settings ->> 'plan' FROM teams ORDER BY 1")
    assert plans == [("enterprise",), ("free",), ("pro",)]
    assert (
        _scalar(
            db,
            "SELECT count(*) FROM teams WHERE slug !~ '^[a-z0-9]+(-[a-z0-9]+)*$' "
            "OR char_length(slug) > 63 OR jsonb_typeof(settings -> 'features') <> 'array'",
        )
        == 0
    )


def test_invitations_respect_their_rules(seeded: tuple[Database, SeedResult]) -> None:
    db, _ = seeded
    statuses = dict(_rows(db, "SELECT status::text, count(*) FROM invitations GROUP BY status"))
    assert set(statuses) == {"pending", "accepted", "expired", "revoked"}
    broken = _scalar(
        db,
        "SELECT count(*) FROM invitations WHERE octet_length(token_hash) <> 32 "
        "OR expires_at <= created_at "
        "OR (status = 'accepted') <> (accepted_at IS NOT NULL) "
        "OR (status = 'pending' AND expires_at <= now()) "
        "OR (status = 'expired' AND expires_at > now()) "
        "OR invited_by IS NULL",
    )
    assert broken == 0
    # Expired ones expired over the last weeks (up to 83 days), not all at once.
    ages = _rows(
        db,
        "SELECT max(now() - expires_at) > interval '7 days', "
        "max(now() - expires_at) <= interval '84 days' FROM invitations WHERE status = 'expired'",
    )
    assert ages == [(True, True)]
    inviter_is_member = _scalar(
        db,
        "SELECT bool_and(EXISTS (SELECT 1 FROM team_members tm "
        "WHERE tm.team_id = i.team_id AND tm.user_id = i.invited_by AND tm.role = 'OWNER')) "
        "FROM invitations i",
    )
    assert inviter_is_member is True


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"users": -1}, "users"),
        ({"users": MAX_USERS + 1}, "users"),
        ({"users": True}, "users"),
        ({"teams": -5}, "teams"),
        ({"users": 10, "teams": 11}, "teams"),
        ({"seed": "42"}, "seed"),
    ],
)
def test_invalid_arguments_are_refused_before_any_write(
    seeded: tuple[Database, SeedResult], kwargs: dict[str, Any], field: str
) -> None:
    db, first = seeded
    with pytest.raises(InvalidInput) as info:
        seed(db, **kwargs)
    assert info.value.field == field
    assert _counts(db) == _expected(first)  # the earlier seed is untouched


def test_only_personas_when_no_users_or_teams(clean_db: Database) -> None:
    result = seed(clean_db, users=0, teams=0)
    assert _expected(result) == (len(PERSONAS), 0, 0, 0, 0)
    assert _counts(clean_db) == _expected(result)


def test_a_database_error_leaves_nothing_behind(clean_db: Database) -> None:
    seed(clean_db, users=500, teams=50, seed=2)
    slug = _scalar(clean_db, "SELECT slug FROM teams ORDER BY slug LIMIT 1")
    _truncate(clean_db)
    previous = seed(clean_db, users=500, teams=50, seed=1)
    # A real team takes a slug the seed=2 run will generate: its teams COPY fails after the
    # users COPY has already gone through.
    with clean_db.connection() as conn:
        conn.execute("INSERT INTO teams (name, slug) VALUES ('Squatter', %(slug)s)", {"slug": slug})
    with pytest.raises(Conflict) as info:
        seed(clean_db, users=500, teams=50, seed=2, replace=True)
    assert info.value.field == "slug"
    # The seed=1 data is still there, unchanged; nothing of seed=2 was kept.
    assert _counts(clean_db) == _expected(previous)
    assert _scalar(clean_db, "SELECT count(*) FROM users WHERE profile @> '{\"seed\": 2}'") == 0
    marker = _scalar(
        clean_db,
        "SELECT profile -> 'seed_run' ->> 'seed' FROM users WHERE email = %(e)s",
        {"e": PERSONAS[0].email},
    )
    assert marker == "1"


def test_progress_callback_reports_each_table_up_to_its_total(
    clean_db: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    calls: list[tuple[str, int, int]] = []
    result = seed(
        clean_db,
        users=25_000,
        teams=300,
        progress=lambda table, done, total: calls.append((table, done, total)),
    )
    tables = list(dict.fromkeys(table for table, _, _ in calls))
    assert tables == ["users", "teams", "team_members", "invitations", "team_locations"]
    final = {table: (done, total) for table, done, total in calls}
    assert final == {
        "users": (result.users, result.users),
        "teams": (result.teams, result.teams),
        "team_members": (result.memberships, result.memberships),
        "invitations": (result.invitations, result.invitations),
        "team_locations": (result.locations, result.locations),
    }
    users = [done for table, done, _ in calls if table == "users"]
    assert users[0] == 0
    assert users == sorted(users)
    assert len(users) > 3  # reported per chunk, not only at the end
    assert capsys.readouterr() == ("", "")  # ops draws nothing


def _plan_nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _plan_nodes(child)


def _explain(db: Database, query: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    with db.connection() as conn:
        row = conn.execute(
            sql.SQL("EXPLAIN (FORMAT JSON) ") + sql.SQL(query),
            params,
        ).fetchone()
    assert row is not None
    return list(_plan_nodes(row[0][0]["Plan"]))


USER_BY_EMAIL = """
SELECT id, email, display_name FROM users
WHERE email = lower(%(email)s) AND deleted_at IS NULL
"""
TEAMS_OF_USER = """
SELECT t.id, t.name, tm.role FROM team_members tm JOIN teams t ON t.id = tm.team_id
WHERE tm.user_id = %(user_id)s AND t.deleted_at IS NULL
"""


def test_seeded_database_uses_indexes_for_hot_lookups(clean_db: Database) -> None:
    seed(clean_db, users=20_000, teams=2_000)
    email, user_id = _rows(
        clean_db,
        "SELECT email, id FROM users WHERE email LIKE '%%@example.com' ORDER BY id LIMIT 1",
    )[0]

    nodes = _explain(clean_db, USER_BY_EMAIL, {"email": email.upper()})
    assert ("Index Scan", "uq_users_email_live") in {
        (n["Node Type"], n.get("Index Name")) for n in nodes
    }

    nodes = _explain(clean_db, TEAMS_OF_USER, {"user_id": user_id})
    used = {(n["Node Type"], n.get("Index Name")) for n in nodes if "Index Name" in n}
    assert used & {
        ("Index Scan", "ix_team_members_user_id"),
        ("Bitmap Index Scan", "ix_team_members_user_id"),
        ("Index Only Scan", "ix_team_members_user_id"),
    }
    assert "Seq Scan" not in {n["Node Type"] for n in nodes}


INDEX_DEFINITIONS = """
SELECT tablename, indexname, indexdef FROM pg_indexes
WHERE tablename IN ('users', 'teams', 'team_members', 'invitations', 'team_locations')
ORDER BY tablename, indexname
"""


def test_large_loads_rebuild_the_same_indexes(
    clean_db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Above the threshold secondary indexes are dropped and rebuilt, identical, in the txn."""
    monkeypatch.setattr("dbops.ops.seed.DEFER_INDEXES_MIN_ROWS", 100)
    with clean_db.connection() as conn:
        conn.execute("COMMENT ON INDEX ix_team_members_user_id IS 'teams of a user'")
    before = _rows(clean_db, INDEX_DEFINITIONS)
    assert "ix_team_locations_location" in {name for _, name, _ in before}
    result = seed(clean_db, users=2_000, teams=400)  # 160 locations: their GiST index too
    assert result.locations > 100
    assert _counts(clean_db) == _expected(result)
    assert _rows(clean_db, INDEX_DEFINITIONS) == before
    comment = _scalar(
        clean_db, "SELECT obj_description('ix_team_members_user_id'::regclass, 'pg_class')"
    )
    assert comment == "teams of a user"
    invalid = _scalar(clean_db, "SELECT count(*) FROM pg_index WHERE NOT indisvalid")
    assert invalid == 0


def test_a_failed_large_load_keeps_indexes_and_data(
    clean_db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A duplicate found while rebuilding a unique index rolls back the drop as well."""
    monkeypatch.setattr("dbops.ops.seed.DEFER_INDEXES_MIN_ROWS", 100)
    seed(clean_db, users=500, teams=50, seed=2)
    email = _scalar(clean_db, "SELECT email FROM users WHERE email LIKE '%%@example.com' LIMIT 1")
    _truncate(clean_db)
    before = _rows(clean_db, INDEX_DEFINITIONS)
    with clean_db.connection() as conn:
        conn.execute(
            "INSERT INTO users (email, password_hash, display_name) "
            "VALUES (%(email)s, 'x', 'Early Bird')",
            {"email": email},
        )
    with pytest.raises(Conflict) as info:
        seed(clean_db, users=500, teams=50, seed=2)
    assert info.value.field == "email"
    assert _rows(clean_db, INDEX_DEFINITIONS) == before
    assert _scalar(clean_db, "SELECT count(*) FROM users") == 1


def test_a_seed_that_would_delete_more_than_it_adds_asks_first(
    seeded: tuple[Database, SeedResult],
) -> None:
    db, first = seeded
    with pytest.raises(WouldReplaceData) as info:
        seed(db, users=100, teams=10)
    existing = sum(_expected(first))
    assert info.value.existing_rows == existing
    assert 0 < info.value.new_rows < existing
    assert f"({existing:,} rows)" in str(info.value)
    assert "replace=True / --replace" in str(info.value)
    assert isinstance(info.value, Conflict)
    assert _counts(db) == _expected(first)  # nothing deleted
    smaller = seed(db, users=100, teams=10, replace=True)
    assert smaller.created is True
    assert smaller.replaced_rows == existing
    assert sum(_expected(smaller)) == info.value.new_rows
    assert _counts(db) == _expected(smaller)
    # The same arguments again: a no-op, no question asked.
    assert seed(db, users=100, teams=10).created is False


def test_seeded_teams_have_locations_that_teams_near_finds(
    seeded: tuple[Database, SeedResult],
) -> None:
    db, result = seeded
    assert 0.3 * result.teams < result.locations < 0.5 * result.teams
    paris = TeamService(db).teams_near(Actor.system("test"), 48.8566, 2.3522, 60, limit=100)
    assert paris, "no seeded team near Paris"
    assert all(near.distance_km <= 60 for near in paris)
    seeded_ids = {row[0] for row in _identity(db)[1]}
    assert {near.team.id for near in paris} <= seeded_ids
    assert TeamService(db).teams_near(Actor.system("test"), -60.0, -140.0, 500) == []
    marker = _scalar(
        db, "SELECT profile -> 'seed_run' FROM users WHERE email = 'ada.admin@demo.dbops.dev'"
    )
    assert marker["locations"] == result.locations


def test_without_team_locations_the_seed_skips_them(empty_database: str) -> None:
    """A server without PostGIS has no team_locations table: the rest is seeded as usual."""
    settings = make_settings(empty_database)
    upgrade(empty_database, settings, "head")
    with psycopg.connect(to_libpq_url(empty_database), autocommit=True) as conn:
        conn.execute("DROP TABLE team_locations")
    with open_database(settings, empty_database) as db:
        result = seed(db, users=300, teams=30)
        assert result.created is True
        assert result.locations == 0
        assert _scalar(db, "SELECT count(*) FROM teams") == 30
        assert seed(db, users=300, teams=30).created is False


def test_the_seed_transaction_runs_with_its_own_timeouts(
    clean_db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Read on the seed's own connection, inside its transaction, once the lock is taken:
    15 minutes for a statement and for idle in transaction (the session's 30 s would cut a
    million-row load), 256 MB to build the indexes."""
    from dbops.ops import seed as seed_module
    from tests.fixtures.db import session_settings

    seen: list[tuple[str, ...]] = []
    execute = psycopg.Connection.execute

    def spying(self: psycopg.Connection[Any], query: Any, *args: Any, **kwargs: Any) -> Any:
        result = execute(self, query, *args, **kwargs)
        if query == seed_module.TAKE_SEED_LOCK:
            seen.append(
                session_settings(
                    self,
                    "statement_timeout",
                    "idle_in_transaction_session_timeout",
                    "maintenance_work_mem",
                )
            )
        return result

    monkeypatch.setattr(psycopg.Connection, "execute", spying)
    seed(clean_db, users=20, teams=2, seed=5)
    assert seen == [("15min", "15min", "256MB")]
    # ... and nothing of it is left on the pooled connection afterwards.
    with clean_db.connection() as conn:
        after = session_settings(conn, "statement_timeout", "maintenance_work_mem")
    assert after == (f"{clean_db.settings.statement_timeout_ms // 1000}s", "64MB")
