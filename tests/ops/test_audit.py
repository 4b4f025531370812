"""The audit trail (migration 0006): records with actors, append-only, chain verify, versions."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from dbops.config import to_libpq_url
from dbops.core import audit_head
from dbops.db import Database, Dsn, EmbeddedCluster, open_database
from dbops.errors import AuditUnavailable, InvalidInput, NotFound
from dbops.ops import audit
from dbops.ops.backup import create_backup
from dbops.ops.migrate import downgrade, upgrade
from dbops.ops.roles import ensure_readonly_role
from dbops.ops.seed import seed
from dbops.services._base import Actor
from dbops.services.invitations import InvitationService
from dbops.services.teams import TeamService
from dbops.services.users import UserService
from tests.fixtures.db import make_settings, session_settings
from tests.services._helpers import FAST_HASHER, PASSWORD, SYSTEM

RECORDS_OF = """
SELECT id, actor_kind, actor_id, actor_name, op, old_row, new_row
FROM audit.record WHERE table_name = %(table)s AND row_key = %(key)s ORDER BY id
"""
RECORDS_OF_TABLE = "SELECT op, row_key, old_row, new_row FROM audit.record WHERE table_name = %s"
LAST_ID = "SELECT coalesce(max(id), 0) FROM audit.record"


@dataclass
class Audited:
    """A private migrated database (its chain is ours to break) and its superuser URL."""

    db: Database
    libpq: str
    url: str


@pytest.fixture
def own(empty_database: str) -> Iterator[Audited]:
    settings = make_settings(empty_database)
    upgrade(empty_database, settings)
    database = open_database(settings, empty_database)
    yield Audited(database, to_libpq_url(empty_database), empty_database)
    database.close()


def _records(db: Database, table: str, key: object) -> list[tuple[Any, ...]]:
    with db.connection() as conn:
        return conn.execute(RECORDS_OF, {"table": table, "key": str(key)}).fetchall()


def _work(db: Database) -> tuple[UserService, TeamService, uuid.UUID, uuid.UUID]:
    """A user (created by the system) who creates a team and renames it twice."""
    users, teams = UserService(db, hasher=FAST_HASHER), TeamService(db)
    owner = users.create(
        SYSTEM, email=f"{uuid.uuid4().hex[:8]}@example.com", password=PASSWORD, display_name="O"
    )
    me = Actor.user(owner.id)
    team = teams.create(me, name="Acme", slug=f"acme-{uuid.uuid4().hex[:6]}")
    teams.rename(me, team.id, "Acme Two")
    teams.rename(me, team.id, "Acme Three")
    return users, teams, owner.id, team.id


# -- records and actors ------------------------------------------------------------------------


def test_service_changes_are_recorded_with_their_actor(clean_db: Database) -> None:
    _, _, owner, team = _work(clean_db)
    user_records = _records(clean_db, "users", owner)
    assert [(r[1], r[2], r[3], r[4]) for r in user_records] == [("system", None, "tests", "INSERT")]
    team_records = _records(clean_db, "teams", team)
    # Creating a team is a system step on the user's behalf (RLS, decision 0007): the record
    # keeps the user's id and names the step.
    assert [(r[1], r[2], r[3], r[4]) for r in team_records] == [
        ("system", str(owner), "teams.create", "INSERT"),
        ("user", str(owner), None, "UPDATE"),
        ("user", str(owner), None, "UPDATE"),
    ]
    assert team_records[1][5]["name"] == "Acme"
    assert team_records[1][6]["name"] == "Acme Two"
    # The owner's membership, written in the same unit of work as the team.
    with clean_db.connection() as conn:
        member = conn.execute(
            "SELECT actor_id, new_row ->> 'role' FROM audit.record "
            "WHERE table_name = 'team_members' AND row_key = %s",
            (f"{team}/{owner}",),
        ).fetchall()
    assert member == [(str(owner), "OWNER")]


def test_secret_columns_never_reach_the_audit_json(clean_db: Database) -> None:
    users, _, owner, team = _work(clean_db)
    users.rename(SYSTEM, owner, "Olga")
    InvitationService(clean_db).invite(Actor.user(owner), team, "guest@example.com")
    with clean_db.connection() as conn:
        user_rows = conn.execute(RECORDS_OF_TABLE, ("users",)).fetchall()
        invitation_rows = conn.execute(RECORDS_OF_TABLE, ("invitations",)).fetchall()
        team_rows = conn.execute(RECORDS_OF_TABLE, ("teams",)).fetchall()
    assert user_rows
    assert invitation_rows
    assert team_rows
    for rows, secret in (
        (user_rows, "password_hash"),
        (invitation_rows, "token_hash"),
        (team_rows, "search"),
    ):
        for _, _, old, new in rows:
            for image in (old, new):
                assert image is None or secret not in image
    assert any(new and new.get("email") == "guest@example.com" for *_, new in invitation_rows)


def test_an_encrypted_phone_leaves_no_ciphertext_in_the_trail(clean_db: Database) -> None:
    """The phone's ciphertext and blind index stay out of the JSON (a rotated-out key must not
    live on in the trail); the key version shows that the phone changed."""
    from dbops.crypto import Keyring, generate_key

    keyring = Keyring({1: generate_key()}, generate_key())
    users = UserService(clean_db, hasher=FAST_HASHER, keyring=keyring)
    user = users.create(SYSTEM, email="phone@example.com", password=PASSWORD, display_name="P")
    users.set_phone(SYSTEM, user.id, "+44 20 7946 0001")
    with clean_db.connection() as conn:
        rows = conn.execute(
            "SELECT old_row, new_row FROM audit.record WHERE table_name = 'users' AND row_key = %s",
            (str(user.id),),
        ).fetchall()
    images = [image for row in rows for image in row if image is not None]
    assert images, "the change was recorded"
    for image in images:
        assert "phone_ciphertext" not in image
        assert "phone_blind_index" not in image
    assert any(image.get("phone_key_version") == 1 for image in images)


def test_plain_sql_is_recorded_with_no_actor(clean_db: Database) -> None:
    with clean_db.connection() as conn:
        key = conn.execute(
            "INSERT INTO teams (name, slug) VALUES ('Raw', %s) RETURNING id::text",
            (f"raw-{uuid.uuid4().hex[:6]}",),
        ).fetchone()
    assert key is not None
    [record] = _records(clean_db, "teams", key[0])
    assert record[1:5] == ("none", None, None, "INSERT")


def test_a_rolled_back_change_leaves_no_record(clean_db: Database) -> None:
    with clean_db.connection() as conn:
        before = conn.execute(LAST_ID).fetchone()

    def insert_then_fail() -> None:
        with clean_db.connection() as conn:
            conn.execute("INSERT INTO teams (name, slug) VALUES ('Gone', 'gone-team')")
            raise RuntimeError("abort")

    with pytest.raises(RuntimeError):
        insert_then_fail()
    with clean_db.connection() as conn:
        assert conn.execute(LAST_ID).fetchone() == before
        assert conn.execute("SELECT count(*) FROM audit.pending").fetchone() == (0,)


# -- append-only -------------------------------------------------------------------------------

CHANGES = (
    "UPDATE audit.record SET actor_name = 'x'",
    "DELETE FROM audit.record",
    "TRUNCATE audit.record",
    "INSERT INTO audit.record SELECT * FROM audit.record LIMIT 1",
    "UPDATE audit.head SET last_id = 0",
)


@pytest.fixture
def login_role(migrated: str, pg_cluster: EmbeddedCluster) -> Iterator[str]:
    """A LOGIN role with the application's privileges on the public tables, not an owner."""
    name = f"app_{uuid.uuid4().hex[:8]}"
    role = sql.Identifier(name)
    with psycopg.connect(pg_cluster.libpq_url(), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(role))
        conn.execute(sql.SQL("GRANT dbops_system TO {}").format(role))
        conn.execute(sql.SQL("GRANT USAGE ON SCHEMA public TO {}").format(role))
        conn.execute(
            sql.SQL(
                "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {}"
            ).format(role)
        )
    yield name
    with psycopg.connect(pg_cluster.libpq_url(), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP OWNED BY {}").format(role))
        conn.execute(sql.SQL("DROP ROLE {}").format(role))


@pytest.mark.parametrize("statement", CHANGES)
def test_the_app_role_cannot_change_the_trail(
    clean_db: Database, pg_cluster: EmbeddedCluster, login_role: str, statement: str
) -> None:
    _work(clean_db)
    with psycopg.connect(pg_cluster.libpq_url(), user=login_role) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(statement)
        conn.rollback()
        # It cannot switch the capture off (only the tables' owner can, as the seed does),
        # and its own writes are recorded (the trigger runs as the trail's owner).
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="must be owner"):
            conn.execute("ALTER TABLE teams DISABLE TRIGGER audit_capture")
        conn.rollback()
        # Row-level security (0008): a team insert is a system step, the switch to the
        # system role that dbops grants its app role (granted to this role by the fixture).
        conn.execute("SET ROLE dbops_system")
        key = conn.execute(
            "INSERT INTO teams (name, slug) VALUES ('App', %s) RETURNING id::text",
            (f"app-{uuid.uuid4().hex[:6]}",),
        ).fetchone()
        conn.commit()
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT audit.bulk_load('teams', '{}')")
    assert key is not None
    assert [r[4] for r in _records(clean_db, "teams", key[0])] == ["INSERT"]


