"""dbops.ops.archive on the private cluster: exact rows moved, owner rule, crash, restore."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from dbops.db import Database, EmbeddedCluster
from dbops.errors import ArchiveError, InvalidInput, NotFound
from dbops.ops import archive
from dbops.ops.archive import ArchiveReport, TableCounts, moving
from tests.fixtures.db import session_settings

OLD = timedelta(days=100)
YOUNG = timedelta(days=10)
CUTOFF = timedelta(days=90)
DBOPS_SCRIPT = Path(sys.executable).parent / "dbops"

ARCHIVE_TABLES = (
    "archive.users",
    "archive.teams",
    "archive.team_members",
    "archive.invitations",
    "archive.invitation_senders",
    "archive.team_locations",
)

#: The comparable columns of each table, as hashable values; the same in public and archive.
COLUMNS = {
    "users": "id, email, password_hash, display_name, role::text, profile::text, tags::text, "
    "created_at, updated_at, deleted_at, phone_ciphertext, phone_key_version, phone_blind_index",
    "teams": "id, name, slug, settings::text, created_at, updated_at, deleted_at",
    "team_members": "team_id, user_id, role::text, created_at, updated_at",
    "invitations": "id, team_id, email, role::text, invited_by, token_hash, status::text, "
    "expires_at, accepted_at, created_at, updated_at",
    "team_locations": "team_id, location::text, created_at, updated_at",
}
Rows = dict[str, set[tuple[Any, ...]]]


def rows(conn: psycopg.Connection[Any], schema: str) -> Rows:
    """Every row of the archived tables in ``schema`` ("public" or "archive")."""
    return {
        table: set(conn.execute(f"SELECT {cols} FROM {schema}.{table}").fetchall())
        for table, cols in COLUMNS.items()
    }


def ids(found: Rows, table: str) -> set[Any]:
    return {row[0] for row in found[table]} if table != "team_members" else found[table]


@pytest.fixture
def adb(clean_db: Database) -> Iterator[Database]:
    """The shared database; live and archive rows emptied after the test."""
    yield clean_db
    with clean_db.connection() as conn:
        conn.execute("TRUNCATE " + ", ".join(ARCHIVE_TABLES))


class World:
    """Builds rows with plain SQL (the services would refuse some of the states tested here)."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn
        found = conn.execute("SELECT to_regclass('public.team_locations') IS NOT NULL").fetchone()
        self.has_locations = bool(found and found[0])

    def user(self, name: str, deleted: timedelta | None = None) -> uuid.UUID:
        row = self.conn.execute(
            "INSERT INTO users (email, password_hash, display_name, profile, tags, deleted_at) "
            "VALUES (%s, 'hash', %s, '{\"k\": [1, 2]}', ARRAY['a', 'b'], now() - %s::interval) "
            "RETURNING id",
            (f"{name}@example.com", name.title(), deleted),
        ).fetchone()
        assert row is not None
        return row[0]

    def team(
        self, slug: str, deleted: timedelta | None = None, *, located: bool = False
    ) -> uuid.UUID:
        row = self.conn.execute(
            "INSERT INTO teams (name, slug, settings, deleted_at) "
            'VALUES (%s, %s, \'{"plan": "pro"}\', now() - %s::interval) RETURNING id',
            (slug.title(), slug, deleted),
        ).fetchone()
        assert row is not None
        if located and self.has_locations:
            self.conn.execute(
                "INSERT INTO team_locations (team_id, location) "
                "VALUES (%s, 'SRID=4326;POINT(2.35 48.85)'::geography)",
                (row[0],),
            )
        return row[0]

    def member(self, team: uuid.UUID, user: uuid.UUID, role: str = "MEMBER") -> None:
        self.conn.execute(
            "INSERT INTO team_members (team_id, user_id, role) VALUES (%s, %s, %s::role_enum)",
            (team, user, role),
        )

    def invite(self, team: uuid.UUID, email: str, by: uuid.UUID | None) -> uuid.UUID:
        row = self.conn.execute(
            "INSERT INTO invitations (team_id, email, invited_by, token_hash, expires_at) "
            "VALUES (%s, %s, %s, %s, now() + interval '7 days') RETURNING id",
            (team, email, by, os.urandom(32)),
        ).fetchone()
        assert row is not None
        return row[0]


