"""Access events of the services: counted by kind, logged without secrets, exported."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
import uuid

import psycopg
import pytest
from prometheus_client import CollectorRegistry
from psycopg import sql

from dbops.config import Settings
from dbops.db import Database
from dbops.errors import Conflict, Forbidden, LoginFailed, NotFound
from dbops.exporter import instrument
from dbops.monitoring import collect_snapshot
from dbops.services._base import Actor
from dbops.services.users import WRONG_CREDENTIALS, UserService
from dbops.telemetry.access import (
    ACCESS,
    KINDS,
    MAX_RECENT,
    AccessEvents,
    access_kind,
    record_failure,
)
from dbops.telemetry.metrics import StatementMetrics, timed
from tests.services._helpers import FAST_HASHER, PASSWORD, SYSTEM, unique

#: A table whose policy admits no row, and one the test role has no privilege on.
SETUP_SQL = (
    "CREATE TABLE {rls} (id int)",
    "ALTER TABLE {rls} ENABLE ROW LEVEL SECURITY",
    "CREATE POLICY nothing ON {rls} USING (false) WITH CHECK (false)",
    "CREATE TABLE {hidden} (id int)",
    "CREATE ROLE {role}",
    "GRANT SELECT, INSERT ON {rls} TO {role}",
)


def _count(kind: str) -> int:
    return dict(ACCESS.counts())[kind]


def _raised(exc: BaseException, cause: BaseException | None = None) -> BaseException:
    try:
        raise exc from cause
    except BaseException as caught:
        return caught


@pytest.fixture
def users(clean_db: Database) -> UserService:
    return UserService(clean_db, hasher=FAST_HASHER)


@pytest.fixture
def denied(raw_conn: psycopg.Connection[tuple[object, ...]]) -> dict[str, psycopg.Error]:
    """Two real 42501 errors from the server: a row-level security refusal and a missing GRANT.

    Everything is created in one transaction as a role without BYPASSRLS, then rolled back.
    """
    names = {k: sql.Identifier(f"acc_{k}_{uuid.uuid4().hex[:8]}") for k in ("rls", "hidden")}
    role = sql.Identifier(f"acc_role_{uuid.uuid4().hex[:8]}")
    errors: dict[str, psycopg.Error] = {}
    with raw_conn.transaction(force_rollback=True):
        for template in SETUP_SQL:
            raw_conn.execute(sql.SQL(template).format(role=role, **names))
        raw_conn.execute(sql.SQL("SET LOCAL ROLE {}").format(role))
        for key, statement in (
            ("rls", sql.SQL("INSERT INTO {} VALUES (1)").format(names["rls"])),
            ("privilege", sql.SQL("SELECT * FROM {}").format(names["hidden"])),
        ):
            with (
                pytest.raises(psycopg.errors.InsufficientPrivilege) as caught,
                raw_conn.transaction(),
            ):
                raw_conn.execute(statement)
            errors[key] = caught.value
    return errors


# -- through the services, on the real database ----------------------------------------------
def test_wrong_password_counts_login_failed_and_logs_no_secret(
    users: UserService, caplog: pytest.LogCaptureFixture
) -> None:
    email = f"{unique('acc')}@example.com"
    users.create(SYSTEM, email=email, password=PASSWORD, display_name="Access")
    before = {kind: _count(kind) for kind in KINDS}
    caplog.set_level(logging.INFO, logger="dbops.access")

    for address in (email, f"{unique('nobody')}@example.com"):  # wrong password, unknown email
        with pytest.raises(LoginFailed, match=WRONG_CREDENTIALS):
            users.authenticate(SYSTEM, address, "not the password")

    after = {kind: _count(kind) for kind in KINDS}
    assert after["login_failed"] == before["login_failed"] + 2
    assert {k: after[k] - before[k] for k in KINDS if k != "login_failed"} == dict.fromkeys(
        set(KINDS) - {"login_failed"}, 0
    )
    records = [r for r in caplog.records if r.name == "dbops.access"]
    assert len(records) == 2
    for record in records:
        assert record.levelno == logging.WARNING
        assert record.access_kind == "login_failed"  # type: ignore[attr-defined]
        assert record.access_statement == "users.authenticate"  # type: ignore[attr-defined]
        assert record.actor_kind == "system"  # type: ignore[attr-defined]
        assert record.actor_id is None  # type: ignore[attr-defined]
    logged = caplog.text + repr([vars(r) for r in records])
    assert "users.authenticate" in logged
    for secret in (email, email.split("@")[0], "not the password", PASSWORD, "@example.com"):
        assert secret not in logged


def test_right_password_counts_nothing(users: UserService) -> None:
    email = f"{unique('acc')}@example.com"
    users.create(SYSTEM, email=email, password=PASSWORD, display_name="Access")
    before = ACCESS.counts()
    assert users.authenticate(SYSTEM, email, PASSWORD).email == email
    assert ACCESS.counts() == before


def test_forbidden_and_not_found_are_counted_with_the_actor(
    users: UserService, caplog: pytest.LogCaptureFixture
) -> None:
    alice = users.create(
        SYSTEM, email=f"{unique('a')}@example.com", password=PASSWORD, display_name="A"
    )
    bob = users.create(
        SYSTEM, email=f"{unique('b')}@example.com", password=PASSWORD, display_name="B"
    )
    forbidden, not_found = _count("forbidden"), _count("not_found")
    caplog.set_level(logging.INFO, logger="dbops.access")

    with pytest.raises(Forbidden):  # a system-only action (docs/permissions.md)
        users.list_users(Actor.user(alice.id))
    with pytest.raises(NotFound):  # a stranger's row: hidden, not forbidden
        users.rename(Actor.user(alice.id), bob.id, "taken over")
    with pytest.raises(NotFound):
        users.get(SYSTEM, uuid.uuid4())

    assert _count("forbidden") == forbidden + 1
    assert _count("not_found") == not_found + 2
    first, hidden, second = (r for r in caplog.records if r.name == "dbops.access")
    assert (first.levelno, first.access_kind, first.access_statement) == (  # type: ignore[attr-defined]
        logging.INFO,
        "forbidden",
        "users.list_users",
    )
    assert (hidden.access_kind, hidden.access_statement) == ("not_found", "users.rename")  # type: ignore[attr-defined]
    assert first.actor_kind == "user"  # type: ignore[attr-defined]
    assert first.actor_id == str(alice.id)  # type: ignore[attr-defined]
    assert (second.access_kind, second.actor_kind) == ("not_found", "system")  # type: ignore[attr-defined]
    assert alice.email not in caplog.text
    assert bob.email not in caplog.text


def test_other_failures_are_no_access_events(users: UserService) -> None:
    email = f"{unique('dup')}@example.com"
    users.create(SYSTEM, email=email, password=PASSWORD, display_name="D")
    before = ACCESS.counts()
    with pytest.raises(Conflict):
        users.create(SYSTEM, email=email, password=PASSWORD, display_name="D")
    assert ACCESS.counts() == before


def test_failed_sign_in_reaches_the_exporter_and_the_snapshot(
    users: UserService, clean_db: Database, settings: Settings
) -> None:
    registry = CollectorRegistry()
    instrument(registry, db=clean_db)
    labels = {"kind": "login_failed", "source": "app"}
    before = registry.get_sample_value("dbops_access_events_total", labels)
    assert before is not None
    for kind in KINDS:  # every kind is exported from the start, zeros included
        assert (
            registry.get_sample_value("dbops_access_events_total", {"kind": kind, "source": "app"})
            is not None
        )

    with pytest.raises(LoginFailed):
        users.authenticate(SYSTEM, f"{unique('x')}@example.com", "wrong")

    assert registry.get_sample_value("dbops_access_events_total", labels) == before + 1
    snap = collect_snapshot(clean_db, settings, app=True)
    assert snap.access is not None
    assert snap.access.app is not None
    assert snap.access.app.login_failed == before + 1
    assert snap.access.app.login_failed_recent >= 1
    assert collect_snapshot(clean_db, settings).access.app is None  # type: ignore[union-attr]


# -- classification ------------------------------------------------------------------------
def test_server_refusals_are_rls_or_privilege_denials(denied: dict[str, psycopg.Error]) -> None:
    rls, privilege = denied["rls"], denied["privilege"]
    assert "row-level security" in str(rls)
    assert access_kind(rls) == ("rls_denied", "42501")
    assert access_kind(privilege) == ("privilege_denied", "42501")
    # Translated by a service into its own error, the server's refusal still decides the kind.
    assert access_kind(_raised(Forbidden("no"), rls)) == ("rls_denied", "42501")
    assert access_kind(_raised(NotFound("no such team"), privilege)) == (
        "privilege_denied",
        "42501",
    )


def test_server_refusal_through_a_timed_call_is_counted_and_warned(
    denied: dict[str, psycopg.Error], caplog: pytest.LogCaptureFixture
) -> None:
    events = AccessEvents()
    caplog.set_level(logging.INFO, logger="dbops.access")

    @timed("t.write", metrics=StatementMetrics(), access=events)
    def write(actor: Actor) -> None:
        raise denied["rls"]

    user = uuid.uuid4()
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        write(Actor.user(user))
    assert dict(events.counts())["rls_denied"] == 1
    (record,) = (r for r in caplog.records if r.name == "dbops.access")
    assert record.levelno == logging.WARNING
    assert (record.actor_kind, record.actor_id, record.sqlstate) == ("user", str(user), "42501")  # type: ignore[attr-defined]
    assert "INSERT" not in caplog.text  # never the statement


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (LoginFailed(WRONG_CREDENTIALS), ("login_failed", None)),
        (Forbidden("only owners"), ("forbidden", None)),
        (NotFound("no such team"), ("not_found", None)),
        (Conflict("taken"), None),
        (ValueError("bug"), None),
        (KeyboardInterrupt(), None),
    ],
)
def test_access_kind(exc: BaseException, expected: tuple[str, str | None] | None) -> None:
    assert access_kind(exc) == expected


def test_an_exception_is_counted_once_through_nested_calls() -> None:
    events = AccessEvents()
    metrics = StatementMetrics()

    @timed("t.inner", metrics=metrics, access=events)
    def inner() -> None:
        raise NotFound("gone")

    @timed("t.outer", metrics=metrics, access=events)
    def outer() -> None:
        inner()

    with pytest.raises(NotFound):
        outer()
    assert dict(events.counts())["not_found"] == 1


def test_recording_never_replaces_the_exception() -> None:
    class Weird(Forbidden):
        @property
        def _dbops_access_recorded(self) -> bool:  # read-only: marking it raises
            return False

    assert record_failure("t.x", Weird("no"), events=AccessEvents()) is None
    with pytest.raises(ValueError, match="kind"):
        AccessEvents().record("bogus", statement="t.x")


def test_recent_failed_logins_follow_the_window() -> None:
    now = [1_000.0]
    events = AccessEvents(clock=lambda: now[0])
    for at in (100.0, 500.0, 950.0, 999.0):
        now[0] = at
        events.record("login_failed", statement="users.authenticate")
    now[0] = 1_000.0
    snap = events.snapshot(window_s=60.0)
    assert snap.count("login_failed") == 4
    assert snap.login_failed_recent == 2  # 950 and 999 are within the last 60 s
    assert events.snapshot(window_s=1_000.0).login_failed_recent == 4
    assert snap.count("unknown") == 0


def test_recent_times_are_bounded() -> None:
    events = AccessEvents(clock=lambda: 0.0)
    for _ in range(MAX_RECENT + 5):
        events.record("login_failed", statement="t", actor_kind="system")
    snap = events.snapshot(window_s=10.0)
    assert snap.count("login_failed") == MAX_RECENT + 5
    assert snap.login_failed_recent == MAX_RECENT


def test_concurrent_events_lose_no_count() -> None:
    events = AccessEvents(logger=logging.getLogger("tests.access.quiet"))
    logging.getLogger("tests.access.quiet").setLevel(logging.CRITICAL)

    def work() -> None:
        for _ in range(2_000):
            events.record("forbidden", statement="t.x")

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert dict(events.counts())["forbidden"] == 8_000


def test_events_print_nothing_until_logging_is_configured() -> None:
    code = (
        "import logging\n"
        "from dbops.telemetry.access import ACCESS\n"
        "ACCESS.record('login_failed', statement='users.authenticate')\n"
        "logging.basicConfig(format='%(name)s %(levelname)s %(access_kind)s')\n"
        "ACCESS.record('rls_denied', statement='teams.create')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stderr == "dbops.access WARNING rls_denied\n"
