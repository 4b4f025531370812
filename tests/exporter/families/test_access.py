"""``dbops_access_events_total{kind, source}``: the server log's and the processes' reports."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import urllib.request

from prometheus_client import CollectorRegistry

from dbops.exporter import (
    SnapshotCollector,
    SnapshotSource,
    make_server,
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
    labels = {"kind": "login_failed", "source": "server", "process": "", "pid": ""}
    assert registry.get_sample_value("dbops_access_events_total", labels) == 4.0


def test_unknown_sides_give_no_sample() -> None:
    # The collecting process's own counters are never the app's: only reports are.
    own = dataclasses.replace(
        healthy_snapshot(), access=dataclasses.replace(HEALTHY_ACCESS, app=None)
    )
    assert _samples(own) == _samples(healthy_snapshot())
    no_processes = dataclasses.replace(healthy_snapshot(), processes=None)
    assert {source for _, source in _samples(no_processes)} == {"server"}
    no_server = dataclasses.replace(healthy_snapshot(), access=None)
    assert {source for _, source in _samples(no_server)} == {"app"}


def test_the_server_counts_and_each_live_process_counts_are_one_family() -> None:
    """The server log's counts and the application processes' reports, one valid family."""
    server = make_server(SETTINGS, port=0, source=_source(healthy_snapshot()))
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
    for text in (body, only):
        assert text.count("# TYPE dbops_access_events_total counter") == 1
        assert (
            'dbops_access_events_total{kind="login_failed",pid="",process="",source="server"} 4.0'
            in text
        )
        # The workload's report (pid 4242); the silent process (pid 7) is not counted.
        assert (
            'dbops_access_events_total{kind="login_failed",pid="4242",'
            'process="dbops workload",source="app"} 3.0' in text
        )
        assert 'pid="7"' not in text
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
