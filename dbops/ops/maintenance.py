"""Maintenance actions (ANALYZE, VACUUM, REINDEX INDEX CONCURRENTLY) and the run that does them.

An :class:`Action` is a frozen value: what to do to which object and why. Its SQL is built
from its identifiers with :mod:`psycopg.sql` every time, never stored as text, so an action
cannot carry arbitrary SQL. :func:`run` carries a list of actions out (or, by default, only
reads the facts it would change: a dry run).

Rules :func:`run` keeps:

- every action runs on its own autocommit connection (``VACUUM`` and ``REINDEX ...
  CONCURRENTLY`` refuse to run inside a transaction block), after ``SET lock_timeout`` and
  ``SET statement_timeout``;
- one failing action does not stop the others; its result says why in one line;
- a failed ``REINDEX INDEX CONCURRENTLY`` leaves an invalid ``<name>_ccnew`` (or
  ``_ccold``) index behind; :func:`run` finds the ones the failed statement created and drops
  them with ``DROP INDEX CONCURRENTLY``, so nothing invalid is left;
- while a statement runs, a second connection polls ``pg_stat_progress_vacuum``,
  ``pg_stat_progress_analyze`` and ``pg_stat_progress_create_index`` for its backend and
  reports the phase and blocks done through the ``progress`` callback (in the caller's thread).

Which actions are worth doing is decided from a snapshot by
:func:`dbops.monitoring.maintenance.plan`; ops never reads snapshots.
"""

from __future__ import annotations

import enum
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import errors as pg_errors
from psycopg import sql
from psycopg.rows import class_row

from dbops.core.maintenance import (
    DROP_INDEX_SQL,
    Action,
    ActionKind,
    is_reindex_leftover,
)
from dbops.db.dsn import Dsn
from dbops.errors import DbopsError, InvalidInput, translate_db_errors

if TYPE_CHECKING:
    from dbops.db import Database

__all__ = [
    "Action",
    "ActionKind",
    "ActionResult",
    "Facts",
    "MaintenanceReport",
    "Outcome",
    "ProgressEvent",
    "is_reindex_leftover",
    "run",
]


class Outcome(enum.StrEnum):
    """What :func:`run` did with one action."""

    APPLIED = "applied"
    SKIPPED = "skipped"
    FAILED = "failed"


@dataclass(frozen=True)
class Facts:
    """What an action may change, read just before and just after it (``None``: unknown).

    Table facts come from ``pg_stat_user_tables`` (``last_vacuum``/``last_analyze`` are the
    manual ones, which is what :func:`run` does); index facts from ``pg_class``/``pg_index``.
    """

    live_rows: int | None = None
    dead_rows: int | None = None
    last_vacuum: datetime | None = None
    last_analyze: datetime | None = None
    index_bytes: int | None = None
    index_valid: bool | None = None


@dataclass(frozen=True)
class ActionResult:
    """What happened to one action.

    ``reason`` says why an action was skipped or failed (one line, never row values).
    ``dropped`` names the leftover invalid indexes a failed reindex left and :func:`run`
    dropped; ``leftover`` the ones it could not drop (with ``reason`` saying how to).
    """

    action: Action
    outcome: Outcome
    duration_s: float
    before: Facts | None
    after: Facts | None
    reason: str | None = None
    dropped: tuple[str, ...] = ()
    leftover: tuple[str, ...] = ()

    @property
    def dead_rows_removed(self) -> int | None:
        """Dead rows before minus after (``None`` unless both are known)."""
        if self.before is None or self.after is None:
            return None
        if self.before.dead_rows is None or self.after.dead_rows is None:
            return None
        return self.before.dead_rows - self.after.dead_rows

    @property
    def index_bytes_saved(self) -> int | None:
        """Index size before minus after (``None`` unless both are known)."""
        if self.before is None or self.after is None:
            return None
        if self.before.index_bytes is None or self.after.index_bytes is None:
            return None
        return self.before.index_bytes - self.after.index_bytes


