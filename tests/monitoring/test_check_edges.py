"""Every threshold of every check, on both sides, against values written out by hand.

docs/checks.md says "≥" for warnings and criticals (and "below" for the cache hit ratio): each
case puts a value just below a threshold, exactly on it, and between warning and critical, and
names the severity a reader of the docs expects. A check that swaps `<` and `<=`, uses the
warning threshold for critical, or reads only one of its inputs fails here. Thresholds are set
to round numbers so that "exactly on it" is exact.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from dbops.config import Settings
from dbops.monitoring.checks import CHECKS, evaluate
from dbops.monitoring.snapshot import (
    AccessStat,
    AppAccessStat,
    BlockedPair,
    BouncerPool,
    BouncerStat,
    HaMember,
    HaStat,
    PoolStat,
    ReplicaStat,
    RoleDefault,
    SequenceStat,
    ServerAccessStat,
    SlotStat,
    Snapshot,
    XidAgeStat,
)
from tests.fixtures.snapshots import _index, _query, _session, app_process, healthy_snapshot

SETTINGS = Settings(
    _env_file=None,
    check_replication_lag_warning_s=10,
    check_replication_lag_critical_s=60,
    check_slot_retained_warning_bytes=1_000,
    check_slot_retained_critical_bytes=10_000,
    check_bouncer_wait_warning_s=2,
    check_bouncer_wait_critical_s=20,
    check_long_running_query_s=30,
    check_long_running_query_critical_s=300,
    check_idle_in_transaction_s=20,
    check_cache_hit_warning=0.99,
    check_cache_hit_critical=0.95,
    check_cache_hit_min_blocks=10_000,
    check_connections_warning=0.75,
    check_connections_critical=0.875,
    check_wraparound_warning=0.25,
    check_wraparound_critical=0.5,
    check_sequence_warning=0.75,
    check_sequence_critical=0.875,
    check_unused_index_min_bytes=1_000_000,
    check_unused_index_min_stats_age_s=86_400,
    check_slow_query_ms=100,
    check_slow_query_calls=10,
    check_pool_saturation_warning=0.75,
    check_statements_capacity=0.75,
    check_failed_logins_warning=20,
    backup_max_age_s=86_400,
    backup_verified_max_age_s=691_200,
)

Build = Callable[[Snapshot, Any], Snapshot]


def _db(snap: Snapshot, **changes: Any) -> Snapshot:
    assert snap.database is not None
    return dataclasses.replace(snap, database=dataclasses.replace(snap.database, **changes))


def _act(snap: Snapshot, **changes: Any) -> Snapshot:
    assert snap.activity is not None
    return dataclasses.replace(snap, activity=dataclasses.replace(snap.activity, **changes))


def _replica(lag: float) -> ReplicaStat:
    return ReplicaStat("standby1", "10.0.0.9", "streaming", "async", 0, lag, lag, lag)


def _slot(retained: int | None, *, active: bool = False, status: str = "extended") -> SlotStat:
    return SlotStat("dbops_replica_r1", "physical", active, retained, status)


def _bouncer(wait_s: float) -> BouncerStat:
    pool = BouncerPool("dbops", "dbops_app", 8, 2, 4, 0, 0, wait_s, "transaction")
    return BouncerStat(pools=(pool,), databases=())


def _ha(*states: tuple[str, str]) -> HaStat:
    members = tuple(
        HaMember(f"n{i}", role, state, "10.0.0.1", 5432, 1, 0)
        for i, (role, state) in enumerate(states)
    )
    return HaStat(members=members, source="http://10.0.0.1:8008")


def _sequence(ratio: float | None) -> SequenceStat:
    return SequenceStat("public", "s", "bigint", 1, 1, 100, 1, None, None, ratio)


def _pool(size: int, idle: int, waiting: int = 0, max_size: int = 8) -> PoolStat:
    return PoolStat("app", 1, max_size, size, idle, waiting, 0, 0, 0, 0, 0, 0)


def _stats_since(
    snap: Snapshot, *, reset_ago_s: float | None, started_ago_s: float = 10 * 86_400.0
) -> Snapshot:
    """``snap`` with one large unused index, statistics reset and server started that long ago."""
    assert snap.database is not None
    assert snap.server is not None
    reset = None if reset_ago_s is None else snap.taken_at - timedelta(seconds=reset_ago_s)
    started = snap.taken_at - timedelta(seconds=started_ago_s)
    return dataclasses.replace(
        snap,
        indexes=(_index("ix_idle", scans=0, size_bytes=2_000_000),),
        database=dataclasses.replace(snap.database, stats_reset=reset),
        server=dataclasses.replace(snap.server, started_at=started),
    )


def _with_pool(snap: Snapshot, pool: PoolStat) -> Snapshot:
    """``snap`` whose one live application process (its report) has ``pool``."""
    return dataclasses.replace(snap, processes=(app_process(pool),))


def _blocks(hit: int, read: int) -> Callable[[Snapshot, Any], Snapshot]:
    return lambda s, _v: _db(s, blks_hit=hit, blks_read=read)


def _backups(snap: Snapshot, **changes: Any) -> Snapshot:
    assert snap.backups is not None
    return dataclasses.replace(snap, backups=dataclasses.replace(snap.backups, **changes))


def _reported_logins(snap: Snapshot, first: int, second: int, silent: int) -> Snapshot:
    """Two live processes and a silent one report refused sign-ins of the window; the
    collecting process itself saw none (its own count is not the application's)."""
    pool = PoolStat("app", 1, 8, 1, 1, 0, 0, 0, 0, 0, 0, 0)
    processes = (
        dataclasses.replace(app_process(pool, pid=1), login_failed_recent=first),
        dataclasses.replace(app_process(pool, pid=2), login_failed_recent=second),
        dataclasses.replace(app_process(pool, pid=3, live=False), login_failed_recent=silent),
    )
    return dataclasses.replace(snap, access=_logins(0, 0), processes=processes)


def _logins(app: int, server: int) -> AccessStat:
    return AccessStat(
        window_s=900.0,
        app=AppAccessStat(app, 0, 0, 0, 0, app),
        server=ServerAccessStat(server, 0, 0, server),
    )


#: (check, builder of the snapshot from a value, [(value, severities the check reports)]).
#: An empty tuple of severities means the check is "ok" (one ok finding).
CASES: list[tuple[str, Build, list[tuple[Any, tuple[str, ...]]]]] = [
    (
        "replication_lag",  # a replica's replay lag, as the primary sees it
        lambda s, v: _db(s, replicas=(_replica(v),), replica_lag_s=None),
        [(9.999, ()), (10, ("warning",)), (59.999, ("warning",)), (60, ("critical",))],
    ),
    (
        "replication_lag",  # this server is a standby: its own replay lag
        lambda s, v: _db(s, replicas=(), replica_lag_s=v),
        [(9.999, ()), (10, ("warning",)), (59.999, ("warning",)), (60, ("critical",))],
    ),
    (
        "replication_slots",  # an absent replica's slot keeps WAL
        lambda s, v: _db(s, slots=(_slot(v),)),
        [(999, ()), (1_000, ("warning",)), (9_999, ("warning",)), (10_000, ("critical",))],
    ),
    (
        "replication_slots",  # a lagging replica's (active) slot counts the same
        lambda s, v: _db(s, slots=(_slot(v, active=True),)),
        [(999, ()), (1_000, ("warning",)), (10_000, ("critical",))],
    ),
    (
        "replication_slots",  # WAL already removed: critical whatever the bytes say
        lambda s, v: _db(s, slots=(_slot(v, status="lost"),)),
        [(None, ("critical",)), (0, ("critical",))],
    ),
    (
        "ha_cluster",  # the members' (role, state): a running leader and a standby to fail to
        lambda s, v: dataclasses.replace(s, ha=_ha(*v)),
        [
            ((("leader", "running"), ("sync_standby", "streaming")), ()),
            ((("leader", "running"), ("replica", "running")), ()),
            ((("leader", "running"), ("replica", "stopped")), ("warning",)),
            ((("leader", "running"),), ("warning",)),
            ((("replica", "streaming"), ("replica", "streaming")), ("critical",)),
            ((("leader", "stopped"), ("replica", "streaming")), ("critical", "warning")),
        ],
    ),
    (
        "bouncer_waiting",
        lambda s, v: dataclasses.replace(s, bouncer=_bouncer(v)),
        [(0.0, ()), (1.999, ()), (2, ("warning",)), (19.999, ("warning",)), (20, ("critical",))],
    ),
    (
        "long_running_queries",
        lambda s, v: _act(s, sessions=(_session(7, "active", v, v),), blocked=()),
        [(29.999, ()), (30, ("warning",)), (299.999, ("warning",)), (300, ("critical",))],
    ),
    (
        "long_running_queries",  # an idle session's last statement is not running
        lambda s, v: _act(s, sessions=(_session(7, "idle", v, v),), blocked=()),
        [(10_000, ())],
    ),
    (
        "idle_in_transaction",
        lambda s, v: _act(s, sessions=(_session(8, "idle in transaction", None, v),), blocked=()),
        [(19.999, ()), (20, ("warning",)), (10_000, ("warning",))],
    ),
    (
        "idle_in_transaction",  # aborted transactions hold their locks too
        lambda s, v: _act(
            s, sessions=(_session(8, "idle in transaction (aborted)", None, v),), blocked=()
        ),
        [(19.999, ()), (20, ("warning",))],
    ),
    (
        "idle_in_transaction",  # one that blocks another session is critical
        lambda s, v: _act(
            s,
            sessions=(_session(8, "idle in transaction", None, v),),
            blocked=(BlockedPair(9, "app", "UPDATE t", 5.0, "Lock", "tuple", 8, "app", "x", "y"),),
        ),
        [(19.999, ()), (20, ("critical",))],
    ),
    # Cache hit ratio: hit / (hit + read), warning below 0.99, critical below 0.95, judged
    # from 10,000 block reads on.
    ("cache_hit", _blocks(9_900, 100), [(None, ())]),  # exactly 0.99: ok
    ("cache_hit", _blocks(9_899, 101), [(None, ("warning",))]),  # 0.9899
    ("cache_hit", _blocks(9_500, 500), [(None, ("warning",))]),  # exactly 0.95: warning
    ("cache_hit", _blocks(9_499, 501), [(None, ("critical",))]),  # 0.9499
    ("cache_hit", _blocks(5_000, 4_999), [(None, ())]),  # 9,999 reads: too few to judge
    ("cache_hit", _blocks(5_000, 5_000), [(None, ("critical",))]),  # 10,000 reads: judged
    (
        "connections",
        lambda s, v: _act(s, total=v, max_connections=200),
        [(149, ()), (150, ("warning",)), (174, ("warning",)), (175, ("critical",))],
    ),
    (
        "wraparound",  # the transaction-ID age
        lambda s, v: _db(s, xid_ages=(XidAgeStat("dbops", v, 0),)),
        [(2**29 - 1, ()), (2**29, ("warning",)), (2**30 - 1, ("warning",)), (2**30, ("critical",))],
    ),
    (
        "wraparound",  # the multixact age counts the same
        lambda s, v: _db(s, xid_ages=(XidAgeStat("dbops", 1_000, v),)),
        [(2**29 - 1, ()), (2**29, ("warning",)), (2**30 - 1, ("warning",)), (2**30, ("critical",))],
    ),
    (
        "sequences",
        lambda s, v: _db(s, sequences=(_sequence(v),)),
        [(0.749, ()), (0.75, ("warning",)), (0.874, ("warning",)), (0.875, ("critical",))],
    ),
    (
        "unused_indexes",
        lambda s, v: dataclasses.replace(s, indexes=(_index("ix_idle", scans=0, size_bytes=v),)),
        [(999_999, ()), (1_000_000, ("warning",))],
    ),
    (
        "unused_indexes",  # statistics counting for v seconds since their reset (1 day needed)
        lambda s, v: _stats_since(s, reset_ago_s=v),
        [(86_399.0, ()), (86_400.0, ("warning",))],
    ),
    (
        "unused_indexes",  # never reset: counted from the server's start (a lower bound)
        lambda s, v: _stats_since(s, reset_ago_s=None, started_ago_s=v),
        [(86_399.0, ()), (86_400.0, ("warning",))],
    ),
    (
        "slow_queries",  # mean time at the threshold, enough calls
        lambda s, v: _statements(s, _query(5, v, 10, "SELECT slow")),
        [(99.999, ()), (100, ("warning",))],
    ),
    (
        "slow_queries",  # slow, but called fewer times than the threshold
        lambda s, v: _statements(s, _query(5, 500, v, "SELECT slow")),
        [(9, ()), (10, ("warning",))],
    ),
    (
        "pool_saturation",  # in use (size - idle) of max_size 8: 6/8 = 0.75
        lambda s, v: _with_pool(s, _pool(size=8, idle=8 - v)),
        [(5, ()), (6, ("warning",)), (8, ("warning",))],
    ),
    (
        "pool_saturation",  # every connection in use and requests waiting
        lambda s, v: _with_pool(s, _pool(size=8, idle=0, waiting=v)),
        [(1, ("critical",))],
    ),
    (
        "pool_saturation",  # waiting with room left is a warning
        lambda s, v: _with_pool(s, _pool(size=4, idle=2, waiting=v)),
        [(0, ()), (1, ("warning",))],
    ),
    (
        "statements_capacity",
        lambda s, v: _stats(s, entries=v, max_entries=1_000, dealloc=0),
        [(749, ()), (750, ("warning",))],
    ),
    (
        "statements_capacity",  # any eviction since the reset warns, however full
        lambda s, v: _stats(s, entries=10, max_entries=1_000, dealloc=v),
        [(0, ()), (1, ("warning",))],
    ),
    (
        "failed_logins",  # per source: the application and the server
        lambda s, v: dataclasses.replace(s, access=_logins(*v)),
        [((19, 19), ()), ((20, 0), ("warning",)), ((0, 20), ("warning",))],
    ),
    (
        "failed_logins",  # the application's side from its live processes' reports, summed
        lambda s, v: _reported_logins(s, *v),
        [((10, 9, 500), ()), ((10, 10, 500), ("warning",))],
    ),
    (
        "backup_stale",  # "older than" the limit: at the limit it is still fresh
        lambda s, v: _backups(s, newest_age_s=v),
        [(86_400, ()), (86_400.001, ("warning",))],
    ),
    (
        "backup_unverified",
        lambda s, v: _backups(s, verified_age_s=v, last_drill_ok=True),
        [(691_200, ()), (691_200.001, ("warning",))],
    ),
    (
        "backup_unverified",  # never verified, and the last drill failed: two findings
        lambda s, v: _backups(
            s, verified_id=None, verified_at=None, verified_age_s=v, last_drill_ok=False
        ),
        [(None, ("warning", "warning"))],
    ),
    (
        "secret_statements",
        lambda s, v: _stats(s, secret_texts=v),
        [(0, ()), (1, ("critical",))],
    ),
]


def _statements(snap: Snapshot, *top: Any) -> Snapshot:
    assert snap.statements is not None
    return dataclasses.replace(snap, statements=dataclasses.replace(snap.statements, top=top))


def _stats(snap: Snapshot, **changes: Any) -> Snapshot:
    assert snap.statements is not None
    return dataclasses.replace(snap, statements=dataclasses.replace(snap.statements, **changes))


def _ids() -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for check, _, _ in CASES:
        seen[check] = seen.get(check, 0) + 1
        out.append(f"{check}-{seen[check]}")
    return out


@pytest.mark.parametrize(("check", "build", "points"), CASES, ids=_ids())
def test_each_threshold_on_both_sides(
    check: str, build: Build, points: list[tuple[Any, tuple[str, ...]]]
) -> None:
    for value, expected in points:
        snap = build(healthy_snapshot(), value)
        found = [f for f in evaluate(snap, SETTINGS) if f.check == check]
        got = tuple(str(f.severity) for f in found if str(f.severity) != "ok")
        assert got == expected, f"{check} at {value!r}: {got} (expected {expected})"
        if not expected:
            assert [str(f.severity) for f in found] == ["ok"], f"{check} at {value!r}"


def test_every_threshold_setting_has_an_edge_case() -> None:
    """A new threshold setting needs its own cases above."""
    thresholds = {
        n for n in Settings.model_fields if n.startswith("check_") or n.endswith("_max_age_s")
    }
    assert thresholds - SETTINGS.model_fields_set == set()


@pytest.mark.parametrize(
    ("check", "build"),
    [
        ("cache_hit", lambda s: _db(s, blks_hit=None)),
        ("cache_hit", lambda s: _db(s, blks_read=None)),
        ("backup_unverified", lambda s: _backups(s, count=0)),  # backup_missing says it
        ("backup_stale", lambda s: _backups(s, newest_age_s=None)),
        ("replication_lag", lambda s: _db(s, replicas=None, replica_lag_s=None)),
        ("replication_slots", lambda s: _db(s, slots=None)),
        ("bouncer_waiting", lambda s: dataclasses.replace(s, bouncer=None)),
        ("ha_cluster", lambda s: dataclasses.replace(s, ha=None)),
        ("secret_statements", lambda s: _stats(s, secret_texts=None)),
        ("role_defaults", lambda s: _db(s, role_defaults=None)),
        ("invalid_constraints", lambda s: _db(s, not_valid_constraints=None)),
        ("wraparound", lambda s: _db(s, xid_ages=None)),
        ("sequences", lambda s: _db(s, sequences=None)),
    ],
)
def test_an_unknown_input_gives_no_finding_not_ok(
    check: str, build: Callable[[Snapshot], Snapshot]
) -> None:
    """Unknown is not ok (docs/checks.md): the check stays silent, collector_errors speaks."""
    assert [f for f in evaluate(build(healthy_snapshot()), SETTINGS) if f.check == check] == []


@pytest.mark.parametrize(
    ("age_s", "says"), [(47 * 3600, "47.0 h"), (172_800, "2.0 days"), (3 * 86_400, "3.0 days")]
)
def test_backup_ages_read_in_hours_then_days(age_s: float, says: str) -> None:
    snap = _backups(healthy_snapshot(), newest_age_s=age_s)
    (finding,) = [
        f
        for f in evaluate(snap, SETTINGS.model_copy(update={"backup_max_age_s": 60}))
        if f.check == "backup_stale"
    ]
    assert finding.message.endswith(f"is {says} old")


def _one(snap: Snapshot, check: str, settings: Settings = SETTINGS) -> list[Any]:
    return [f for f in evaluate(snap, settings) if f.check == check and str(f.severity) != "ok"]


def test_messages_and_subjects_carry_the_numbers() -> None:
    """What a reader sees: shares in percent, the subject named by what is known."""
    base = healthy_snapshot()
    (conn,) = _one(_act(base, total=150, max_connections=200), "connections")
    assert conn.message == "150 of max_connections 200 in use (75.0%)"
    idle = _session(8, "idle in transaction", None, 30)
    (alone,) = _one(_act(base, sessions=(idle,), blocked=()), "idle_in_transaction")
    assert "blocks others" not in alone.message
    pair = BlockedPair(9, "app", "UPDATE t", 5.0, "Lock", "tuple", 8, "app", "x", "y")
    (blocking,) = _one(_act(base, sessions=(idle,), blocked=(pair,)), "idle_in_transaction")
    assert blocking.message.endswith("and blocks others")
    (full,) = _one(_stats(base, entries=800, max_entries=1_000, dealloc=0), "statements_capacity")
    assert full.message == "pg_stat_statements holds 800 of 1,000 entries (80.0%)"
    (evicting,) = _one(
        _stats(base, entries=10, max_entries=1_000, dealloc=5), "statements_capacity"
    )
    assert evicting.message.endswith("(1.0%); 5 entries evicted since the reset")
    named = [
        ReplicaStat(None, "10.0.0.9", "streaming", "async", 0, 90.0, 90.0, 90.0),
        ReplicaStat(None, None, "streaming", "async", 0, 90.0, 90.0, 90.0),
    ]
    found = _one(_db(base, replicas=tuple(named), replica_lag_s=None), "replication_lag")
    assert [f.subject for f in found] == ["10.0.0.9", "replica"]
    (stale,) = _one(
        _backups(base, newest_age_s=4_500),
        "backup_stale",
        SETTINGS.model_copy(update={"backup_max_age_s": 60}),
    )
    assert stale.message.endswith("is 1.2 h old")  # 4,500 s / 3,600


@pytest.mark.parametrize(
    ("check", "build"),
    [
        (
            "long_running_queries",
            lambda s: _act(
                s,
                sessions=(_session(1, "idle", 1e4, 1e4), _session(2, "active", 400, 400)),
                blocked=(),
            ),
        ),
        (
            "long_running_queries",
            lambda s: _act(
                s,
                sessions=(_session(1, "active", 1, 1), _session(2, "active", 400, 400)),
                blocked=(),
            ),
        ),
        (
            "idle_in_transaction",
            lambda s: _act(
                s,
                sessions=(
                    _session(1, "active", 1, 1),
                    _session(2, "idle in transaction", None, 400),
                ),
                blocked=(),
            ),
        ),
        (
            "idle_in_transaction",
            lambda s: _act(
                s,
                sessions=(
                    _session(1, "idle in transaction", None, 1),
                    _session(2, "idle in transaction", None, 400),
                ),
                blocked=(),
            ),
        ),
        (
            "replication_lag",
            lambda s: _db(s, replicas=(_replica(1), _replica(400)), replica_lag_s=None),
        ),
        (
            "replication_lag",
            lambda s: _db(
                s,
                replicas=(
                    ReplicaStat("a", None, None, None, None, None, None, None),
                    _replica(400),
                ),
                replica_lag_s=None,
            ),
        ),
        (
            "wraparound",
            lambda s: _db(s, xid_ages=(XidAgeStat("a", 1, 1), XidAgeStat("b", 2**30, 0))),
        ),
        ("sequences", lambda s: _db(s, sequences=(_sequence(None), _sequence(0.9)))),
        ("sequences", lambda s: _db(s, sequences=(_sequence(0.1), _sequence(0.9)))),
    ],
)
def test_a_quiet_first_item_does_not_hide_a_later_one(
    check: str, build: Callable[[Snapshot], Snapshot]
) -> None:
    assert len(_one(build(healthy_snapshot()), check)) == 1


def test_more_messages_name_what_they_are_about() -> None:
    base = healthy_snapshot()
    idle = dataclasses.replace(
        _session(8, "idle in transaction", None, 30), application="billing", user="app"
    )
    (finding,) = _one(_act(base, sessions=(idle,), blocked=()), "idle_in_transaction")
    assert finding.message.startswith("pid 8 (billing) has been idle in a transaction for 30 s")
    (missing,) = _one(_backups(base, count=0, broken=2), "backup_missing")
    assert missing.message.endswith("(2 with an unreadable manifest)")
    (none_broken,) = _one(_backups(base, count=0, broken=0), "backup_missing")
    assert "unreadable" not in none_broken.message
    defaults = (
        RoleDefault("dbops_app", None, "role=dbops_system"),
        RoleDefault("dbops_app", "dbops", "statement_timeout=1"),
    )
    found = _one(_db(base, role_defaults=defaults), "role_defaults")
    assert [f.message.split(":")[0] for f in found] == [
        "role dbops_app has the default role=dbops_system",
        "role dbops_app has the default statement_timeout=1 in database dbops",
    ]
    logins = AccessStat(window_s=90.0, app=AppAccessStat(25, 0, 0, 0, 0, 25), server=None)
    (burst,) = _one(dataclasses.replace(base, access=logins), "failed_logins")
    assert burst.message.endswith("in the last 2 min")  # 90 s is 1.5 min, shown as 2
    long_text = "SELECT " + "x, " * 100 + "1"
    (slow,) = _one(_statements(base, _query(5, 500, 50, long_text)), "slow_queries")
    assert slow.message.endswith(": " + long_text[:120])


@pytest.mark.parametrize(
    ("check", "build"),
    [
        ("long_running_queries", lambda s: _act(s, sessions=None)),
        ("idle_in_transaction", lambda s: _act(s, sessions=None)),
        ("connections", lambda s: _act(s, total=None)),
        ("connections", lambda s: _act(s, max_connections=None)),
    ],
)
def test_an_unknown_activity_part_gives_no_finding(
    check: str, build: Callable[[Snapshot], Snapshot]
) -> None:
    assert [f for f in evaluate(build(healthy_snapshot()), SETTINGS) if f.check == check] == []


def test_a_scanned_index_is_never_unused() -> None:
    big = _index("ix_big", scans=1, size_bytes=10**9)
    snap = dataclasses.replace(healthy_snapshot(), indexes=(big,))
    assert _one(snap, "unused_indexes") == []


@pytest.mark.parametrize(
    ("age_s", "says"),
    [
        (180, "0.1 h"),  # 0.05 h rounds up: a divisor of 3,601 would say 0.0
        (172_799.5, "48.0 h"),  # just below two days: still hours
        (194_400, "2.2 days"),  # 2.25 exactly (round half to even)
        (203_040, "2.4 days"),  # 2.35
    ],
)
def test_backup_ages_at_the_rounding_edges(age_s: float, says: str) -> None:
    snap = _backups(healthy_snapshot(), newest_age_s=age_s)
    (finding,) = _one(snap, "backup_stale", SETTINGS.model_copy(update={"backup_max_age_s": 60}))
    assert finding.message.endswith(f"is {says} old")


def test_window_minutes_and_sequence_columns_in_messages() -> None:
    base = healthy_snapshot()
    logins = AccessStat(window_s=1_800.0, app=AppAccessStat(25, 0, 0, 0, 0, 25), server=None)
    (burst,) = _one(dataclasses.replace(base, access=logins), "failed_logins")
    assert burst.message.endswith("in the last 30 min")
    owned = dataclasses.replace(_sequence(0.9), owned_by="jobs.id", column_type="integer")
    (seq,) = _one(_db(base, sequences=(owned,)), "sequences")
    assert "(column jobs.id is integer)" in seq.message
    (bare,) = _one(_db(base, sequences=(_sequence(0.9),)), "sequences")
    assert "column" not in bare.message


def test_states_read_from_json_are_compared_by_value() -> None:
    """Session states come from the server (or a JSON file): equal, not the same object."""
    snap = _act(healthy_snapshot(), sessions=(_session(7, "active", 400, 400),), blocked=())
    loaded = Snapshot.from_json(snap.to_json())
    assert [str(f.severity) for f in _one(loaded, "long_running_queries")] == ["critical"]


def test_no_drill_yet_is_not_a_failed_drill() -> None:
    snap = _backups(healthy_snapshot(), last_drill_ok=None, last_drill_message=None)
    assert _one(snap, "backup_unverified") == []


def test_findings_and_checks_are_frozen() -> None:
    (finding,) = evaluate(healthy_snapshot(), SETTINGS)[:1]
    with pytest.raises(dataclasses.FrozenInstanceError):
        finding.message = "changed"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        CHECKS[0].title = "changed"  # type: ignore[misc]


def test_problems_leave_out_the_all_fine_rows() -> None:
    from dbops.monitoring.checks import Finding, Severity, problems

    found = [
        Finding("unused_indexes", Severity.WARNING, "a", subject="public.a"),
        Finding("unused_indexes", Severity.OK, "no unused index"),
        Finding("duplicate_indexes", Severity.CRITICAL, "b", subject="public.b"),
        Finding("cache_hit_ratio", Severity.OK, "fine"),
    ]
    assert problems(found) == [found[0], found[2]]
    assert problems(found, "unused_indexes") == [found[0]]
    assert problems(found, "cache_hit_ratio") == []
    assert problems([]) == []
