"""The slow collectors on their own cadence (``dbops.monitoring.cadence``), on a real database."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg
import pytest

from dbops.db import Database
from dbops.monitoring import collect_snapshot
from dbops.monitoring._fetch import fetch_one
from dbops.monitoring.cadence import SLOW_COLLECTORS, Cadence
from dbops.monitoring.collect import COLLECTORS


@dataclass(frozen=True)
class _Slept:
    pg_sleep: str


def test_the_background_refresh_has_its_own_longer_timeout(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A slow collector that needs 0.4 s fails under a 200 ms collector timeout in a snapshot
    someone waits for (the CLI), and succeeds in the background refresh, whose queries run
    under ``monitor_slow_collector_timeout_ms``."""
    assert "data" in SLOW_COLLECTORS
    settings = db.settings.model_copy(
        update={"monitor_collector_timeout_ms": 200, "monitor_slow_collector_timeout_ms": 5_000}
    )
    original = COLLECTORS["data"]

    def takes_its_time(conn: psycopg.Connection[Any], **kwargs: Any) -> Any:
        timeout = kwargs["settings"].collector_timeout_ms
        fetch_one(conn, "SELECT pg_sleep(0.4)::text", _Slept, timeout_ms=timeout)
        return original(conn, **kwargs)

    monkeypatch.setitem(COLLECTORS, "data", takes_its_time)
    waited = collect_snapshot(db, settings)
    assert waited.data is None
    assert [e.collector for e in waited.errors] == ["data"]
    carried = Cadence(db, settings, interval_s=60.0)()
    assert carried.data is not None
    assert carried.errors == ()
    assert {c.collector for c in carried.carried} == set(SLOW_COLLECTORS)