@pytest.mark.parametrize("statement", CHANGES[:4])
def test_the_readonly_role_cannot_change_the_trail(
    clean_db: Database, pg_cluster: EmbeddedCluster, statement: str
) -> None:
    _work(clean_db)
    name = ensure_readonly_role(clean_db, f"ro_{uuid.uuid4().hex[:8]}", password="x")
    try:
        with psycopg.connect(pg_cluster.libpq_url(), user=name) as conn:
            conn.execute("SET TRANSACTION READ WRITE")
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)
    finally:
        with psycopg.connect(pg_cluster.libpq_url(), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(name)))
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))


@pytest.mark.parametrize("statement", CHANGES[:3])
def test_even_the_owner_cannot_change_records_while_the_guard_is_on(
    own: Audited, statement: str
) -> None:
    _work(own.db)
    with (
        psycopg.connect(own.libpq) as conn,
        pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"),
    ):
        conn.execute(statement)


# -- verify ------------------------------------------------------------------------------------


def _tamper(own: Audited, statement: str, params: tuple[object, ...] = ()) -> None:
    """What a superuser could do: switch the guard off, change the trail, switch it on."""
    with psycopg.connect(own.libpq) as conn:
        conn.execute("ALTER TABLE audit.record DISABLE TRIGGER append_only")
        conn.execute(statement, params)
        conn.execute("ALTER TABLE audit.record ENABLE TRIGGER append_only")


