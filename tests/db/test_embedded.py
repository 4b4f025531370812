"""The embedded cluster: binaries, the session cluster's state and auth, and a full life cycle."""

from __future__ import annotations

import stat
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import make_url

from dbops.config import to_libpq_url
from dbops.db import EmbeddedCluster, find_binaries
from dbops.db import embedded as embedded_module
from dbops.errors import AuthenticationFailed, EmbeddedClusterError, translate_exception

SERVER_ADDRESS = "SELECT host(inet_server_addr()), current_user"
HBA_HOST_METHODS = "SELECT DISTINCT auth_method FROM pg_hba_file_rules WHERE type = 'host'"
PASSWORD_IS_SCRAM = (
    "SELECT rolpassword LIKE 'SCRAM-SHA-256$%%' FROM pg_authid WHERE rolname = 'postgres'"
)
EXTENSION_EXISTS = "SELECT count(*) FROM pg_extension WHERE extname = 'pg_stat_statements'"
STATEMENTS_READABLE = "SELECT count(*) >= 0 FROM pg_stat_statements"


def _one(conn: psycopg.Connection[tuple[object, ...]], query: str) -> object:
    row = conn.execute(query).fetchone()
    assert row is not None
    return row[0]


# ------------------------------------------------------------------ binaries
def test_find_binaries_finds_a_complete_bindir() -> None:
    binaries = find_binaries()
    for name in ("pg_ctl", "initdb", "postgres"):
        assert (binaries.bindir / name).is_file()
        assert Path(binaries.tool(name)) == binaries.bindir / name
    assert binaries.version[:1].isdigit()


def test_no_binaries_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(embedded_module, "_candidate_bindirs", lambda: iter(()))
    with pytest.raises(EmbeddedClusterError) as info:
        find_binaries()
    message = str(info.value)
    assert "Install PostgreSQL" in message
    assert "DATABASE_URL" in message


def test_incomplete_bindir_is_skipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "pg_ctl").write_text("#!/bin/sh\n")
    (tmp_path / "pg_ctl").chmod(0o755)
    monkeypatch.setattr(embedded_module, "_candidate_bindirs", lambda: iter([tmp_path]))
    with pytest.raises(EmbeddedClusterError, match="no PostgreSQL server binaries"):
        find_binaries()


# ------------------------------------------------------- the session cluster
def test_session_cluster_status(pg_cluster: EmbeddedCluster) -> None:
    status = pg_cluster.status()
    assert status.running is True
    assert status.initialized is True
    assert isinstance(status.port, int)
    assert 1024 < status.port < 65536
    assert isinstance(status.pid, int)
    assert status.socket_dir == pg_cluster.socket_dir
    assert (status.socket_dir / f".s.PGSQL.{status.port}").exists()
    assert status.version is not None
    assert status.version.isdigit()


def test_socket_url_has_no_password(pg_cluster: EmbeddedCluster) -> None:
    url = make_url(pg_cluster.url())
    assert url.drivername == "postgresql+psycopg"
    assert url.password is None
    assert url.query["host"] == str(pg_cluster.socket_dir)
    assert pg_cluster.password is not None
    assert pg_cluster.password not in pg_cluster.url()
    assert pg_cluster.password not in pg_cluster.libpq_url()


def test_tcp_url_uses_the_generated_password(pg_cluster: EmbeddedCluster) -> None:
    with psycopg.connect(to_libpq_url(pg_cluster.tcp_url())) as conn:
        assert conn.execute(SERVER_ADDRESS).fetchone() == ("127.0.0.1", "postgres")
        assert _one(conn, PASSWORD_IS_SCRAM) is True
        methods = {row[0] for row in conn.execute(HBA_HOST_METHODS)}
    assert methods == {"scram-sha-256"}


def test_tcp_with_a_wrong_password_is_refused(pg_cluster: EmbeddedCluster) -> None:
    assert pg_cluster.password is not None
    wrong = pg_cluster.tcp_url().replace(pg_cluster.password, "not-the-password", 1)
    with pytest.raises(psycopg.OperationalError) as info:
        psycopg.connect(to_libpq_url(wrong), connect_timeout=5)
    assert "password authentication failed" in str(info.value)
    assert isinstance(translate_exception(info.value), AuthenticationFailed)


def test_ensure_running_is_idempotent(pg_cluster: EmbeddedCluster) -> None:
    pid = pg_cluster.status().pid
    first = pg_cluster.ensure_running()
    second = pg_cluster.ensure_running()
    assert first == second == pg_cluster.url()
    assert pg_cluster.status().pid == pid, "the server was not restarted"


def test_pg_stat_statements_is_preloaded_and_installed(pg_cluster: EmbeddedCluster) -> None:
    with psycopg.connect(pg_cluster.libpq_url()) as conn:
        preload = str(_one(conn, "SHOW shared_preload_libraries"))
        assert "pg_stat_statements" in [lib.strip() for lib in preload.split(",")]
        assert _one(conn, EXTENSION_EXISTS) == 1
        assert _one(conn, STATEMENTS_READABLE) is True


# ------------------------------------------------------------ a new cluster
@pytest.fixture
def fresh_cluster(tmp_path: Path) -> Iterator[EmbeddedCluster]:
    cluster = EmbeddedCluster(tmp_path / "home", database="fresh", durable=False)
    yield cluster
    cluster.destroy()


def test_cluster_life_cycle(fresh_cluster: EmbeddedCluster) -> None:
    cluster = fresh_cluster
    assert cluster.status().initialized is False
    assert cluster.status().running is False

    url = cluster.ensure_running()
    runtime = cluster.datadir.parent
    for name in ("pgdata", "run", "log"):
        assert (runtime / name).is_dir()
    assert cluster.logfile.exists()
    state = cluster.home / "cluster.json"
    assert stat.S_IMODE(state.stat().st_mode) == 0o600
    assert cluster.password is not None
    assert cluster.password not in url
    with psycopg.connect(to_libpq_url(url)) as conn:
        conn.execute("CREATE TABLE kept (id int PRIMARY KEY)")
        conn.execute("INSERT INTO kept VALUES (1), (2)")

    assert cluster.stop() is True
    assert cluster.status().running is False
    assert cluster.stop() is False, "stopping a stopped cluster is a no-op"

    assert cluster.ensure_running() == url
    assert cluster.status().running is True
    with psycopg.connect(to_libpq_url(url)) as conn:
        assert conn.execute("SELECT count(*) FROM kept").fetchone() == (2,)

    cluster.destroy()
    assert not cluster.home.exists()
    assert not runtime.exists()
    assert cluster.status().running is False
