"""Reads that tolerate lag on streaming replicas, with read-your-writes.

:class:`ReplicaRouter` holds one pool per replica beside the primary's and decides, read by
read, where a read that tolerates lag runs (:meth:`ReplicaRouter.run`):

- **Health.** A monitor thread samples the primary's WAL position every ``replica_check_s``
  and asks each replica what it has replayed. A replica's *staleness* is how long ago the
  primary had only the WAL the replica has replayed (from the primary's own samples, so
  idle periods and the replica's clock do not distort it). A replica that does not answer,
  is not in recovery (promoted: it would diverge) or is staler than ``replica_max_lag_s`` is
  skipped; the next check that finds it healthy brings it back.
- **Read-your-writes.** After a unit of work commits, :meth:`ReplicaRouter.note_write` records
  the primary's WAL insert position for the actor (one statement, only when replicas are
  configured). The actor's next lag-tolerant read goes to a replica only once it has replayed
  that position: known from the last check, else asked and waited for, up to
  ``replica_wait_s``; past that the read runs on the primary.
- **No failed read.** A read the replica cannot answer (connection lost, server shutting
  down, a conflict with recovery, no connection in time) runs again on the primary and the
  replica is skipped until the monitor finds it healthy. Reads are idempotent, so running
  one twice is safe; an error the primary would raise too (a permission, bad data) is not
  retried.

Positions are kept per process: another process's writes (a CLI command, another web
worker) are not waited for. docs/scale-out.md says which reads may go to a replica and why.
"""

from __future__ import annotations

import collections
import itertools
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import psycopg
from psycopg import errors as pg_errors
from psycopg_pool import PoolTimeout

from dbops.db.engine import (
    CARRIED,
    NO_ACTOR,
    ActorContext,
    ActorPool,
    _in_transaction_mode,
    local_limits,
    make_pool,
    send_actor,
)
from dbops.telemetry import report

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

    from dbops.config import Settings
    from dbops.db.dsn import Dsn

__all__ = ["ReplicaRouter", "ReplicaState", "RouterStats"]

T = TypeVar("T")

#: Positions as integers (bytes since 0/0): comparable in Python, no pg_lsn parsing. A write
#: waits for the insert position (at or after its commit record even when COMMIT did not wait
#: for the flush: ``synchronous_commit = off``); the health samples use the write position,
#: the most a replica can have been sent.
WRITE_LSN_SQL = "SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), '0/0')::bigint"
PRIMARY_LSN_SQL = "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint"
REPLICA_STATE_SQL = (
    "SELECT pg_is_in_recovery(), "
    "coalesce(pg_wal_lsn_diff(pg_last_wal_replay_lsn(), '0/0'), 0)::bigint"
)
REPLAY_LSN_SQL = "SELECT coalesce(pg_wal_lsn_diff(pg_last_wal_replay_lsn(), '0/0'), 0)::bigint"

#: Errors after which a read runs again on the primary: the replica is gone or going
#: (connection and server-shutdown errors are OperationalError), could not hand out a
#: connection in time, or cancelled the read to replay WAL (a conflict with recovery,
#: SQLSTATE 40001). Nothing else: an error the primary would raise as well is the caller's.
_REPLICA_FAILURES: tuple[type[BaseException], ...] = (
    psycopg.OperationalError,
    pg_errors.SerializationFailure,
    PoolTimeout,
)

#: Polling of a replica's replay position while a read waits for it: first and longest pause.
_POLL_FIRST_S = 0.001
_POLL_MAX_S = 0.02


@dataclass(frozen=True)
class ReplicaState:
    """What the router knows of one replica after its last check."""

    name: str
    #: The replica's URL with any password redacted.
    url: str
    usable: bool
    #: ``ok``, or why reads skip it: ``down: ...``, ``lagging 7.2 s``, ``not in recovery``,
    #: ``not checked yet``.
    reason: str
    replay_lsn: int | None
    #: Seconds since the primary had only what the replica has replayed (None: unknown).
    staleness_s: float | None


@dataclass(frozen=True)
class RouterStats:
    """Where lag-tolerant reads ran since the router opened."""

    replica_reads: int
    primary_reads: int
    #: Reads that waited for a replica to replay the actor's write, and then ran there.
    waited: int
    #: Primary reads by reason: ``no replica``, ``behind`` (the wait ran out), ``failed``
    #: (the replica could not answer: the read ran again on the primary).
    fallbacks: dict[str, int]


class _Replica:
    """One replica: its pool and what the last check found."""

    def __init__(self, name: str, dsn: Dsn, pool: ActorPool) -> None:
        self.name = name
        self.dsn = dsn
        self.pool = pool
        self.usable = False
        self.reason = "not checked yet"
        self.replay_lsn = 0
        self.staleness_s: float | None = None

    def state(self) -> ReplicaState:
        return ReplicaState(
            name=self.name,
            url=self.dsn.redacted,
            usable=self.usable,
            reason=self.reason,
            replay_lsn=self.replay_lsn or None,
            staleness_s=self.staleness_s,
        )


