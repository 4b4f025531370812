"""The app process's statement metrics on a Prometheus registry and in the snapshot."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from dbops.db import Database
from dbops.errors import Conflict
from dbops.exporter import SnapshotCollector, SnapshotSource, instrument
from dbops.monitoring.collect import collect_snapshot
from dbops.monitoring.collectors.pool import app_stats
from dbops.monitoring.snapshot import AppStat, CountBy, Snapshot, StatementLatency
from dbops.services.users import UserService
from dbops.telemetry.metrics import BUCKETS_S, StatementMetrics
from tests.fixtures.db import make_settings
from tests.fixtures.snapshots import HEALTHY_POOL, app_process, healthy_snapshot
from tests.services._helpers import FAST_HASHER, PASSWORD, SYSTEM, unique

PROMTOOL = shutil.which("promtool")
DURATION = "dbops_app_statement_duration_seconds"
ERRORS = "dbops_app_statement_errors_total"


def _value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


def _app_stat() -> AppStat:
    return AppStat(
        buckets_s=(0.001, 0.01, 0.1),
        statements=(
            StatementLatency(
                name="users.create",
                count=5,
                sum_s=0.123456789,
                bucket_counts=(1, 3, 4),
                errors=(CountBy("23", 2), CountBy("other", 1)),
            ),
            StatementLatency("memberships.role_of", 2, 0.0004, (2, 2, 2), ()),
        ),
    )


def test_instrument_scrape_shows_histogram_and_errors_by_sqlstate_class(
    clean_db: Database,
) -> None:
    users = UserService(clean_db, hasher=FAST_HASHER)
    registry = CollectorRegistry()
    instrument(registry, db=clean_db)
    email = f"{unique('exp')}@example.com"
    labels = {"statement": "users.get_by_email"}
    count_before = _value(registry, f"{DURATION}_count", **labels)
    inf_before = _value(registry, f"{DURATION}_bucket", le="+Inf", **labels)
    errors_before = _value(registry, ERRORS, statement="users.create", sqlstate_class="23")

    users.create(SYSTEM, email=email, password=PASSWORD, display_name="Exp")
    users.get_by_email(SYSTEM, email)
    users.get_by_email(SYSTEM, email)
    with pytest.raises(Conflict):
        users.create(SYSTEM, email=email, password=PASSWORD, display_name="Again")

    assert _value(registry, f"{DURATION}_count", **labels) == count_before + 2
    assert _value(registry, f"{DURATION}_bucket", le="+Inf", **labels) == inf_before + 2
    assert _value(registry, f"{DURATION}_sum", **labels) > 0.0
    # Every fixed bound is a bucket, in seconds, cumulative.
    per_bound = [
        registry.get_sample_value(f"{DURATION}_bucket", {"le": repr(b), **labels})
        for b in BUCKETS_S
    ]
    assert None not in per_bound
    assert per_bound == sorted(per_bound)  # type: ignore[type-var]
    assert _value(registry, ERRORS, statement="users.create", sqlstate_class="23") == (
        errors_before + 1
    )
    # The pool metrics still come along with the statement ones.
    assert registry.get_sample_value("dbops_pool_requests_total", {"pool": clean_db.pool.name})


def test_statement_labels_are_names_not_sql_or_values(clean_db: Database) -> None:
    users = UserService(clean_db, hasher=FAST_HASHER)
    registry = CollectorRegistry()
    instrument(registry, statements=True)
    for i in range(30):
        with pytest.raises(Exception, match="not found"):
            users.get_by_email(SYSTEM, f"nobody{i}-{unique('c')}@example.com")
    text = generate_latest(registry).decode()
    statements = {
        line.split('statement="', 1)[1].split('"', 1)[0]
        for line in text.splitlines()
        if line.startswith(DURATION + "_count")
    }
    assert "users.get_by_email" in statements
    assert all(
        s.count(".") == 1 and s.replace(".", "").replace("_", "").isalnum() for s in statements
    )
    assert "@" not in text
    assert "SELECT" not in text


def test_instrument_without_statements_leaves_them_out() -> None:
    registry = CollectorRegistry()
    instrument(registry, statements=False)
    assert DURATION not in generate_latest(registry).decode()


@pytest.mark.skipif(PROMTOOL is None, reason="promtool missing: install Debian's prometheus")
def test_promtool_check_metrics_on_the_app_scrape(clean_db: Database) -> None:
    users = UserService(clean_db, hasher=FAST_HASHER)
    email = f"{unique('prom')}@example.com"
    users.create(SYSTEM, email=email, password=PASSWORD, display_name="Prom")
    with pytest.raises(Conflict):
        users.create(SYSTEM, email=email, password=PASSWORD, display_name="Prom")
    registry = CollectorRegistry()
    instrument(registry, db=clean_db)
    text = generate_latest(registry)
    assert b"# TYPE dbops_app_statement_duration_seconds histogram" in text
    assert b"# TYPE dbops_app_statement_errors_total counter" in text
    assert PROMTOOL is not None
    result = subprocess.run(
        [PROMTOOL, "check", "metrics"], input=text, capture_output=True, timeout=30, check=False
    )
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()


def test_a_process_reports_app_section_becomes_the_same_metrics() -> None:
    """The application process's statements, labelled by process; never the exporter's own."""
    workload = dataclasses.replace(app_process(HEALTHY_POOL), app=_app_stat())
    own = AppStat(buckets_s=(0.001, 0.01, 0.1), statements=(_app_stat().statements[1],))
    snapshot = dataclasses.replace(healthy_snapshot(), app=own, processes=(workload,))
    registry = CollectorRegistry(auto_describe=False)
    registry.register(
        SnapshotCollector(
            SnapshotSource(lambda: snapshot, budget_s=2.0, min_interval_s=0.0),
            make_settings("postgresql://unused/none"),
        )
    )
    who = {"process": "dbops workload", "pid": "4242"}
    assert _value(registry, f"{DURATION}_count", statement="memberships.role_of", **who) == 2.0
    unlabelled = {"statement": "memberships.role_of"}
    assert registry.get_sample_value(f"{DURATION}_count", unlabelled) is None
    labels = {"statement": "users.create", **who}
    assert _value(registry, f"{DURATION}_bucket", le="0.001", **labels) == 1.0
    assert _value(registry, f"{DURATION}_bucket", le="0.01", **labels) == 3.0
    assert _value(registry, f"{DURATION}_bucket", le="0.1", **labels) == 4.0
    assert _value(registry, f"{DURATION}_bucket", le="+Inf", **labels) == 5.0
    assert _value(registry, f"{DURATION}_count", **labels) == 5.0
    assert _value(registry, f"{DURATION}_sum", **labels) == pytest.approx(0.123456789)
    assert _value(registry, ERRORS, statement="users.create", sqlstate_class="other", **who) == 1.0
    assert registry.get_sample_value(ERRORS, {"statement": "memberships.role_of", **who}) is None


def test_app_section_json_round_trip_is_exact() -> None:
    snapshot = dataclasses.replace(healthy_snapshot(), app=_app_stat())
    again = Snapshot.from_json(snapshot.to_json())
    assert again == snapshot
    assert again.app is not None
    assert again.app.statement("users.create") == snapshot.app.statement("users.create")  # type: ignore[union-attr]
    assert again.app.statements[0].error_count() == 3
    # A snapshot written before the section existed still loads (no "app" key).
    assert Snapshot.from_json(healthy_snapshot().to_json()).app is None


def test_app_stats_reads_a_recorder() -> None:
    metrics = StatementMetrics((0.001, 0.01))
    metrics.record("teams.get", 0.002)
    metrics.record("teams.get", 0.02, "40")
    stat = app_stats(metrics)
    assert stat.buckets_s == (0.001, 0.01)
    (teams_get,) = stat.statements
    assert teams_get.name == "teams.get"
    assert teams_get.count == 2
    assert teams_get.sum_s == pytest.approx(0.022)
    assert teams_get.bucket_counts == (0, 1)
    assert teams_get.errors == (CountBy("40", 1),)


def test_collect_snapshot_in_the_app_process_includes_the_app_section(
    clean_db: Database,
) -> None:
    users = UserService(clean_db, hasher=FAST_HASHER)
    users.create(SYSTEM, email=f"{unique('snap')}@example.com", password=PASSWORD, display_name="S")
    without = collect_snapshot(clean_db, clean_db.settings)
    assert without.app is None
    snapshot = collect_snapshot(clean_db, clean_db.settings, app=True)
    assert snapshot.app is not None
    created = snapshot.app.statement("users.create")
    assert created is not None
    assert created.count >= 1
    assert Snapshot.from_json(snapshot.to_json()) == snapshot
