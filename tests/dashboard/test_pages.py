"""Every dashboard page renders the canned snapshots without an exception."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from dbops.monitoring import Snapshot
from dbops.monitoring.cadence import SLOW_COLLECTORS
from dbops.monitoring.snapshot import (
    AccessStat,
    BouncerDatabase,
    BouncerPool,
    BouncerStat,
    CarriedSection,
    CountBy,
    ReplicaRoute,
    ReplicaRouting,
    SlotStat,
)
from tests.dashboard.conftest import PAGES, ROOT, app, texts, write_snapshot
from tests.fixtures.snapshots import (
    HEALTHY_ACCESS,
    _query,
    degraded_snapshot,
    healthy_snapshot,
    partial_snapshot,
)


def _render_all(snapshot_file: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.setenv("DBOPS_DASHBOARD_SNAPSHOT_FILE", str(snapshot_file))
    at = app()
    at.run()
    assert not at.exception, at.exception
    shown: dict[str, str] = {}
    for page in PAGES:
        at.switch_page(page)
        at.run()
        assert not at.exception, (page, at.exception)
        shown[page] = texts(at)
    return shown


@pytest.mark.parametrize(
    "make", [healthy_snapshot, degraded_snapshot, partial_snapshot], ids=lambda f: f.__name__
)
def test_every_page_renders(make, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    snap: Snapshot = make()
    shown = _render_all(write_snapshot(tmp_path / "snap.json", snap), monkeypatch)
    for page, text in shown.items():
        assert "Traceback" not in text, page


def test_healthy_overview_says_all_checks_pass(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shown = _render_all(write_snapshot(tmp_path / "s.json", healthy_snapshot()), monkeypatch)
    assert "All checks pass." in shown["views/overview.py"]
    assert "not a supported version" not in shown["views/overview.py"]
    assert "SELECT * FROM users WHERE id = $1" in shown["views/queries.py"]


def test_an_unsupported_server_is_flagged_on_the_overview(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    healthy = healthy_snapshot()
    assert healthy.server is not None
    old = dataclasses.replace(healthy.server, version="13.16", version_num=130016)
    snap = dataclasses.replace(healthy, server=old)
    overview = _render_all(write_snapshot(tmp_path / "s.json", snap), monkeypatch)[
        "views/overview.py"
    ]
    assert "PostgreSQL 13.16 (**not a supported version**" in overview
    assert "server_version" in overview  # the check's row in the findings table
    assert "All checks pass." not in overview


def test_degraded_overview_lists_findings_with_hints(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    snap = degraded_snapshot()
    shown = _render_all(write_snapshot(tmp_path / "s.json", snap), monkeypatch)
    overview = shown["views/overview.py"]
    assert "critical" in overview
    assert "zero_owner_teams" in overview
    assert "All checks pass." not in overview


def test_failed_collectors_are_notes_on_their_panels(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shown = _render_all(write_snapshot(tmp_path / "s.json", partial_snapshot()), monkeypatch)
    assert "pg_stat_statements is not installed" in shown["views/queries.py"]
    assert "CREATE EXTENSION pg_stat_statements;" in shown["views/queries.py"]
    assert "timed out after 5 ms" in shown["views/indexes.py"]
    assert "Collector `statements` failed" in shown["views/overview.py"]


def test_missing_snapshot_file_is_an_error_note(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DBOPS_DASHBOARD_SNAPSHOT_FILE", str(tmp_path / "absent.json"))
    at = app()
    at.run()
    assert not at.exception
    assert any("No snapshot" in e.value for e in at.error)


def test_live_only_panels_say_so_on_a_snapshot_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        "DBOPS_DASHBOARD_SNAPSHOT_FILE",
        str(write_snapshot(tmp_path / "s.json", healthy_snapshot())),
    )
    at = app()
    at.run()
    at.switch_page("views/teams.py")
    at.run()
    at.text_input(key="team-q").input("acme").run()
    assert not at.exception
    assert any("needs a live database" in e.value for e in at.info)


def test_error_details_are_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import streamlit as st

    st.set_option("client.showErrorDetails", True)
    snapshot_file = write_snapshot(tmp_path / "s.json", healthy_snapshot())
    monkeypatch.setenv("DBOPS_DASHBOARD_SNAPSHOT_FILE", str(snapshot_file))
    at = app()
    at.run()
    assert st.get_option("client.showErrorDetails") in (False, "none")


def test_loopback_config_ships_with_the_repo() -> None:
    import tomllib

    for where in (ROOT / ".streamlit", ROOT / "dashboard" / ".streamlit"):
        config = tomllib.loads((where / "config.toml").read_text())
        assert config["server"]["address"] == "127.0.0.1"
        assert config["client"]["showErrorDetails"] is False


def _activity(snapshot: Snapshot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv(
        "DBOPS_DASHBOARD_SNAPSHOT_FILE", str(write_snapshot(tmp_path / "s.json", snapshot))
    )
    at = app()
    at.run()
    at.switch_page("views/activity.py")
    at.run()
    assert not at.exception, at.exception
    return texts(at)


def test_activity_shows_access_counts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shown = _activity(healthy_snapshot(), tmp_path, monkeypatch)
    assert "Access" in shown
    assert "Failed logins, server (last 15 min) 2" in shown
    assert "Failed sign-ins, app (last 15 min) 1" in shown
    assert "RLS denials (server) 1" in shown
    assert "Privilege denials (server) 2" in shown
    table = next(line.split() for line in shown.splitlines() if line.split()[1:2] == ["not_found"])
    assert table[2:] == ["5", "<NA>"]  # the server does not count hidden rows


@pytest.mark.parametrize(
    ("access", "expected"),
    [
        (None, "No access events in this snapshot."),
        (
            dataclasses.replace(HEALTHY_ACCESS, app=None),
            "app: counted in the application process",
        ),
    ],
)
def test_activity_says_what_access_is_unknown(
    access: AccessStat | None, expected: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    snap = dataclasses.replace(healthy_snapshot(), access=access)
    assert expected in _activity(snap, tmp_path, monkeypatch)


def _page(snap: Snapshot, page: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The app on ``snap`` (written to a file, as the dashboard reads it), switched to ``page``."""
    snapshot_file = write_snapshot(tmp_path / "s.json", snap)
    monkeypatch.setenv("DBOPS_DASHBOARD_SNAPSHOT_FILE", str(snapshot_file))
    at = app()
    at.run()
    at.switch_page(page).run()
    assert not at.exception, at.exception
    return at


