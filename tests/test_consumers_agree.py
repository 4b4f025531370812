"""One snapshot, one truth: checks, alert rules, exporter, dashboard and CLI agree.

The checks (``dbops.monitoring.checks``) are the one definition of each derived fact. Here the
same snapshot goes to each consumer and what each says is compared with the checks' findings:

- the **alert rules**, evaluated by Prometheus' own rule engine (``promtool test rules``) on the
  exporter's samples of the snapshot, with the default settings: each alert fires exactly when
  its check finds a problem, on both sides of every threshold;
- the **exporter**'s ``dbops_check_status`` and ``dbops_check_findings``;
- the **dashboard**'s Overview (findings, the application's pool) in AppTest;
- the **CLI**'s snapshot summary (index counts).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from dbops.config import Settings
from dbops.exporter import snapshot_metrics
from dbops.monitoring.checks import Finding, Severity, evaluate, problems, worst_first
from dbops.monitoring.snapshot import (
    BouncerPool,
    BouncerStat,
    HaMember,
    HaStat,
    PoolStat,
    ReplicaStat,
    SlotStat,
    Snapshot,
    XidAgeStat,
)
from tests.fixtures.snapshots import app_process, degraded_snapshot, healthy_snapshot

ROOT = Path(__file__).resolve().parents[1]
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
PROMTOOL = shutil.which("promtool")
#: The alert rules hold the default settings' numbers.
DEFAULTS = Settings(_env_file=None)

#: Alert -> when it must fire, from the checks' findings.
FIRES: dict[str, Callable[[list[Finding]], bool]] = {
    "DbopsPoolSaturated": lambda f: bool(problems(f, "pool_saturation")),
    "DbopsPgbouncerWaiting": lambda f: bool(problems(f, "bouncer_waiting")),
    "DbopsPatroniNoLeader": lambda f: any(
        x.severity is Severity.CRITICAL for x in problems(f, "ha_cluster")
    ),
    "DbopsPatroniDegraded": lambda f: any(
        x.severity is Severity.WARNING for x in problems(f, "ha_cluster")
    ),
    "DbopsReplicationLag": lambda f: any(
        x.severity is Severity.CRITICAL for x in problems(f, "replication_lag")
    ),
    "DbopsReplicationSlotWarning": lambda f: bool(problems(f, "replication_slots")),
    "DbopsReplicationSlotCritical": lambda f: any(
        x.severity is Severity.CRITICAL for x in problems(f, "replication_slots")
    ),
    "DbopsWraparoundWarning": lambda f: bool(problems(f, "wraparound")),
    "DbopsWraparoundCritical": lambda f: any(
        x.severity is Severity.CRITICAL for x in problems(f, "wraparound")
    ),
    "DbopsBackupStale": lambda f: bool(problems(f, "backup_stale")),
    "DbopsBackupUnverified": lambda f: bool(problems(f, "backup_unverified")),
    "DbopsCriticalFinding": lambda f: any(x.severity is Severity.CRITICAL for x in f),
}
#: The exporter's samples those alerts read.
INPUTS = (
    "dbops_pool_",
    "dbops_pgbouncer_",
    "dbops_patroni_",
    "dbops_replication_lag_seconds",
    "dbops_replication_slot_",
    "dbops_standby_replay_lag_seconds",
    "dbops_database_wraparound_ratio",
    "dbops_backup_",
    "dbops_check_status",
)


def _wraparound(snap: Snapshot, ratio: float) -> Snapshot:
    assert snap.database is not None
    age = round(ratio * 2**31)
    xid = XidAgeStat("dbops", age, 0)
    return dataclasses.replace(snap, database=dataclasses.replace(snap.database, xid_ages=(xid,)))


def _replica(snap: Snapshot, lag_s: float) -> Snapshot:
    assert snap.database is not None
    replica = ReplicaStat("standby1", "10.0.0.2", "streaming", "async", 1, lag_s, lag_s, lag_s)
    db = dataclasses.replace(snap.database, replicas=(replica,))
    return dataclasses.replace(snap, database=db)


def _slot(snap: Snapshot, retained: int | None, wal_status: str = "extended") -> Snapshot:
    assert snap.database is not None
    slot = SlotStat("dbops_replica_r1", "physical", False, retained, wal_status)
    db = dataclasses.replace(snap.database, slots=(slot,))
    return dataclasses.replace(snap, database=db)


def _bouncer(snap: Snapshot, max_wait_s: float) -> Snapshot:
    pool = BouncerPool("dbops", "dbops_app", 8, 3, 4, 0, 0, max_wait_s, "transaction")
    return dataclasses.replace(snap, bouncer=BouncerStat(pools=(pool,), databases=()))


def _ha(snap: Snapshot, *members: tuple[str, str]) -> Snapshot:
    """A Patroni cluster of ``(role, state)`` members."""
    found = tuple(
        HaMember(f"node{i}", role, state, "10.0.0.1", 5432 + i, 1, None if role == "leader" else 0)
        for i, (role, state) in enumerate(members, start=1)
    )
    return dataclasses.replace(snap, ha=HaStat(members=found, source="http://10.0.0.1:8008"))


def _standby(snap: Snapshot, lag_s: float) -> Snapshot:
    assert snap.database is not None
    return dataclasses.replace(
        snap, database=dataclasses.replace(snap.database, replica_lag_s=lag_s)
    )


def _pool(snap: Snapshot, in_use: int, *, waiting: int = 0, errors: int = 0) -> Snapshot:
    pool = PoolStat("dbops", 1, 20, 20, 20 - in_use, waiting, 100, 0, 0, errors, 0, 0)
    return dataclasses.replace(snap, processes=(app_process(pool),))


def _backups(snap: Snapshot, **changes: Any) -> Snapshot:
    assert snap.backups is not None
    return dataclasses.replace(snap, backups=dataclasses.replace(snap.backups, **changes))


def _cases() -> dict[str, Snapshot]:
    h = healthy_snapshot()
    max_age, verified_age = DEFAULTS.backup_max_age_s, DEFAULTS.backup_verified_max_age_s
    lag = DEFAULTS.check_replication_lag_critical_s
    warn_bytes = DEFAULTS.check_slot_retained_warning_bytes
    crit_bytes = DEFAULTS.check_slot_retained_critical_bytes
    return {
        "healthy": h,
        "degraded": degraded_snapshot(),
        "wraparound at the warning": _wraparound(h, DEFAULTS.check_wraparound_warning),
        "wraparound under the warning": _wraparound(h, DEFAULTS.check_wraparound_warning - 1e-6),
        "wraparound at the critical": _wraparound(h, DEFAULTS.check_wraparound_critical),
        "wraparound under the critical": _wraparound(h, DEFAULTS.check_wraparound_critical - 1e-6),
        "replica at the critical lag": _replica(h, lag),
        "replica under the critical lag": _replica(h, lag - 0.001),
        "bouncer wait at the warning": _bouncer(h, DEFAULTS.check_bouncer_wait_warning_s),
        "bouncer wait under the warning": _bouncer(
            h, DEFAULTS.check_bouncer_wait_warning_s - 0.001
        ),
        "patroni leader and sync standby": _ha(
            h, ("leader", "running"), ("sync_standby", "streaming")
        ),
        "patroni standby stopped": _ha(h, ("leader", "running"), ("replica", "stopped")),
        "patroni without a leader": _ha(h, ("replica", "streaming"), ("sync_standby", "streaming")),
        "patroni leader crashed": _ha(h, ("leader", "crashed"), ("sync_standby", "streaming")),
        "slot at the warning": _slot(h, warn_bytes),
        "slot under the warning": _slot(h, warn_bytes - 1),
        "slot at the critical": _slot(h, crit_bytes),
        "slot under the critical": _slot(h, crit_bytes - 1),
        "slot that lost its WAL": _slot(h, None, "lost"),
        "standby at the critical lag": _standby(h, lag),
        "standby under the critical lag": _standby(h, lag - 0.001),
        "pool at the warning share": _pool(h, round(20 * DEFAULTS.check_pool_saturation_warning)),
        "pool under the warning share": _pool(
            h, round(20 * DEFAULTS.check_pool_saturation_warning) - 1
        ),
        "pool with a waiting request": _pool(h, 2, waiting=1),
        "pool with a failed checkout": _pool(h, 2, errors=1),
        "newest backup at the age limit": _backups(h, newest_age_s=max_age),
        "newest backup past the age limit": _backups(h, newest_age_s=max_age + 1),
        "verified backup at the age limit": _backups(h, verified_age_s=verified_age),
        "verified backup past the age limit": _backups(h, verified_age_s=verified_age + 1),
        "last drill failed": _backups(h, last_drill_ok=False),
    }


CASES = _cases()


def _series(snap: Snapshot) -> list[dict[str, str]]:
    """The exporter's samples the alerts read, constant for 45 minutes."""
    out = []
    for family in snapshot_metrics(snap, DEFAULTS):
        for sample in family.samples:
            if not sample.name.startswith(INPUTS):
                continue
            labels = {"instance": "db1", **sample.labels}
            inner = ",".join(
                f'{k}="{v.replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"'
                for k, v in sorted(labels.items())
            )
            out.append({"series": f"{sample.name}{{{inner}}}", "values": f"{sample.value!r}x45"})
    return out


