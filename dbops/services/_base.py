"""What every service shares: the acting identity, its checks, the transaction and read contexts."""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal, LiteralString, TypeVar

import psycopg
from sqlalchemy.orm import Session

from dbops.db.engine import ActorContext, Database, local_limits, send_actor
from dbops.errors import InvalidInput, RetryableConflict, translate_exception

__all__ = [
    "Actor",
    "UnitOfWork",
    "actor_context",
    "check_actor",
    "elevate",
    "in_transaction",
    "lag_tolerant",
    "read_transaction",
    "reading",
    "retrying",
    "unit_of_work",
    "user_of",
]

T = TypeVar("T")

#: Attempts (first try included) for a transaction that hits a serialization failure/deadlock.
MAX_ATTEMPTS = 5

BAD_ACTOR = "actor: must be Actor.user(user_id) or Actor.system(name)"
NEEDS_USER = "actor: this action needs a signed-in user, not a system actor"


@dataclass(frozen=True)
class Actor:
    """Who performs a call: a signed-in user, or a named system job.

    Every service call takes one and hands it to the connection it runs on (through
    :func:`unit_of_work`, :func:`reading` or :func:`read_transaction`), so row-level security
    (``app.actor_id``) and the audit trail can be put underneath without changing any caller.
    docs/decisions/0004-actor-context.md says how.
    """

    kind: Literal["user", "system"]
    user_id: uuid.UUID | None = None
    name: str = ""

    @classmethod
    def user(cls, user_id: uuid.UUID) -> Actor:
        """The actor for a signed-in user."""
        return cls(kind="user", user_id=user_id)

    @classmethod
    def system(cls, name: str) -> Actor:
        """The actor for a job (seed, expiry sweep, admin CLI)."""
        return cls(kind="system", name=name)

    @property
    def is_system(self) -> bool:
        """True for jobs, which role rules do not restrict."""
        return self.kind == "system"


def check_actor(actor: Actor) -> Actor:
    """``actor`` if well-formed; InvalidInput otherwise (a user actor must carry its user id)."""
    if not isinstance(actor, Actor) or (actor.kind == "user" and actor.user_id is None):
        raise InvalidInput(BAD_ACTOR, "actor")
    return actor


def user_of(actor: Actor) -> uuid.UUID:
    """The user id of a user actor; InvalidInput for a system actor (it has no membership)."""
    check_actor(actor)
    if actor.user_id is None:
        raise InvalidInput(NEEDS_USER, "actor")
    return actor.user_id


#: Transaction isolation levels a unit of work may ask for.
Isolation = Literal["read committed", "repeatable read", "serializable"]
_ISOLATION_SQL: dict[str, LiteralString] = {
    "read committed": "SET TRANSACTION ISOLATION LEVEL READ COMMITTED",
    "repeatable read": "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ",
    "serializable": "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE",
}


def actor_context(actor: Actor, system_role: str | None = None) -> ActorContext:
    """``(app.actor_kind, app.actor_id, app.actor_name, role)`` for ``actor``.

    A system actor switches to ``system_role`` (``Database.system_role``: ``dbops_system``,
    which bypasses row-level security) where the login role may; everyone else acts as the
    login role (``none``). docs/decisions/0007-row-level-security.md.
    """
    role = system_role if actor.is_system and system_role else "none"
    return (actor.kind, "" if actor.user_id is None else str(actor.user_id), actor.name, role)


def _apply_actor(
    conn: psycopg.Connection[Any],
    actor: Actor,
    system_role: str | None = None,
    limits: dict[str, str] | None = None,
) -> psycopg.Connection[Any]:
    """The single point where the acting identity is put on a transaction; returns ``conn``.

    Every unit of work and every service read in a transaction passes through here with its
    actor: it sends ``app.actor_kind`` (``user``/``system``), ``app.actor_id`` (the user id;
    empty for a system actor), ``app.actor_name`` (the job's name) and the role (see
    :func:`actor_context`) as transaction-local settings, which row-level security (migration
    0008) and the audit trigger (0006) read. They end with COMMIT or ROLLBACK. Autocommit
    reads get the actor from ``Database.read(actor_context(...))`` instead (a session setting
    sent only when the connection carried another actor): decision 0007.
    """
    check_actor(actor)
    send_actor(conn, actor_context(actor, system_role), local=True, limits=limits)
    return conn


def elevate(uow: UnitOfWork, reason: str) -> None:
    """Act as an explicit system actor for the rest of this unit of work.

    For the flows that cross a tenant boundary by design, after the service has checked the
    user may do it: creating a team (the team exists before its first member), accepting an
    invitation (the user joins a team they cannot see yet) and adding a member by id (not a
    teammate yet). The audit trail records kind ``system``, the user's id and ``reason``.
    """
    _, actor_id, _, _ = actor_context(uow.actor)
    send_actor(uow.conn, ("system", actor_id, reason, uow.system_role or "none"), local=True)


