"""The exporter over canned snapshots: names, labels, values, budget and cache (no database)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import gzip
import shutil
import subprocess
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest, make_wsgi_app
from prometheus_client.exposition import choose_encoder

from dbops.config import Settings
from dbops.db import Database
from dbops.exporter import (
    MAX_CLIENT_SERIES,
    SCRAPE_TIMEOUT,
    SNAPSHOT_FAILED,
    SnapshotCollector,
    SnapshotSource,
    instrument,
    make_app,
    make_server,
    snapshot_metrics,
)
from dbops.exporter.server import _MetricsApp
from dbops.monitoring.cadence import SLOW_COLLECTORS, SlowSections
from dbops.monitoring.collect import collect_snapshot
from dbops.monitoring.snapshot import CountBy, SectionError, Snapshot
from tests.fixtures.db import make_settings
from tests.fixtures.snapshots import degraded_snapshot, healthy_snapshot, partial_snapshot

ROOT = Path(__file__).resolve().parents[2]
PROMTOOL = shutil.which("promtool")
#: The labels of the workload process of the canned snapshots (tests.fixtures.snapshots).
WORKLOAD = {"process": "dbops workload", "pid": "4242"}
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool missing: install Debian's prometheus (scripts/bootstrap.sh)"
)


def _settings(**overrides: object) -> Settings:
    return make_settings("postgresql://unused/none", **overrides)


def _registry(source: SnapshotSource, settings: Settings | None = None) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(source, settings or _settings()))
    return registry


def _source(snapshot: Snapshot, **kw: float) -> SnapshotSource:
    return SnapshotSource(
        lambda: snapshot,
        budget_s=kw.get("budget_s", 2.0),
        min_interval_s=kw.get("min_interval_s", 0.0),
    )


def _value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def test_healthy_snapshot_metrics() -> None:
    reg = _registry(_source(healthy_snapshot()))
    assert _value(reg, "dbops_up") == 1.0
    assert _value(reg, "dbops_snapshot_stale") == 0.0
    assert _value(reg, "dbops_scrape_duration_seconds") is not None
    ix = {"schema": "public", "table": "users", "index": "ix_users_email"}
    assert _value(reg, "dbops_index_scans_total", **ix) == 1000.0
    assert _value(reg, "dbops_index_size_bytes", **ix) == 16_384.0
    assert _value(reg, "dbops_index_valid", **ix) == 1.0
    stmt = {"queryid": "1", "user": "app", "database": "dbops"}
    assert _value(reg, "dbops_statement_calls_total", **stmt) == 50_000.0
    assert _value(reg, "dbops_statement_exec_seconds_total", **stmt) == pytest.approx(10.0)
    assert _value(reg, "dbops_statement_rows_total", **stmt) == 50_000.0
    info = {**stmt, "query": "SELECT * FROM users WHERE id = $1"}
    assert _value(reg, "dbops_statement_info", **info) == 1.0
    t = {"schema": "public", "table": "users"}
    assert _value(reg, "dbops_table_live_rows", **t) == 1000.0
    assert _value(reg, "dbops_table_dead_rows", **t) == 10.0
    assert _value(reg, "dbops_table_seq_scans_total", **t) == 3.0
    assert _value(reg, "dbops_table_total_bytes", **t) == 106_496.0
    taken = healthy_snapshot().taken_at.timestamp()
    assert _value(reg, "dbops_table_last_vacuum_timestamp_seconds", **t) == taken
    assert _value(reg, "dbops_table_last_autovacuum_timestamp_seconds", **t) is None
    d = {"database": "dbops"}
    assert _value(reg, "dbops_database_size_bytes", **d) == 50_000_000.0
    assert _value(reg, "dbops_database_commits_total", **d) == 1_000_000.0
    assert _value(reg, "dbops_database_deadlocks_total", **d) == 0.0
    # Counters, not a ratio since the reset: Prometheus takes the ratio of their rates.
    assert _value(reg, "dbops_database_blocks_hit_total", **d) == 9_990_000.0
    assert _value(reg, "dbops_database_blocks_read_total", **d) == 10_000.0
    assert _value(reg, "dbops_database_cache_hit_ratio", **d) is None
    assert _value(reg, "dbops_database_xid_age", **d) == 1_000_000.0
    assert _value(reg, "dbops_database_wraparound_ratio", **d) == pytest.approx(1e6 / 2**31)
    assert _value(reg, "dbops_connections") == 12.0
    assert _value(reg, "dbops_max_connections") == 100.0
    assert _value(reg, "dbops_connections_by_state", state="idle") == 10.0
    assert _value(reg, "dbops_connections_by_user", user="app") == 12.0
    assert _value(reg, "dbops_connections_by_client", client="10.0.0.5") == 10.0
    assert _value(reg, "dbops_connections_by_client", client="local") == 2.0
    assert _value(reg, "dbops_blocked_sessions") == 0.0
    assert _value(reg, "dbops_replication_lag_seconds", replica="standby1") == pytest.approx(0.1)
    assert _value(reg, "dbops_pool_in_use", pool="dbops", **WORKLOAD) == 1.0
    assert _value(reg, "dbops_pool_max_size", pool="dbops", **WORKLOAD) == 20.0
    assert _value(reg, "dbops_pool_requests_wait_seconds_total", pool="dbops", **WORKLOAD) == 0.012
    assert _value(reg, "dbops_cache_hits_total", backend="memory", **WORKLOAD) == 900.0
    assert _value(reg, "dbops_data_users", state="live") == 1000.0
    assert _value(reg, "dbops_data_memberships", role="OWNER") == 200.0
    assert _value(reg, "dbops_data_zero_owner_teams") == 0.0
    assert _value(reg, "dbops_check_status", check="zero_owner_teams", severity="ok") == 1.0
    assert _value(reg, "dbops_check_status", check="zero_owner_teams", severity="critical") == 0.0


def test_degraded_snapshot_reports_worst_severity_per_check() -> None:
    reg = _registry(_source(degraded_snapshot()))
    assert _value(reg, "dbops_check_status", check="wraparound", severity="critical") == 1.0
    assert _value(reg, "dbops_check_status", check="wraparound", severity="warning") == 0.0
    assert _value(reg, "dbops_check_findings", check="wraparound", severity="warning") == 1.0
    assert _value(reg, "dbops_check_status", check="zero_owner_teams", severity="critical") == 1.0
    assert _value(reg, "dbops_data_zero_owner_teams") == 2.0
    assert _value(reg, "dbops_blocked_sessions") == 1.0
    assert _value(reg, "dbops_longest_query_seconds") == 700.0
    assert _value(reg, "dbops_longest_idle_in_transaction_seconds") == 300.0
    assert _value(reg, "dbops_pool_waiting", pool="dbops", **WORKLOAD) == 3.0
    dup = {"schema": "public", "table": "users", "index": "ix_users_email_dup"}
    assert _value(reg, "dbops_index_redundant", **dup) == 1.0
    broken = {"schema": "public", "table": "users", "index": "ix_users_broken"}
    assert _value(reg, "dbops_index_valid", **broken) == 0.0


def test_partial_snapshot_counts_collector_errors_across_scrapes() -> None:
    reg = _registry(_source(partial_snapshot()))
    # Each get_sample_value is one scrape, and (min interval 0) each scrape a new snapshot.
    assert _value(reg, "dbops_collector_errors_total", collector="statements") == 1.0
    assert _value(reg, "dbops_collector_errors_total", collector="indexes") == 2.0
    assert _value(reg, "dbops_collector_errors_total", collector="statements") == 3.0
    assert _value(reg, "dbops_collector_errors_total", collector="tables") == 0.0
    # Unknown sections give no series, and their checks no status.
    assert (
        _value(
            reg, "dbops_index_scans_total", schema="public", table="users", index="ix_users_email"
        )
        is None
    )
    assert _value(reg, "dbops_check_status", check="slow_queries", severity="ok") is None
    assert _value(reg, "dbops_up") == 1.0


def test_top_statements_and_query_label_are_bounded() -> None:
    snap = degraded_snapshot()
    assert snap.statements is not None
    long_text = "SELECT " + ", ".join(f"col_{i}" for i in range(200)) + " FROM t"
    top = (
        dataclasses_replace_query(snap.statements.top[0], query=long_text),
        *snap.statements.top[1:],
    )
    snap = _with_top(snap, top)
    reg = _registry(
        _source(snap), _settings(exporter_top_statements=1, exporter_query_label_chars=40)
    )
    text = generate_latest(reg).decode()
    info_lines = [line for line in text.splitlines() if line.startswith("dbops_statement_info{")]
    # Only the top one by total time (queryid 2: 250 ms x 400 > 0.2 ms x 50,000).
    assert len(info_lines) == 1
    assert 'queryid="2"' in info_lines[0]
    assert (
        _value(reg, "dbops_statement_calls_total", queryid="1", user="app", database="dbops")
        is None
    )
    reg = _registry(
        _source(snap), _settings(exporter_top_statements=5, exporter_query_label_chars=40)
    )
    samples = [
        s
        for m in reg.collect()
        if m.name == "dbops_statement"
        for s in m.samples
        if s.labels["queryid"] == "1"
    ]
    assert len(samples[0].labels["query"]) == 40
    assert samples[0].labels["query"].endswith("…")


def dataclasses_replace_query(q: object, **kw: object) -> object:
    import dataclasses

    return dataclasses.replace(q, **kw)  # type: ignore[type-var]


def _with_top(snap: Snapshot, top: tuple[object, ...]) -> Snapshot:
    import dataclasses

    assert snap.statements is not None
    return dataclasses.replace(snap, statements=dataclasses.replace(snap.statements, top=top))  # type: ignore[arg-type]


def test_slow_collection_answers_within_budget_with_stale_snapshot() -> None:
    release = threading.Event()
    calls = []

    def collect() -> Snapshot:
        calls.append(1)
        if len(calls) > 1:
            release.wait(10)
        return healthy_snapshot()

    source = SnapshotSource(collect, budget_s=0.3, min_interval_s=0.0)
    reg = _registry(source)
    assert _value(reg, "dbops_up") == 1.0  # first collection is fast
    started = time.perf_counter()
    text = generate_latest(reg).decode()
    elapsed = time.perf_counter() - started
    assert elapsed < 1.0, f"scrape took {elapsed:.2f} s with a 0.3 s budget"
    assert "dbops_up 0.0" in text
    assert "dbops_snapshot_stale 1.0" in text
    assert (
        'dbops_index_scans_total{index="ix_users_email",schema="public",table="users"} 1000.0'
        in text
    )
    assert f'dbops_collector_errors_total{{collector="{SCRAPE_TIMEOUT}"}} 1.0' in text
    # Scrapes during the slow collection wait for the same one, never start another.
    generate_latest(reg)
    assert len(calls) == 2
    release.set()
    time.sleep(0.1)
    assert _value(reg, "dbops_up") == 1.0
    assert _value(reg, "dbops_snapshot_stale") == 0.0
    source.close()


def test_first_scrape_timing_out_serves_only_up_zero() -> None:
    release = threading.Event()
    source = SnapshotSource(
        lambda: (release.wait(10), healthy_snapshot())[1], budget_s=0.2, min_interval_s=0
    )
    reg = _registry(source)
    assert _value(reg, "dbops_up") == 0.0
    assert _value(reg, "dbops_snapshot_stale") == 0.0  # nothing served, so nothing stale
    assert _value(reg, "dbops_database_size_bytes", database="dbops") is None
    # close() does not wait for the collection still running (a scrape or Ctrl-C never hangs)
    started = time.monotonic()
    source.close()
    assert time.monotonic() - started < 1.0
    release.set()


def test_failing_collection_counts_and_serves_previous() -> None:
    snapshots = [healthy_snapshot()]

    def collect() -> Snapshot:
        if not snapshots:
            raise ConnectionError("database unreachable")
        return snapshots.pop()

    reg = _registry(SnapshotSource(collect, budget_s=1.0, min_interval_s=0.0))
    assert _value(reg, "dbops_up") == 1.0
    assert _value(reg, "dbops_up") == 0.0
    assert _value(reg, "dbops_snapshot_stale") == 1.0
    # Three failed scrapes so far (each get_sample_value is one).
    assert _value(reg, "dbops_collector_errors_total", collector=SNAPSHOT_FAILED) == 3.0
    assert _value(reg, "dbops_database_size_bytes", database="dbops") == 50_000_000.0


def test_min_interval_serves_the_cached_snapshot() -> None:
    now = [100.0]
    calls = []

    def collect() -> Snapshot:
        calls.append(1)
        return healthy_snapshot()

    source = SnapshotSource(collect, budget_s=1.0, min_interval_s=5.0, clock=lambda: now[0])
    reg = _registry(source)
    for _ in range(10):
        generate_latest(reg)
    assert len(calls) == 1
    now[0] += 4.9
    assert _value(reg, "dbops_snapshot_age_seconds") == pytest.approx(4.9)
    assert len(calls) == 1
    now[0] += 0.2
    generate_latest(reg)
    assert len(calls) == 2


def test_concurrent_scrapes_share_one_collection() -> None:
    calls = []

    def collect() -> Snapshot:
        calls.append(1)
        time.sleep(0.2)
        return healthy_snapshot()

    reg = _registry(SnapshotSource(collect, budget_s=2.0, min_interval_s=5.0))
    threads = [threading.Thread(target=generate_latest, args=(reg,)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1


class _Cache:
    def __init__(self) -> None:
        self.hits = 0

    def stats(self) -> object:
        from dbops.monitoring.snapshot import CacheStat

        return CacheStat("memory", self.hits, 2, 3, 4)


def test_instrument_reads_pool_and_cache_live(db: object) -> None:
    from dbops.db import Database

    assert isinstance(db, Database)
    cache = _Cache()
    registry = CollectorRegistry()
    instrument(registry, db=db, cache=cache)  # type: ignore[arg-type]
    name = db.pool.name
    before = registry.get_sample_value("dbops_pool_requests_total", {"pool": name})
    assert before is not None
    with db.read() as conn:
        conn.execute("SELECT 1")
        assert (registry.get_sample_value("dbops_pool_in_use", {"pool": name}) or 0.0) >= 1.0
    after = registry.get_sample_value("dbops_pool_requests_total", {"pool": name})
    assert after == before + 1
    cache.hits = 7
    assert registry.get_sample_value("dbops_cache_hits_total", {"backend": "memory"}) == 7.0


def test_http_server_metrics_healthz_and_404() -> None:
    server = make_server(_settings(), port=0, source=_source(healthy_snapshot())).start()
    try:
        assert server.host == "127.0.0.1"
        with urllib.request.urlopen(f"{server.url}/healthz", timeout=5) as resp:
            assert resp.status == 200
            assert resp.read() == b"ok\n"
        with urllib.request.urlopen(f"{server.url}/metrics", timeout=5) as resp:
            body = resp.read().decode()
        assert "dbops_up 1.0" in body
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(f"{server.url}/nope", timeout=5)
        assert err.value.code == 404
        err.value.close()
    finally:
        server.close()


@needs_promtool
@pytest.mark.parametrize("make", [healthy_snapshot, degraded_snapshot, partial_snapshot])
def test_promtool_check_metrics_passes(make: object) -> None:
    reg = _registry(_source(make()))  # type: ignore[operator]
    text = generate_latest(reg)
    assert PROMTOOL is not None
    result = subprocess.run(
        [PROMTOOL, "check", "metrics"], input=text, capture_output=True, timeout=30, check=False
    )
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()


@needs_promtool
def test_alert_rules_check_and_unit_tests() -> None:
    folder = ROOT / "deploy" / "prometheus"
    for args in (
        ["check", "rules", "alerts.yml"],
        ["test", "rules", "alerts_test.yml"],
        ["check", "config", "prometheus.yml"],
    ):
        assert PROMTOOL is not None
        result = subprocess.run(
            [PROMTOOL, *args], cwd=folder, capture_output=True, text=True, timeout=60, check=False
        )
        assert result.returncode == 0, f"promtool {' '.join(args)}:\n{result.stdout}{result.stderr}"


def test_whole_view_counters_come_from_the_summary_not_the_top_statements() -> None:
    """``dbops_stat_statements_*_total`` count every entry of this database, not the top N.

    A sum over the top statements would go down when a statement leaves the top (a counter
    must never decrease between resets), and would miss the long tail. The summary's numbers
    are written here by hand, far from the top statement's, and in milliseconds: the
    exporter's seconds are a thousandth of them.
    """
    base = healthy_snapshot()
    assert base.statements is not None
    top = dataclasses.replace(base.statements.top[0], calls=100, total_exec_time_ms=2_500.0)
    snap = dataclasses.replace(
        base,
        statements=dataclasses.replace(
            base.statements, top=(top,), total_calls=5_000_000, total_exec_time_ms=123_456.0
        ),
    )
    reg = _registry(_source(snap))
    assert _value(reg, "dbops_stat_statements_calls_total") == 5_000_000.0
    assert _value(reg, "dbops_stat_statements_exec_seconds_total") == pytest.approx(123.456)
    stmt = {"queryid": "1", "user": "app", "database": "dbops"}
    assert _value(reg, "dbops_statement_calls_total", **stmt) == 100.0
    assert _value(reg, "dbops_statement_exec_seconds_total", **stmt) == pytest.approx(2.5)
    assert _value(reg, "dbops_statement_mean_exec_seconds", **stmt) == pytest.approx(0.025)


def test_client_addresses_are_a_bounded_label() -> None:
    """40 addresses: the 10 busiest get a series each, the other 30 one sum; nothing lost."""
    snap = healthy_snapshot()
    activity = snap.activity
    assert activity is not None
    clients = tuple(CountBy(key=f"10.0.0.{n}", count=n) for n in range(1, 41))
    snap = dataclasses.replace(snap, activity=dataclasses.replace(activity, by_client=clients))
    reg = _registry(_source(snap))
    samples = [
        s
        for family in reg.collect()
        if family.name == "dbops_connections_by_client"
        for s in family.samples
    ]
    assert len(samples) == MAX_CLIENT_SERIES + 1 == 11
    shown = {s.labels["client"]: s.value for s in samples}
    assert shown == {
        **{f"10.0.0.{n}": float(n) for n in range(31, 41)},
        "other": float(sum(range(1, 31))),
    }
    assert sum(shown.values()) == sum(range(1, 41))
    few = dataclasses.replace(snap, activity=dataclasses.replace(activity, by_client=clients[:3]))
    assert _value(_registry(_source(few)), "dbops_connections_by_client", client="other") is None


# -- the slow cadence (SlowSections) ------------------------------------------------------------
def _slow_parts(at: int, *, failing: bool = False) -> Snapshot:
    """What a slow collection returns: the expensive parts, taken ``at`` seconds past base."""
    base = healthy_snapshot()
    taken = base.taken_at + dt.timedelta(seconds=at)
    if failing:
        errors = (SectionError("statements", "timed out after 5 ms", 0.006),)
        return dataclasses.replace(base, taken_at=taken, statements=None, errors=errors)
    return dataclasses.replace(base, taken_at=taken)


def _fast(at: int) -> Snapshot:
    """A scrape's snapshot: the expensive parts left out (``skip``)."""
    base = healthy_snapshot()
    taken = base.taken_at + dt.timedelta(seconds=at)
    return dataclasses.replace(
        base, taken_at=taken, statements=None, indexes=None, tables=None, data=None
    )


