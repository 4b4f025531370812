"""The exporter follows Prometheus' naming and label guidance, and its series stay put.

What Prometheus' own docs ("Metric and label naming", "Instrumentation") and
postgres_exporter do: a counter's samples end in ``_total``, a unit is in the name and is a
base unit, one HELP per name, no name one letter from another's, labels from bounded sets,
and per-statement series that do not come and go between scrapes (``rate()`` needs two
samples of the same series).
"""

from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import Metric

from dbops.exporter import (
    KEEP_FACTOR,
    Reading,
    SnapshotCollector,
    exported_statements,
    snapshot_metrics,
)
from dbops.monitoring.snapshot import Snapshot, StatementsStat
from tests.fixtures.db import make_settings
from tests.fixtures.snapshots import _query, degraded_snapshot, healthy_snapshot

PROMTOOL = shutil.which("promtool")
SETTINGS = make_settings("postgresql://unused/none", exporter_top_statements=3)
NAME = re.compile(r"^dbops_[a-z][a-z0-9_]*[a-z0-9]$")
#: Units Prometheus names use: base units only (no ms, no kb).
UNIT_WORDS = {"seconds", "bytes", "ratio", "timestamp"}
WRONG_UNITS = re.compile(r"_(ms|milliseconds|kb|mb|minutes|hours|percent)(_|$)")


def _families(snap: Snapshot) -> list[Metric]:
    return snapshot_metrics(snap, SETTINGS)


def _snapshots() -> Iterator[Snapshot]:
    yield healthy_snapshot()
    yield degraded_snapshot()


@pytest.mark.parametrize("snap", list(_snapshots()), ids=["healthy", "degraded"])
def test_names_help_and_units(snap: Snapshot) -> None:
    families = _families(snap)
    names = [f.name for f in families]
    assert len(names) == len(set(names)), "a family is built twice"
    for family in families:
        assert NAME.match(family.name), family.name
        assert family.documentation.strip(), f"{family.name}: no HELP"
        assert not WRONG_UNITS.search(family.name), f"{family.name}: not a base unit"
        if family.type == "counter":
            assert {s.name for s in family.samples} <= {f"{family.name}_total"}, family.name
        if family.type == "gauge":
            assert not family.name.endswith("_total"), f"{family.name}: a gauge named a counter"
    # No name is another with one letter more or less (dbops_statement_ vs dbops_statements_).
    prefixes = {"_".join(n.split("_")[:2]) for n in names}
    for prefix in prefixes:
        assert not ({prefix + "s", prefix.removesuffix("s")} - {prefix}) & prefixes, prefix


def test_a_counters_help_says_what_it_counts() -> None:
    """The HELP of each pool counter names what is counted (errors are not timeouts)."""
    helps = {f.name: f.documentation for f in _families(healthy_snapshot())}
    assert "timed out" in helps["dbops_pool_request_errors"]
    assert "queue full" in helps["dbops_pool_request_errors"]
    assert "dbops_pool_timeouts" not in helps
    assert "dbops_database_cache_hit_ratio" not in helps  # a ratio since the reset: rates do it


@pytest.mark.skipif(PROMTOOL is None, reason="promtool is not installed")
@pytest.mark.parametrize("snap", list(_snapshots()), ids=["healthy", "degraded"])
def test_promtool_lints_the_page_clean(snap: Snapshot) -> None:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(lambda: _reading(snap), SETTINGS))
    assert PROMTOOL is not None
    result = subprocess.run(
        [PROMTOOL, "check", "metrics"],
        input=generate_latest(registry),
        capture_output=True,
        timeout=30,
        check=False,
    )
    # promtool prints lint problems on stdout (exit 3) and format errors (exit 1).
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()


def _reading(snap: Snapshot) -> Reading:
    return Reading(snapshot=snap, up=True, stale=False, age_s=0.0, errors_total={})


def _with_top(costs: dict[int, float]) -> Snapshot:
    """The healthy snapshot whose statements are ``queryid -> total ms`` (one call each)."""
    base = healthy_snapshot()
    assert base.statements is not None
    top = tuple(_query(qid, ms, 1, f"SELECT {qid}") for qid, ms in costs.items())
    return dataclasses.replace(base, statements=dataclasses.replace(base.statements, top=top))


def _exported(registry: CollectorRegistry) -> set[str]:
    return {
        s.labels["queryid"]
        for f in registry.collect()
        if f.name == "dbops_statement_calls"
        for s in f.samples
    }


def test_a_statement_that_drops_a_place_keeps_its_series() -> None:
    snaps = [
        _with_top({1: 50, 2: 40, 3: 30, 4: 20, 5: 10}),
        _with_top({1: 50, 2: 40, 4: 35, 3: 30, 5: 10}),  # 4 passes 3
        _with_top({1: 50, 2: 40, 4: 35, 5: 33, 3: 30}),  # and 5 too (not in the top 3)
        _with_top({1: 50, 2: 40, 4: 35, 5: 33}),  # 3 left the snapshot's list
    ]
    current = iter(snaps)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(lambda: _reading(next(current)), SETTINGS))
    assert _exported(registry) == {"1", "2", "3"}
    assert _exported(registry) == {"1", "2", "3", "4"}  # 3 kept, 4 new in the top 3
    assert _exported(registry) == {"1", "2", "3", "4"}  # 3 fell to 5th: still kept
    assert _exported(registry) == {"1", "2", "4"}  # 3 ends: the snapshot lost it


def test_kept_statements_are_capped_heaviest_first() -> None:
    limit = SETTINGS.exporter_top_statements
    snap = _with_top({i: 100.0 - i for i in range(1, 20)})
    keep = {str(i) for i in range(1, 20)}
    chosen = [str(q.queryid) for q in exported_statements(snap, SETTINGS, keep)]
    assert chosen == [str(i) for i in range(1, KEEP_FACTOR * limit + 1)]
    # Without history, only the top N; a statement without a queryid is never exported.
    hidden = dataclasses.replace(_query(99, 1_000, 1, "hidden"), queryid=None)
    assert snap.statements is not None
    with_hidden = dataclasses.replace(
        snap, statements=dataclasses.replace(snap.statements, top=(hidden, *snap.statements.top))
    )
    assert [str(q.queryid) for q in exported_statements(with_hidden, SETTINGS)] == ["1", "2", "3"]


def test_per_statement_series_are_bounded_over_many_scrapes() -> None:
    """Tops that change every scrape: the statement series never exceed 2 x N at a time."""
    limit = SETTINGS.exporter_top_statements
    snaps = iter(
        _with_top({(i * 7 + k) % 40 + 1: float(100 - k) for k in range(12)}) for i in range(30)
    )
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(lambda: _reading(next(snaps)), SETTINGS))
    for _ in range(30):
        assert len(_exported(registry)) <= KEEP_FACTOR * limit


def test_whole_view_totals_are_not_the_per_statement_family() -> None:
    families = {f.name: f for f in _families(healthy_snapshot())}
    statements = healthy_snapshot().statements
    assert isinstance(statements, StatementsStat)
    total = families["dbops_stat_statements_calls"].samples[0].value
    assert total == statements.total_calls
    assert "dbops_statements_calls" not in families
