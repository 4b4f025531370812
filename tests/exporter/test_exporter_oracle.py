"""The exporter's numbers against values written out by hand, from a snapshot built for it.

The canned snapshots have round numbers (a floor division or a lost unit conversion passes on
them) and leave optional sections empty. This snapshot gives every field a distinct value
with a fraction, two pg_stat_statements entries under one queryid, a standby, a NOT VALID
constraint, log errors and an unnamed replica; each expected sample below is computed by hand
from those inputs (ms -> s, sums, maxima), never read back from the code under test.
"""

from __future__ import annotations

import dataclasses
import inspect
import threading
import time
import urllib.error
import urllib.request

import pytest
from prometheus_client import CollectorRegistry

from dbops.exporter import (
    SnapshotCollector,
    SnapshotSource,
    app_statement_metrics,
    make_app,
    make_server,
    serve_exporter,
)
from dbops.exporter.families._base import truncate
from dbops.exporter.families.app import le_label
from dbops.monitoring.snapshot import (
    ActivityStat,
    AppStat,
    ConstraintStat,
    CountBy,
    QueryStat,
    ReplicaStat,
    ResourceStat,
    SequenceStat,
    ServerInfo,
    Snapshot,
    StatementLatency,
    StatementsStat,
)
from tests.fixtures.db import make_settings
from tests.fixtures.snapshots import TAKEN_AT, _session, healthy_snapshot

SETTINGS = make_settings("postgresql://unused/none")
_HEAVY = "SELECT heavy FROM t WHERE id = $1"
_LIGHT = "SELECT light FROM t WHERE id = $1"


def _entry(
    query: str, total_ms: float, calls: int, max_ms: float, plan_ms: float | None
) -> QueryStat:
    return QueryStat(
        queryid=-5424882176234291609,
        query=query,
        user="app",
        database="dbops",
        calls=calls,
        total_exec_time_ms=total_ms,
        mean_exec_time_ms=total_ms / calls,
        max_exec_time_ms=max_ms,
        stddev_exec_time_ms=0.0,
        rows=calls * 3,
        shared_blks_hit=calls * 7,
        shared_blks_read=calls,
        temp_blks_read=0,
        temp_blks_written=calls * 2,
        total_plan_time_ms=plan_ms,
        blk_read_time_ms=None,
        blk_write_time_ms=None,
    )


def oracle_snapshot() -> Snapshot:
    """The healthy snapshot with odd numbers, a standby, and every optional section present."""
    base = healthy_snapshot()
    assert base.database is not None
    assert base.activity is not None
    statements = StatementsStat(
        # One queryid, two entries (top-level and nested): the heavier one comes second here.
        top=(
            dataclasses.replace(_entry("SELECT hidden", 5_000.0, 1, 5_000.0, None), queryid=None),
            _entry(_LIGHT, 250.25, 3, 120.5, 1.5),
            _entry(_HEAVY, 1234.5, 4, 987.5, 0.75),
        ),
        entries=2,
        max_entries=5_000,
        total_exec_time_ms=98_765.4,
        total_calls=4_321,
        dealloc=17,
        stats_reset=TAKEN_AT,
        extension_version="1.10",
        secret_texts=0,
    )
    activity = dataclasses.replace(
        base.activity,
        sessions=(
            _session(1, "active", 2.5, 2.5),
            _session(2, "active", 7.25, 7.25),
            # idle: its last query started 99 s ago, but it runs nothing now
            _session(3, "idle", 99.0, 99.0),
        ),
    )
    database = dataclasses.replace(
        base.database,
        replica_lag_s=1.75,
        sequences=(
            SequenceStat("public", "jobs_id_seq", "integer", 5, 1, 2**31 - 1, 1, None, None, 0.375),
        ),
        not_valid_constraints=(ConstraintStat("public", "users", "ck_users_email", "CHECK"),),
        replicas=(ReplicaStat(None, None, "streaming", "async", 4_096, 0.5, 0.625, 0.875),),
    )
    return dataclasses.replace(
        base,
        server=ServerInfo("15.8", 150008, "dbops", "dbops_monitor", True, TAKEN_AT),
        statements=statements,
        activity=activity,
        database=database,
        resources=ResourceStat(
            wal_bytes=16_777_216,
            volume_free_bytes=1_000_001,
            volume_total_bytes=9_000_009,
            cpu_seconds=12.34,
            memory_rss_bytes=52_428_800,
            processes=9,
            log_errors=(CountBy("22", 3), CountBy(None, 2)),
        ),
    )