def test_slow_parts_are_collected_once_then_carried_with_their_age() -> None:
    now = [0.0]
    calls: list[int] = []

    def collect() -> Snapshot:
        calls.append(1)
        return _slow_parts(at=0)

    slow = SlowSections(collect, interval_s=60.0, clock=lambda: now[0])
    first = slow.complete(_fast(at=0))  # no parts yet: collected in this thread
    assert calls == [1]
    assert first.statements == healthy_snapshot().statements
    now[0] = 59.9
    later = slow.complete(_fast(at=30))
    assert calls == [1]  # younger than the interval: carried, not collected
    assert {c.collector for c in later.carried} == set(SLOW_COLLECTORS)
    assert later.collected_at("tables") == healthy_snapshot().taken_at
    assert later.collected_at("activity.connections") == later.taken_at
    families = {m.name: m for m in snapshot_metrics(later, _settings())}
    ages = {s.labels["collector"]: s.value for s in families["dbops_collector_age_seconds"].samples}
    assert ages == dict.fromkeys(SLOW_COLLECTORS, 30.0)


def test_a_due_refresh_runs_in_the_background_and_the_scrape_does_not_wait() -> None:
    now = [0.0]
    release = threading.Event()
    started = threading.Event()
    results = [_slow_parts(at=0), _slow_parts(at=100)]

    def collect() -> Snapshot:
        if len(results) == 1:  # the refresh: blocks until released
            started.set()
            assert release.wait(5)
        return results.pop(0)

    slow = SlowSections(collect, interval_s=60.0, clock=lambda: now[0])
    slow.complete(_fast(at=0))
    now[0] = 60.0  # exactly the interval: due
    begun = time.perf_counter()
    during = slow.complete(_fast(at=60))
    assert time.perf_counter() - begun < 1.0
    assert started.wait(5)
    assert during.collected_at("statements") == healthy_snapshot().taken_at  # the old parts
    again = slow.complete(_fast(at=61))  # one refresh at a time: none started here
    assert again.collected_at("statements") == healthy_snapshot().taken_at
    release.set()
    deadline = time.monotonic() + 5
    while slow.complete(_fast(at=62)).collected_at("statements") == healthy_snapshot().taken_at:
        assert time.monotonic() < deadline, "the background refresh never landed"
        time.sleep(0.01)