@pytest.mark.skipif(PROMTOOL is None, reason="promtool is not installed")
def test_each_alert_fires_exactly_when_its_check_finds_a_problem(tmp_path: Path) -> None:
    tests = []
    expected: dict[str, dict[str, bool]] = {}
    for name, snap in CASES.items():
        findings = evaluate(snap, DEFAULTS)
        expected[name] = {alert: fires(findings) for alert, fires in FIRES.items()}
        tests.append(
            {
                "name": name,
                "interval": "1m",
                "input_series": _series(snap),
                "promql_expr_test": [
                    {
                        "expr": f'(count(ALERTS{{alertname="{alert}",alertstate="firing"}}) '
                        "> bool 0) or vector(0)",
                        "eval_time": "40m",
                        "exp_samples": [{"labels": "{}", "value": int(fire)}],
                    }
                    for alert, fire in expected[name].items()
                ],
            }
        )
    # Both sides of each threshold are there: the cases make each alert fire and not fire.
    for alert in FIRES:
        assert {e[alert] for e in expected.values()} == {True, False}, alert
    shutil.copy(ALERTS, tmp_path / "alerts.yml")
    # JSON is YAML: no quoting of label values by hand.
    (tmp_path / "agree.yml").write_text(
        json.dumps({"rule_files": ["alerts.yml"], "evaluation_interval": "1m", "tests": tests})
    )
    assert PROMTOOL is not None
    result = subprocess.run(
        [PROMTOOL, "test", "rules", "agree.yml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


@pytest.mark.parametrize("name", ["healthy", "degraded"])
def test_the_exporter_counts_the_checks_findings(name: str) -> None:
    snap = CASES[name]
    findings = evaluate(snap, DEFAULTS)
    families = {f.name: f for f in snapshot_metrics(snap, DEFAULTS)}
    counted = {
        (s.labels["check"], s.labels["severity"]): s.value
        for s in families["dbops_check_findings"].samples
    }
    by_check = Counter((f.check, f.severity.value) for f in problems(findings))
    for (check, severity), n in counted.items():
        if severity != "ok":
            assert n == by_check[(check, severity)], (check, severity)
    worst = {
        s.labels["check"]: s.labels["severity"]
        for s in families["dbops_check_status"].samples
        if s.value == 1.0
    }
    for check in {f.check for f in findings}:
        mine = [f.severity for f in findings if f.check == check]
        assert worst[check] == max(mine, key=lambda s: s.rank).value, check


@pytest.mark.slow
def test_the_dashboard_and_the_cli_say_what_the_checks_say(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from dashboard import data
    from dbops.cli._render import print_snapshot
    from tests.dashboard.conftest import app, write_snapshot

    snap = CASES["degraded"]
    findings = evaluate(snap, DEFAULTS)
    shown = Counter((f.check, f.severity.value) for f in problems(findings))
    monkeypatch.setenv(
        "DBOPS_DASHBOARD_SNAPSHOT_FILE", str(write_snapshot(tmp_path / "s.json", snap))
    )
    data.close_all()
    try:
        at = app()
        at.run()
        assert not at.exception, at.exception
        table = at.dataframe[0].value
        assert Counter(zip(table["check"], table["severity"], strict=True)) == shown
        # Worst first, in the checks' order within a severity (checks.worst_first).
        rows = list(zip(table["severity"], table["check"], table["message"], strict=True))
        ordered = worst_first(problems(findings))
        assert rows == [(f.severity.value, f.check, f.message) for f in ordered]
        pools = snap.app_pools()
        metrics = {m.label: m.value for m in at.metric}
        in_use, waiting = sum(p.in_use() for p in pools), sum(p.waiting for p in pools)
        assert metrics["App pool in use / waiting"] == f"{in_use} / {waiting}"
    finally:
        data.close_all()
    print_snapshot(snap, findings)
    out = capsys.readouterr().out
    counts = Counter(f.check for f in problems(findings))
    assert (
        f"{counts['unused_indexes']} unused, {counts['duplicate_indexes']} duplicate, "
        f"{counts['invalid_indexes']} invalid"
    ) in out


def test_the_cases_sit_where_they_say() -> None:
    """The boundary cases are at the settings' numbers (a case off by one proves nothing)."""
    at = evaluate(CASES["newest backup at the age limit"], DEFAULTS)
    past = evaluate(CASES["newest backup past the age limit"], DEFAULTS)
    assert not problems(at, "backup_stale")
    assert problems(past, "backup_stale")
    assert timedelta(seconds=DEFAULTS.backup_max_age_s) == timedelta(hours=26)