@pytest.fixture(scope="module")
def registry() -> CollectorRegistry:
    return _registry_of(oracle_snapshot())


QUERY = {"queryid": "-5424882176234291609", "user": "app", "database": "dbops"}
#: The workload process's labels (tests.fixtures.snapshots.app_process).
WORKLOAD = {"process": "dbops workload", "pid": "4242"}

#: (metric, labels) -> the value computed by hand from oracle_snapshot().
EXPECTED: list[tuple[str, dict[str, str], float]] = [
    ("dbops_in_recovery", {}, 1.0),
    ("dbops_stat_statements_exec_seconds_total", {}, 98.7654),
    ("dbops_stat_statements_calls_total", {}, 4_321.0),
    ("dbops_stat_statements_dealloc_total", {}, 17.0),
    # the two entries of the queryid summed: 3 + 4 calls, 250.25 + 1234.5 ms
    ("dbops_statement_calls_total", QUERY, 7.0),
    ("dbops_statement_exec_seconds_total", QUERY, 1.48475),
    ("dbops_statement_plan_seconds_total", QUERY, 0.00225),
    ("dbops_statement_rows_total", QUERY, 21.0),
    ("dbops_statement_shared_blocks_hit_total", QUERY, 49.0),
    ("dbops_statement_shared_blocks_read_total", QUERY, 7.0),
    ("dbops_statement_temp_blocks_written_total", QUERY, 14.0),
    # 1484.75 ms / 7 calls, in seconds; the longest of the two maxima
    ("dbops_statement_mean_exec_seconds", QUERY, 1.48475 / 7),
    ("dbops_statement_max_exec_seconds", QUERY, 0.9875),
    ("dbops_longest_query_seconds", {}, 7.25),
    ("dbops_longest_idle_in_transaction_seconds", {}, 0.0),
    ("dbops_standby_replay_lag_seconds", {}, 1.75),
    ("dbops_sequence_used_ratio", {"schema": "public", "sequence": "jobs_id_seq"}, 0.375),
    ("dbops_not_valid_constraints", {}, 1.0),
    ("dbops_replication_lag_seconds", {"replica": "replica"}, 0.875),
    ("dbops_replication_lag_bytes", {"replica": "replica"}, 4_096.0),
    ("dbops_checkpoint_write_seconds_total", {}, 1.0005),
    ("dbops_checkpoint_sync_seconds_total", {}, 0.02025),
    ("dbops_wal_bytes", {}, 16_777_216.0),
    ("dbops_volume_free_bytes", {}, 1_000_001.0),
    ("dbops_volume_total_bytes", {}, 9_000_009.0),
    ("dbops_server_cpu_seconds_total", {}, 12.34),
    ("dbops_server_memory_rss_bytes", {}, 52_428_800.0),
    ("dbops_server_log_errors_total", {"sqlstate_class": "22"}, 3.0),
    ("dbops_server_log_errors_total", {"sqlstate_class": "other"}, 2.0),
    # the healthy snapshot's pool waited 12 ms in all
    ("dbops_pool_requests_wait_seconds_total", {"pool": "dbops", **WORKLOAD}, 0.012),
    ("dbops_pool_in_use", {"pool": "dbops", **WORKLOAD}, 1.0),
    ("dbops_cache_misses_total", {"backend": "memory", **WORKLOAD}, 100.0),
    # one live process (the workload), one silent, none closed: the silent one exports nothing
    ("dbops_processes", {"state": "live"}, 1.0),
    ("dbops_processes", {"state": "silent"}, 1.0),
    ("dbops_processes", {"state": "closed"}, 0.0),
    ("dbops_process_report_age_seconds", WORKLOAD, 5.123),
    ("dbops_process_start_timestamp_seconds", WORKLOAD, 1_795_690_800.0),
    ("dbops_audit_head_id", {}, 1_234.0),
    ("dbops_replication_slot_active", {"slot": "standby1"}, 1.0),
    ("dbops_replication_slot_retained_bytes", {"slot": "standby1"}, 1_024.0),
]


@pytest.mark.parametrize(
    ("name", "labels", "expected"),
    EXPECTED,
    ids=[f"{name}{sorted(labels.items()) if labels else ''}" for name, labels, _ in EXPECTED],
)
def test_each_sample_is_the_hand_computed_value(
    registry: CollectorRegistry, name: str, labels: dict[str, str], expected: float
) -> None:
    assert registry.get_sample_value(name, labels) == pytest.approx(expected, rel=1e-12)