def test_expired_parts_are_collected_in_the_callers_thread_once() -> None:
    """ "Refresh now" on the dashboard: the next call waits for fresh slow parts even though
    they are younger than the interval; the call after it carries them again."""
    now = [0.0]
    results = [_slow_parts(at=0), _slow_parts(at=5)]
    slow = SlowSections(lambda: results.pop(0), interval_s=60.0, clock=lambda: now[0])
    slow.complete(_fast(at=0))
    now[0] = 5.0
    slow.expire()
    fresh = slow.complete(_fast(at=5))
    assert results == []  # collected in this call, not in a thread
    assert fresh.collected_at("statements") == fresh.taken_at
    now[0] = 6.0
    carried = slow.complete(_fast(at=6))
    assert (carried.taken_at - carried.collected_at("statements")).total_seconds() == 1.0


def test_parts_collected_after_the_snapshot_began_have_age_zero_not_negative() -> None:
    """The first call (and "Refresh now") collects the parts after the cheap snapshot began:
    a few ms younger than it. Their age is 0, never negative (seen as -0.016 on a live
    scrape)."""
    slow = SlowSections(lambda: _slow_parts(at=1), interval_s=60.0, clock=lambda: 0.0)
    first = slow.complete(_fast(at=0))
    assert first.collected_at("statements") > first.taken_at  # when they really were taken
    families = {m.name: m for m in snapshot_metrics(first, _settings())}
    ages = {s.labels["collector"]: s.value for s in families["dbops_collector_age_seconds"].samples}
    assert ages == dict.fromkeys(SLOW_COLLECTORS, 0.0)