#: Live teams whose OWNER rows are all gone (soft-deleted owners still count as rows here).
TEAMS_WITHOUT_OWNER_ROW = """
SELECT t.slug FROM teams AS t
WHERE t.deleted_at IS NULL
  AND NOT EXISTS (SELECT 1 FROM team_members AS m WHERE m.team_id = t.id AND m.role = 'OWNER')
ORDER BY 1
"""
#: Live teams with no live owner (the services' owner rule).
TEAMS_WITHOUT_LIVE_OWNER = """
SELECT t.slug FROM teams AS t
WHERE t.deleted_at IS NULL
  AND NOT EXISTS (
    SELECT 1 FROM team_members AS m JOIN users AS u ON u.id = m.user_id
    WHERE m.team_id = t.id AND m.role = 'OWNER' AND u.deleted_at IS NULL)
ORDER BY 1
"""


def build_scenario(db: Database) -> dict[str, uuid.UUID]:
    """Every case of the rules, named; returns the ids."""
    with db.connection() as conn:
        w = World(conn)
        o = w.user("owner")  # live owner of live and of deleted teams
        a = w.user("alice", OLD)  # old soft-deleted member of a live team and a deleted one
        b = w.user("bob", YOUNG)  # soft-deleted, too recently
        s = w.user("sole", OLD)  # old soft-deleted, only owner of live team "solo"
        m = w.user("mike")  # live member of "solo"
        p = w.user("paula", OLD)  # old soft-deleted co-owner of "pair"
        q = w.user("quinn")  # live co-owner of "pair"
        n = w.user("nina")  # live, in no team
        live = w.team("live")
        gone = w.team("gone", OLD, located=True)
        young = w.team("young", YOUNG)
        solo = w.team("solo")
        pair = w.team("pair")
        w.member(live, o, "OWNER")
        w.member(live, a)
        w.member(live, b)
        w.member(gone, o, "OWNER")
        w.member(gone, a)
        w.member(young, o, "OWNER")
        w.member(solo, s, "OWNER")
        w.member(solo, m)
        w.member(pair, p, "OWNER")
        w.member(pair, q, "OWNER")
        sent_by_alice = w.invite(live, "x@example.com", a)
        in_gone = w.invite(gone, "y@example.com", o)
        in_gone_by_alice = w.invite(gone, "z@example.com", a)
        in_young = w.invite(young, "w@example.com", o)
    return {
        "o": o, "a": a, "b": b, "s": s, "m": m, "p": p, "q": q, "n": n,
        "live": live, "gone": gone, "young": young, "solo": solo, "pair": pair,
        "sent_by_alice": sent_by_alice, "in_gone": in_gone,
        "in_gone_by_alice": in_gone_by_alice, "in_young": in_young,
    }  # fmt: skip


def snapshot(db: Database) -> tuple[Rows, Rows]:
    with db.connection() as conn:
        return rows(conn, "public"), rows(conn, "archive")