@dataclass(frozen=True)
class MaintenanceReport:
    """Every action's result, in the order run, and the totals."""

    applied_mode: bool
    results: tuple[ActionResult, ...]
    duration_s: float
    lock_timeout_ms: int
    statement_timeout_ms: int

    def count(self, outcome: Outcome) -> int:
        """How many actions ended with ``outcome``."""
        return sum(r.outcome is outcome for r in self.results)

    @property
    def failed(self) -> bool:
        """True when any action failed."""
        return self.count(Outcome.FAILED) > 0

    @property
    def dead_rows_removed(self) -> int:
        """Dead rows removed, summed over the actions where it is known."""
        return sum(r.dead_rows_removed or 0 for r in self.results)

    @property
    def index_bytes_saved(self) -> int:
        """Index bytes given back by reindexing, summed over the actions where it is known."""
        return sum(r.index_bytes_saved or 0 for r in self.results)


@dataclass(frozen=True)
class ProgressEvent:
    """Progress of the running action (``index`` in the list given to :func:`run`).

    ``phase`` is ``"started"``, a phase of the ``pg_stat_progress_*`` views (``"scanning
    heap"``, ``"building index: scanning table"``, ``"waiting for writers before build"``,
    ...), or ``"done"``/``"failed"`` at the end. Blocks are ``None`` when not reported.
    """

    index: int
    action: Action
    phase: str
    command: str | None = None
    blocks_done: int | None = None
    blocks_total: int | None = None


ProgressCallback = Callable[[ProgressEvent], None]

# ------------------------------------------------------------------------------------- SQL
TABLE_FACTS_SQL = """
SELECT s.n_live_tup AS live_rows,
       s.n_dead_tup AS dead_rows,
       s.last_vacuum,
       s.last_analyze
FROM pg_stat_user_tables AS s
WHERE s.schemaname = %(schema)s AND s.relname = %(table)s
"""

INDEX_FACTS_SQL = """
SELECT pg_relation_size(c.oid) AS index_bytes,
       i.indisvalid AS index_valid
FROM pg_class AS c
JOIN pg_namespace AS n ON n.oid = c.relnamespace
JOIN pg_index AS i ON i.indexrelid = c.oid
WHERE n.nspname = %(schema)s AND c.relname = %(index)s
"""

#: Every index of a table: taken before a reindex, to tell its leftovers from older indexes.
TABLE_INDEXES_SQL = """
SELECT c.oid::bigint AS oid, c.relname::text AS name, i.indisvalid AS is_valid
FROM pg_index AS i
JOIN pg_class AS c ON c.oid = i.indexrelid
JOIN pg_class AS t ON t.oid = i.indrelid
JOIN pg_namespace AS n ON n.oid = t.relnamespace
WHERE n.nspname = %(schema)s AND t.relname = %(table)s
"""

#: What the backend ``pid`` is doing, from whichever progress view shows it.
PROGRESS_SQL = """
SELECT 'vacuum' AS command, p.phase, p.heap_blks_scanned AS blocks_done,
       p.heap_blks_total AS blocks_total
FROM pg_stat_progress_vacuum AS p WHERE p.pid = %(pid)s
UNION ALL
SELECT 'analyze', p.phase, p.sample_blks_scanned, p.sample_blks_total
FROM pg_stat_progress_analyze AS p WHERE p.pid = %(pid)s
UNION ALL
SELECT lower(p.command), p.phase, p.blocks_done, p.blocks_total
FROM pg_stat_progress_create_index AS p WHERE p.pid = %(pid)s
"""

SET_TIMEOUTS_SQL = (
    "SELECT set_config('lock_timeout', %(lock)s, false), "
    "set_config('statement_timeout', %(statement)s, false)"
)


@dataclass(frozen=True)
class _IndexRow:
    oid: int
    name: str
    is_valid: bool


@dataclass(frozen=True)
class _ProgressRow:
    command: str
    phase: str
    blocks_done: int | None
    blocks_total: int | None