def test_a_failed_refresh_keeps_the_old_parts_and_their_age_grows() -> None:
    now = [0.0]
    outcomes: list[Snapshot | Exception] = [_slow_parts(at=0), RuntimeError("server gone")]

    def collect() -> Snapshot:
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    slow = SlowSections(collect, interval_s=10.0, clock=lambda: now[0])
    slow.complete(_fast(at=0))
    now[0] = 10.0
    slow.complete(_fast(at=10))  # starts the refresh, which fails
    deadline = time.monotonic() + 5
    while outcomes:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    time.sleep(0.05)
    kept = slow.complete(_fast(at=500))
    assert kept.statements == healthy_snapshot().statements
    assert (kept.taken_at - kept.collected_at("statements")).total_seconds() == 500.0


def test_a_carried_error_is_counted_once_per_slow_collection() -> None:
    """The statements collector failed in one slow collection: every scrape carries that error
    (checks see the part is unknown), the errors counter counts it once; a new failing slow
    collection counts again."""
    now = [0.0]
    slow = SlowSections(
        lambda: _slow_parts(at=int(now[0]), failing=True), interval_s=1e9, clock=lambda: now[0]
    )
    reg = _registry(
        SnapshotSource(lambda: slow.complete(_fast(at=0)), budget_s=2.0, min_interval_s=0.0)
    )
    for _ in range(3):
        assert _value(reg, "dbops_collector_errors_total", collector="statements") == 1.0
        assert _value(reg, "dbops_snapshot_errors") == 1.0
    now[0] = 5.0
    slow._parts = None  # a new slow collection (taken at 5 s) with the same failure
    assert _value(reg, "dbops_collector_errors_total", collector="statements") == 2.0
    assert _value(reg, "dbops_collector_errors_total", collector="statements") == 2.0