@dataclass
class UnitOfWork:
    """One transaction: an ORM session and the raw psycopg connection under it."""

    session: Session
    actor: Actor
    #: The role system steps switch to (``Database.system_role``), for :func:`elevate`.
    system_role: str | None = None

    @property
    def conn(self) -> psycopg.Connection[Any]:
        """The psycopg connection of this transaction, for hand-written SQL."""
        dbapi = self.session.connection().connection.driver_connection
        assert isinstance(dbapi, psycopg.Connection)
        return dbapi


@contextmanager
def unit_of_work(
    db: Database, actor: Actor, *, isolation: Isolation | None = None
) -> Iterator[UnitOfWork]:
    """A transaction that commits on success and rolls back on any error (nothing half-done).

    ``isolation`` (default: the server's, read committed) is set first, since PostgreSQL takes
    it only before the transaction's first query; then the actor is applied to the connection
    before any work runs. Driver errors leave it as :mod:`dbops.errors` types.
    """
    check_actor(actor)
    with db.session() as session:
        uow = UnitOfWork(session=session, actor=actor, system_role=db.system_role)
        if isolation is not None:
            uow.conn.execute(_ISOLATION_SQL[isolation])
        _apply_actor(uow.conn, actor, db.system_role, local_limits(db.settings))
        yield uow
    if db.replicas is not None:  # committed: this actor's reads wait for replicas to see it
        db.replicas.note_write(_actor_key(actor))


class _Reading:
    """Context manager behind :func:`reading`: ``Database.read()`` with the actor applied.

    A plain class, not a generator context manager: this is the services' hottest path.
    """

    __slots__ = ("_read",)

    def __init__(self, db: Database, actor: Actor) -> None:
        check_actor(actor)
        self._read = db.read(actor_context(actor, db.system_role))

    def __enter__(self) -> psycopg.Connection[Any]:
        return self._read.__enter__()

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        self._read.__exit__(exc_type, exc, tb)


def reading(db: Database, actor: Actor) -> _Reading:
    """A pooled autocommit connection for one-statement reads, with ``actor`` applied.

    One round trip per read and prepared statements kept (see :meth:`Database.read`).
    """
    return _Reading(db, actor)


def _actor_key(actor: Actor) -> str:
    """Whose writes a read must see (:mod:`dbops.db.replicas`): one key per user or job."""
    return f"user:{actor.user_id}" if actor.user_id is not None else f"system:{actor.name}"


def lag_tolerant(db: Database, actor: Actor, work: Callable[[psycopg.Connection[Any]], T]) -> T:
    """``work(conn)``, a one-statement read, on a replica when ``db`` has a usable one.

    For reads that may show other actors' changes a moment late (a listing, a profile): they
    still see this actor's own writes (read-your-writes), and fall back to the primary when
    no replica may take them. Authorization checks, cached lookups and anything a write
    decides on stay on :func:`reading`. docs/scale-out.md lists which read is which.
    """
    check_actor(actor)
    router = db.replicas
    if router is None:
        with reading(db, actor) as conn:
            return work(conn)
    try:
        return router.run(actor_context(actor, db.system_role), _actor_key(actor), work)
    except Exception as exc:
        translated = translate_exception(exc)
        if translated is None or translated is exc:
            raise
        raise translated from exc


@contextmanager
def read_transaction(db: Database, actor: Actor) -> Iterator[psycopg.Connection[Any]]:
    """A raw pooled connection in a transaction (committed on success), with ``actor`` applied.

    For reads that need ``SET LOCAL`` settings or several statements on one snapshot.
    """
    with db.connection() as conn:
        yield _apply_actor(conn, actor, db.system_role, local_limits(db.settings))


def retrying(fn: Callable[[], T], *, attempts: int = MAX_ATTEMPTS) -> T:
    """Run ``fn`` (a whole transaction) again on RetryableConflict, with jittered backoff."""
    for attempt in range(1, attempts + 1):
        try:
            return fn()
        except RetryableConflict:
            if attempt == attempts:
                raise
            time.sleep(random.uniform(0, 0.005 * 2**attempt))  # noqa: S311 - jitter, not crypto
    raise AssertionError("unreachable")


def in_transaction(db: Database, actor: Actor, work: Callable[[UnitOfWork], T]) -> T:
    """Run ``work`` in one unit of work, retried as a whole on :class:`RetryableConflict`."""

    def attempt() -> T:
        with unit_of_work(db, actor) as uow:
            return work(uow)

    return retrying(attempt)