# ------------------------------------------------------------------------------------- run
def run(
    target: Database | Dsn | str,
    actions: Iterable[Action],
    *,
    apply: bool = False,
    lock_timeout_ms: int,
    statement_timeout_ms: int,
    progress: ProgressCallback | None = None,
    poll_interval_s: float = 0.2,
    application_name: str = "dbops-maintain",
) -> MaintenanceReport:
    """Carry ``actions`` out in order (``apply=True``), or only read their facts (dry run).

    Args:
        target: the database (a :class:`Database` lends its URL and connection settings).
        actions: what to do, usually ``plan(snapshot, settings).actions``.
        apply: really run the statements; the default is a dry run that changes nothing
            (each runnable action is ``skipped`` with its current facts).
        lock_timeout_ms: ``lock_timeout`` of each statement (0 = wait for ever).
        statement_timeout_ms: ``statement_timeout`` of each statement (0 = none); also the
            longest wait to drop a failed reindex's leftover index.
        progress: called in this thread with a :class:`ProgressEvent` at the start and end
            of each applied action and whenever its progress row changes.
        poll_interval_s: how often the progress views are read.
        application_name: ``application_name`` of the connections (visible in pg_stat_activity).

    Returns:
        One result per action, in order; an advisory is always ``skipped`` (nothing to run).

    Raises:
        InvalidInput: a negative timeout.
        DatabaseUnavailable: the database cannot be reached.
    """
    if lock_timeout_ms < 0 or statement_timeout_ms < 0:
        raise InvalidInput("lock_timeout_ms and statement_timeout_ms must be 0 or more")
    todo = list(actions)
    connect = _connector(target, application_name)
    started = time.monotonic()
    results: list[ActionResult] = []
    poller: psycopg.Connection[Any] | None = None
    try:
        if apply and progress is not None and any(a.runs for a in todo):
            poller = connect()
        for number, action in enumerate(todo):
            if not action.runs:
                results.append(
                    ActionResult(
                        action, Outcome.SKIPPED, 0.0, None, None, "advisory: nothing to run"
                    )
                )
                continue
            results.append(
                _run_one(
                    connect,
                    number,
                    action,
                    apply=apply,
                    lock_timeout_ms=lock_timeout_ms,
                    statement_timeout_ms=statement_timeout_ms,
                    progress=progress,
                    poller=poller,
                    poll_interval_s=poll_interval_s,
                )
            )
    finally:
        if poller is not None:
            poller.close()
    return MaintenanceReport(
        applied_mode=apply,
        results=tuple(results),
        duration_s=time.monotonic() - started,
        lock_timeout_ms=lock_timeout_ms,
        statement_timeout_ms=statement_timeout_ms,
    )


def _connector(
    target: Database | Dsn | str, application_name: str
) -> Callable[[], psycopg.Connection[Any]]:
    """A function opening a new autocommit connection to ``target``."""
    kwargs: dict[str, Any] = {"connect_timeout": 5}
    if isinstance(target, Dsn):
        dsn = target
    elif isinstance(target, str):
        dsn = Dsn.parse(target, source="the database URL")
    else:  # a Database (not imported at run time: it would load SQLAlchemy)
        dsn = target.dsn
        kwargs["connect_timeout"] = target.settings.connect_timeout_s

    def connect() -> psycopg.Connection[Any]:
        with translate_db_errors():
            return psycopg.connect(
                dsn.libpq,
                autocommit=True,
                application_name=application_name,
                prepare_threshold=None,  # one-off statements; nothing worth preparing
                options="-c TimeZone=UTC",  # last_vacuum/last_analyze come back in UTC
                **kwargs,
            )

    return connect


def _set_timeouts(conn: psycopg.Connection[Any], lock_ms: int, statement_ms: int) -> None:
    conn.execute(SET_TIMEOUTS_SQL, {"lock": str(lock_ms), "statement": str(statement_ms)})


