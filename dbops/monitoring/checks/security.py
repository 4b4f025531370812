"""Checks of security: bursts of failed sign-ins, secrets in statement texts, role defaults."""

from __future__ import annotations

from dbops.config import Settings
from dbops.monitoring.checks._base import (
    Check,
    Finding,
    Severity,
)
from dbops.monitoring.snapshot import Snapshot

__all__ = ["CHECKS"]


def _app_login_failures(snap: Snapshot) -> int | None:
    """Refused sign-ins of the window in the application: its live processes' reports.

    Without reports (``snap.processes`` unknown, or no live process that says), the collecting
    process's own count, for a snapshot taken inside the application (``app=True``).
    """
    counts = [p.login_failed_recent for p in snap.live_processes()]
    known = [n for n in counts if n is not None]
    if known:
        return sum(known)
    acc = snap.access
    return acc.app.login_failed_recent if acc is not None and acc.app is not None else None


def _failed_logins(snap: Snapshot, s: Settings) -> list[Finding] | None:
    acc = snap.access
    if acc is None:
        return None
    sources = [
        (
            "app",
            _app_login_failures(snap),
            "sign-ins refused by UserService.authenticate",
            "see the WARNING records of logger dbops.access (statement, actor); throttle or "
            "lock the account under attack",
        ),
        (
            "server",
            acc.server.login_failed_recent if acc.server else None,
            "database logins refused by the server",
            "grep the server log for SQLSTATE 28P01/28000 (user@database and client host are "
            "in each line); rotate the password, tighten pg_hba.conf",
        ),
    ]
    known = [(name, n, what, hint) for name, n, what, hint in sources if n is not None]
    if not known:
        return None
    minutes = acc.window_s / 60
    return [
        Finding(
            "failed_logins",
            Severity.WARNING,
            f"{n} {what} in the last {minutes:.0f} min",
            hint,
            name,
        )
        for name, n, what, hint in known
        if n >= s.check_failed_logins_warning
    ]


def _secret_statements(snap: Snapshot, s: Settings) -> list[Finding] | None:
    st = snap.statements
    if st is None or st.secret_texts is None:
        return None
    if not st.secret_texts:
        return []
    return [
        Finding(
            "secret_statements",
            Severity.CRITICAL,
            f"{st.secret_texts} pg_stat_statements entries hold a password or secret literal, "
            "readable by every pg_read_all_stats member (dbops shows them redacted)",
            "run `dbops roles setup` (it removes them), then change those passwords; send "
            "only SCRAM verifiers (libpq PQencryptPasswordConn, psql \\password)",
        )
    ]


def _role_defaults(snap: Snapshot, s: Settings) -> list[Finding] | None:
    defaults = snap.database.role_defaults if snap.database else None
    if defaults is None:
        return None
    return [
        Finding(
            "role_defaults",
            Severity.CRITICAL,
            f"role {d.role} has the default {d.setting}"
            + (f" in database {d.database}" if d.database else "")
            + ": a role default can undo row-level security or timeouts",
            "run `dbops roles setup` (it removes them); find who ran ALTER ROLE ... SET",
            d.role,
        )
        for d in defaults
    ]


#: This topic's checks, in the order they run and are listed.
CHECKS: tuple[Check, ...] = (
    Check(
        "failed_logins",
        "Failed logins",
        ("check_failed_logins_warning", "monitor_access_window_s"),
        _failed_logins,
        "no burst of failed logins in the recent window",
    ),
    Check(
        "secret_statements",
        "Secrets in statement statistics",
        (),
        _secret_statements,
        "no pg_stat_statements text holds a password or secret literal",
    ),
    Check(
        "role_defaults",
        "Role defaults on dbops roles",
        (),
        _role_defaults,
        "dbops' roles carry no role-level setting but their own",
    ),
)
