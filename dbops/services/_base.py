"""What every service shares: the acting identity, the unit of work and bounded retries."""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import psycopg
from sqlalchemy.orm import Session

from dbops.db.engine import Database
from dbops.errors import RetryableConflict

__all__ = ["Actor", "UnitOfWork", "in_transaction", "retrying", "unit_of_work"]

T = TypeVar("T")

#: Attempts (first try included) for a transaction that hits a serialization failure/deadlock.
MAX_ATTEMPTS = 5


@dataclass(frozen=True)
class Actor:
    """Who performs a call: a signed-in user, or a named system job.

    Every service call takes one, so row-level security (``SET LOCAL app.actor_id``) and the
    audit trail can later be put underneath without changing any caller.
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


@dataclass
class UnitOfWork:
    """One transaction: an ORM session and the raw psycopg connection under it."""

    session: Session
    actor: Actor

    @property
    def conn(self) -> psycopg.Connection[Any]:
        """The psycopg connection of this transaction, for hand-written SQL."""
        dbapi = self.session.connection().connection.driver_connection
        assert isinstance(dbapi, psycopg.Connection)
        return dbapi


@contextmanager
def unit_of_work(db: Database, actor: Actor) -> Iterator[UnitOfWork]:
    """A transaction that commits on success and rolls back on any error (nothing half-done).

    Driver errors leave it as :mod:`dbops.errors` types.
    """
    with db.session() as session:
        yield UnitOfWork(session=session, actor=actor)


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