def _run_one(
    connect: Callable[[], psycopg.Connection[Any]],
    number: int,
    action: Action,
    *,
    apply: bool,
    lock_timeout_ms: int,
    statement_timeout_ms: int,
    progress: ProgressCallback | None,
    poller: psycopg.Connection[Any] | None,
    poll_interval_s: float,
) -> ActionResult:
    started = time.monotonic()
    try:
        conn = connect()
    except DbopsError as exc:  # recorded, so the results of earlier actions are not lost
        why = f"cannot connect: {exc.message}"
        return ActionResult(action, Outcome.FAILED, time.monotonic() - started, None, None, why)
    with conn:
        assert conn.autocommit  # VACUUM and REINDEX CONCURRENTLY refuse a transaction block
        _set_timeouts(conn, lock_timeout_ms, statement_timeout_ms)
        before = _safe_facts(conn, action)
        if not apply:
            return ActionResult(
                action, Outcome.SKIPPED, time.monotonic() - started, before, None, "dry run"
            )
        existing = _table_indexes(conn, action) if action.kind is ActionKind.REINDEX else []
        _emit(progress, ProgressEvent(number, action, "started"))
        warnings: list[str] = []

        def on_notice(diag: psycopg.errors.Diagnostic) -> None:
            if diag.severity_nonlocalized == "WARNING" and diag.message_primary:
                warnings.append(diag.message_primary)

        conn.add_notice_handler(on_notice)
        try:
            error = _execute(conn, number, action, progress, poller, poll_interval_s)
        finally:
            conn.remove_notice_handler(on_notice)
        dropped: tuple[str, ...] = ()
        leftover: tuple[str, ...] = ()
        reason: str | None = None
        if error is None and warnings:
            # VACUUM and ANALYZE skip a table the role may not maintain with only a WARNING.
            error = _Skipped(warnings[0])
            reason = f"the server skipped it: {warnings[0]}"
        elif error is not None:
            reason = _why(error, lock_timeout_ms, statement_timeout_ms)
            if action.kind is ActionKind.REINDEX:
                dropped, leftover, cleanup_error = _drop_leftovers(
                    conn, action, existing, statement_timeout_ms
                )
                if dropped:
                    reason += f"; dropped the leftover invalid index {', '.join(dropped)}"
                if leftover:
                    names = ", ".join(leftover)
                    reason += (
                        f"; could not drop the leftover invalid index {names} "
                        f"({cleanup_error}): run DROP INDEX CONCURRENTLY on it"
                    )
        after = _safe_facts(conn, action)
        outcome = Outcome.APPLIED if error is None else Outcome.FAILED
        _emit(progress, ProgressEvent(number, action, "done" if error is None else "failed"))
        if isinstance(error, KeyboardInterrupt):
            raise error
        return ActionResult(
            action,
            outcome,
            time.monotonic() - started,
            before,
            after,
            reason,
            dropped=dropped,
            leftover=leftover,
        )


def _execute(
    conn: psycopg.Connection[Any],
    number: int,
    action: Action,
    progress: ProgressCallback | None,
    poller: psycopg.Connection[Any] | None,
    poll_interval_s: float,
) -> BaseException | None:
    """Run the action's statement in a worker thread while this thread polls its progress.

    Returns the error the statement raised (``None`` on success). Ctrl-C here cancels the
    statement on the server and is returned as the error, so the caller cleans up first; any
    other exception in this thread cancels it too, then propagates.
    """
    errors: list[BaseException] = []
    statement = action.statement()

    def work() -> None:
        try:
            conn.execute(statement)
        except BaseException as exc:  # handed to the calling thread
            errors.append(exc)

    worker = threading.Thread(target=work, name=f"dbops-maintain-{number}", daemon=True)
    pid = conn.info.backend_pid
    last: _ProgressRow | None = None
    worker.start()
    try:
        while True:
            worker.join(poll_interval_s)
            if not worker.is_alive():
                break
            if poller is None or progress is None:
                continue
            row = _poll(poller, pid)
            if row is not None and row != last:
                last = row
                _emit(
                    progress,
                    ProgressEvent(
                        number,
                        action,
                        row.phase,
                        row.command,
                        row.blocks_done,
                        row.blocks_total,
                    ),
                )
    except BaseException as exc:  # Ctrl-C, or anything else: never leave the statement running
        conn.cancel_safe()
        worker.join()
        if isinstance(exc, KeyboardInterrupt):
            return exc
        raise
    return errors[0] if errors else None


def _poll(poller: psycopg.Connection[Any], pid: int) -> _ProgressRow | None:
    try:
        with poller.cursor(row_factory=class_row(_ProgressRow)) as cur:
            return cur.execute(PROGRESS_SQL, {"pid": pid}).fetchone()
    except psycopg.Error:  # progress is a nicety; never fail the action over it
        return None


def _emit(progress: ProgressCallback | None, event: ProgressEvent) -> None:
    if progress is not None:
        progress(event)


