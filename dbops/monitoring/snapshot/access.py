"""Who connected, and who failed to: the app's and the server's side."""

from __future__ import annotations

from dataclasses import dataclass

from dbops.monitoring.snapshot._base import CountBy

__all__ = [
    "AccessStat",
    "AppAccessStat",
    "ServerAccessStat",
]


@dataclass(frozen=True)
class AppAccessStat:
    """Access events of the collecting process's service calls since it started.

    Counted by :mod:`dbops.telemetry.access` from the failures of every public service method:
    refused sign-ins, :class:`~dbops.errors.Forbidden`, :class:`~dbops.errors.NotFound`
    (missing or hidden from the actor), and statements the server refused under row-level
    security or for a missing privilege (SQLSTATE 42501). ``login_failed_recent`` counts the
    refused sign-ins of the last :attr:`AccessStat.window_s` seconds.
    """

    login_failed: int
    forbidden: int
    not_found: int
    rls_denied: int
    privilege_denied: int
    login_failed_recent: int

    def by_kind(self) -> tuple[CountBy, ...]:
        """The cumulative counts, one per kind."""
        return (
            CountBy("login_failed", self.login_failed),
            CountBy("forbidden", self.forbidden),
            CountBy("not_found", self.not_found),
            CountBy("rls_denied", self.rls_denied),
            CountBy("privilege_denied", self.privilege_denied),
        )


@dataclass(frozen=True)
class ServerAccessStat:
    """Refused logins and denials in the server log (a server on this host: the embedded one).

    Counted like :attr:`ResourceStat.log_errors` (cumulative since this process first read the
    log, starting from at most its last megabyte): ``login_failed`` are ERROR/FATAL lines of
    SQLSTATE class 28 (``28P01`` wrong password, ``28000`` no or a rejecting ``pg_hba.conf``
    entry, an unknown role), ``rls_denied`` lines of SQLSTATE 42501 about row-level security
    (``new row violates row-level security policy``), ``privilege_denied`` the other 42501
    lines (``permission denied for table``). ``login_failed_recent`` counts the refused logins
    of the last :attr:`AccessStat.window_s` seconds by the log's own times; ``None`` when a
    refused login's time could not be read (``log_timezone`` other than UTC).
    """

    login_failed: int
    rls_denied: int
    privilege_denied: int
    login_failed_recent: int | None

    def by_kind(self) -> tuple[CountBy, ...]:
        """The cumulative counts, one per kind."""
        return (
            CountBy("login_failed", self.login_failed),
            CountBy("rls_denied", self.rls_denied),
            CountBy("privilege_denied", self.privilege_denied),
        )


@dataclass(frozen=True)
class AccessStat:
    """Access monitoring: the application's side and the server's side.

    ``app`` is ``None`` unless the snapshot was taken inside the application process
    (``collect_snapshot(..., app=True)``); ``server`` is ``None`` when the server's log is not
    on this host (or cannot be read). ``window_s`` is the span of the ``*_recent`` counts.
    """

    window_s: float
    app: AppAccessStat | None = None
    server: ServerAccessStat | None = None