def test_run_moves_exactly_the_expected_rows_and_keeps_the_owner_rule(adb: Database) -> None:
    k = build_scenario(adb)
    live_before, _ = snapshot(adb)
    with adb.connection() as conn:
        no_owner_before = conn.execute(TEAMS_WITHOUT_OWNER_ROW).fetchall()
        no_live_owner_before = conn.execute(TEAMS_WITHOUT_LIVE_OWNER).fetchall()

    dry = archive.run(adb, older_than=CUTOFF)
    assert snapshot(adb)[0] == live_before  # a dry run changes nothing

    report = archive.run(adb, older_than=CUTOFF, batch_size=2, apply=True)
    live, archived = snapshot(adb)

    assert ids(archived, "teams") == {k["gone"]}
    assert ids(archived, "users") == {k["a"], k["p"]}
    assert {(r[0], r[1]) for r in archived["team_members"]} == {
        (k["gone"], k["o"]),
        (k["gone"], k["a"]),
        (k["live"], k["a"]),
        (k["pair"], k["p"]),
    }
    assert ids(archived, "invitations") == {k["in_gone"], k["in_gone_by_alice"]}
    with adb.connection() as conn:
        located = 1 if World(conn).has_locations else 0
    assert len(archived["team_locations"]) == located
    assert ids(live, "teams") == {k["live"], k["young"], k["solo"], k["pair"]}
    assert ids(live, "users") == {k[x] for x in "obsmqn"}
    # Every archived row is the live row it was, byte for byte, and is live no more.
    for table in COLUMNS:
        assert archived[table] <= live_before[table], table
        assert not archived[table] & live[table], table
    # Live rows untouched, except the invitation alice sent (its invited_by went NULL).
    untouched = {t: live_before[t] - archived[t] for t in COLUMNS}
    for table in ("users", "teams", "team_members", "team_locations"):
        assert live[table] == untouched[table], table
    [sent] = [r for r in live["invitations"] if r[0] == k["sent_by_alice"]]
    assert sent[4] is None
    with adb.connection() as conn:
        assert conn.execute(
            "SELECT invitation_id, invited_by FROM archive.invitation_senders"
        ).fetchall() == [(k["sent_by_alice"], k["a"])]

    expected = TableCounts(
        users=2, teams=1, team_members=4, invitations=2, invitation_senders=1,
        team_locations=located,
    )  # fmt: skip
    assert report.applied
    assert report.moved == expected
    assert dry.moved == expected
    assert not dry.applied
    assert dry.batches == 0
    assert dry.run_id is None
    assert [(s.user_id, s.team_slugs) for s in report.skipped] == [(k["s"], ["solo"])]
    assert [(s.user_id, s.team_slugs) for s in dry.skipped] == [(k["s"], ["solo"])]
    assert report.batches >= 2
    assert report.rows_per_s > 0

    with adb.connection() as conn:
        assert conn.execute(TEAMS_WITHOUT_OWNER_ROW).fetchall() == no_owner_before == []
        assert conn.execute(TEAMS_WITHOUT_LIVE_OWNER).fetchall() == no_live_owner_before

    again = archive.run(adb, older_than=CUTOFF, apply=True)
    assert again.moved == TableCounts()
    assert snapshot(adb) == (live, archived)

    found = archive.status(adb)
    assert found.archived == expected
    assert (found.soft_deleted_users, found.soft_deleted_teams) == (2, 1)  # bob, sole; young
    assert found.last_archived_at is not None


