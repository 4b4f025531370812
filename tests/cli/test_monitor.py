"""`dbops exporter` and `dbops monitor snapshot|checks` against a real test database."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest
from typer.testing import CliRunner, Result

from dbops.cli import app
from dbops.config import to_libpq_url
from dbops.db import EmbeddedCluster
from dbops.monitoring import Snapshot

runner = CliRunner()
DBOPS_SCRIPT = Path(sys.executable).parent / "dbops"


def invoke(*args: str) -> Result:
    return runner.invoke(app, list(args), env={"COLUMNS": "240"})


@pytest.fixture(autouse=True)
def _isolated_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No `.env` or `.dbops/` of the checkout is read by the CLI under test."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def url(mon_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """DATABASE_URL is a fresh database with pg_stat_statements."""
    monkeypatch.setenv("DATABASE_URL", mon_url)
    return mon_url


@pytest.fixture
def slow_workload(url: str) -> str:
    """hypopg, a 50k-row table without secondary index, and a slow query on it."""
    with psycopg.connect(to_libpq_url(url), autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS hypopg")
        conn.execute(
            "CREATE TABLE cli_orders AS SELECT g AS id, g % 5000 AS customer_id, "
            "repeat('x', 40) AS note FROM generate_series(1, 50000) AS g"
        )
        conn.execute("ANALYZE cli_orders")
        for i in range(5):
            conn.execute("SELECT * FROM cli_orders WHERE customer_id = %s", [i], prepare=False)
    return url


# -------------------------------------------------------------------------------- exporter
def _exporter(env: dict[str, str], cwd: Path | None = None) -> subprocess.Popen[str]:
    """`dbops exporter --port 0` as a user starts it in a terminal (stderr piped)."""
    return subprocess.Popen(
        [str(DBOPS_SCRIPT), "exporter", "--port", "0"],
        preexec_fn=_ctrl_c_works,
        env=env,
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def _ctrl_c_works() -> None:
    """In the child: SIGINT as a terminal gives it, whatever this test process inherited (a
    suite started in the background by a shell without job control ignores SIGINT, and Python
    then never raises KeyboardInterrupt)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _first_line_then_drain(proc: subprocess.Popen[str]) -> str:
    """The first stderr line; the rest is read in the background.

    An exporter that logs (warnings about the server log, access events) would otherwise fill
    the unread pipe and block on its next write, at Ctrl-C for instance.
    """
    assert proc.stderr is not None
    first = proc.stderr.readline()
    threading.Thread(target=proc.stderr.read, daemon=True).start()
    return first


def _scrape(proc: subprocess.Popen[str], before: Callable[[], object] | None = None) -> str:
    """The page at the URL the exporter announced on its first line ("serving URL ...")."""
    line = _first_line_then_drain(proc)
    assert line.startswith("serving http://127.0.0.1:"), line
    if before is not None:
        before()
    with urllib.request.urlopen(line.split()[1], timeout=10) as response:
        return str(response.read().decode())


def test_ctrl_c_stops_the_exporter_while_a_collection_waits_on_a_lock(url: str) -> None:
    """A collection stuck behind a lock (up to its 30 s timeout) never delays Ctrl-C."""
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "DBOPS_EXPORTER_SCRAPE_BUDGET_S": "0.5",
        "DBOPS_EXPORTER_MIN_INTERVAL_S": "0",
        "DBOPS_MONITOR_COLLECTOR_TIMEOUT_MS": "30000",
    }
    with psycopg.connect(to_libpq_url(url), autocommit=True) as conn:
        conn.execute("CREATE TABLE cli_locked (id int)")
    with (
        _exporter(env) as proc,
        psycopg.connect(to_libpq_url(url)) as locker,
    ):
        try:
            assert proc.stderr is not None
            # The tables collector sizes every table: it waits behind this lock.
            body = _scrape(
                proc,
                before=lambda: locker.execute("LOCK TABLE cli_locked IN ACCESS EXCLUSIVE MODE"),
            )
            assert "\ndbops_up 0.0\n" in body, body[:2000]  # the budget ran out
            proc.send_signal(signal.SIGINT)
            assert proc.wait(timeout=5) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
            locker.rollback()