def test_queryids_reach_the_browser_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two 64-bit queryids a JavaScript number cannot tell apart stay two rows and two labels."""
    snap = healthy_snapshot()
    assert snap.statements is not None
    a, b = -5_424_882_176_234_291_609, -5_424_882_176_234_291_001  # the same as doubles
    assert float(a) == float(b)
    top = (
        _query(a, 3.0, 10, "SELECT 1 AS first_statement"),
        _query(b, 2.0, 10, "SELECT 2 AS second_statement"),
    )
    snap = dataclasses.replace(snap, statements=dataclasses.replace(snap.statements, top=top))
    at = _page(snap, "views/queries.py", tmp_path, monkeypatch)
    (frame,) = [df.value for df in at.dataframe]
    assert list(frame["queryid"]) == [str(a), str(b)]  # text: no rounding on the way
    (choice,) = [s for s in at.selectbox if s.label == "Statement detail"]
    assert [str(o) for o in choice.options][:2] == [
        f"{a}: SELECT 1 AS first_statement",
        f"{b}: SELECT 2 AS second_statement",
    ]
    assert f"Statement {a}" in texts(at)


@pytest.mark.parametrize("make", [healthy_snapshot, degraded_snapshot], ids=lambda f: f.__name__)
def test_the_indexes_page_counts_what_the_checks_find(
    make, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The "all fine" row of a check is not an unused or duplicate index."""
    from dbops.config import Settings
    from dbops.monitoring import evaluate

    snap: Snapshot = make()
    at = _page(snap, "views/indexes.py", tmp_path, monkeypatch)
    problems = [
        f.check for f in evaluate(snap, Settings(_env_file=None)) if f.severity.value != "ok"
    ]
    metrics = {m.label: m.value for m in at.metric}
    assert int(metrics["Unused"]) == problems.count("unused_indexes")
    assert int(metrics["Duplicate / covered"]) == problems.count("duplicate_indexes")


@pytest.mark.parametrize(
    ("offset_s", "expected"),
    [(-42.0, ", 42 s before the snapshot"), (0.3, "")],
)
def test_the_sidebar_says_when_the_slow_parts_were_taken(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, offset_s: float, expected: str
) -> None:
    """Carried parts 42 s old say so; parts taken with the snapshot (a moment after its start:
    the first one, "Refresh now") say no age, and never a negative one."""
    snap = healthy_snapshot()
    at_time = snap.taken_at + dt.timedelta(seconds=offset_s)
    carried = tuple(CarriedSection(name, at_time) for name in SLOW_COLLECTORS)
    path = write_snapshot(tmp_path / "snap.json", dataclasses.replace(snap, carried=carried))
    monkeypatch.setenv("DBOPS_DASHBOARD_SNAPSHOT_FILE", str(path))
    at = app()
    at.run()
    assert not at.exception, at.exception
    notes = [c.value for c in at.sidebar.caption if "data counts" in c.value]
    assert notes == [
        f"Statements, tables, indexes and data counts: {at_time:%H:%M:%S} UTC{expected}"
    ]


