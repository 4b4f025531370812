"""Connections: the psycopg pool, the SQLAlchemy engine on top of it, and sessions.

One :class:`psycopg_pool.ConnectionPool` owns every connection of a process; the SQLAlchemy
engine borrows from it through ``NullPool`` + ``creator`` (``close_returns=True`` makes the
engine's ``close()`` hand the connection back). Raw psycopg code and the ORM therefore share one
set of limits, timeouts and pool statistics. docs/decisions/0001-connection-pool.md says why.
"""

from __future__ import annotations

import functools
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg_pool import ConnectionPool

from dbops.config import Settings, load_settings
from dbops.db.dsn import Dsn
from dbops.db.purpose import Purpose, dsn_for, replica_dsns, role_of
from dbops.db.roles import SYSTEM_ROLE
from dbops.errors import (
    DatabaseUnavailable,
    DbopsError,
    translate_db_errors,
    translate_exception,
)
from dbops.telemetry import report

if TYPE_CHECKING:  # SQLAlchemy is imported on first use of the engine (Database.engine)
    from sqlalchemy import Engine
    from sqlalchemy.orm import Session, sessionmaker

    from dbops.db.replicas import ReplicaRouter

__all__ = [
    "NO_ACTOR",
    "ActorContext",
    "ActorPool",
    "Database",
    "connection_kwargs",
    "local_limits",
    "make_engine",
    "make_pool",
    "open_database",
    "readonly_dsn",
    "resolve_dsn",
    "resolve_url",
    "running_dsn",
    "send_actor",
    "url_engine",
]


def resolve_dsn(settings: Settings) -> Dsn:
    """The administrator's database: ``DATABASE_URL``, or the embedded cluster (started if needed).

    ``dsn_for(settings, "admin", start=True)``: see :mod:`dbops.db.purpose`.
    """
    return dsn_for(settings, "admin", start=True)


def running_dsn(settings: Settings) -> Dsn:
    """``DATABASE_URL``, or the embedded cluster's superuser if it runs; never starts one.

    ``dsn_for(settings, "admin")``: for what only reads and needs the superuser (status).

    Raises:
        ConfigError: ``DATABASE_URL`` is invalid.
        EmbeddedClusterError: no cluster yet and no PostgreSQL binaries to create one.
        DatabaseUnavailable: the embedded cluster does not exist yet or is stopped.
    """
    return dsn_for(settings, "admin")


def readonly_dsn(settings: Settings) -> Dsn:
    """Where the dashboard and the notebooks read; never creates or starts a cluster.

    ``dsn_for(settings, "readonly")``: ``DBOPS_DASHBOARD_DATABASE_URL`` when set; else, on the
    embedded cluster, its read-only role ``dbops_readonly`` (it reads across tenants without the
    secret columns and cannot write); else ``DATABASE_URL``.
    """
    return dsn_for(settings, "readonly")


def resolve_url(settings: Settings) -> str:
    """The SQLAlchemy URL of :func:`resolve_dsn` (for alembic's ``env.py``)."""
    return resolve_dsn(settings).sqlalchemy


