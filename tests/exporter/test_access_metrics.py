"""``dbops_access_events_total{kind, source}``: from the snapshot and live from the app, once."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import urllib.request

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from dbops.db.access import ACCESS
from dbops.exporter import (
    SnapshotCollector,
    SnapshotSource,
    instrument,
    make_server,
    merge_families,
    snapshot_metrics,
)
from dbops.monitoring.snapshot import Snapshot
from tests.fixtures.db import make_settings
from tests.fixtures.snapshots import HEALTHY_ACCESS, healthy_snapshot

PROMTOOL = shutil.which("promtool")
SETTINGS = make_settings("postgresql://unused/none")


def _source(snapshot: Snapshot) -> SnapshotSource:
    return SnapshotSource(lambda: snapshot, budget_s=2.0, min_interval_s=0.0)


def _samples(snapshot: Snapshot) -> dict[tuple[str, str], float]:
    return {
        (s.labels["kind"], s.labels["source"]): s.value
        for m in snapshot_metrics(snapshot, SETTINGS)
        if m.name == "dbops_access_events"
        for s in m.samples
        if s.name == "dbops_access_events_total"
    }


def test_snapshot_gives_one_counter_per_kind_and_source() -> None:
    assert _samples(healthy_snapshot()) == {
        ("login_failed", "app"): 3,
        ("forbidden", "app"): 2,
        ("not_found", "app"): 5,
        ("rls_denied", "app"): 0,
        ("privilege_denied", "app"): 0,
        ("login_failed", "server"): 4,
        ("rls_denied", "server"): 1,
        ("privilege_denied", "server"): 2,
    }
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(_source(healthy_snapshot()), SETTINGS))
    labels = {"kind": "login_failed", "source": "server"}
    assert registry.get_sample_value("dbops_access_events_total", labels) == 4.0


def test_unknown_sides_give_no_sample() -> None:
    no_app = dataclasses.replace(
        healthy_snapshot(), access=dataclasses.replace(HEALTHY_ACCESS, app=None)
    )
    assert {source for _, source in _samples(no_app)} == {"server"}
    assert _samples(dataclasses.replace(healthy_snapshot(), access=None)) == {}


def test_snapshot_and_app_collector_on_one_registry_serve_one_family() -> None:
    """`dbops up --serve`: the snapshot's server counts and the live app counts, one family."""
    snap = dataclasses.replace(
        healthy_snapshot(), access=dataclasses.replace(HEALTHY_ACCESS, app=None)
    )
    server = make_server(SETTINGS, port=0, source=_source(snap))
    instrument(server.registry, statements=False)
    server.start()
    try:
        with urllib.request.urlopen(f"{server.url}/metrics", timeout=5) as resp:
            body = resp.read().decode()
        with urllib.request.urlopen(
            f"{server.url}/metrics?name[]=dbops_access_events_total", timeout=5
        ) as resp:
            only = resp.read().decode()
    finally:
        server.close()
    app_login = dict(ACCESS.counts())["login_failed"]
    for text in (body, only):
        assert text.count("# TYPE dbops_access_events_total counter") == 1
        assert 'dbops_access_events_total{kind="login_failed",source="server"} 4.0' in text
        assert (
            f'dbops_access_events_total{{kind="login_failed",source="app"}} {app_login:.1f}' in text
        )
    assert "dbops_up" not in only
    if PROMTOOL is not None:
        result = subprocess.run(
            [PROMTOOL, "check", "metrics"],
            input=body.encode(),
            capture_output=True,
            timeout=30,
            check=False,
        )
        assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()


def test_merge_families_keeps_the_first_of_a_name() -> None:
    first = CounterMetricFamily("x_events", "first", labels=["source"])
    first.add_metric(["server"], 1.0)
    second = CounterMetricFamily("x_events", "second", labels=["source"])
    second.add_metric(["app"], 2.0)
    second.add_metric(["server"], 9.0)  # already there: the first one stays
    other_type = GaugeMetricFamily("x_events", "a gauge of the same name")
    other_type.add_metric([], 5.0)
    alone = GaugeMetricFamily("y", "y")
    alone.add_metric([], 1.0)

    merged = merge_families([first, alone, second, other_type])

    assert [m.name for m in merged] == ["x_events", "y"]
    assert merged[0].documentation == "first"
    assert [(s.labels["source"], s.value) for s in merged[0].samples] == [
        ("server", 1.0),
        ("app", 2.0),
    ]
    assert merged[1] is alone
    assert len(first.samples) == 1  # the collectors' own families are left as they were


def test_merge_families_drops_a_family_of_another_type_whichever_comes_first() -> None:
    gauge = GaugeMetricFamily("z", "gauge first")
    gauge.add_metric([], 1.0)
    counter = CounterMetricFamily("z", "then a counter")
    counter.add_metric([], 2.0)

    later = GaugeMetricFamily("w", "a family after the mismatch")
    later.add_metric([], 3.0)

    merged = merge_families([gauge, counter, later])

    assert merged == [gauge, later]
    assert [s.value for s in merged[0].samples] == [1.0]