def test_activity_shows_replication_and_its_checks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    healthy = healthy_snapshot()
    shown = _activity(healthy, tmp_path, monkeypatch)
    assert "Replication" in shown
    assert "This server primary" in shown
    assert "Standbys streaming 1" in shown
    assert "No replica lags and no slot keeps much WAL." in shown
    assert healthy.database is not None
    gone = SlotStat("standby1", "physical", False, 2 * 1024**3, "extended")
    db = dataclasses.replace(healthy.database, replicas=(), slots=(gone,))
    shown = _activity(dataclasses.replace(healthy, database=db), tmp_path, monkeypatch)
    # The check's own words, as `dbops monitor checks` and the exporter count them.
    assert "slot standby1 keeps 2.0 GB of WAL (its replica is not connected)" in shown
    assert "Standbys streaming 0" in shown


def test_activity_on_a_standby_shows_its_own_lag(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    healthy = healthy_snapshot()
    assert healthy.server is not None
    assert healthy.database is not None
    snap = dataclasses.replace(
        healthy,
        server=dataclasses.replace(healthy.server, in_recovery=True),
        database=dataclasses.replace(healthy.database, replicas=(), slots=(), replica_lag_s=42.5),
    )
    shown = _activity(snap, tmp_path, monkeypatch)
    assert "This server standby" in shown
    assert "Replay lag (this standby) 42.5 s" in shown
    assert "is 42 s behind the primary" in shown


def test_the_pool_page_shows_pgbouncer_and_its_waiting_clients(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pool = BouncerPool("dbops", "dbops_app", 8, 3, 2, 0, 0, 12.5, "transaction")
    traffic = BouncerDatabase("dbops", 1_000, 2_000, 10, 20, 1.5, 1.0, 0.25, 0.001, 0.0)
    snap = dataclasses.replace(
        healthy_snapshot(),
        bouncer=BouncerStat(pools=(pool,), databases=(traffic,), version="PgBouncer 1.18.0"),
    )
    at = _page(snap, "views/pool.py", tmp_path, monkeypatch)
    shown = texts(at)
    assert "PgBouncer" in shown
    assert "PgBouncer 1.18.0: its pools" in shown
    assert "pgbouncer pool dbops/dbops_app: 3 clients waiting, the oldest for 12.5 s" in shown
    # Without a watched bouncer the section is not there at all.
    unwatched = dataclasses.replace(healthy_snapshot(), bouncer=None)
    assert "PgBouncer" not in texts(_page(unwatched, "views/pool.py", tmp_path, monkeypatch))


def test_activity_names_the_patroni_leader_and_a_member_down(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    healthy = healthy_snapshot()
    shown = _activity(healthy, tmp_path, monkeypatch)
    assert "Patroni leader (the primary) node1 at 10.0.0.1:5432" in shown
    assert healthy.ha is not None
    leader, standby = healthy.ha.members
    down = dataclasses.replace(standby, state="stopped", lag_bytes=None)
    snap = dataclasses.replace(healthy, ha=dataclasses.replace(healthy.ha, members=(leader, down)))
    shown = _activity(snap, tmp_path, monkeypatch)
    assert "1 of 2 Patroni members running; down: node2 (stopped)" in shown


def test_the_pool_page_shows_where_a_processs_reads_ran(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    routing = ReplicaRouting(
        replica_reads=900,
        primary_reads=100,
        waited=40,
        fallbacks=(CountBy("behind", 60), CountBy("failed", 40)),
        replicas=(
            ReplicaRoute("r1", True, "ok", 0.004),
            ReplicaRoute("r2", False, "lagging 7.2 s", 7.2),
        ),
    )
    healthy = healthy_snapshot()
    assert healthy.processes
    first, *rest = healthy.processes
    snap = dataclasses.replace(
        healthy, processes=(dataclasses.replace(first, routing=(routing,)), *rest)
    )
    shown = texts(_page(snap, "views/pool.py", tmp_path, monkeypatch))
    assert "Read replicas" in shown
    assert "Reads on replicas 900" in shown
    assert "Share on replicas 90.0%" in shown
    assert "On the primary: 60 behind, 40 failed" in shown
    assert "lagging 7.2 s" in shown
    # A process without replicas has no such section.
    assert "Read replicas" not in texts(_page(healthy, "views/pool.py", tmp_path, monkeypatch))
