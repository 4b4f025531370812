"""Snapshot JSON round trip: exact, for canned and collected snapshots."""

from __future__ import annotations

import json

import pytest

from dbops.db import Database
from dbops.monitoring import Snapshot, collect_snapshot
from tests.fixtures.monitoring import monitor_settings
from tests.fixtures.snapshots import degraded_snapshot, healthy_snapshot, partial_snapshot


@pytest.mark.parametrize("make", [healthy_snapshot, degraded_snapshot, partial_snapshot])
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
    data["advice"] = []
    data["pool"]["future_counter"] = 3
    assert Snapshot.from_json(json.dumps(data)) == healthy_snapshot()


def test_collected_round_trip_is_exact(mon_db: Database, mon_url: str) -> None:
    snap = collect_snapshot(mon_db, monitor_settings(mon_url))
    assert snap.errors == ()
    assert Snapshot.from_json(snap.to_json()) == snap