def connection_kwargs(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for every ``psycopg.connect``: timeouts, name, prepared statements."""
    pool = settings.pool
    kwargs: dict[str, Any] = {
        "application_name": settings.application_name,
        "connect_timeout": settings.connect_timeout_s,
        # None disables server-side prepared statements (pgbouncer transaction mode).
        "prepare_threshold": pool.prepare_threshold if pool.prepared_statements else None,
    }
    if pool.prepared_statements:
        kwargs["options"] = settings.connection_options()
    # Else a transaction-pooling bouncer sits in between: it refuses the startup ``options``
    # (PgBouncer 1.18) and would hand a session setting to other clients; every transaction
    # the services run carries the same settings as SET LOCAL instead (:func:`local_limits`).
    return kwargs


def local_limits(settings: Settings) -> dict[str, str] | None:
    """The session settings a transaction must set for itself, or None when sessions have them.

    With ``prepared_statements`` on, :func:`connection_kwargs` sends them once per connection
    (``options``). Off (a transaction-pooling bouncer), :func:`send_actor` puts them on each
    transaction with the actor, in the same statement: :meth:`Settings.session_parameters`
    but ``role``, which the actor sets.
    """
    if settings.prepared_statements:
        return None
    limits = settings.session_parameters()
    del limits["role"]
    return limits


class _PrePing:
    """Pre-ping that skips connections handed out less than ``bypass_s`` ago.

    Checking every checkout costs one round trip per call (it doubled the latency of a
    prepared point read in bench/); a connection used a moment ago is alive with near
    certainty, so, like HikariCP's ``aliveBypassWindowMs``, only ones idle longer are pinged.
    Tracking checkout (not return) time avoids a pool ``reset`` callback, which would send every
    returned connection through psycopg_pool's worker thread.
    """

    def __init__(self, bypass_s: float) -> None:
        self.bypass_s = bypass_s
        self._used: weakref.WeakKeyDictionary[psycopg.Connection[Any], float] = (
            weakref.WeakKeyDictionary()
        )

    def check(self, conn: psycopg.Connection[Any]) -> None:
        now = time.monotonic()
        used = self._used.get(conn)
        if used is None or now - used >= self.bypass_s:
            ConnectionPool.check_connection(conn)
        self._used[conn] = now


def make_pool(
    settings: Settings,
    url: str | Dsn,
    *,
    open_now: bool = True,
    timeout_s: float | None = None,
    min_size: int | None = None,
) -> ActorPool:
    """A psycopg pool with the seed's defaults: 20 connections, 30 s idle, 2 s wait, pre-ping.

    ``timeout_s`` and ``min_size`` override the wait for a free connection and the idle
    connections kept (a replica's pool: a short wait, none kept open).
    """
    dsn = url if isinstance(url, Dsn) else Dsn.parse(url, source="the database URL")
    pool = settings.pool
    ping = _PrePing(pool.pre_ping_bypass_s) if pool.pre_ping else None
    return ActorPool(
        dsn.libpq,
        kwargs=connection_kwargs(settings),
        min_size=min(pool.min_size if min_size is None else min_size, pool.max_size),
        max_size=pool.max_size,
        timeout=pool.timeout_s if timeout_s is None else timeout_s,
        max_idle=pool.max_idle_s,
        max_lifetime=pool.max_lifetime_s,
        check=ping.check if ping else None,
        close_returns=True,
        name=settings.application_name,
        open=open_now,
    )


#: The session settings that name who acts on a connection, row-level security reads them:
#: ``(app.actor_kind, app.actor_id, app.actor_name, role)``. An empty id means "no actor": the
#: policies then match nothing. ``role`` is ``none`` (the login role) or the system role.
ActorContext = tuple[str, str, str, str]
NO_ACTOR: ActorContext = ("", "", "", "none")

#: Puts an :data:`ActorContext` on a connection. ``local`` true: until the end of the
#: transaction (units of work); false: on the session, until changed (the autocommit read
#: path, see :class:`_Carried`). One statement text, so one prepared statement for both.
SET_ACTOR_SQL = """
SELECT set_config('role', %(role)s, %(local)s),
       set_config('app.actor_kind', %(kind)s, %(local)s),
       set_config('app.actor_id', %(id)s, %(local)s),
       set_config('app.actor_name', %(name)s, %(local)s)
"""


@functools.cache
def _set_actor_and_limits_sql(count: int) -> str:
    """:data:`SET_ACTOR_SQL` with ``count`` more transaction-local settings.

    Setting ``%(n<i>)s`` gets ``%(v<i>)s``: for a transaction behind a transaction-pooling
    bouncer, where no session setting may be relied on or left behind.
    """
    more = "".join(f",\n       set_config(%(n{i})s, %(v{i})s, true)" for i in range(count))
    return SET_ACTOR_SQL.rstrip() + more + "\n"


def send_actor(
    conn: psycopg.Connection[Any],
    context: ActorContext,
    *,
    local: bool,
    limits: dict[str, str] | None = None,
) -> None:
    """Send ``context`` to the server, transaction-local (``local``) or for the session.

    ``limits`` (:func:`local_limits`; transaction-local only) go in the same statement.
    """
    kind, actor_id, name, role = context
    params = {"kind": kind, "id": actor_id, "name": name, "role": role, "local": local}
    if limits is None:
        conn.execute(SET_ACTOR_SQL, params)
        return
    if not local:
        raise ValueError("session limits are sent transaction-local only")
    for i, (name, value) in enumerate(limits.items()):
        params[f"n{i}"], params[f"v{i}"] = name, value
    conn.execute(_set_actor_and_limits_sql(len(limits)), params)


#: The embedded cluster without dbops' roles (never set up): what to run.
NO_ROLE_YET = (
    "the embedded cluster has no role {role} yet: run `dbops up` (or `dbops roles setup`) "
    "to create dbops' roles"
)

#: Whether the login role may and should switch to the system role for system actors: a
#: member of it that does not bypass RLS by itself (a superuser keeps its own rights).
SYSTEM_ROLE_SQL = """
SELECT CASE
  WHEN r.rolsuper OR r.rolbypassrls THEN false
  WHEN NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = %(role)s) THEN false
  ELSE pg_has_role(current_user, %(role)s, 'MEMBER')
END
FROM pg_roles AS r
WHERE r.rolname = current_user
"""


class _Carried:
    """Which actor each pooled connection carries as *session* settings, and setting it.

    The autocommit read path (:meth:`Database.read`) cannot use transaction-local settings (they
    would end with the statement), so it leaves the actor on the session and remembers it
    here; a run of reads by one actor on a connection then costs no extra round trip, and a
    read by another actor (or by a borrower that names none) first sends one ``set_config``
    statement. Invariant: only a connection in autocommit mode carries a session actor; the
    switch to transaction mode clears it first (:func:`_in_transaction_mode`), outside any
    transaction, so a ROLLBACK can never bring an old value back. A new connection carries
    nothing. docs/decisions/0007-row-level-security.md.
    """

    def __init__(self) -> None:
        self._by_conn: weakref.WeakKeyDictionary[psycopg.Connection[Any], ActorContext] = (
            weakref.WeakKeyDictionary()
        )

    def ensure(self, conn: psycopg.Connection[Any], context: ActorContext) -> None:
        """Make ``conn`` (in autocommit mode) carry exactly ``context``."""
        if self._by_conn.get(conn, NO_ACTOR) == context:
            return
        send_actor(conn, context, local=False)
        if context == NO_ACTOR:
            self._by_conn.pop(conn, None)
        else:
            self._by_conn[conn] = context

    def carries(self, conn: psycopg.Connection[Any], context: ActorContext) -> bool:
        """Whether ``conn`` carries ``context`` now (a read by it would send nothing)."""
        return self._by_conn.get(conn, NO_ACTOR) == context


#: One registry per process: pools of several Database objects never share connections, and
#: the weak keys drop closed connections.
CARRIED = _Carried()

#: The actor the current thread's checkout would like its connection to carry.
_WANTED: ContextVar[ActorContext | None] = ContextVar("dbops_wanted_actor", default=None)


class ActorPool(ConnectionPool):
    """psycopg_pool's pool, handing a read the idle connection that already carries its actor.

    psycopg_pool hands idle connections out in rotation, so with many users most reads got a
    connection last used by someone else and paid one ``set_config`` statement first (as much
    server work as the read itself: bench/bench_rls.py, side c). :meth:`getconn_carrying`
    prefers, among the idle connections, one that carries the actor already (actor affinity,
    see :class:`_Carried`); when none does, it takes the next one in rotation as before. Only
    the choice among idle connections changes: sizes, waiting, checks and stats are the pool's.

    The choice is made in ``_get_ready_connection``, the pool's own critical section; if a
    psycopg_pool release renamed it, reads would simply lose the preference (correctness does
    not depend on it), and ``tests/services/test_actor.py`` would fail on the extra
    ``set_config``.
    """

    def getconn_carrying(self, context: ActorContext) -> psycopg.Connection[Any]:
        """:meth:`getconn`, preferring an idle connection that carries ``context``."""
        token = _WANTED.set(context)
        try:
            return self.getconn()
        finally:
            _WANTED.reset(token)

    def _get_ready_connection(self, timeout: float | None) -> psycopg.Connection[Any] | None:
        wanted = _WANTED.get()
        if wanted is not None and self._pool and (timeout is None or timeout > 0.0):
            for index, conn in enumerate(self._pool):
                if CARRIED.carries(conn, wanted):
                    del self._pool[index]
                    # The pool's low-water mark, kept as its own _get_ready_connection does.
                    if len(self._pool) < getattr(self, "_nconns_min", len(self._pool)):
                        self._nconns_min = len(self._pool)
                    return conn
        return super()._get_ready_connection(timeout)


def _in_transaction_mode(conn: psycopg.Connection[Any]) -> psycopg.Connection[Any]:
    """Switch a pooled connection out of autocommit if :meth:`Database.read` left it there.

    Pooled connections keep the mode their last borrower needed, and each entry point switches
    only when it needs the other one: a run of reads then costs no switch at all. A session
    actor the read path left is cleared first, still in autocommit mode (see :class:`_Carried`).
    """
    if conn.autocommit:
        CARRIED.ensure(conn, NO_ACTOR)
        conn.autocommit = False
    return conn


def url_engine(url: str) -> Engine:
    """An engine of one connection at a time (``NullPool``) to ``url``, for migrations.

    psycopg (libpq) reads the URL, not SQLAlchemy: every form libpq takes works, a multi-host
    URL with ``target_session_attrs=read-write`` (a Patroni cluster) included, where
    SQLAlchemy's own parser fails on ``host1:port1,host2:port2``.
    """
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    from dbops.config import to_libpq_url

    libpq = to_libpq_url(url)
    return create_engine(
        "postgresql+psycopg://", poolclass=NullPool, creator=lambda: psycopg.connect(libpq)
    )


def make_engine(pool: ConnectionPool) -> Engine:
    """A SQLAlchemy engine that takes its connections from ``pool`` and gives them back."""
    from sqlalchemy import create_engine, event
    from sqlalchemy.pool import NullPool

    def transactional() -> psycopg.Connection[Any]:
        conn = pool.getconn()
        try:
            return _in_transaction_mode(conn)
        except BaseException:
            pool.putconn(conn)
            raise

    engine = create_engine(
        "postgresql+psycopg://",
        poolclass=NullPool,
        creator=transactional,
        # psycopg_pool resets returned connections itself (rollback only if a transaction is
        # open); SQLAlchemy's unconditional reset would be a redundant call.
        pool_reset_on_return=None,
    )

    @event.listens_for(engine, "handle_error")
    def _redact(context: Any) -> None:  # pragma: no cover - only formats messages
        if context.sqlalchemy_exception is not None:
            context.sqlalchemy_exception.hide_parameters = True

    return engine


class _ReadConnection:
    """Context manager behind :meth:`Database.read`.

    A plain class over ``getconn``/``putconn`` rather than stacked ``@contextmanager``
    generators: this is the hottest path of the service API, and it halves the checkout cost
    (7.4 -> 3.5 us of CPU per read, measured in a loop of empty reads).
    """

    __slots__ = ("_conn", "_context", "_pool")

    def __init__(self, pool: ConnectionPool, context: ActorContext) -> None:
        self._pool = pool
        self._context = context
        self._conn: psycopg.Connection[Any] | None = None

    def __enter__(self) -> psycopg.Connection[Any]:
        pool = self._pool
        try:
            if isinstance(pool, ActorPool):
                conn = pool.getconn_carrying(self._context)
            else:
                conn = pool.getconn()
        except Exception as exc:
            raise (translate_exception(exc) or exc) from exc
        try:
            if not conn.autocommit:
                conn.autocommit = True
            CARRIED.ensure(conn, self._context)
        except Exception as exc:
            self._pool.putconn(conn)
            raise (translate_exception(exc) or exc) from exc
        self._conn = conn
        return conn

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        if self._conn is not None:
            self._pool.putconn(self._conn)
            self._conn = None
        if isinstance(exc, Exception) and not isinstance(exc, DbopsError):
            translated = translate_exception(exc)
            if translated is not None:
                raise translated from exc


class _TransactionRead:
    """:meth:`Database.read` where no session state may be kept: ``prepared_statements`` off.

    That setting is for a transaction-pooling bouncer (pgbouncer ``pool_mode = transaction``),
    which hands each transaction to any server connection: a session-level actor would reach
    another client. The read then runs in a transaction of its own with the actor set
    transaction-local, committed on exit (two more round trips, no carried state).
    """

    __slots__ = ("_conn", "_context", "_limits", "_pool")

    def __init__(
        self, pool: ConnectionPool, context: ActorContext, limits: dict[str, str] | None
    ) -> None:
        self._pool = pool
        self._context = context
        self._limits = limits
        self._conn: psycopg.Connection[Any] | None = None

    def __enter__(self) -> psycopg.Connection[Any]:
        try:
            conn = self._pool.getconn()
        except Exception as exc:
            raise (translate_exception(exc) or exc) from exc
        try:
            _in_transaction_mode(conn)
            send_actor(conn, self._context, local=True, limits=self._limits)
        except Exception as exc:
            self._pool.putconn(conn)  # the pool rolls back what is open
            raise (translate_exception(exc) or exc) from exc
        self._conn = conn
        return conn

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                if exc is None:
                    conn.commit()
                else:
                    conn.rollback()
            finally:
                self._pool.putconn(conn)
        if isinstance(exc, Exception) and not isinstance(exc, DbopsError):
            translated = translate_exception(exc)
            if translated is not None:
                raise translated from exc


@dataclass
class Database:
    """The connection pool, engine and session factory of one process.

    The SQLAlchemy engine and session factory are made on first use (:attr:`engine`,
    :attr:`sessions`): the raw and read paths never need them, and importing SQLAlchemy is
    most of a read-only CLI command's start-up (bench/bench_cli.py).
    """

    settings: Settings
    dsn: Dsn
    pool: ConnectionPool
    #: The role system actors switch to (``dbops_system``), or None where the login role may
    #: not or need not (a superuser, or no such role: policies then use ``app.actor_kind``).
    system_role: str | None = None
    #: The streaming replicas lag-tolerant service reads may use (None: every read on
    #: :attr:`pool`); see :mod:`dbops.db.replicas`.
    replicas: ReplicaRouter | None = None
    _engine: Engine | None = field(default=None, repr=False)
    _sessions: sessionmaker[Session] | None = field(default=None, repr=False)
    _orm_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine over :attr:`pool` (made on first use)."""
        if self._engine is not None:  # every unit of work asks: no lock once it exists
            return self._engine
        with self._orm_lock:
            if self._engine is None:
                self._engine = make_engine(self.pool)
            return self._engine

    @property
    def sessions(self) -> sessionmaker[Session]:
        """The session factory over :attr:`engine` (made on first use)."""
        if self._sessions is not None:
            return self._sessions
        engine = self.engine
        with self._orm_lock:
            if self._sessions is None:
                from sqlalchemy.orm import sessionmaker

                self._sessions = sessionmaker(engine, expire_on_commit=False)
            return self._sessions

    @property
    def url(self) -> str:
        """The SQLAlchemy form of the URL (``dsn.sqlalchemy``)."""
        return self.dsn.sqlalchemy

    @property
    def safe_url(self) -> str:
        """The URL with its password redacted, for logs and status lines (``dsn.redacted``)."""
        return self.dsn.redacted

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A unit of work: commits on success, rolls back on any error.

        Read paths commit too: psycopg drops its prepared statements on ROLLBACK, so ending
        reads with COMMIT keeps them prepared on the server.
        """
        with translate_db_errors(), self.sessions() as session, session.begin():
            yield session

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection[Any]]:
        """A raw psycopg connection from the pool, in a transaction committed on success."""
        with translate_db_errors(), self.pool.connection() as conn:
            yield _in_transaction_mode(conn)

    def read(self, actor: ActorContext = NO_ACTOR) -> _ReadConnection | _TransactionRead:
        """A pooled connection in autocommit mode, for single-statement reads.

        No BEGIN/COMMIT around the statement: one round trip per read instead of three, and
        nothing to roll back, so prepared statements stay. Use :meth:`session` or
        :meth:`connection` for anything that needs a transaction.

        ``actor`` is the ``(kind, id, name)`` the connection must carry for row-level security
        (the services pass it; default: none, which the policies answer with zero rows). It
        is sent only when the connection carries another one (see :class:`_Carried`). With
        ``prepared_statements`` off (a transaction-pooling bouncer) the read runs in a
        transaction of its own instead (:class:`_TransactionRead`).
        """
        if not self.settings.prepared_statements:
            return _TransactionRead(self.pool, actor, local_limits(self.settings))
        return _ReadConnection(self.pool, actor)

    def close(self) -> None:
        """Close the engine and every pooled connection (and this process's report, if last)."""
        report.unwatch_pool(self.pool)
        if self.replicas is not None:
            self.replicas.close()
        with self._orm_lock:
            engine = self._engine
        if engine is not None:
            engine.dispose()
        self.pool.close()

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_database(
    settings: Settings | None = None, url: str | Dsn | None = None, *, purpose: Purpose = "app"
) -> Database:
    """Open the pool and engine for ``settings``.

    Args:
        settings: the settings (default: :func:`dbops.config.load_settings`).
        url: the database, as a URL or a :class:`Dsn`; default ``dsn_for(settings, purpose,
            start=True)``: ``DATABASE_URL``, or the embedded cluster (started if needed) as the
            purpose's role.
        purpose: who connects when no ``url`` is given (:mod:`dbops.db.purpose`). The default,
            ``app``, is the application role: on the embedded cluster ``dbops_app``, under
            row-level security, owning nothing.

    Raises:
        ConfigError: the URL is invalid (checked before any connection attempt).
        DatabaseUnavailable: the server cannot be reached or refuses the credentials; on the
            embedded cluster, the purpose's role does not exist yet (run ``dbops up``).
    """
    settings = settings or load_settings()
    if isinstance(url, str):
        url = Dsn.parse(url, source="the database URL")
    with translate_db_errors():
        dsn = url or dsn_for(settings, purpose, start=True)
        # One direct connection first: a wrong password or an unreachable host then surfaces as
        # its own error instead of a generic pool timeout.
        try:
            probe = psycopg.connect(dsn.libpq, **connection_kwargs(settings))
        except psycopg.OperationalError as exc:
            role = role_of(purpose)
            if url is None and role is not None and f'role "{role}" does not exist' in str(exc):
                raise DatabaseUnavailable(NO_ROLE_YET.format(role=role)) from None
            raise
        with probe:
            row = probe.execute(SYSTEM_ROLE_SQL, {"role": SYSTEM_ROLE}).fetchone()
            system_role = SYSTEM_ROLE if row is not None and row[0] else None
        pool = make_pool(settings, dsn, open_now=False)
        pool.open(wait=False)
    if purpose == "app" and settings.process_report_s > 0:
        # The application's pool, reported for the dashboard and exporter (dbops.telemetry.report);
        # the reporter's own connection says so in pg_stat_activity.
        kwargs = connection_kwargs(settings)
        kwargs["application_name"] = f"{settings.application_name} report"[:63]
        report.watch_pool(
            pool,
            dsn.libpq,
            kwargs,
            interval_s=settings.process_report_s,
            name=settings.process_name,
            access_window_s=settings.monitor.access_window_s,
        )
    database = Database(settings=settings, dsn=dsn, pool=pool, system_role=system_role)
    if purpose == "app":
        replicas = replica_dsns(settings, embedded_primary=url is None)
        if replicas:
            from dbops.db.replicas import ReplicaRouter

            database.replicas = ReplicaRouter(settings, database.read, replicas)
    return database