def test_every_batch_runs_under_a_one_minute_statement_and_five_second_lock_timeout(
    adb: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The batch's own session, read on its connection each time it moves rows."""
    build_scenario(adb)
    seen: set[tuple[str, ...]] = set()
    move = moving.move_rows

    def observed(conn: psycopg.Connection[Any], *args: Any) -> int:
        seen.add(session_settings(conn, "statement_timeout", "lock_timeout"))
        return move(conn, *args)

    monkeypatch.setattr("dbops.ops.archive.moving.move_rows", observed)
    archive.run(adb, older_than=CUTOFF, batch_size=2, apply=True)
    assert seen == {("1min", "5s")}


@pytest.mark.parametrize("order", ["user first", "team first"])
def test_restore_brings_rows_back_byte_for_byte(adb: Database, order: str) -> None:
    k = build_scenario(adb)
    live_before, _ = snapshot(adb)
    archive.run(adb, older_than=CUTOFF, apply=True)

    if order == "user first":
        first = archive.restore(adb, user_email="ALICE@example.com")
        assert (first.kind, first.id, first.left_in_archive) == ("user", k["a"], 1)
        assert first.restored == TableCounts(users=1, team_members=1, invitation_senders=1)
        second = archive.restore(adb, team_slug="gone")
        assert second.restored.team_members == 2  # owner and alice: both present now
    else:
        first = archive.restore(adb, team_id=k["gone"])
        assert first.left_in_archive == 1  # alice's membership waits for alice
        second = archive.restore(adb, user_id=k["a"])
        assert second.restored.team_members == 2  # of "live" and "gone"
    archive.restore(adb, user_email="paula@example.com")

    live, archived = snapshot(adb)
    assert all(not r for r in archived.values()), archived
    with adb.connection() as conn:
        assert conn.execute("SELECT count(*) FROM archive.invitation_senders").fetchone() == (0,)
        assert conn.execute(TEAMS_WITHOUT_OWNER_ROW).fetchall() == []
    for table in ("users", "teams", "team_members", "team_locations"):
        assert live[table] == live_before[table], table
    # Invitations: identical, but for updated_at of the one whose sender link was cut and
    # put back (both are UPDATEs, and the trigger moves updated_at).
    without_updated = {r[:-1] for r in live["invitations"]}
    assert without_updated == {r[:-1] for r in live_before["invitations"]}


def test_restore_refuses_a_taken_email_or_slug(adb: Database) -> None:
    build_scenario(adb)
    archive.run(adb, older_than=CUTOFF, apply=True)
    with adb.connection() as conn:
        w = World(conn)
        w.user("alice")
        w.team("gone")
    before = snapshot(adb)
    with pytest.raises(ArchiveError, match=r"a live user now has the e-mail alice@example\.com"):
        archive.restore(adb, user_email="alice@example.com")
    with pytest.raises(
        ArchiveError, match="cannot restore team gone: a live team now has this slug"
    ):
        archive.restore(adb, team_slug="gone")
    assert snapshot(adb) == before


def test_a_team_never_comes_back_without_an_owner(adb: Database) -> None:
    with adb.connection() as conn:
        w = World(conn)
        owner = w.user("fred", OLD)
        team = w.team("orphan", OLD)
        w.member(team, owner, "OWNER")
    report = archive.run(adb, older_than=CUTOFF, apply=True)
    assert (report.moved.users, report.moved.teams) == (1, 1)
    before = snapshot(adb)
    with pytest.raises(
        ArchiveError, match=f"without an owner; restore its owner first .user {owner}"
    ):
        archive.restore(adb, team_slug="orphan")
    assert snapshot(adb) == before
    archive.restore(adb, user_id=owner)
    done = archive.restore(adb, team_slug="orphan")
    assert done.restored.team_members == 1


def test_restore_errors(adb: Database) -> None:
    with pytest.raises(InvalidInput, match="exactly one"):
        archive.restore(adb)
    with pytest.raises(InvalidInput, match="exactly one"):
        archive.restore(adb, user_email="a@example.com", team_slug="x")
    with pytest.raises(NotFound, match="no archived user"):
        archive.restore(adb, user_email="nobody@example.com")
    with pytest.raises(NotFound, match="no archived team"):
        archive.restore(adb, team_id=uuid.uuid4())
    with pytest.raises(InvalidInput, match="batch_size"):
        archive.run(adb, older_than=CUTOFF, batch_size=0)
    # A negative age would reach rows deleted in the future: refused; zero is every deleted row.
    with pytest.raises(InvalidInput, match="older_than must not be negative"):
        archive.run(adb, older_than=-timedelta(microseconds=1))
    assert archive.run(adb, older_than=timedelta(0)).applied is False  # a dry run, accepted


def test_an_email_archived_twice_is_restored_by_id(adb: Database) -> None:
    with adb.connection() as conn:
        first = World(conn).user("twice", OLD)
    archive.run(adb, older_than=CUTOFF, apply=True)
    with adb.connection() as conn:
        second = World(conn).user("twice", OLD)
    archive.run(adb, older_than=CUTOFF, apply=True)
    with pytest.raises(ArchiveError, match="several archived users match"):
        archive.restore(adb, user_email="twice@example.com")
    assert archive.restore(adb, user_id=second).id == second
    assert archive.restore(adb, user_email="twice@example.com").id == first


def test_rows_locked_by_another_transaction_are_skipped_not_waited_for(adb: Database) -> None:
    with adb.connection() as conn:
        w = World(conn)
        held = w.user("held", OLD)
        w.user("free", OLD)
    with adb.connection() as holder:
        holder.execute("SELECT 1 FROM users WHERE id = %s FOR UPDATE", (held,))
        report = archive.run(adb, older_than=CUTOFF, apply=True)
        assert report.moved.users == 1
    assert archive.run(adb, older_than=CUTOFF, apply=True).moved.users == 1


# ------------------------------------------------------------------------------- interruption

WAITING_DELETE = """
SELECT pid FROM pg_stat_activity
WHERE wait_event_type = 'Lock' AND query LIKE 'DELETE FROM invitations%'
"""


def _wait_for(conn: psycopg.Connection[Any], query: str, seconds: float) -> int:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        row = conn.execute(query).fetchone()
        if row is not None:
            return int(row[0])
        time.sleep(0.05)
    raise AssertionError(f"nothing matched within {seconds}s: {query}")


@pytest.mark.slow
def test_killed_mid_batch_then_resumed_moves_every_row_exactly_once(
    adb: Database, pg_cluster: EmbeddedCluster, migrated: str, tmp_path: Path
) -> None:
    """SIGKILL the `dbops archive run` process while a batch has copied but not deleted.

    A second connection holds a row lock on an invitation of a team in the third batch: the
    batch has inserted its rows into the archive and waits in ``DELETE FROM invitations``. The
    process is killed there, its backend terminated; then a new run finishes the job.
    """
    with adb.connection() as conn:
        w = World(conn)
        owner = w.user("keeper")
        teams, invitations = [], []
        for i in range(14):
            team = w.team(f"t{i:02d}", OLD, located=i % 3 == 0)
            teams.append(team)
            w.member(team, owner, "OWNER")
            invitations.append(w.invite(team, f"guest{i}@example.com", owner))
        users = [w.user(f"u{i:02d}", OLD) for i in range(12)]
        for i, user in enumerate(users):
            w.member(teams[i], user)
    live_before, _ = snapshot(adb)
    expected_users, expected_teams = set(users), set(teams)
    batch = 4
    target = sorted(teams)[2 * batch + 1]  # in the third batch of teams
    target_invitation = invitations[teams.index(target)]

    env = {**os.environ, "DATABASE_URL": migrated, "COLUMNS": "200"}
    with (
        psycopg.connect(pg_cluster.libpq_url()) as holder,
        psycopg.connect(pg_cluster.libpq_url(), autocommit=True) as watcher,
    ):
        holder.execute("SELECT 1 FROM invitations WHERE id = %s FOR UPDATE", (target_invitation,))
        # The output goes to a file: a pipe nobody reads could block the child.
        log = tmp_path / "run.log"
        with log.open("wb") as out, subprocess.Popen(
            [str(DBOPS_SCRIPT), "archive", "run", "--older-than", "90d",
             "--batch-size", str(batch), "--apply"],
            env=env, cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT,
        ) as child:  # fmt: skip
            try:
                backend = _wait_for(watcher, WAITING_DELETE, 60)
                # Two batches committed; the third copied its rows, visible to nobody else.
                count = watcher.execute("SELECT count(*) FROM archive.teams").fetchone()
                assert count == (2 * batch,), log.read_text()
                child.send_signal(signal.SIGKILL)
                child.wait(timeout=30)
                watcher.execute("SELECT pg_terminate_backend(%s)", (backend,))
            finally:
                if child.poll() is None:
                    child.kill()
                    child.wait()
        holder.rollback()

    assert child.returncode == -signal.SIGKILL
    live, archived = snapshot(adb)
    for table in COLUMNS:  # each row exactly once: live or archived
        assert not live[table] & archived[table], table
        assert live[table] | archived[table] == live_before[table], table
    assert len(ids(archived, "teams")) == 2 * batch
    assert not ids(archived, "users")

    report = archive.run(adb, older_than=CUTOFF, batch_size=batch, apply=True)
    assert report.moved.teams == len(teams) - 2 * batch
    live, archived = snapshot(adb)
    assert ids(archived, "teams") == expected_teams
    assert ids(archived, "users") == expected_users
    assert ids(live, "users") == {owner}
    assert ids(archived, "invitations") == set(invitations)
    for table in COLUMNS:
        assert not live[table] & archived[table], table
        assert live[table] | archived[table] == live_before[table], table
    assert live["team_members"] == set()
    assert archive.run(adb, older_than=CUTOFF, apply=True).moved == TableCounts()


def test_a_row_already_in_the_archive_stops_the_batch_and_deletes_nothing(adb: Database) -> None:
    """ON CONFLICT DO NOTHING skipped a copy: the live row must not be deleted without one."""
    with adb.connection() as conn:
        w = World(conn)
        team = w.team("stale", OLD)
        w.member(team, w.user("keeper"), "OWNER")
        conn.execute(
            "INSERT INTO archive.teams (id, name, slug, settings, created_at, updated_at, "
            "deleted_at, run_id) SELECT id, 'Older copy', slug, settings, created_at, updated_at, "
            "deleted_at, gen_random_uuid() FROM teams WHERE id = %s",
            (team,),
        )
    live_before, archived_before = snapshot(adb)
    with pytest.raises(ArchiveError, match=r"teams: 1 live rows but only 0 copied"):
        archive.run(adb, older_than=CUTOFF, apply=True)
    assert snapshot(adb) == (live_before, archived_before)


def test_an_archived_phone_survives_rotation_and_restore(adb: Database) -> None:
    """Archiving keeps the encrypted phone verbatim; key rotation reaches archived rows, so
    retiring the old key strands nothing; the restored user's phone decrypts to the original."""
    from dbops.crypto import Keyring, generate_key
    from dbops.ops import keys as key_ops

    old, new, blind = generate_key(), generate_key(), generate_key()
    with adb.connection() as conn:
        gone = World(conn).user("phoebe", deleted=OLD)
    assert key_ops.fill_phones(adb, {gone: "+44 20 7946 0000"}, Keyring({1: old}, blind)) == 1

    archive.run(adb, older_than=CUTOFF, apply=True)
    with adb.connection() as conn:
        archived = conn.execute(
            "SELECT phone_key_version, phone_ciphertext IS NOT NULL FROM archive.users "
            "WHERE id = %s",
            (gone,),
        ).fetchone()
    assert archived == (1, True)

    rotated = key_ops.rotate(adb, Keyring({1: old, 2: new}, blind))
    assert (rotated.rotated, rotated.remaining) == (1, 0)
    only_new = Keyring({2: new}, blind)  # the old key is gone for good
    assert key_ops.key_status(adb, only_new).rows_on_old_versions == 0

    archive.restore(adb, user_id=gone)  # back in users, still soft-deleted
    with adb.connection() as conn:
        row = conn.execute("SELECT phone_ciphertext FROM users WHERE id = %s", (gone,)).fetchone()
    assert row is not None
    plain = only_new.decrypt(bytes(row[0]), table="users", column="phone", row_id=gone)
    assert plain == "+442079460000"


def test_a_team_restored_after_the_candidate_scan_is_not_archived(adb: Database) -> None:
    """Candidates are read once; each batch checks the cutoff again under its row lock.

    Two old soft-deleted teams, one batch each. When the first batch commits, another session
    restores the second team (as `dbops` restore or an owner would): its batch must leave it
    live, and the archive must not hold it.
    """
    with adb.connection() as conn:
        w = World(conn)
        first, second = sorted([w.team("race-a", OLD), w.team("race-b", OLD)])

    def restore_the_second(event: archive.ArchiveProgress) -> None:
        if event.phase == "teams" and event.batches == 1:
            with adb.connection() as other:
                other.execute("UPDATE teams SET deleted_at = NULL WHERE id = %s", (second,))

    report = archive.run(
        adb, older_than=CUTOFF, apply=True, batch_size=1, progress=restore_the_second
    )
    assert report.moved.teams == 1
    with adb.connection() as conn:
        live = conn.execute(
            "SELECT id, deleted_at IS NULL FROM teams WHERE id = ANY(%s)", ([first, second],)
        ).fetchall()
        archived = conn.execute(
            "SELECT id FROM archive.teams WHERE id = ANY(%s)", ([first, second],)
        ).fetchall()
    assert live == [(second, True)]
    assert archived == [(first,)]


def test_a_dry_or_instant_archive_run_has_no_rate() -> None:
    moved = TableCounts(users=6, teams=2)
    report = ArchiveReport(
        applied=True,
        run_id=None,
        cutoff=datetime(2026, 1, 1, tzinfo=UTC),
        moved=moved,
        batches=1,
        skipped=(),
        seconds=2.0,
    )
    assert report.rows_per_s == 4.0
    assert replace(report, applied=False).rows_per_s == 0.0
    assert replace(report, seconds=0.0).rows_per_s == 0.0


def test_a_skipped_user_says_which_teams_it_still_owns() -> None:
    from dbops.ops.archive import SkippedUser

    skipped = SkippedUser(uuid.uuid4(), "ann@example.com", ["acme", "zenith"])
    assert skipped.reason == "last owner of live team(s) acme, zenith"