def test_the_query_label_is_the_heaviest_entrys_text(registry: CollectorRegistry) -> None:
    info = registry.get_sample_value("dbops_statement_info", {**QUERY, "query": _HEAVY})
    assert info == 1.0
    light = registry.get_sample_value("dbops_statement_info", {**QUERY, "query": _LIGHT})
    assert light is None


def test_no_idle_in_transaction_session_reads_zero_and_primary_reads_zero() -> None:
    snapshot = dataclasses.replace(
        oracle_snapshot(), server=ServerInfo("15.8", 150008, "dbops", "m", False, TAKEN_AT)
    )
    reg = _registry_of(snapshot)
    assert reg.get_sample_value("dbops_in_recovery") == 0.0
    assert reg.get_sample_value("dbops_longest_idle_in_transaction_seconds") == 0.0


def test_unknown_not_valid_constraints_are_absent_not_zero() -> None:
    snapshot = oracle_snapshot()
    assert snapshot.database is not None
    unknown = dataclasses.replace(
        snapshot, database=dataclasses.replace(snapshot.database, not_valid_constraints=None)
    )
    reg = _registry_of(unknown)
    assert reg.get_sample_value("dbops_not_valid_constraints") is None
    assert (
        reg.get_sample_value(
            "dbops_sequence_used_ratio", {"schema": "public", "sequence": "jobs_id_seq"}
        )
        == 0.375
    )


def test_close_stops_the_serving_thread_and_the_port() -> None:
    snapshot = oracle_snapshot()
    source = SnapshotSource(lambda: snapshot, budget_s=2.0, min_interval_s=0.0)
    server = make_server(SETTINGS, host="127.0.0.1", port=0, source=source).start()
    url = server.url
    with urllib.request.urlopen(f"{url}/healthz", timeout=5) as response:
        assert response.status == 200
    (serving,) = [t for t in threading.enumerate() if t.name == "dbops-exporter-http"]
    assert serving.daemon  # never keeps a host process alive
    server.close()
    assert not [t for t in threading.enumerate() if t.name == "dbops-exporter-http"]
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"{url}/healthz", timeout=2)


def test_activity_without_sessions_has_no_longest_query_series() -> None:
    snapshot = oracle_snapshot()
    assert snapshot.activity is not None
    bare = dataclasses.replace(snapshot, activity=ActivityStat(100, 3, (), (), (), None, None, ()))
    reg = _registry_of(bare)
    assert reg.get_sample_value("dbops_longest_query_seconds") is None
    assert reg.get_sample_value("dbops_blocked_sessions") is None
    assert reg.get_sample_value("dbops_connections") == 3.0


def test_histogram_bounds_are_written_as_prometheus_reads_them() -> None:
    assert le_label(0.005) == "0.005"
    assert le_label(2) == "2.0"
    assert le_label(float("inf")) == "+Inf"


def _registry_of(snapshot: Snapshot | SnapshotSource) -> CollectorRegistry:
    """A registry scraping ``snapshot`` (a fixed one, collected afresh each scrape)."""
    if isinstance(snapshot, SnapshotSource):
        source = snapshot
    else:
        fixed = snapshot
        source = SnapshotSource(lambda: fixed, budget_s=2.0, min_interval_s=0.0)
    reg = CollectorRegistry(auto_describe=False)
    reg.register(SnapshotCollector(source, SETTINGS))
    return reg


def test_no_active_session_reads_zero() -> None:
    snapshot = oracle_snapshot()
    assert snapshot.activity is not None
    idle_only = dataclasses.replace(
        snapshot,
        activity=dataclasses.replace(
            snapshot.activity, sessions=(_session(3, "idle", 99.0, 99.0),)
        ),
    )
    assert _registry_of(idle_only).get_sample_value("dbops_longest_query_seconds") == 0.0


