"""SQLSTATE -> dbops.errors through the services' unit of work, and bounded automatic retries.

Each error is provoked for real on PostgreSQL; messages must be human and free of SQL/secrets.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator

import psycopg
import pytest

from dbops.config import to_libpq_url
from dbops.db import Database
from dbops.errors import (
    Conflict,
    DbopsError,
    InvalidInput,
    LockTimeout,
    NotFound,
    OperationTimeout,
    RetryableConflict,
)
from dbops.services import _base
from dbops.services._base import Actor, unit_of_work
from dbops.services.teams import TeamService
from dbops.services.users import UserService, UserView
from tests.services._helpers import FAST_HASHER, PASSWORD, SYSTEM, SYSTEM_CONTEXT, as_system

SQL_WORDS = ("SELECT", "INSERT", "UPDATE", "DELETE", "WHERE", "VALUES", "%(", "$1")


def assert_human(err: DbopsError) -> None:
    text = str(err)
    assert text
    assert "\n" not in text
    for word in SQL_WORDS:
        assert word not in text, f"SQL leaked into the message: {text!r}"
    assert PASSWORD not in text


@pytest.fixture
def owner(clean_db: Database) -> UserView:
    return UserService(clean_db, hasher=FAST_HASHER).create(
        SYSTEM, email="owner@example.com", password=PASSWORD, display_name="Owner"
    )


@pytest.fixture
def team_id(clean_db: Database, owner: UserView) -> uuid.UUID:
    return TeamService(clean_db).create(Actor.user(owner.id), name="Acme", slug="acme").id


def run(db: Database, statement: str, params: dict[str, object] | None = None) -> None:
    run_all(db, statement, params=params)


def run_all(
    db: Database, first: str, second: str = "", params: dict[str, object] | None = None
) -> None:
    """Run one or two statements in one unit of work (the services' transaction)."""
    with unit_of_work(db, SYSTEM) as uow:
        for statement in (first, second):
            if statement:
                uow.conn.execute(statement, params if "%(" in statement else None)


# -- one test per SQLSTATE --------------------------------------------------------------------


def test_unique_violation_23505_is_conflict_naming_the_field(
    clean_db: Database, owner: UserView
) -> None:
    with pytest.raises(Conflict) as err:
        run(
            clean_db,
            "INSERT INTO users (email, password_hash, display_name) VALUES (%(e)s, 'h', 'x')",
            {"e": "owner@example.com"},
        )
    assert err.value.field == "email"
    assert isinstance(err.value.__cause__, psycopg.errors.UniqueViolation)
    assert_human(err.value)


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE teams SET slug = 'Not A Slug'",
        "UPDATE teams SET name = ''",
        "UPDATE teams SET settings = '[1, 2]'",
        "UPDATE users SET profile = '\"text\"'",
        "UPDATE users SET email = 'no-at-sign'",
        "UPDATE users SET email = 'Capital@example.com'",
    ],
)
def test_check_violation_23514_is_invalid_input(
    clean_db: Database, team_id: uuid.UUID, statement: str
) -> None:
    with pytest.raises(InvalidInput) as err:
        run(clean_db, statement)
    assert isinstance(err.value.__cause__, psycopg.errors.CheckViolation)
    assert_human(err.value)


@pytest.mark.parametrize(
    ("statement", "field", "words"),
    [
        ("UPDATE teams SET slug = 'Not A Slug'", "slug", "lowercase letters"),
        ("UPDATE teams SET name = ''", "name", "1-200"),
        ("UPDATE teams SET settings = '[1, 2]'", "settings", "JSON object"),
        ("UPDATE users SET profile = '\"text\"'", "profile", "JSON object"),
        ("UPDATE users SET email = 'no-at-sign'", "email", "name@domain"),
    ],
)
def test_check_violation_names_the_field(
    clean_db: Database, team_id: uuid.UUID, statement: str, field: str, words: str
) -> None:
    with pytest.raises(InvalidInput) as err:
        run(clean_db, statement)
    assert err.value.field == field
    assert words in str(err.value)


def test_foreign_key_violation_23503_is_not_found(clean_db: Database) -> None:
    with pytest.raises(NotFound) as err:
        run(
            clean_db,
            "INSERT INTO team_members (team_id, user_id) VALUES (%(t)s, %(u)s)",
            {"t": uuid.uuid4(), "u": uuid.uuid4()},
        )
    assert isinstance(err.value.__cause__, psycopg.errors.ForeignKeyViolation)
    assert_human(err.value)


