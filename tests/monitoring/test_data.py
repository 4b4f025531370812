"""Data collector: counts of the dbops tables and the zero-owner integrity probe."""

from __future__ import annotations

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