def test_exporter_serves_metrics_until_interrupted(url: str) -> None:
    env = {**os.environ, "DATABASE_URL": url, "COLUMNS": "240"}
    with _exporter(env) as proc:
        try:
            assert proc.stderr is not None
            body = _scrape(proc)
            assert "\ndbops_up 1.0\n" in body, body[:2000]
            assert "dbops_scrape_duration_seconds" in body
            proc.send_signal(signal.SIGINT)
            assert proc.wait(timeout=15) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def test_read_only_monitor_commands_never_start_a_stopped_cluster(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("DBOPS_HOME", str(home))
    cluster = EmbeddedCluster(home, database="dbops")
    for args in (
        ["exporter", "--port", "0"],
        ["monitor", "snapshot"],
        ["monitor", "checks"],
        ["monitor", "explain", "SELECT 1"],
    ):
        result = invoke(*args)
        assert result.exit_code == 3, result.output
        assert "no embedded cluster" in result.stderr
        assert not cluster.initialized(), f"`dbops {' '.join(args)}` created the cluster"


# -------------------------------------------------------------------------------- snapshot
def test_snapshot_json_is_the_snapshot(url: str) -> None:
    result = invoke("monitor", "snapshot", "--json")
    assert result.exit_code == 0, result.output
    snap = Snapshot.from_json(result.stdout)
    assert snap.to_json() == json.dumps(json.loads(result.stdout))
    assert snap.server is not None
    assert f"/{snap.server.database}?" in url
    assert snap.statements is not None
    assert snap.advice is None  # off unless asked
    assert snap.error("advice") is None


def test_snapshot_text_summary(url: str) -> None:
    with psycopg.connect(to_libpq_url(url), autocommit=True) as conn:
        conn.execute("CREATE TABLE cli_t (id int, v int)")
        conn.execute("CREATE INDEX cli_t_v ON cli_t (v)")
        conn.execute("CREATE INDEX cli_t_v_again ON cli_t (v)")
    result = invoke("monitor", "snapshot")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "PostgreSQL " in out
    # Only the superuser ran statements here: no application statement to list by default.
    assert "top 5 application statements" not in out
    everyone = invoke("monitor", "snapshot", "--all").stdout
    assert "top 5 statements by total time" in everyone
    assert "1 duplicate, 0 invalid" in out
    assert "connections" in out
    assert "errors" in out
    # The counts are the checks' (`dbops monitor checks` says the same).
    checks = json.loads(invoke("monitor", "checks", "--json").stdout)["findings"]
    problems = [f["check"] for f in checks if f["severity"] != "ok"]
    duplicates, unused = problems.count("duplicate_indexes"), problems.count("unused_indexes")
    assert f"{unused} unused, {duplicates} duplicate, 0 invalid" in out


def test_snapshot_fits_80_columns_and_wide_shows_whole_queries(url: str) -> None:
    columns = ", ".join(f"{n} AS column_number_{n}" for n in range(40))
    long = f"SELECT {columns}, pg_sleep(0.02)"  # slow enough to lead the top statements
    with psycopg.connect(to_libpq_url(url), autocommit=True) as conn:
        for _ in range(20):
            conn.execute(long)
    # --all: the superuser's statements are no application's.
    narrow = runner.invoke(app, ["monitor", "snapshot", "--all"], env={"COLUMNS": "80"})
    assert narrow.exit_code == 0, narrow.output
    lines = narrow.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80, narrow.stdout
    # One line, cut to what the terminal leaves after the numbers ...
    row = next(line for line in lines if "SELECT $1 AS column_" in line)
    assert "…" in row
    # ... which keep their columns (they collapsed to nothing before): 20 calls, a mean of at
    # least 20 ms.
    cells = [c.strip() for c in row.split("│")[1:-1]]
    assert cells[1] == "20", row
    assert float(cells[3]) >= 20.0, row
    wide = runner.invoke(app, ["monitor", "snapshot", "--all", "--wide"], env={"COLUMNS": "80"})
    assert wide.exit_code == 0, wide.output
    assert "column_number_20" in wide.stdout  # folded over several lines, nothing cut


def test_snapshot_with_advice_shows_the_verified_index(slow_workload: str) -> None:
    result = invoke("monitor", "snapshot", "--json", "--advice")
    assert result.exit_code == 0, result.output
    snap = Snapshot.from_json(result.stdout)
    assert snap.advice is not None
    assert [s.columns for s in snap.advice.suggestions if s.table == "cli_orders"] == [
        ("customer_id",)
    ]
    text = invoke("monitor", "snapshot", "--advice")
    assert text.exit_code == 0, text.output
    assert "suggested indexes (planner-verified)" in text.stdout
    assert "CREATE INDEX CONCURRENTLY" in text.stdout


# ---------------------------------------------------------------------------------- checks
def _findings(result: Result) -> dict[str, list[dict[str, str | None]]]:
    document = json.loads(result.stdout)
    out: dict[str, list[dict[str, str | None]]] = {}
    for f in document["findings"]:
        out.setdefault(f["check"], []).append(f)
    return out


def test_checks_exit_0_on_warnings_and_4_on_a_critical_finding(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    healthy = invoke("monitor", "checks", "--json")
    assert healthy.exit_code == 0, healthy.output
    assert json.loads(healthy.stdout)["worst"] != "critical"

    # Any connection is a warning: still exit 0.
    monkeypatch.setenv("DBOPS_CHECK_CONNECTIONS_WARNING", "0.0001")
    warned = invoke("monitor", "checks", "--json")
    assert warned.exit_code == 0, warned.output
    assert json.loads(warned.stdout)["worst"] == "warning"
    assert [f["severity"] for f in _findings(warned)["connections"]] == ["warning"]

    # Any connection is critical: exit 4, in JSON and in the table.
    monkeypatch.setenv("DBOPS_CHECK_CONNECTIONS_CRITICAL", "0.0001")
    critical = invoke("monitor", "checks", "--json")
    assert critical.exit_code == 4, critical.output
    assert json.loads(critical.stdout)["worst"] == "critical"
    assert [f["severity"] for f in _findings(critical)["connections"]] == ["critical"]
    table = invoke("monitor", "checks")
    assert table.exit_code == 4, table.output
    first = next(line for line in table.stdout.splitlines() if "connections" in line)
    assert "critical" in first
    assert "pooler" in table.stdout  # the hint column


def test_checks_help_documents_the_exit_code() -> None:
    result = invoke("monitor", "checks", "--help")
    assert result.exit_code == 0
    assert "4 when any finding is" in " ".join(result.stdout.split())


def test_checks_with_advice_reports_the_suggestion(slow_workload: str) -> None:
    plain = _findings(invoke("monitor", "checks", "--json"))
    assert "suggested_indexes" not in plain

    result = invoke("monitor", "checks", "--json", "--advice")
    assert result.exit_code == 0, result.output  # a suggestion is a warning
    found = [
        f for f in _findings(result)["suggested_indexes"] if "cli_orders" in (f["message"] or "")
    ]
    assert len(found) == 1
    assert found[0]["severity"] == "warning"
    assert "(customer_id)" in (found[0]["message"] or "")
    assert (found[0]["hint"] or "").startswith("CREATE INDEX CONCURRENTLY ")


def test_checks_with_advice_but_no_hypopg_reports_a_collector_error(url: str) -> None:
    result = invoke("monitor", "checks", "--json", "--advice")
    assert result.exit_code == 0, result.output
    findings = _findings(result)
    assert "suggested_indexes" not in findings
    (error,) = [f for f in findings["collector_errors"] if f["subject"] == "advice"]
    assert "CREATE EXTENSION hypopg" in (error["hint"] or "")


# -------------------------------------------------------------------- explain, capture, prune
def test_explain_prints_the_plan_and_json(url: str) -> None:
    with psycopg.connect(to_libpq_url(url), autocommit=True) as conn:
        conn.execute("CREATE TABLE cli_ex (id int)")
    result = invoke("monitor", "explain", "SELECT * FROM cli_ex WHERE id = 1")
    assert result.exit_code == 0, result.output
    assert "Seq Scan on cli_ex" in result.stdout
    result = invoke("monitor", "explain", "--json", "--analyze", "SELECT count(*) FROM cli_ex")
    assert result.exit_code == 0, result.output
    assert "Execution Time" in json.loads(result.stdout)[0]


def test_explain_refuses_analyze_of_a_write_in_one_line(url: str) -> None:
    with psycopg.connect(to_libpq_url(url), autocommit=True) as conn:
        conn.execute("CREATE TABLE cli_ex (id int)")
    result = invoke("monitor", "explain", "--analyze", "INSERT INTO cli_ex VALUES (1)")
    assert result.exit_code not in (0, 2), result.output
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert "refused for a statement that writes" in result.stderr
    with psycopg.connect(to_libpq_url(url), autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM cli_ex").fetchone() == (0,)


#: Hostile statements for `monitor explain`, by name (the texts are too long for test ids), with
#: the settings of the run and what its one error line says.
HOSTILE = {
    "deep-sum": (
        "SELECT " + "+".join(["1"] * 30_000),
        {},
        "cannot plan this statement: stack depth limit exceeded",
    ),
    "deep-parens": (
        "SELECT " + "(" * 30_000 + "1" + ")" * 30_000,
        {},
        "cannot parse the statement",
    ),
    "too-long": (
        "SELECT 1 -- " + "x" * 5_000,
        {"DBOPS_MONITOR_EXPLAIN_MAX_CHARS": "1000"},
        "the statement has 5,012 characters; explain takes at most 1,000",
    ),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_explain_of_hostile_text_is_one_line_not_a_crash(url: str, case: str) -> None:
    """A 30,000-term expression used to kill the process in the parser (exit 139)."""
    statement, env, says = HOSTILE[case]
    clean = {k: v for k, v in os.environ.items() if not k.startswith("DBOPS_")}
    done = subprocess.run(
        [str(DBOPS_SCRIPT), "monitor", "explain", statement],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**clean, **env, "DATABASE_URL": url, "COLUMNS": "240"},
    )
    assert done.returncode == 1, (done.returncode, done.stderr[-500:])
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: ")
    assert says in lines[0]
    assert len(lines[0]) < 400


def test_capture_twice_then_prune(url: str) -> None:
    assert invoke("migrate").exit_code == 0
    first = invoke("monitor", "capture")
    assert first.exit_code == 0, first.output
    assert "baseline of" in first.stdout
    with psycopg.connect(to_libpq_url(url), autocommit=True) as conn:
        conn.execute("SELECT 1 + 1")
    second = invoke("monitor", "capture")
    assert second.exit_code == 0, second.output
    assert " samples from " in second.stdout
    assert "baseline" not in second.stdout
    pruned = invoke("monitor", "prune")
    assert pruned.exit_code == 0, pruned.output
    assert pruned.stdout.startswith("deleted 0 captures")


def test_the_exporter_reads_as_the_monitor_role_on_the_embedded_cluster(
    pg_cluster: EmbeddedCluster, migrated: str, tmp_path: Path
) -> None:
    """`dbops exporter` on the embedded cluster (no DATABASE_URL) connects as dbops_monitor:
    statistics and the data section's aggregates, no tenant row."""
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL" and "DBOPS_" not in k}
    env |= {
        "DBOPS_HOME": str(pg_cluster.home),
        "DBOPS_EMBEDDED_DATABASE": pg_cluster.database,
        "COLUMNS": "240",
    }
    with _exporter(env, cwd=tmp_path) as proc:
        try:
            assert proc.stderr is not None
            line = _first_line_then_drain(proc)
            assert line.startswith("serving http://127.0.0.1:"), line
            with urllib.request.urlopen(line.split()[1], timeout=30) as response:
                body = response.read().decode()
            proc.send_signal(signal.SIGINT)
            assert proc.wait(timeout=15) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert "\ndbops_up 1.0\n" in body
    assert 'dbops_connections_by_user{user="dbops_monitor"}' in body
    assert 'dbops_collector_errors_total{collector="data"} 0.0' in body
    assert 'dbops_data_users{state="live"}' in body


def test_monitor_dsn_keeps_the_superuser_without_the_role(
    pg_cluster: EmbeddedCluster,
    migrated: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from dbops.cli import _target
    from dbops.config import Settings
    from dbops.db import Dsn
    from dbops.ops.roles import ROLE_NAMES

    dsn = Dsn.parse(pg_cluster.url())
    embedded = Settings(
        _env_file=None, home=pg_cluster.home, embedded_database=urlsplit(migrated).path[1:]
    )
    monitor = _target.monitor_dsn(embedded, dsn)
    assert "dbops_monitor@" in monitor.libpq
    external = Settings(_env_file=None, database_url=pg_cluster.url())
    assert _target.monitor_dsn(external, dsn) is dsn  # the operator's URL, the operator's role
    monkeypatch.setitem(ROLE_NAMES, "monitor", "dbops_monitor_never_created")
    assert _target.monitor_dsn(embedded, dsn) is dsn
    assert "no dbops_monitor role yet" in capsys.readouterr().err