def _facts(conn: psycopg.Connection[Any], action: Action) -> Facts | None:
    if action.table is None:
        return None
    with conn.cursor(row_factory=class_row(Facts)) as cur:
        table = cur.execute(TABLE_FACTS_SQL, {"schema": action.schema, "table": action.table})
        facts = table.fetchone() or Facts()
    if action.index is None:
        return facts
    row = conn.execute(INDEX_FACTS_SQL, {"schema": action.schema, "index": action.index})
    found = row.fetchone()
    if found is None:
        return facts
    return Facts(
        live_rows=facts.live_rows,
        dead_rows=facts.dead_rows,
        last_vacuum=facts.last_vacuum,
        last_analyze=facts.last_analyze,
        index_bytes=found[0],
        index_valid=found[1],
    )


def _safe_facts(conn: psycopg.Connection[Any], action: Action) -> Facts | None:
    """:func:`_facts`, or ``None`` when they cannot be read (the session was terminated)."""
    try:
        return _facts(conn, action)
    except psycopg.Error:
        return None


class _Skipped(Exception):
    """The server skipped the statement with a warning (it did nothing)."""


def _table_indexes(conn: psycopg.Connection[Any], action: Action) -> list[_IndexRow]:
    with conn.cursor(row_factory=class_row(_IndexRow)) as cur:
        return cur.execute(
            TABLE_INDEXES_SQL, {"schema": action.schema, "table": action.table}
        ).fetchall()


def _drop_leftovers(
    conn: psycopg.Connection[Any],
    action: Action,
    existing: Sequence[_IndexRow],
    statement_timeout_ms: int,
) -> tuple[tuple[str, ...], tuple[str, ...], str | None]:
    """Drop the invalid ``_ccnew``/``_ccold`` indexes the failed reindex created.

    Only indexes that did not exist before the reindex are touched, so a user's own index
    that happens to end in ``_ccnew`` stays. ``DROP INDEX CONCURRENTLY`` waits for every
    transaction using the table (the one that made the reindex time out, perhaps): it gets
    ``statement_timeout_ms`` as its lock and statement timeout.

    Returns:
        (dropped names, names still there, the error that kept them).
    """
    known = {row.oid for row in existing}
    try:
        now = _table_indexes(conn, action)
    except psycopg.Error as exc:  # the session is gone: say so rather than guess
        return (), (f"{action.index}_ccnew",), _why(exc, statement_timeout_ms, statement_timeout_ms)
    leftovers = [
        row
        for row in now
        if row.oid not in known and not row.is_valid and is_reindex_leftover(row.name)
    ]
    dropped: list[str] = []
    kept: list[str] = []
    error: str | None = None
    _set_timeouts(conn, statement_timeout_ms, statement_timeout_ms)
    for row in leftovers:
        try:
            conn.execute(DROP_INDEX_SQL.format(sql.Identifier(action.schema, row.name)))
            dropped.append(row.name)
        except psycopg.Error as exc:
            kept.append(row.name)
            error = _why(exc, statement_timeout_ms, statement_timeout_ms)
    return tuple(dropped), tuple(kept), error


def _why(error: BaseException, lock_timeout_ms: int, statement_timeout_ms: int) -> str:
    """One line saying why a statement failed; never the DETAIL (it quotes row values)."""
    if isinstance(error, KeyboardInterrupt):
        return "interrupted (Ctrl-C): the statement was cancelled"
    if isinstance(error, pg_errors.LockNotAvailable):
        return (
            f"lock timeout: waited longer than lock_timeout ({lock_timeout_ms} ms) for "
            "another session's lock or transaction"
        )
    if isinstance(error, pg_errors.QueryCanceled):
        if "statement timeout" in (error.diag.message_primary or ""):
            return (
                f"statement timeout: ran longer than statement_timeout ({statement_timeout_ms} ms)"
            )
        return "cancelled on the server"
    if isinstance(error, pg_errors.UniqueViolation):
        return "duplicate keys: the unique index cannot be built until the duplicates are removed"
    if isinstance(error, psycopg.Error):
        state = error.sqlstate or "no SQLSTATE"
        primary = (error.diag.message_primary or str(error)).strip().splitlines()
        return f"{primary[0] if primary else type(error).__name__} ({state})"
    return f"{type(error).__name__}: {str(error).strip().splitlines()[0] if str(error) else ''}"