def test_not_null_violation_23502_is_invalid_input(clean_db: Database) -> None:
    with pytest.raises(InvalidInput) as err:
        run(clean_db, "INSERT INTO teams (name, slug) VALUES (NULL, 'x')")
    assert err.value.field == "name"
    assert_human(err.value)


def test_invalid_text_22p02_is_invalid_input(clean_db: Database) -> None:
    with pytest.raises(InvalidInput) as err:
        run(clean_db, "SELECT 'not-a-uuid'::uuid")
    assert isinstance(err.value.__cause__, psycopg.errors.InvalidTextRepresentation)
    assert_human(err.value)


@pytest.mark.parametrize(
    ("statement", "params", "cause"),
    [
        # 22P05: jsonb refuses \u0000; the server's CONTEXT line echoes the JSON around it.
        (
            "SELECT %(v)s::jsonb",
            {"v": '{"bio": "Ada\\u0000Lovelace"}'},
            psycopg.errors.UntranslatableCharacter,
        ),
        # 22P02, whose primary message quotes the value.
        (
            "SELECT %(v)s::uuid",
            {"v": "Lovelace-not-a-uuid"},
            psycopg.errors.InvalidTextRepresentation,
        ),
        ("SELECT %(v)s::int", {"v": "Lovelace"}, psycopg.errors.InvalidTextRepresentation),
        # 22003, 22012, 22007: other members of the class.
        ("SELECT %(v)s::int", {"v": "99999999999"}, psycopg.errors.NumericValueOutOfRange),
        ("SELECT 1 / %(v)s::int", {"v": 0}, psycopg.errors.DivisionByZero),
        ("SELECT %(v)s::date", {"v": "Lovelace"}, psycopg.errors.InvalidDatetimeFormat),
        # Refused by the driver before it reaches the server: NUL in text.
        ("SELECT %(v)s::text", {"v": "Ada\x00Lovelace"}, psycopg.DataError),
    ],
)
def test_data_exception_class_22_is_invalid_input_without_the_value(
    clean_db: Database, statement: str, params: dict[str, object], cause: type
) -> None:
    with pytest.raises(InvalidInput) as err:
        run(clean_db, statement, params)
    assert isinstance(err.value.__cause__, cause)
    text = str(err.value)
    assert text.startswith("invalid value: ")
    assert "Lovelace" not in text
    assert "\x00" not in text
    assert "CONTEXT" not in text
    assert_human(err.value)


def test_serialization_failure_40001_is_retryable(clean_db: Database, team_id: uuid.UUID) -> None:
    def collide() -> None:
        with unit_of_work(clean_db, SYSTEM, isolation="repeatable read") as uow:
            uow.conn.execute("SELECT name FROM teams WHERE id = %s", (team_id,))
            # Another transaction changes the row and commits after our snapshot was taken.
            with as_system(clean_db) as other:
                other.execute("UPDATE teams SET name = 'Theirs' WHERE id = %s", (team_id,))
            uow.conn.execute("UPDATE teams SET name = 'Ours' WHERE id = %s", (team_id,))

    with pytest.raises(RetryableConflict) as err:
        collide()
    assert isinstance(err.value.__cause__, psycopg.errors.SerializationFailure)
    assert_human(err.value)


def test_deadlock_40p01_is_retryable(clean_db: Database, owner: UserView) -> None:
    teams = TeamService(clean_db)
    a = teams.create(Actor.user(owner.id), name="A", slug="a").id
    b = teams.create(Actor.user(owner.id), name="B", slug="b").id
    barrier = threading.Barrier(2, timeout=10)
    outcomes: list[BaseException | None] = []

    def lock(first: uuid.UUID, second: uuid.UUID) -> None:
        try:
            with unit_of_work(clean_db, SYSTEM) as uow:
                # deadlock_timeout is superuser-only: the app role waits the default 1 s.
                uow.conn.execute("UPDATE teams SET name = 'x' WHERE id = %s", (first,))
                barrier.wait()
                uow.conn.execute("UPDATE teams SET name = 'y' WHERE id = %s", (second,))
            outcomes.append(None)
        except BaseException as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=lock, args=p) for p in ((a, b), (b, a))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    errors = [e for e in outcomes if e is not None]
    assert len(errors) == 1, outcomes
    assert isinstance(errors[0], RetryableConflict)
    assert isinstance(errors[0].__cause__, psycopg.errors.DeadlockDetected)
    assert_human(errors[0])


