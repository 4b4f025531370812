"""Data collector: counts of the dbops tables and the zero-owner integrity probe."""

from __future__ import annotations

from datetime import date, timedelta

from dbops.db import Database
from dbops.monitoring import Severity, collect_snapshot, evaluate
from tests.fixtures.monitoring import monitor_settings
from tests.services._helpers import INSERT_MEMBER, INSERT_TEAM, make_user, unique


def test_zero_owner_team_is_detected(clean_db: Database, database_url: str) -> None:
    owner = make_user(clean_db)
    member = make_user(clean_db)
    with clean_db.connection() as conn:
        owned = conn.execute(INSERT_TEAM, {"name": "Owned", "slug": unique("owned")}).fetchone()
        orphan = conn.execute(INSERT_TEAM, {"name": "Orphan", "slug": unique("orphan")}).fetchone()
        assert owned is not None
        assert orphan is not None
        conn.execute(INSERT_MEMBER, {"team_id": owned[0], "user_id": owner, "role": "OWNER"})
        conn.execute(INSERT_MEMBER, {"team_id": orphan[0], "user_id": member, "role": "MEMBER"})
    settings = monitor_settings(database_url)
    snap = collect_snapshot(clean_db, settings)
    assert snap.error("data") is None
    data = snap.data
    assert data is not None
    assert data.live_users == 2
    assert data.live_teams == 2
    assert {(c.key, c.count) for c in data.memberships_by_role} == {("OWNER", 1), ("MEMBER", 1)}
    assert data.zero_owner_teams == 1
    assert data.zero_owner_team_sample == (str(orphan[0]),)
    assert sum(d.count for d in data.signups_per_day) == 2
    assert {(t.members, t.teams) for t in data.team_sizes} == {(1, 2)}
    found = [f for f in evaluate(snap, settings) if f.check == "zero_owner_teams"]
    assert [f.severity for f in found] == [Severity.CRITICAL]

    # An owner who is soft-deleted does not count as an owner.
    with clean_db.connection() as conn:
        conn.execute("UPDATE users SET deleted_at = now() WHERE id = %s", (owner,))
    snap = collect_snapshot(clean_db, settings)
    assert snap.data is not None
    assert snap.data.zero_owner_teams == 2


SET_CREATED = """
UPDATE users SET created_at = (%(day)s::date + %(at)s::interval)::timestamp AT TIME ZONE 'UTC'
WHERE id = %(id)s
"""
TODAY_UTC = "SELECT (now() AT TIME ZONE 'UTC')::date"


def _today(db: Database) -> date:
    with db.connection() as conn:
        row = conn.execute(TODAY_UTC).fetchone()
    assert row is not None
    return row[0]


def test_signups_cover_thirty_utc_days_today_included(
    clean_db: Database, database_url: str
) -> None:
    """The window's first instant counts, the last second before it does not (hand-set times)."""
    first, before = make_user(clean_db), make_user(clean_db)
    make_user(clean_db)  # created now: today counts
    settings = monitor_settings(database_url)
    for _ in range(3):  # a run across midnight UTC moves the window: measure again
        today = _today(clean_db)
        with clean_db.connection() as conn:
            day29 = {"day": today - timedelta(days=29), "at": "0 seconds", "id": first}
            conn.execute(SET_CREATED, day29)
            day30 = {"day": today - timedelta(days=30), "at": "23:59:59.999", "id": before}
            conn.execute(SET_CREATED, day30)
        snap = collect_snapshot(clean_db, settings)
        if _today(clean_db) == today:
            break
    assert snap.data is not None
    days = {d.day: d.count for d in snap.data.signups_per_day}
    assert days == {today - timedelta(days=29): 1, today: 1}, days


def test_no_dbops_tables_means_no_data_section(mon_db: Database, mon_url: str) -> None:
    snap = collect_snapshot(mon_db, monitor_settings(mon_url))
    assert snap.data is None
    assert snap.error("data") is None
    assert "zero_owner_teams" not in {f.check for f in evaluate(snap, monitor_settings(mon_url))}


def test_the_zero_owner_sample_holds_ten_of_twelve(clean_db: Database, database_url: str) -> None:
    """Twelve teams without an owner: all counted, ten of their ids named (a bounded sample)."""
    with clean_db.connection() as conn:
        orphans = {
            str(row[0])
            for row in (
                conn.execute(
                    INSERT_TEAM, {"name": f"Orphan {k}", "slug": unique("orphan")}
                ).fetchone()
                for k in range(12)
            )
            if row is not None
        }
    snap = collect_snapshot(clean_db, monitor_settings(database_url))
    assert snap.data is not None
    assert snap.data.zero_owner_teams == 12
    assert len(snap.data.zero_owner_team_sample) == 10
    assert set(snap.data.zero_owner_team_sample) <= orphans