def test_collect_snapshot_skips_the_named_collectors_without_an_error(db: Database) -> None:
    snapshot = collect_snapshot(db, db.settings, skip=SLOW_COLLECTORS)
    assert snapshot.statements is None
    assert snapshot.indexes is None
    assert snapshot.tables is None
    assert snapshot.data is None
    assert snapshot.errors == ()
    assert snapshot.activity is not None
    assert snapshot.database is not None
    assert snapshot.database.size_bytes
    assert snapshot.backups is not None
    skipped = collect_snapshot(db, db.settings, skip=("activity.connections", "backups", "access"))
    assert skipped.backups is None
    assert skipped.access is None
    assert skipped.activity is not None
    assert skipped.activity.total is None
    assert skipped.errors == ()


# -- serving: the carried slow families rendered once ------------------------------------------
def _samples(body: bytes) -> list[str]:
    """Sample lines, without the per-scrape timings (they differ between two scrapes)."""
    skip = ("dbops_scrape_duration_seconds", "dbops_snapshot_age_seconds")
    return sorted(
        line
        for line in body.decode().splitlines()
        if line and not line.startswith("#") and not line.startswith(skip)
    )


def _wsgi(app: Any, accept: str, encoding: str = "") -> tuple[dict[str, str], bytes]:
    got: dict[str, str] = {}

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        got.update(headers, status=status)

    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/metrics",
        "QUERY_STRING": "",
        "HTTP_ACCEPT": accept,
        "HTTP_ACCEPT_ENCODING": encoding,
    }
    return got, b"".join(app(environ, start_response))


