"""The exporter on a real database: read-only role, slow database, promtool, Prometheus."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import errors as pg_errors
from psycopg import sql

from dbops.config import Settings
from dbops.db import Database, EmbeddedCluster, open_database
from dbops.exporter import SCRAPE_TIMEOUT, ExporterServer, make_server
from dbops.monitoring.collect import COLLECTORS
from tests.fixtures.db import DOMAIN_TABLES, make_settings

PROMTOOL = shutil.which("promtool")
PROMETHEUS = shutil.which("prometheus")


def _scrape(server: ExporterServer) -> str:
    with urllib.request.urlopen(f"{server.url}/metrics", timeout=30) as resp:
        return resp.read().decode()


@pytest.fixture
def exporter_role(pg_cluster: EmbeddedCluster, migrated: str) -> Iterator[str]:
    """A LOGIN role with only pg_monitor and SELECT on the dbops tables (dropped after)."""
    name = f"exp_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_cluster.libpq_url(), autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN NOSUPERUSER IN ROLE pg_monitor").format(
                sql.Identifier(name)
            )
        )
        conn.execute(
            sql.SQL("GRANT SELECT ON {} TO {}").format(
                sql.SQL(", ").join(sql.Identifier(t) for t in DOMAIN_TABLES), sql.Identifier(name)
            )
        )
    yield name
    with psycopg.connect(pg_cluster.libpq_url(), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(name)))
        conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))


@pytest.fixture
def role_db(pg_cluster: EmbeddedCluster, exporter_role: str) -> Iterator[Database]:
    url = pg_cluster.url().replace("postgres@", f"{exporter_role}@", 1)
    database = open_database(make_settings(url), url)
    yield database
    database.close()


def test_exporter_role_reads_statistics_and_cannot_write(
    role_db: Database, pg_cluster: EmbeddedCluster, exporter_role: str
) -> None:
    # The server snapshots the database it is given, never the settings' URL (nothing listens
    # on port 1): a server that opened its own would answer dbops_up 0.
    settings = make_settings("postgresql://nobody@127.0.0.1:1/none", exporter_min_interval_s=0.0)
    with make_server(settings, port=0, db=role_db).start() as server:
        text = _scrape(server)
    assert "dbops_up 1.0" in text
    assert 'dbops_data_users{state="live"}' in text
    assert 'dbops_index_scans_total{index="pk_users",schema="public",table="users"}' in text
    assert "dbops_database_xid_age{" in text
    assert 'dbops_collector_errors_total{collector="data"} 0.0' in text
    assert 'dbops_collector_errors_total{collector="tables"} 0.0' in text
    libpq = pg_cluster.libpq_url().replace("postgres@", f"{exporter_role}@", 1)
    with psycopg.connect(libpq) as conn:
        with pytest.raises(pg_errors.InsufficientPrivilege, match="permission denied"):
            conn.execute("INSERT INTO users (email) VALUES ('x@example.com')")
        conn.rollback()
        with pytest.raises(pg_errors.InsufficientPrivilege):
            conn.execute("DELETE FROM teams")
        conn.rollback()
        assert conn.execute("SELECT count(*) FROM pg_stat_activity WHERE query <> ''").fetchone()


def test_a_slow_database_answers_within_the_budget(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A per-scrape collector that waits on the server (2 s) cannot hold a scrape past its
    0.5 s budget: the scrape answers ``dbops_up 0`` with the previous snapshot, stale."""
    settings = db.settings.model_copy(
        update={
            "exporter_scrape_budget_s": 0.5,
            "exporter_min_interval_s": 0.0,
            "monitor_collector_timeout_ms": 5_000,
        }
    )
    original = COLLECTORS["activity.connections"]

    def waits(conn: psycopg.Connection[Any], **kwargs: Any) -> Any:
        conn.execute("SELECT pg_sleep(2)")
        return original(conn, **kwargs)

    with make_server(settings, port=0, db=db).start() as server:
        assert "dbops_up 1.0" in _scrape(server)
        monkeypatch.setitem(COLLECTORS, "activity.connections", waits)
        started = time.perf_counter()
        text = _scrape(server)
        elapsed = time.perf_counter() - started
        monkeypatch.undo()
        assert elapsed < 1.5, f"scrape took {elapsed:.2f} s with a 0.5 s budget"
        assert "dbops_up 0.0" in text
        assert "dbops_snapshot_stale 1.0" in text
        assert f'dbops_collector_errors_total{{collector="{SCRAPE_TIMEOUT}"}} 1.0' in text
        assert "dbops_database_size_bytes{" in text  # the previous snapshot, marked stale
        deadline = time.monotonic() + 10
        while "dbops_up 1.0" not in _scrape(server):
            assert time.monotonic() < deadline, "exporter did not recover"
            time.sleep(0.1)


