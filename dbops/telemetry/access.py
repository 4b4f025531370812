"""Access events of this process: refused sign-ins, denials and hidden rows, counted and logged.

A process-wide, thread-safe recorder with no dependency beyond the standard library, fed by
:func:`dbops.telemetry.metrics.timed` (which already sees every exception of every public service
method), so no service counts anything itself. One event per failed service call, by kind:

- ``login_failed``: :class:`dbops.errors.LoginFailed` (``UserService.authenticate``);
- ``forbidden``: any other :class:`dbops.errors.Forbidden` (the actor may not do this);
- ``not_found``: :class:`dbops.errors.NotFound` (a row that is missing, or hidden from the actor);
- ``rls_denied``: a statement the server refused under row-level security (SQLSTATE 42501 and
  "row-level security" in its message: ``new row violates row-level security policy ...``);
- ``privilege_denied``: any other ``insufficient_privilege`` (42501: a missing GRANT).

The SQLSTATE wins over the exception's type: a 42501 that a service translated into another
error still counts as a denial by the server. Each event is also *recorded* as one log record on
the ``dbops.access`` logger (WARNING for ``login_failed``, ``rls_denied`` and
``privilege_denied``, INFO for the others) carrying the kind, the statement name, the actor's
kind and user id, and the SQLSTATE: never an e-mail, a password, SQL text, parameters or the
server's message. The fields are also attributes of the record (``access_kind``,
``access_statement``, ``actor_kind``, ``actor_id``, ``sqlstate``) for structured handlers.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from dbops.errors import Forbidden, LoginFailed, NotFound

__all__ = [
    "ACCESS",
    "ACCESS_LOGGER",
    "KINDS",
    "AccessCounts",
    "AccessEvents",
    "access_kind",
    "access_stats",
    "driver_error",
    "record_failure",
]

#: Every kind of access event, in the order they are reported.
KINDS: Final = ("login_failed", "forbidden", "not_found", "rls_denied", "privilege_denied")
#: Kinds logged at WARNING (the others at INFO).
WARNING_KINDS: Final = frozenset({"login_failed", "rls_denied", "privilege_denied"})
#: SQLSTATE ``insufficient_privilege``: a missing GRANT, or a row-level security refusal.
INSUFFICIENT_PRIVILEGE: Final = "42501"
#: Most failed sign-in times kept for the recent-window count.
MAX_RECENT: Final = 10_000

#: The logger every access event is recorded on. Silent until the application configures
#: logging (a library's NullHandler: no "last resort" lines on stderr from a workload's
#: wrong passwords).
ACCESS_LOGGER = logging.getLogger("dbops.access")
ACCESS_LOGGER.addHandler(logging.NullHandler())

#: How far along ``__cause__``/``__context__`` a SQLSTATE is looked for.
_MAX_CHAIN = 8
#: Set on an exception once counted, so an enclosing service call re-raising it counts nothing.
_SEEN = "_dbops_access_recorded"


@dataclass(frozen=True)
class AccessCounts:
    """Access events since the process started, by kind, and failed sign-ins in a window.

    ``counts`` has one pair per kind of :data:`KINDS`, in that order (zeros included).
    ``login_failed_recent`` counts the failed sign-ins of the last ``window_s`` seconds (at
    most the last :data:`MAX_RECENT` of them).
    """

    counts: tuple[tuple[str, int], ...]
    login_failed_recent: int
    window_s: float

    def count(self, kind: str) -> int:
        """The events of ``kind`` (0 for an unknown kind)."""
        return dict(self.counts).get(kind, 0)


class AccessEvents:
    """Counts access events by kind and logs each one (thread-safe).

    Args:
        clock: wall-clock seconds (tests pass their own), stamped on each failed sign-in.
        logger: where each event is recorded (default: ``dbops.access``).
    """

    def __init__(
        self, *, clock: Callable[[], float] = time.time, logger: logging.Logger | None = None
    ) -> None:
        self._clock = clock
        self._logger = logger or ACCESS_LOGGER
        self._counts = dict.fromkeys(KINDS, 0)
        self._logins: deque[float] = deque(maxlen=MAX_RECENT)
        self._lock = threading.Lock()

    def record(
        self,
        kind: str,
        *,
        statement: str,
        actor_kind: str | None = None,
        actor_id: str | None = None,
        sqlstate: str | None = None,
    ) -> None:
        """Count one event of ``kind`` (one of :data:`KINDS`) and log it."""
        if kind not in self._counts:
            raise ValueError(f"kind: must be one of {', '.join(KINDS)}")
        with self._lock:
            self._counts[kind] += 1
            if kind == "login_failed":
                self._logins.append(self._clock())
        level = logging.WARNING if kind in WARNING_KINDS else logging.INFO
        if self._logger.isEnabledFor(level):
            actor = actor_kind or "unknown"
            if actor_id is not None:
                actor += f" {actor_id}"
            self._logger.log(
                level,
                "access %s in %s (actor %s, sqlstate %s)",
                kind,
                statement,
                actor,
                sqlstate or "-",
                extra={
                    "access_kind": kind,
                    "access_statement": statement,
                    "actor_kind": actor_kind,
                    "actor_id": actor_id,
                    "sqlstate": sqlstate,
                },
            )

    def counts(self) -> tuple[tuple[str, int], ...]:
        """The events so far, one ``(kind, count)`` per kind of :data:`KINDS`."""
        with self._lock:
            return tuple((kind, self._counts[kind]) for kind in KINDS)

    def snapshot(self, window_s: float) -> AccessCounts:
        """The counts so far, and the failed sign-ins of the last ``window_s`` seconds."""
        since = self._clock() - window_s
        with self._lock:
            counts = tuple((kind, self._counts[kind]) for kind in KINDS)
            recent = sum(1 for at in self._logins if at >= since)
        return AccessCounts(counts=counts, login_failed_recent=recent, window_s=window_s)


#: The process-wide recorder the services feed (through :func:`dbops.telemetry.metrics.timed`).
ACCESS = AccessEvents()


def access_stats(window_s: float, events: AccessEvents | None = None) -> AccessCounts:
    """This process's access events (or those of ``events``), with a ``window_s`` recent count."""
    return (events or ACCESS).snapshot(window_s)