@pytest.mark.parametrize(
    "accept",
    ["text/plain; version=0.0.4", "application/openmetrics-text; version=1.0.0"],
)
def test_the_served_body_is_the_registrys_with_slow_families_rendered_once(accept: str) -> None:
    now = [0.0]
    slow = SlowSections(lambda: _slow_parts(at=int(now[0])), interval_s=60.0, clock=lambda: now[0])
    source = SnapshotSource(lambda: slow.complete(_fast(at=5)), budget_s=2.0, min_interval_s=0.0)
    collector = SnapshotCollector(source, _settings())
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    app = _MetricsApp(collector, make_wsgi_app(registry))
    headers, first = _wsgi(app, accept)
    assert headers["status"] == "200 OK"
    encoder, content_type = choose_encoder(accept)
    assert headers["Content-Type"] == content_type
    expected = encoder(registry)  # prometheus_client's own rendering of every family
    assert _samples(first) == _samples(expected)
    assert first.count(b"# EOF") == expected.count(b"# EOF")  # 1 in OpenMetrics, else 0
    assert first.count(b"# TYPE ") == expected.count(b"# TYPE ")
    for _ in range(3):
        _, again = _wsgi(app, accept)
        assert _samples(again) == _samples(first)
    assert app.slow_renders == 1
    now[0] = 60.0  # due: the slow parts are refreshed (the same rows, taken later)
    deadline = time.monotonic() + 5
    while app.slow_renders == 1:
        _wsgi(app, accept)
        assert time.monotonic() < deadline, "new slow parts were never rendered"
        time.sleep(0.01)


def test_a_served_body_is_gzipped_when_asked() -> None:
    collector = SnapshotCollector(_source(healthy_snapshot()), _settings())
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    headers, body = _wsgi(make_app(registry, collector), "text/plain", encoding="gzip")
    assert headers["Content-Encoding"] == "gzip"
    assert _samples(gzip.decompress(body)) == _samples(generate_latest(registry))