class ReplicaRouter:
    """The replicas of one :class:`~dbops.db.engine.Database` and the routing of its reads."""

    def __init__(
        self,
        settings: Settings,
        primary_read: Callable[[ActorContext], AbstractContextManager[psycopg.Connection[Any]]],
        replicas: Sequence[tuple[str, Dsn]],
    ) -> None:
        """Open a pool per replica (lazily connecting) and start the monitor thread.

        Args:
            settings: the ``replica_*`` settings and the pool's.
            primary_read: ``Database.read``: where a read runs when no replica may take it.
            replicas: ``(name, dsn)`` of each replica, as the application's role.
        """
        section = settings.replicas
        self.max_lag_s = section.max_lag_s
        self.wait_s = section.wait_s
        self.check_s = section.check_s
        self._transactional = not settings.pool.prepared_statements
        self._limits = local_limits(settings)
        self._primary_read = primary_read
        # A replica that cannot hand out a connection quickly loses the read to the primary.
        timeout = min(settings.pool.timeout_s, max(section.check_s, 0.1))
        self._replicas = [
            _Replica(
                name, dsn, make_pool(settings, dsn, open_now=False, timeout_s=timeout, min_size=0)
            )
            for name, dsn in replicas
        ]
        for replica in self._replicas:
            replica.pool.open(wait=False)
        self._turn = itertools.count()
        self._lock = threading.Lock()
        self._writes: dict[str, int] = {}
        self._samples: collections.deque[tuple[float, int]] = collections.deque()
        self._counts: collections.Counter[str] = collections.Counter()
        self._stop = threading.Event()
        self._checked = threading.Event()
        self._thread = threading.Thread(target=self._monitor, name="dbops-replicas", daemon=True)
        self._thread.start()
        report.watch_routing(self)  # the process report carries routing() (the Pool page)

    # ------------------------------------------------------------------ reads
    def run(self, context: ActorContext, key: str | None, work: Callable[[Any], T]) -> T:
        """``work(conn)`` on a replica that may take it, else on the primary.

        ``key`` names the actor whose writes this read must see (:meth:`note_write`); None
        for a read that follows no write of its own.
        """
        needed = self._writes.get(key, 0) if key is not None else 0
        replica = self._pick()
        if replica is None:
            return self._on_primary(context, work, "no replica")
        try:
            conn = replica.pool.getconn_carrying(context)
        except _REPLICA_FAILURES as exc:
            self._mark_down(replica, exc)
            return self._on_primary(context, work, "failed")
        try:
            try:
                self._prepare(conn, context)
                waited = needed > replica.replay_lsn
                if waited and not self._wait_for(conn, replica, needed):
                    return self._on_primary(context, work, "behind")
                result = work(conn)
                if self._transactional:
                    conn.commit()
            except _REPLICA_FAILURES as exc:
                self._mark_down(replica, exc)
                return self._on_primary(context, work, "failed")
        finally:
            replica.pool.putconn(conn)
        with self._lock:
            self._counts["replica"] += 1
            if waited:
                self._counts["waited"] += 1
        return result

    def _prepare(self, conn: psycopg.Connection[Any], context: ActorContext) -> None:
        """The actor on ``conn``, as ``Database.read`` puts it (session or transaction)."""
        if self._transactional:
            send_actor(_in_transaction_mode(conn), context, local=True, limits=self._limits)
            return
        if not conn.autocommit:
            conn.autocommit = True
        CARRIED.ensure(conn, context)

    def _wait_for(self, conn: psycopg.Connection[Any], replica: _Replica, needed: int) -> bool:
        """Whether ``replica`` replays position ``needed`` within ``wait_s`` (asked on ``conn``)."""
        deadline = time.monotonic() + self.wait_s
        pause = _POLL_FIRST_S
        while True:
            row = conn.execute(REPLAY_LSN_SQL).fetchone()
            replayed = int(row[0]) if row is not None else 0
            if replayed > replica.replay_lsn:
                replica.replay_lsn = replayed
            if replayed >= needed:
                return True
            if time.monotonic() + pause > deadline:
                return False
            time.sleep(pause)
            pause = min(pause * 2, _POLL_MAX_S)

    def _on_primary(self, context: ActorContext, work: Callable[[Any], T], reason: str) -> T:
        with self._lock:
            self._counts[f"primary:{reason}"] += 1
        with self._primary_read(context) as conn:
            return work(conn)

    def _pick(self) -> _Replica | None:
        """The next usable replica in rotation, or None."""
        usable = [r for r in self._replicas if r.usable]
        if not usable:
            return None
        return usable[next(self._turn) % len(usable)]

    def _mark_down(self, replica: _Replica, exc: BaseException) -> None:
        replica.usable = False
        first = str(exc).strip().splitlines()
        replica.reason = f"down: {first[0] if first else type(exc).__name__}"[:200]

    # ----------------------------------------------------------------- writes
    def note_write(self, key: str) -> None:
        """Record that ``key``'s actor has just committed: its reads must see the primary's now.

        The insert position read after COMMIT returned lies at or after the commit record, so
        a replica that has replayed it shows the write.
        """
        with self._primary_read(NO_ACTOR) as conn:
            row = conn.execute(WRITE_LSN_SQL).fetchone()
        position = int(row[0]) if row is not None else 0
        with self._lock:
            if position > self._writes.get(key, 0):
                self._writes[key] = position

    def last_write(self, key: str) -> int | None:
        """The position ``key``'s reads wait for (None: no write recorded)."""
        return self._writes.get(key)

    def carry_write(self, key: str, position: int) -> None:
        """Make ``key``'s reads here wait for ``position`` too: another process's write.

        For an application spread over processes: the process that wrote hands
        :meth:`last_write` on (in the user's session, a cookie), and the one that serves the
        next request carries it here before reading.
        """
        with self._lock:
            if position > self._writes.get(key, 0):
                self._writes[key] = position

    # ---------------------------------------------------------------- monitor
    def wait_checked(self, timeout: float) -> bool:
        """Block until the monitor has checked every replica once (tests, start-up)."""
        return self._checked.wait(timeout)

    def check_now(self) -> None:
        """Check every replica now (the monitor does this every ``replica_check_s``)."""
        now = time.monotonic()
        try:
            with self._primary_read(NO_ACTOR) as conn:
                row = conn.execute(PRIMARY_LSN_SQL).fetchone()
            primary = int(row[0]) if row is not None else 0
        except psycopg.Error:
            primary = None  # the primary's own reads will say why; keep the last samples
        with self._lock:
            if primary is not None:
                self._samples.append((now, primary))
            horizon = now - max(self.max_lag_s * 2, self.check_s * 4)
            while len(self._samples) > 2 and self._samples[0][0] < horizon:
                self._samples.popleft()
            samples = list(self._samples)
        for replica in self._replicas:
            self._check(replica, samples)
        self._forget_replayed()
        self._checked.set()

    def _check(self, replica: _Replica, samples: list[tuple[float, int]]) -> None:
        try:
            with replica.pool.connection(timeout=max(self.check_s, 0.5)) as conn:
                conn.autocommit = True
                CARRIED.ensure(conn, NO_ACTOR)
                row = conn.execute(REPLICA_STATE_SQL).fetchone()
        except (psycopg.Error, PoolTimeout) as exc:
            self._mark_down(replica, exc)
            return
        assert row is not None
        in_recovery, replayed = bool(row[0]), int(row[1])
        replica.replay_lsn = max(replica.replay_lsn, replayed)
        if not in_recovery:
            replica.usable, replica.reason, replica.staleness_s = False, "not in recovery", None
            return
        staleness = _staleness(samples, replayed, time.monotonic())
        replica.staleness_s = staleness
        if staleness is not None and staleness > self.max_lag_s:
            replica.usable, replica.reason = False, f"lagging {staleness:.1f} s"
            return
        replica.usable, replica.reason = True, "ok"

    def _forget_replayed(self) -> None:
        """Drop write positions every usable replica has replayed: they cannot delay a read."""
        usable = [r.replay_lsn for r in self._replicas if r.usable]
        if not usable:
            return
        floor = min(usable)
        with self._lock:
            for key in [k for k, v in self._writes.items() if v <= floor]:
                del self._writes[key]

    def _monitor(self) -> None:
        while not self._stop.is_set():
            self.check_now()
            self._stop.wait(self.check_s)

    # ------------------------------------------------------------------ views
    def states(self) -> list[ReplicaState]:
        """Every replica as the last check (or a failed read) left it."""
        return [r.state() for r in self._replicas]

    def stats(self) -> RouterStats:
        """Where lag-tolerant reads ran so far."""
        with self._lock:
            counts = dict(self._counts)
        fallbacks = {k.split(":", 1)[1]: v for k, v in counts.items() if k.startswith("primary:")}
        return RouterStats(
            replica_reads=counts.get("replica", 0),
            primary_reads=sum(fallbacks.values()),
            waited=counts.get("waited", 0),
            fallbacks=fallbacks,
        )

    def routing(self) -> dict[str, Any]:
        """:meth:`stats` and :meth:`states` as JSON, for this process's report."""
        stats = self.stats()
        return {
            "replica_reads": stats.replica_reads,
            "primary_reads": stats.primary_reads,
            "waited": stats.waited,
            "fallbacks": dict(stats.fallbacks),
            "replicas": [
                {
                    "name": s.name,
                    "usable": s.usable,
                    "reason": s.reason,
                    "staleness_s": s.staleness_s,
                }
                for s in self.states()
            ],
        }

    def close(self) -> None:
        """Stop the monitor and close the replicas' pools."""
        report.unwatch_routing(self)
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        for replica in self._replicas:
            replica.pool.close()


def _staleness(samples: Sequence[tuple[float, int]], replayed: int, now: float) -> float | None:
    """Seconds since the primary had only what ``replayed`` covers; None without samples.

    ``samples`` are ``(monotonic time, primary position)``, oldest first. The replica holds
    everything of the newest sample at or below ``replayed``; it is as stale as that sample is
    old. Behind every sample, it is at least as stale as the oldest one.
    """
    if not samples:
        return None
    covered = [t for t, position in samples if position <= replayed]
    return now - (covered[-1] if covered else samples[0][0])