def _age(text: str, collector: str) -> float:
    prefix = f'dbops_collector_age_seconds{{collector="{collector}"}} '
    line = next(line for line in text.splitlines() if line.startswith(prefix))
    return float(line.removeprefix(prefix))


def test_a_locked_table_ages_the_slow_parts_and_leaves_the_scrape_up(
    db: Database, pg_cluster: EmbeddedCluster
) -> None:
    """The data collector (a slow one, refreshed in the background) waits behind a lock on
    ``users``: scrapes stay fast and up, serving its last part with a growing age; once the
    lock goes, a refresh brings the age back down."""
    settings = db.settings.model_copy(
        update={
            "exporter_scrape_budget_s": 0.5,
            "exporter_min_interval_s": 0.0,
            "exporter_slow_interval_s": 0.2,
            "monitor_collector_timeout_ms": 5_000,
        }
    )
    with make_server(settings, port=0, db=db).start() as server:
        first = _scrape(server)
        assert "dbops_up 1.0" in first
        assert _age(first, "data") < 0.2
        assert "dbops_data_users{" in first
        with psycopg.connect(pg_cluster.libpq_url()) as locker:
            locker.execute("LOCK TABLE users IN ACCESS EXCLUSIVE MODE")
            time.sleep(0.3)
            ages = []
            for _ in range(4):
                started = time.perf_counter()
                text = _scrape(server)
                assert time.perf_counter() - started < 1.0
                assert "dbops_up 1.0" in text
                assert "dbops_data_users{" in text  # the carried part
                ages.append(_age(text, "data"))
                time.sleep(0.2)
            locker.rollback()
        assert ages == sorted(ages)
        assert ages[-1] > 0.8
        deadline = time.monotonic() + 10
        while _age(_scrape(server), "data") > 0.5:
            assert time.monotonic() < deadline, "the slow parts were not refreshed after the lock"
            time.sleep(0.1)


@pytest.mark.skipif(PROMTOOL is None, reason="promtool missing: install Debian's prometheus")
def test_promtool_check_metrics_on_a_live_scrape(db: Database) -> None:
    with make_server(db.settings, port=0, db=db).start() as server:
        text = _scrape(server)
    assert PROMTOOL is not None
    result = subprocess.run(
        [PROMTOOL, "check", "metrics"],
        input=text,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _query(port: int, expr: str) -> list[dict[str, object]]:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=5) as resp:
        body = json.load(resp)
    assert body["status"] == "success"
    result: list[dict[str, object]] = body["data"]["result"]
    return result


@pytest.mark.slow
@pytest.mark.skipif(PROMETHEUS is None, reason="prometheus missing: install Debian's prometheus")
def test_real_prometheus_scrapes_the_exporter(db: Database, tmp_path: Path) -> None:
    settings: Settings = db.settings.model_copy(update={"exporter_min_interval_s": 0.5})
    with make_server(settings, port=0, db=db).start() as server:
        port = _free_port()
        config = tmp_path / "prometheus.yml"
        config.write_text(
            "global: {scrape_interval: 1s, scrape_timeout: 1s, evaluation_interval: 1s}\n"
            "scrape_configs:\n"
            f"  - job_name: dbops\n    static_configs: [{{targets: ['127.0.0.1:{server.port}']}}]\n"
        )
        assert PROMETHEUS is not None
        log = (tmp_path / "prometheus.log").open("w")
        proc = subprocess.Popen(
            [
                PROMETHEUS,
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
        try:
            deadline = time.monotonic() + 15
            up: list[dict[str, object]] = []
            index: list[dict[str, object]] = []
            while time.monotonic() < deadline:
                assert proc.poll() is None, (tmp_path / "prometheus.log").read_text()[-2000:]
                try:
                    up = _query(port, "dbops_up")
                    index = _query(port, 'dbops_index_scans_total{index="pk_users"}')
                except OSError:
                    up = []
                if up and index:
                    break
                time.sleep(0.3)
            assert up, "Prometheus never stored dbops_up"
            assert up[0]["value"][1] == "1"  # type: ignore[index]
            assert index
            assert index[0]["metric"]["table"] == "users"  # type: ignore[index]
        finally:
            proc.terminate()
            proc.wait(timeout=10)
            log.close()