def access_kind(exc: BaseException) -> tuple[str, str | None] | None:
    """The kind of access event ``exc`` is and the SQLSTATE behind it, or ``None`` for none.

    A SQLSTATE 42501 on ``exc`` or along its ``__cause__``/``__context__`` chain is
    ``rls_denied`` (its message speaks of row-level security) or ``privilege_denied``;
    otherwise :class:`LoginFailed`, :class:`Forbidden` and :class:`NotFound` give
    ``login_failed``, ``forbidden`` and ``not_found``; anything else is no access event.
    """
    seen: BaseException | None = exc
    sqlstate: str | None = None
    for _ in range(_MAX_CHAIN):
        if seen is None:
            break
        error, sqlstate = driver_error(seen)
        if sqlstate is not None:
            if sqlstate == INSUFFICIENT_PRIVILEGE:
                if "row-level security" in _primary_message(error):
                    return "rls_denied", sqlstate
                return "privilege_denied", sqlstate
            break
        seen = seen.__cause__ or seen.__context__
    if isinstance(exc, LoginFailed):
        return "login_failed", sqlstate
    if isinstance(exc, Forbidden):
        return "forbidden", sqlstate
    if isinstance(exc, NotFound):
        return "not_found", sqlstate
    return None


def driver_error(exc: BaseException) -> tuple[BaseException, str | None]:
    """The driver error behind ``exc`` and its SQLSTATE; ``(exc, None)`` when it has none.

    The driver error is ``exc`` itself (psycopg) or a SQLAlchemy error's ``orig``.
    """
    sqlstate = getattr(exc, "sqlstate", None)  # psycopg.Error
    if isinstance(sqlstate, str):
        return exc, sqlstate
    orig = getattr(exc, "orig", None)  # sqlalchemy.exc.DBAPIError
    if isinstance(orig, BaseException):
        sqlstate = getattr(orig, "sqlstate", None)
        if isinstance(sqlstate, str):
            return orig, sqlstate
    return exc, None


def _primary_message(exc: BaseException) -> str:
    diag = getattr(exc, "diag", None)  # psycopg.Error: the server's primary message
    primary = getattr(diag, "message_primary", None) if diag is not None else None
    return primary if isinstance(primary, str) else str(exc)


def _actor_of(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """The kind and user id of the call's actor: ``actor=``, else the first positional Actor.

    Duck-typed (the actor lives in the service layer above this one): anything with a ``kind``
    of ``"user"``/``"system"`` and a ``user_id`` attribute.
    """
    candidates = [kwargs["actor"]] if "actor" in kwargs else list(args[:2])
    for actor in candidates:
        kind = getattr(actor, "kind", None)
        if kind in ("user", "system") and hasattr(actor, "user_id"):
            user_id = actor.user_id
            return kind, str(user_id) if isinstance(user_id, uuid.UUID) else None
    return None, None


def record_failure(
    statement: str,
    exc: BaseException,
    args: tuple[Any, ...] = (),
    kwargs: Mapping[str, Any] | None = None,
    *,
    events: AccessEvents | None = None,
) -> str | None:
    """Count and log ``exc`` if it is an access event of the call ``statement``; its kind.

    ``args``/``kwargs`` are the call's, searched for its actor only. An exception already
    counted by an inner service call is not counted again. Never raises.
    """
    try:
        if getattr(exc, _SEEN, False):
            return None
        found = access_kind(exc)
        if found is None:
            return None
        kind, sqlstate = found
        setattr(exc, _SEEN, True)
        actor_kind, actor_id = _actor_of(args, kwargs or {})
        (events or ACCESS).record(
            kind, statement=statement, actor_kind=actor_kind, actor_id=actor_id, sqlstate=sqlstate
        )
        return kind
    except Exception:  # the monitor must never replace the service's own exception
        return None