def test_the_worst_finding_of_a_check_wins_whatever_its_place() -> None:
    """Two sequences, the warning one listed first: the check's status is critical."""
    snapshot = oracle_snapshot()
    assert snapshot.database is not None
    sequences = (
        SequenceStat("public", "a_seq", "integer", 8, 1, 10, 1, None, None, 0.8),
        SequenceStat("public", "b_seq", "integer", 10, 1, 10, 1, None, None, 0.95),
    )
    both = dataclasses.replace(
        snapshot, database=dataclasses.replace(snapshot.database, sequences=sequences)
    )
    reg = _registry_of(both)
    status = {
        sev: reg.get_sample_value("dbops_check_status", {"check": "sequences", "severity": sev})
        for sev in ("ok", "warning", "critical")
    }
    assert status == {"ok": 0.0, "warning": 0.0, "critical": 1.0}
    findings = reg.get_sample_value(
        "dbops_check_findings", {"check": "sequences", "severity": "warning"}
    )
    assert findings == 1.0


class _Clock:
    def __init__(self, *times: float) -> None:
        self.times = list(times)

    def __call__(self) -> float:
        return self.times.pop(0) if len(self.times) > 1 else self.times[0]


def test_snapshot_age_and_the_cache_boundary_follow_the_clock() -> None:
    """Collected at t=50; read at t=175 (age 125 s); a cache of exactly 125 s collects again."""
    collected: list[int] = []
    snapshot = oracle_snapshot()

    def collect() -> Snapshot:
        collected.append(1)
        return snapshot

    # first read: now=10 (start), done at 50 (recorded), reading at 50; second read at 175
    clock = _Clock(10.0, 50.0, 50.0, 175.0, 175.0, 175.0, 175.0)
    source = SnapshotSource(collect, budget_s=2.0, min_interval_s=200.0, clock=clock)
    first = source.read()
    assert first.age_s == 0.0
    cached = source.read()
    assert len(collected) == 1
    assert cached.age_s == 125.0
    assert (cached.stale, cached.up) == (False, True)  # cached within the interval: not stale

    clock = _Clock(10.0, 50.0, 50.0, 175.0, 175.0, 175.0, 175.0)
    source = SnapshotSource(collect, budget_s=2.0, min_interval_s=125.0, clock=clock)
    source.read()
    source.read()
    assert len(collected) == 3  # 125 s old is not younger than 125 s: collected again


def test_scrape_duration_is_the_seconds_the_scrape_took() -> None:
    snapshot = oracle_snapshot()

    def slow() -> Snapshot:
        time.sleep(0.2)
        return snapshot

    reg = _registry_of(SnapshotSource(slow, budget_s=5.0, min_interval_s=0.0))
    started = time.perf_counter()
    took = reg.get_sample_value("dbops_scrape_duration_seconds")
    elapsed = time.perf_counter() - started
    assert took is not None
    assert 0.2 <= took <= elapsed


@pytest.mark.parametrize(
    ("path", "status"), [("/healthz", 200), ("/metrics", 200), ("/", 200), ("/favicon.ico", 404)]
)
def test_paths(path: str, status: int) -> None:
    source = SnapshotSource(oracle_snapshot, budget_s=2.0, min_interval_s=0.0)
    app = make_app(_registry_of(source))
    seen: list[str] = []
    body = b"".join(
        app({"PATH_INFO": path, "REQUEST_METHOD": "GET"}, lambda s, h, *a: seen.append(s))  # type: ignore[arg-type]
    )
    assert seen[0].startswith(str(status))
    if path == "/healthz":
        assert body == b"ok\n"
    elif status == 200:
        assert b"dbops_up 1.0" in body


def test_a_malformed_app_histogram_is_an_error_not_a_short_series() -> None:
    app = AppStat(
        buckets_s=(0.001, 0.01),
        statements=(StatementLatency("users.get", 3, 0.5, (1,), ()),),
    )
    with pytest.raises(ValueError, match="zip"):
        app_statement_metrics(app)


def test_the_exporter_listens_on_postgres_exporters_port_by_default() -> None:
    """9187, postgres_exporter's port, as the README and docs/settings.md say."""
    assert inspect.signature(serve_exporter).parameters["port"].default == 9187
    assert inspect.signature(make_server).parameters["port"].default == 9187


def test_a_query_label_of_exactly_the_limit_is_kept_whole() -> None:
    chars = SETTINGS.exporter_query_label_chars
    exact, longer = "x" * chars, "y" * (chars + 1)
    assert truncate(exact, chars) == exact
    assert truncate(longer, chars) == "y" * (chars - 1) + "…"
    assert len(truncate(longer, chars)) == chars
    assert truncate("SELECT  1\n  FROM t", chars) == "SELECT 1 FROM t"
    assert truncate(None, chars) == ""