def test_verify_passes_on_an_untouched_chain(own: Audited) -> None:
    _work(own.db)
    report = audit.verify(own.db)
    assert report.ok, report.problem
    assert report.records == report.last_id == 5  # user, team, membership, 2 renames
    with own.db.connection() as conn:
        head = conn.execute("SELECT last_id, encode(last_hash, 'hex') FROM audit.head").fetchone()
    assert head == (report.last_id, report.last_hash)


#: What the audit reads run under: a timeout and one read-only snapshot.
READ_SESSION = ("statement_timeout", "transaction_isolation", "transaction_read_only")


def test_verify_reads_one_read_only_snapshot_with_half_an_hour_to_walk(
    own: Audited, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The walk's session settings, read on its connection just before the chain."""
    _work(own.db)
    seen: list[tuple[object, ...]] = []
    walk = audit._chain

    def observed(conn: psycopg.Connection[Any]) -> Iterator[Any]:
        seen.append(session_settings(conn, *READ_SESSION))
        yield from walk(conn)

    monkeypatch.setattr(audit, "_chain", observed)
    assert audit.verify(own.db).ok
    assert seen == [("30min", "repeatable read", "on")]


def test_verify_passes_on_the_shared_test_database(db: Database) -> None:
    """Every test so far wrote through the triggers: the session's chain must hold."""
    assert audit.verify(db).ok


def test_verify_names_an_edited_record(own: Audited) -> None:
    _, _, _, team = _work(own.db)
    [_, renamed, _] = _records(own.db, "teams", team)
    _tamper(
        own,
        'UPDATE audit.record SET new_row = new_row || \'{"name": "Forged"}\' WHERE id = %s',
        (renamed[0],),
    )
    report = audit.verify(own.db)
    assert report.problem is not None
    assert (report.problem.kind, report.problem.record_id) == ("edited", renamed[0])
    assert report.problem.table_name == "teams"
    assert report.problem.row_key == str(team)
    assert f"record {renamed[0]} edited" in report.problem.message
    assert report.records == renamed[0] - 1


def test_verify_names_a_deleted_record(own: Audited) -> None:
    _, _, _, team = _work(own.db)
    [created, _, _] = _records(own.db, "teams", team)
    _tamper(own, "DELETE FROM audit.record WHERE id = %s", (created[0],))
    report = audit.verify(own.db)
    assert report.problem is not None
    assert report.problem.kind == "deleted"
    assert report.problem.message.startswith(f"record {created[0]} deleted")


def test_verify_names_the_one_deleted_record_wherever_it_is(own: Audited) -> None:
    """Each of records 2-4 deleted in turn (then put back): "record N deleted", not a range."""
    _work(own.db)
    for record in (2, 3, 4):
        _tamper(
            own, "CREATE TABLE public.kept AS SELECT * FROM audit.record WHERE id = %s", (record,)
        )
        _tamper(own, "DELETE FROM audit.record WHERE id = %s", (record,))
        report = audit.verify(own.db)
        assert report.problem is not None
        assert report.problem.kind == "deleted"
        assert report.problem.message.startswith(f"record {record} deleted:"), record
        _tamper(own, "INSERT INTO audit.record SELECT * FROM public.kept")
        _tamper(own, "DROP TABLE public.kept")
        assert audit.verify(own.db).ok, record


def test_verify_names_a_range_of_records_deleted_in_the_middle(own: Audited) -> None:
    _work(own.db)
    _tamper(own, "DELETE FROM audit.record WHERE id IN (3, 4)")
    report = audit.verify(own.db)
    assert report.problem is not None
    assert (report.problem.kind, report.problem.record_id, report.records) == ("deleted", 5, 2)
    assert report.problem.message == "records 3-4 deleted: the chain jumps to record 5"


def test_verify_names_the_one_record_deleted_at_the_end(own: Audited) -> None:
    _work(own.db)
    last = audit.verify(own.db).last_id
    _tamper(own, "DELETE FROM audit.record WHERE id = %s", (last,))
    report = audit.verify(own.db)
    assert report.problem is not None
    assert (report.problem.kind, report.problem.record_id) == ("deleted", last)
    assert report.problem.message == (
        f"record {last} deleted: the head says the chain ends at record {last}, the last one "
        f"present is {last - 1}"
    )


def test_verify_names_records_deleted_at_the_end(own: Audited) -> None:
    _, _, _, team = _work(own.db)
    [_, _, last] = _records(own.db, "teams", team)
    _tamper(own, "DELETE FROM audit.record WHERE id >= %s", (last[0],))
    report = audit.verify(own.db)
    assert report.problem is not None
    assert report.problem.kind == "deleted"
    head = report.problem.record_id
    span = f"record {head}" if head == last[0] else f"records {last[0]}-{head}"
    assert report.problem.message.startswith(f"{span} deleted: the head says"), span


def test_verify_names_a_record_rewritten_with_a_recomputed_hash(own: Audited) -> None:
    _, _, _, team = _work(own.db)
    [created, _, _] = _records(own.db, "teams", team)
    _tamper(
        own,
        """
        UPDATE audit.record SET new_row = new_row || '{"name": "Forged"}',
               hash = sha256(prev_hash || convert_to(audit.canonical_text(
                   id, at, txid, actor_kind, actor_id, actor_name, db_role, table_name, op,
                   row_key, old_row, new_row || '{"name": "Forged"}'), 'UTF8'))
        WHERE id = %s
        """,
        (created[0],),
    )
    report = audit.verify(own.db)
    assert report.problem is not None
    assert (report.problem.kind, report.problem.record_id) == ("relinked", created[0] + 1)
    assert f"record {created[0]}, which was rewritten" in report.problem.message


#: Each column of a record and an edit of it (record 2 of `_work`: the team's creation, whose
#: old_row is NULL and new_row an object). Every column but the hash itself is in the hash.
COLUMN_EDITS = {
    "at": "at = at + interval '1 microsecond'",
    "txid": "txid = (txid::text::bigint + 1)::text::xid8",
    "actor_kind": "actor_kind = CASE actor_kind WHEN 'user' THEN 'system' ELSE 'user' END",
    "actor_id": "actor_id = coalesce(actor_id, '') || 'x'",
    "actor_name": "actor_name = coalesce(actor_name, '') || 'x'",
    "db_role": "db_role = db_role || 'x'",
    "table_name": "table_name = table_name || 'x'",
    "op": "op = CASE op WHEN 'INSERT' THEN 'UPDATE' ELSE 'INSERT' END",
    "row_key": "row_key = row_key || 'x'",
    "old_row": "old_row = '{}'::jsonb",
    "new_row": "new_row = new_row || '{\"forged\": true}'",
}


@pytest.mark.parametrize("column", list(COLUMN_EDITS))
def test_every_column_of_a_record_is_in_its_hash(own: Audited, column: str) -> None:
    _work(own.db)
    assert audit.verify(own.db).ok
    _tamper(own, f"UPDATE audit.record SET {COLUMN_EDITS[column]} WHERE id = 2")
    report = audit.verify(own.db)
    assert report.problem is not None, column
    assert (report.problem.kind, report.problem.record_id) == ("edited", 2), column


@pytest.mark.parametrize(
    "forged",
    [
        "sha256(last_hash)",
        "decode(repeat('00', 32), 'hex')",  # sorts before any real hash
        "decode(repeat('ff', 32), 'hex')",  # sorts after any real hash
    ],
)
def test_a_head_with_another_hash_is_a_rewritten_chain(own: Audited, forged: str) -> None:
    """The head names the right record id but another hash: the chain was rebuilt."""
    _work(own.db)
    with psycopg.connect(own.libpq) as conn:
        conn.execute("ALTER TABLE audit.head DISABLE TRIGGER USER")
        conn.execute(f"UPDATE audit.head SET last_hash = {forged}")
        conn.execute("ALTER TABLE audit.head ENABLE TRIGGER USER")
    report = audit.verify(own.db)
    assert report.problem is not None
    assert report.problem.kind == "relinked"
    assert "the head's hash does not match record 5" in report.problem.message


REWIND_HEAD = """
UPDATE audit.head SET last_id = %(id)s,
       last_hash = (SELECT hash FROM audit.record WHERE id = %(id)s)
"""


def test_deleting_the_newest_records_and_rewinding_the_head_fails_against_an_anchor(
    own: Audited,
) -> None:
    """Undetectable by the chain alone (decision 0006); an anchor from before catches it."""
    _work(own.db)
    before = audit.verify(own.db)
    assert before.ok
    anchor = audit.Anchor.parse(before.anchor)
    assert str(anchor) == before.anchor
    _tamper(own, "DELETE FROM audit.record WHERE id >= %s", (before.last_id - 1,))
    with psycopg.connect(own.libpq) as conn:
        conn.execute("ALTER TABLE audit.head DISABLE TRIGGER USER")
        conn.execute(REWIND_HEAD, {"id": before.last_id - 2})
        conn.execute("ALTER TABLE audit.head ENABLE TRIGGER USER")
    assert audit.verify(own.db).ok  # the chain alone holds: this is what the anchor is for
    report = audit.verify(own.db, anchor)
    assert report.problem is not None
    assert report.problem.kind == "deleted"
    assert report.problem.record_id == before.last_id - 1  # the first one missing
    assert report.problem.message.startswith(
        f"records {before.last_id - 1}-{before.last_id} deleted: the anchor names record "
        f"{before.last_id}"
    )
    # An older anchor still holds: what was there then is unchanged.
    older = audit.Anchor(before.last_id - 2, bytes.fromhex(audit.verify(own.db).last_hash))
    assert audit.verify(own.db, older).ok


def test_an_anchor_with_another_hash_names_the_rewritten_record(own: Audited) -> None:
    _work(own.db)
    report = audit.verify(own.db)
    forged = audit.Anchor(2, bytes(32))
    found = audit.verify(own.db, forged).problem
    assert found is not None
    assert (found.kind, found.record_id) == ("relinked", 2)
    assert "is not the record the anchor names" in found.message
    assert audit.verify(own.db, audit.Anchor.parse(report.anchor)).ok


def test_a_backup_records_the_anchor_of_its_snapshot(own: Audited, tmp_path: Path) -> None:
    _work(own.db)
    settings = make_settings(own.url, backup_dir=tmp_path)
    manifest = create_backup(settings, Dsn.parse(own.url))
    assert manifest.audit_anchor == audit.verify(own.db).anchor
    assert audit.verify(own.db, audit.Anchor.parse(manifest.audit_anchor)).ok


@pytest.mark.parametrize("text", ["", "5", "x:00", "0:" + "00" * 32, "5:abcd", "5:" + "zz" * 32])
def test_malformed_anchors_are_invalid_input(text: str) -> None:
    with pytest.raises(InvalidInput, match="SEQ:HASH"):
        audit.Anchor.parse(text)


@pytest.mark.parametrize("record_id", [1, 2, 10**12])
def test_an_anchor_at_any_record_from_the_first_parses(record_id: int) -> None:
    """Record ids start at 1: the first record is a valid anchor, 0 (above) is not."""
    digest = bytes(range(32))
    anchor = audit.Anchor.parse(f" {record_id}:{digest.hex()}\n")
    assert (anchor.record_id, anchor.hash) == (record_id, digest)
    assert str(anchor) == f"{record_id}:{digest.hex()}"


def test_verify_says_when_the_trail_is_not_installed(empty_database: str) -> None:
    settings = make_settings(empty_database)
    upgrade(empty_database, settings, "0004")
    with open_database(settings, empty_database) as database, pytest.raises(AuditUnavailable):
        audit.verify(database)


@pytest.mark.slow
def test_concurrent_writers_keep_one_valid_chain(own: Audited) -> None:
    users = UserService(own.db, hasher=FAST_HASHER)
    teams = TeamService(own.db)
    owner = users.create(SYSTEM, email="many@example.com", password=PASSWORD, display_name="M")
    me = Actor.user(owner.id)
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            for i in range(15):
                team = teams.create(me, name=f"T {n} {i}", slug=f"t-{n}-{i}")
                teams.rename(me, team.id, f"T {n} {i} renamed")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    report = audit.verify(own.db)
    assert report.ok, report.problem
    # 1 user + 90 teams, each with its owner's membership and one rename.
    assert report.records == 1 + 90 * 3


# -- history and as_of -------------------------------------------------------------------------


def test_history_lists_a_teams_versions_with_actor_and_changes(clean_db: Database) -> None:
    _, teams, owner, team = _work(clean_db)
    slug = teams.get(SYSTEM, team).slug
    versions = audit.history(clean_db, "team", slug)
    assert [v.op for v in versions] == ["INSERT", "UPDATE", "UPDATE"]
    assert [v.row["name"] for v in versions if v.row] == ["Acme", "Acme Two", "Acme Three"]
    assert versions[1].changed == ("name",)
    assert "slug" in versions[0].changed
    assert versions[0].actor == f"user {owner} via teams.create"  # a system step (0007)
    assert {v.actor for v in versions[1:]} == {f"user {owner}"}
    assert versions[0].at <= versions[1].at <= versions[2].at
    # The slug changes: the team is found by its current slug and by its old one.
    teams.change_slug(Actor.user(owner), team, f"{slug}-new")
    assert len(audit.history(clean_db, "team", slug)) == 4
    assert audit.history(clean_db, "team", f"{slug}-new")[-1].changed == ("slug",)


def test_history_reads_one_snapshot_with_thirty_seconds(
    clean_db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, teams, _, team = _work(clean_db)
    seen: list[tuple[object, ...]] = []
    versions_of = audit._versions

    def observed(conn: psycopg.Connection[Any], *args: Any) -> Any:
        seen.append(session_settings(conn, *READ_SESSION))
        return versions_of(conn, *args)

    monkeypatch.setattr(audit, "_versions", observed)
    assert audit.history(clean_db, "team", teams.get(SYSTEM, team).slug)
    assert seen == [("30s", "repeatable read", "on")]


def test_history_of_a_user_by_email_in_any_case(clean_db: Database) -> None:
    users, _, owner, _ = _work(clean_db)
    users.rename(Actor.user(owner), owner, "Renamed")
    email = users.get(SYSTEM, owner).email
    versions = audit.history(clean_db, "user", email.upper())
    assert [(v.op, v.changed) for v in versions][1] == ("UPDATE", ("display_name",))
    assert versions[1].actor == f"user {owner}"
    assert all(v.row is None or "password_hash" not in v.row for v in versions)


def test_history_errors(clean_db: Database) -> None:
    with pytest.raises(NotFound, match="no team 'nope'"):
        audit.history(clean_db, "team", "nope")
    with pytest.raises(InvalidInput, match="kind"):
        audit.history(clean_db, "invoice", "x")  # type: ignore[arg-type]


def test_as_of_reads_a_team_at_past_times(clean_db: Database) -> None:
    _, teams, owner, team = _work(clean_db)
    slug = teams.get(SYSTEM, team).slug
    versions = audit.history(clean_db, "team", slug)
    tick = timedelta(microseconds=1)
    assert audit.as_of(clean_db, "team", slug, versions[0].at - tick) is None
    for version, name in zip(versions, ["Acme", "Acme Two", "Acme Three"], strict=True):
        state = audit.as_of(clean_db, "team", slug, version.at)
        assert state is not None
        assert state["name"] == name
    # A naive time is UTC.
    naive = versions[1].at.astimezone(UTC).replace(tzinfo=None)
    state = audit.as_of(clean_db, "team", slug, naive)
    assert state is not None
    assert state["name"] == "Acme Two"
    teams.delete(Actor.user(owner), team)
    now = datetime.now(UTC)
    state = audit.as_of(clean_db, "team", slug, now)
    assert state is not None
    assert state["deleted_at"] is not None
    with clean_db.connection() as conn:
        conn.execute("DELETE FROM teams WHERE id = %s", (team,))
    time.sleep(0.01)
    assert audit.as_of(clean_db, "team", slug, datetime.now(UTC)) is None
    assert audit.history(clean_db, "team", slug)[-1].op == "DELETE"


def test_a_truncate_ends_a_rows_history(own: Audited) -> None:
    _, teams, _, team = _work(own.db)
    slug = teams.get(SYSTEM, team).slug
    with own.db.connection() as conn:
        conn.execute("TRUNCATE teams CASCADE")
    versions = audit.history(own.db, "team", slug)
    assert versions[-1].op == "TRUNCATE"
    assert versions[-1].row is None
    assert audit.as_of(own.db, "team", slug, datetime.now(UTC)) is None


# -- bulk loads --------------------------------------------------------------------------------


@pytest.mark.slow
def test_the_seed_records_one_bulk_summary_per_table_not_one_record_per_row(
    own: Audited,
) -> None:
    result = seed(own.db, users=200, teams=20, seed=7)
    with own.db.connection() as conn:
        ops = conn.execute(
            "SELECT table_name, op, count(*), min(actor_kind), min(actor_name) "
            "FROM audit.record GROUP BY 1, 2 ORDER BY 1, 2"
        ).fetchall()
        summary = conn.execute(
            "SELECT new_row FROM audit.record WHERE table_name = 'users' AND op = 'BULK'"
        ).fetchone()
    assert ops == [
        ("invitations", "BULK", 1, "system", "seed"),
        ("team_members", "BULK", 1, "system", "seed"),
        ("teams", "BULK", 1, "system", "seed"),
        ("users", "BULK", 1, "system", "seed"),
    ]
    assert summary == ({"rows": result.users, "seed": 7, "replaced_rows": 0},)
    # A later change of a seeded row is audited, and as_of before it reads the seeded state.
    users = UserService(own.db, hasher=FAST_HASHER)
    with own.db.connection() as conn:
        row = conn.execute(
            "SELECT id, email, display_name FROM users WHERE profile ? 'seed' LIMIT 1"
        ).fetchone()
    assert row is not None
    before = datetime.now(UTC)
    time.sleep(0.01)
    users.rename(SYSTEM, row[0], "Changed Later")
    versions = audit.history(own.db, "user", row[1])
    assert [v.op for v in versions] == ["UPDATE"]
    state = audit.as_of(own.db, "user", row[1], before)
    assert state is not None
    assert state["display_name"] == row[2]
    assert audit.verify(own.db).ok


def test_downgrade_removes_the_trail(own: Audited) -> None:
    _work(own.db)
    own.db.close()
    downgrade(own.url, make_settings(own.url), "0004")
    with psycopg.connect(own.libpq) as conn:
        assert conn.execute("SELECT to_regnamespace('audit')").fetchone() == (None,)
        triggers = conn.execute(
            "SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'audit_%%'"
        ).fetchone()
    assert triggers == (0,)
    upgrade(own.url, make_settings(own.url))


def test_the_head_is_read_only_by_roles_that_may(db: Database, app_db: Database) -> None:
    """The superuser reads the head (an anchor); the app role may not, and gets None."""
    with db.connection() as conn:
        head = audit.read_head(conn)
        row = conn.execute("SELECT last_id, last_hash FROM audit.head").fetchone()
    assert row is not None
    assert head is not None
    assert (head.record_id, head.hash) == (row[0], bytes(row[1]))
    with app_db.connection() as conn:
        assert conn.execute(audit_head.HEAD_READABLE_SQL).fetchone() == (False,)
        assert audit.read_head(conn) is None


def _version(at: datetime, before: dict[str, Any] | None) -> audit.Version:
    return audit.Version(
        record_id=1,
        at=at,
        op="UPDATE",
        actor_kind="system",
        actor_id=None,
        actor_name="test",
        changed=("name",),
        row={"name": "after"},
        before=before,
    )


@pytest.mark.parametrize(
    ("created_after_s", "exists"),
    [(-1.0, True), (0.0, True), (0.000001, False), (1.0, False)],
)
def test_a_row_loaded_in_bulk_exists_from_its_created_at_on(
    created_after_s: float, exists: bool
) -> None:
    """Its first record is a later change: before ``at``'s time it existed if it was created
    at or before ``at`` (the instant itself included), not after."""
    at = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    created = at + timedelta(seconds=created_after_s)
    before = {"name": "before", "created_at": created.isoformat()}
    state = audit._state_at([_version(at + timedelta(hours=1), before)], at)
    assert state == (before if exists else None)
