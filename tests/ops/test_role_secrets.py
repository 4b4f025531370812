"""Passwords never reach the statistics, the log or a consumer (issue: security hardening).

``pg_stat_statements`` keeps utility statements with their literals, readable by every
``pg_read_all_stats`` member (the monitor and read-only roles). dbops sends SCRAM verifiers,
removes entries that hold a password literal, reports them, and redacts every query text it
shows or stores (``dbops.redact``, in Python and on the server, from one pattern).
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator
from urllib.parse import quote, urlsplit, urlunsplit

import psycopg
import pytest

from dbops.config import to_libpq_url
from dbops.db import Database, EmbeddedCluster, open_database
from dbops.exporter import snapshot_metrics
from dbops.monitoring import collect_snapshot, evaluate, history
from dbops.monitoring.snapshot import QueryStat, Snapshot
from dbops.ops.roles import ROLE_NAMES, setup_roles
from dbops.redact import REDACTED, has_secret, redact, redact_sql
from tests.fixtures.db import ROLE_PASSWORDS, make_settings
from tests.fixtures.snapshots import healthy_snapshot

#: Statement texts and what they must become (``None``: unchanged).
CASES: list[tuple[str, str | None]] = [
    ("ALTER ROLE a PASSWORD 'x''y z'", f"ALTER ROLE a PASSWORD {REDACTED}"),
    (
        "CREATE ROLE a LOGIN ENCRYPTED PASSWORD 'pw' VALID UNTIL 'infinity'",
        f"CREATE ROLE a LOGIN ENCRYPTED PASSWORD {REDACTED} VALID UNTIL 'infinity'",
    ),
    ("alter role a with password 'pw'", f"alter role a with password {REDACTED}"),
    ("ALTER ROLE a PASSWORD 'cut in the midd", f"ALTER ROLE a PASSWORD {REDACTED}"),
    (
        "CREATE SUBSCRIPTION s CONNECTION 'host=a password=s3cr3t dbname=x' PUBLICATION p",
        f"CREATE SUBSCRIPTION s CONNECTION 'host=a password={REDACTED} dbname=x' PUBLICATION p",
    ),
    (
        "CREATE USER MAPPING FOR a SERVER s OPTIONS (user 'u', password 'pw')",
        f"CREATE USER MAPPING FOR a SERVER s OPTIONS (user 'u', password {REDACTED})",
    ),
    ("SET app.encryption_key TO 'abc'", f"SET app.encryption_key TO {REDACTED}"),
    ("set my.api_key = 'k'", f"set my.api_key = {REDACTED}"),
    (
        "ALTER ROLE a PASSWORD 'SCRAM-SHA-256$4096:abc=$def:ghi='",
        f"ALTER ROLE a PASSWORD {REDACTED}",
    ),
    ("select 'SCRAM-SHA-256$4096:abc=$def:ghi='", f"select '{REDACTED}'"),
    ("select 'md5d41d8cd98f00b204e9800998ecf8427e'", f"select '{REDACTED}'"),
    # Normalized DML and column names stay as they are.
    ("SELECT id, password_hash FROM users WHERE email = $1", None),
    ("UPDATE users SET password_hash = $1 WHERE id = $2", None),
    ("select token from t where token_hash = $1", None),
    ("select 'md5' || md5('x')", None),
]


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_python_and_server_redact_alike(db: Database, text: str, expected: str | None) -> None:
    want = text if expected is None else expected
    assert redact(text) == want
    assert has_secret(text) is (expected is not None)
    with db.read() as conn:
        row = conn.execute("SELECT " + redact_sql("%s::text"), (text,)).fetchone()
    assert row == (want,)


def test_every_query_text_of_a_snapshot_is_redacted_whatever_its_source() -> None:
    secret = "ALTER ROLE dbops_app PASSWORD 'hunter2-plain'"
    base = healthy_snapshot()
    assert base.statements is not None
    assert base.activity is not None
    stat = dataclasses.replace(base.statements.top[0], query=secret)
    assert stat.query == f"ALTER ROLE dbops_app PASSWORD {REDACTED}"
    session = dataclasses.replace(base.activity.sessions[0], query=secret)  # type: ignore[index]
    assert "hunter2" not in (session.query or "")
    snap = dataclasses.replace(
        base,
        statements=dataclasses.replace(base.statements, top=(stat,)),
        activity=dataclasses.replace(base.activity, sessions=(session,)),
    )
    # A JSON file written by anything (an older dbops, by hand) is redacted when read.
    raw = snap.to_json().replace(REDACTED, "'hunter2-plain'")
    assert "hunter2-plain" in raw
    loaded = Snapshot.from_json(raw)
    assert "hunter2" not in loaded.to_json()
    # The exporter's statement labels.
    metrics = snapshot_metrics(loaded, make_settings("postgresql://u@localhost/db"))
    labels = [str(s.labels) for m in metrics for s in m.samples]
    assert any("ALTER ROLE dbops_app PASSWORD" in text for text in labels)
    assert not any("hunter2" in text for text in labels)


@pytest.fixture
def leaked_password(db: Database) -> Iterator[tuple[str, str]]:
    """A plain password in pg_stat_statements, as the earlier ``dbops roles setup`` left one."""
    role = f"leak_{uuid.uuid4().hex[:8]}"
    password = f"plain-{uuid.uuid4().hex}"
    with db.connection() as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
    yield role, password
    with db.connection() as conn:
        conn.execute(f"DROP ROLE {role}")


def _statement_texts(db: Database) -> list[str]:
    with db.read() as conn:
        return [r[0] for r in conn.execute("SELECT query FROM pg_stat_statements").fetchall()]


def test_setup_removes_leaked_passwords_and_the_check_reports_them(
    db: Database, pg_cluster: EmbeddedCluster, leaked_password: tuple[str, str]
) -> None:
    role, leaked = leaked_password
    settings = make_settings(db.dsn.sqlalchemy, monitor_top_statements=10_000)
    assert any(leaked in t for t in _statement_texts(db))
    snap = collect_snapshot(db, settings)
    assert snap.statements is not None
    assert snap.statements.secret_texts
    assert leaked not in snap.to_json()
    assert any(REDACTED in (q.query or "") for q in snap.statements.top)
    found = [f for f in evaluate(snap, settings) if f.check == "secret_statements"]
    assert [str(f.severity) for f in found] == ["critical"]
    # History stores the text redacted (a statement new since the last capture).
    history.capture(db, settings)
    again = f"again-{uuid.uuid4().hex}"
    with db.connection() as conn:
        conn.execute(f"ALTER ROLE {role} PASSWORD '{again}'")
    history.capture(db, settings)
    with db.read() as conn:
        stored = [r[0] for r in conn.execute("SELECT query FROM dbops_monitor.statements")]
    assert f"ALTER ROLE {role} PASSWORD {REDACTED}" in stored
    assert not any(leaked in t or again in t for t in stored)

    report = setup_roles(db, ROLE_PASSWORDS)
    assert report.secret_statements >= 1
    texts = _statement_texts(db)
    assert not any(leaked in t for t in texts)
    assert not any(has_secret(t) for t in texts), [t for t in texts if has_secret(t)]
    snap = collect_snapshot(db, settings)
    assert snap.statements is not None
    assert snap.statements.secret_texts == 0
    found = [f for f in evaluate(snap, settings) if f.check == "secret_statements"]
    assert [str(f.severity) for f in found] == ["ok"]


@pytest.mark.parametrize("quiet", [True, False], ids=["superuser", "not-superuser"])
def test_setup_sends_verifiers_only(
    db: Database, pg_cluster: EmbeddedCluster, monkeypatch: pytest.MonkeyPatch, quiet: bool
) -> None:
    """Even with statement tracking and statement logging on, no password leaves in clear.

    ``not-superuser``: an administrator who may not turn tracking off for its transaction (a
    managed server's admin role): only the verifier keeps the password out.
    """
    if not quiet:
        monkeypatch.setattr("dbops.ops.roles.setup.quiet_session", lambda conn: None)
    passwords = {role: f"clear-{role}-{uuid.uuid4().hex[:12]}" for role in ROLE_NAMES}
    with psycopg.connect(pg_cluster.libpq_url(), autocommit=True) as admin:
        admin.execute("ALTER SYSTEM SET log_statement = 'all'")
        admin.execute("SELECT pg_reload_conf()")
        try:
            setup_roles(db, passwords)
        finally:
            admin.execute("ALTER SYSTEM RESET log_statement")
            admin.execute("SELECT pg_reload_conf()")
            setup_roles(db, ROLE_PASSWORDS)
    texts = "\n".join(_statement_texts(db))
    logs = pg_cluster.logfile.read_text(errors="replace")
    for password in passwords.values():
        assert password not in texts
        assert password not in logs
    with db.read() as conn:
        stored = conn.execute(
            "SELECT rolname::text, left(rolpassword, 14) FROM pg_authid WHERE rolname = ANY(%s)",
            (list(ROLE_NAMES.values()),),
        ).fetchall()
    assert {r[1] for r in stored} == {"SCRAM-SHA-256$"}


def _tcp_url(pg_cluster: EmbeddedCluster, user: str, password: str) -> str:
    parts = urlsplit(to_libpq_url(pg_cluster.tcp_url()))
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}:{quote(password, safe='')}@{host}"))


def test_a_verifier_still_logs_in(pg_cluster: EmbeddedCluster, db: Database) -> None:
    password = f"login-{uuid.uuid4().hex[:12]}"
    monitor = ROLE_NAMES["monitor"]
    try:
        setup_roles(db, {**ROLE_PASSWORDS, "monitor": password})
        with psycopg.connect(_tcp_url(pg_cluster, monitor, password)) as conn:
            assert conn.execute("SELECT current_user").fetchone() == (monitor,)
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            psycopg.connect(_tcp_url(pg_cluster, monitor, "wrong"))
    finally:
        setup_roles(db, ROLE_PASSWORDS)


def test_query_stat_built_by_hand_is_redacted() -> None:
    stat = QueryStat(
        1,
        "ALTER USER x PASSWORD 'p'",
        None,
        None,
        1,
        1.0,
        1.0,
        1.0,
        0.0,
        0,
        0,
        0,
        0,
        0,
        None,
        None,
        None,
    )
    assert stat.query == f"ALTER USER x PASSWORD {REDACTED}"


def test_setup_leaves_the_pooled_connection_tracked(db: Database) -> None:
    """The quiet settings are transaction-local: the pool's connection is tracked again after."""
    settings = make_settings(db.dsn.sqlalchemy, pool_min_size=1, pool_max_size=1)
    with open_database(settings, db.dsn) as one:
        setup_roles(one, ROLE_PASSWORDS)
        with one.read() as conn:
            row = conn.execute(
                "SELECT current_setting('pg_stat_statements.track'), "
                "current_setting('log_statement'), "
                "(SELECT reset_val FROM pg_settings WHERE name = 'pg_stat_statements.track'), "
                "(SELECT reset_val FROM pg_settings WHERE name = 'log_statement')"
            ).fetchone()
    assert row is not None
    assert row[0:2] == row[2:4]


def test_role_status_is_what_pg_roles_says(db: Database) -> None:
    """Each role's flags against pg_roles read by hand (the roles differ in each flag)."""
    from dbops.ops.roles import RoleState, role_status

    with db.connection() as conn:
        rows = conn.execute(
            "SELECT rolname::text, rolcanlogin, rolbypassrls, rolsuper FROM pg_roles "
            "WHERE rolname = ANY(%s)",
            (list(ROLE_NAMES.values()),),
        ).fetchall()
    by_name = {r[0]: r[1:] for r in rows}
    assert role_status(db) == [
        RoleState(role, name, True, *by_name[name]) for role, name in ROLE_NAMES.items()
    ]
    flags = {name: by_name[name] for name in ROLE_NAMES.values()}
    assert flags["dbops_app"] == (True, False, False)
    assert flags["dbops_readonly"] == (True, True, False)  # login and bypass differ here


def test_the_readonly_role_is_created_once_then_kept(db: Database) -> None:
    from dbops.ops.roles import ensure_readonly_role

    name = f"ro_{uuid.uuid4().hex[:8]}"
    try:
        assert ensure_readonly_role(db, name, password="first-pw-123") == name
        assert ensure_readonly_role(db, name, password="second-pw-456") == name  # updated
        with db.connection() as conn:
            row = conn.execute(
                "SELECT rolcanlogin, rolconfig FROM pg_roles WHERE rolname = %s", (name,)
            ).fetchone()
        assert row == (True, ["default_transaction_read_only=on"])
    finally:
        with db.connection() as conn:
            conn.execute(f'DROP OWNED BY "{name}"')
            conn.execute(f'DROP ROLE IF EXISTS "{name}"')
