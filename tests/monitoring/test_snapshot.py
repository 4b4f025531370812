"""Snapshot JSON round trip: exact, for canned and collected snapshots."""

from __future__ import annotations

import dataclasses
import json

import pytest

from dbops.db import Database
from dbops.monitoring import Snapshot, collect_snapshot
from dbops.monitoring.snapshot import (
    AccessStat,
    Advice,
    AppStat,
    CountBy,
    IndexSuggestion,
    Rejection,
    ResourceStat,
    SectionError,
    ServerAccessStat,
    SettingStat,
    StatementGain,
    StatementLatency,
)
from tests.fixtures.monitoring import monitor_settings
from tests.fixtures.snapshots import degraded_snapshot, healthy_snapshot, partial_snapshot


def _with_advice() -> Snapshot:
    """The healthy snapshot with index advice: suggestions, gains and rejections."""
    gain = StatementGain(
        queryid=-7,
        calls=3,
        mean_exec_time_ms=1.25,
        cost_before=1234.5,
        cost_after=8.25,
        saved_ms=3.7,
    )
    suggestion = IndexSuggestion(
        schema="public",
        table="orders",
        columns=("customer_id", "status"),
        using="btree",
        create_sql='CREATE INDEX CONCURRENTLY "i" ON "public"."orders" USING btree ("a")',
        statements=(gain,),
        saved_ms=3.7,
        write_ms=0.1,
        write_note="UPDATE sets status: no more HOT updates",
        reason="used by 1 statement",
    )
    advice = Advice(
        suggestions=(suggestion,),
        rejected=(
            Rejection(queryid=None, table=None, columns=None, reason="pglast cannot parse it"),
            Rejection(queryid=5, table="orders", columns=("a",), reason="cost cut too small"),
        ),
        elapsed_ms=42.125,
    )
    return dataclasses.replace(healthy_snapshot(), advice=advice)


def _with_resources() -> Snapshot:
    """The healthy snapshot with resources: host parts known, one part unknown."""
    res = ResourceStat(
        wal_bytes=16_777_216,
        volume_free_bytes=10_000_000_000,
        volume_total_bytes=50_000_000_000,
        cpu_seconds=12.5,
        memory_rss_bytes=123_456_789,
        processes=7,
        log_errors=(CountBy(key="22", count=2), CountBy(key="other", count=1)),
    )
    return dataclasses.replace(healthy_snapshot(), resources=res)


def _with_remote_resources() -> Snapshot:
    """Resources of a server on another host: only the WAL size."""
    return dataclasses.replace(healthy_snapshot(), resources=ResourceStat(wal_bytes=1))


def _with_partial_access() -> Snapshot:
    """Access seen from outside the application, on a log in local time: counts, no recent."""
    server = ServerAccessStat(
        login_failed=7, rls_denied=0, privilege_denied=1, login_failed_recent=None
    )
    return dataclasses.replace(healthy_snapshot(), access=AccessStat(window_s=60.5, server=server))


@pytest.mark.parametrize(
    "make",
    [
        healthy_snapshot,
        degraded_snapshot,
        partial_snapshot,
        _with_advice,
        _with_resources,
        _with_remote_resources,
        _with_partial_access,
    ],
)
def test_canned_round_trip_is_exact(make: object) -> None:
    snap = make()  # type: ignore[operator]
    text = snap.to_json()
    back = Snapshot.from_json(text)
    assert back == snap
    assert back.to_json() == text
    assert back.taken_at.tzinfo is not None


def test_unknown_is_null_not_a_sentinel() -> None:
    data = json.loads(partial_snapshot().to_json())
    assert data["statements"] is None
    assert data["indexes"] is None
    assert data["database"]["sequences"] is None


def test_newer_fields_are_ignored_when_reading() -> None:
    data = json.loads(healthy_snapshot().to_json())
    data["history"] = []
    data["pool"]["future_counter"] = 3
    assert Snapshot.from_json(json.dumps(data)) == healthy_snapshot()


def test_a_snapshot_without_access_reads_as_unknown() -> None:
    data = json.loads(healthy_snapshot().to_json())
    assert data["access"]["server"]["login_failed"] == 4
    del data["access"]  # written before access monitoring
    assert Snapshot.from_json(json.dumps(data)).access is None


def test_collected_round_trip_is_exact(mon_db: Database, mon_url: str) -> None:
    snap = collect_snapshot(mon_db, monitor_settings(mon_url))
    assert snap.errors == ()
    assert Snapshot.from_json(snap.to_json()) == snap


def test_a_setting_is_looked_up_by_its_own_name() -> None:
    database = healthy_snapshot().database
    assert database is not None
    two = dataclasses.replace(
        database,
        settings=(
            SettingStat("max_connections", "100", None, "configuration file"),
            SettingStat("work_mem", "4096", "kB", "default"),
        ),
    )
    assert two.setting("work_mem") == "4096"
    assert two.setting("max_connections") == "100"
    assert two.setting("shared_buffers") is None
    assert dataclasses.replace(database, settings=None).setting("work_mem") is None
    # Names read from the server or a JSON file are equal strings, not the same objects.
    asked, literal = "".join(["work", "_", "mem"]), "work_mem"
    assert asked is not literal
    assert two.setting(asked) == "4096"
    reread = Snapshot.from_json(dataclasses.replace(healthy_snapshot(), database=two).to_json())
    assert reread.database is not None
    assert reread.database.setting("max_connections") == "100"


def test_a_service_statement_is_looked_up_by_its_own_name() -> None:
    def latency(name: str) -> StatementLatency:
        return StatementLatency(name, 1, 0.1, (1,), ())

    app = AppStat(buckets_s=(1.0,), statements=(latency("a.get"), latency("b.get")))
    assert app.statement("b.get") is app.statements[1]
    assert app.statement("a.get") is app.statements[0]
    assert app.statement("".join(["b", ".get"])) is app.statements[1]
    assert app.statement("c.get") is None


def test_a_section_error_is_found_by_its_collector_among_several() -> None:
    errors = tuple(
        SectionError(collector="".join(name), message=f"{''.join(name)} failed", elapsed_s=0.1)
        for name in (["tab", "les"], ["ind", "exes"], ["acc", "ess"])
    )
    snap = dataclasses.replace(healthy_snapshot(), errors=errors)
    assert snap.error("indexes") is errors[1]
    assert snap.error("".join(["acc", "ess"])) is errors[2]
    assert snap.error("tables") is errors[0]
    assert snap.error("pool") is None


def test_the_mean_checkout_wait_is_total_wait_over_queued_requests() -> None:
    pool = healthy_snapshot().pool
    assert pool is not None
    waited = dataclasses.replace(pool, requests_wait_ms=150, requests_queued=4)
    assert waited.mean_checkout_wait_ms() == 37.5
    assert dataclasses.replace(pool, requests_queued=0).mean_checkout_wait_ms() is None