def test_lock_not_available_55p03_is_lock_timeout(clean_db: Database, team_id: uuid.UUID) -> None:
    with as_system(clean_db) as holder:
        holder.execute("SELECT 1 FROM teams WHERE id = %s FOR UPDATE", (team_id,))
        with pytest.raises(LockTimeout) as err:
            run_all(
                clean_db,
                "SET LOCAL lock_timeout = '50ms'",
                "UPDATE teams SET name = 'blocked' WHERE id = %(id)s",
                {"id": team_id},
            )
    assert_human(err.value)


def test_query_canceled_57014_is_operation_timeout(clean_db: Database) -> None:
    with pytest.raises(OperationTimeout) as err:
        run_all(clean_db, "SET LOCAL statement_timeout = '50ms'", "SELECT pg_sleep(1)")
    assert not isinstance(err.value, LockTimeout)
    assert_human(err.value)


# -- nothing half-done ------------------------------------------------------------------------


def test_a_failing_step_rolls_back_the_whole_unit_of_work(
    clean_db: Database, team_id: uuid.UUID
) -> None:
    with pytest.raises(InvalidInput):
        run_all(
            clean_db,
            "UPDATE teams SET name = 'Renamed' WHERE id = %(id)s",
            "UPDATE teams SET slug = 'BAD SLUG' WHERE id = %(id)s",
            {"id": team_id},
        )
    assert TeamService(clean_db).get(SYSTEM, team_id).name == "Acme"


# -- automatic, bounded retries ---------------------------------------------------------------


@pytest.fixture
def flaky_teams(clean_db: Database, db: Database) -> Iterator[str]:
    """A trigger on teams that raises serialization_failure while a sequence is below a limit.

    Sequences are not transactional, so the count survives the rollback of each attempt.
    Yields the sequence name; the test sets the number of failures with setval.
    """
    # Created by the administrator (only the owner changes the schema); the app role, which
    # the services run as, may use them.
    with psycopg.connect(to_libpq_url(db.url), autocommit=True) as conn:
        conn.execute("CREATE SEQUENCE test_flaky_attempts")
        conn.execute("CREATE TABLE test_flaky_limit (failures int NOT NULL)")
        conn.execute("GRANT USAGE, SELECT ON SEQUENCE test_flaky_attempts TO PUBLIC")
        conn.execute("GRANT SELECT, INSERT, UPDATE, DELETE ON test_flaky_limit TO PUBLIC")
        conn.execute(
            """
            CREATE FUNCTION test_flaky() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF nextval('test_flaky_attempts') <= (SELECT failures FROM test_flaky_limit) THEN
                    RAISE EXCEPTION 'simulated conflict' USING ERRCODE = 'serialization_failure';
                END IF;
                RETURN NEW;
            END $$
            """
        )
        conn.execute(
            "CREATE TRIGGER test_flaky BEFORE UPDATE ON teams "
            "FOR EACH ROW EXECUTE FUNCTION test_flaky()"
        )
        try:
            yield "test_flaky_attempts"
        finally:
            conn.execute("DROP TRIGGER test_flaky ON teams")
            conn.execute("DROP FUNCTION test_flaky()")
            conn.execute("DROP TABLE test_flaky_limit")
            conn.execute("DROP SEQUENCE test_flaky_attempts")


def attempts(db: Database, seq: str) -> int:
    with db.read(SYSTEM_CONTEXT) as conn:
        row = conn.execute(f"SELECT last_value FROM {seq}").fetchone()
    assert row is not None
    return int(row[0])


def test_a_write_is_retried_after_a_serialization_failure(
    clean_db: Database, owner: UserView, flaky_teams: str
) -> None:
    team = TeamService(clean_db).create(Actor.user(owner.id), name="Acme", slug="acme")
    with clean_db.read(SYSTEM_CONTEXT) as conn:
        conn.execute("INSERT INTO test_flaky_limit VALUES (2)")
    renamed = TeamService(clean_db).rename(Actor.user(owner.id), team.id, "Acme Inc")
    assert renamed.name == "Acme Inc"
    assert attempts(clean_db, flaky_teams) == 3  # two failures, then success


def test_retries_are_bounded(clean_db: Database, owner: UserView, flaky_teams: str) -> None:
    team = TeamService(clean_db).create(Actor.user(owner.id), name="Acme", slug="acme")
    with clean_db.read(SYSTEM_CONTEXT) as conn:
        conn.execute("INSERT INTO test_flaky_limit VALUES (1000)")
    with pytest.raises(RetryableConflict) as err:
        TeamService(clean_db).rename(Actor.user(owner.id), team.id, "Never")
    assert attempts(clean_db, flaky_teams) == _base.MAX_ATTEMPTS
    assert_human(err.value)
    assert TeamService(clean_db).get(SYSTEM, team.id).name == "Acme"
