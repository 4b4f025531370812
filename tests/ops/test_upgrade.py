"""The major-version upgrade runbook, as a user runs it: `dbops up` on an old PostgreSQL (14,
15), `dbops db upgrade --to 17`, `dbops migrate`, a backup and its restore drill, with the data
compared to what it was before (docs/versions.md).

The builds come from :mod:`dbops.db.builds` (fetched once into the machine's cache).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner, Result

from dbops.cli import app
from dbops.db import EmbeddedCluster
from dbops.db.builds import fetch
from dbops.errors import EmbeddedClusterError
from dbops.ops.roles.secrets import SECRET_ENTRIES_SQL
from dbops.ops.upgrade import upgrade_cluster

pytestmark = pytest.mark.slow

runner = CliRunner()

#: Rows per table of dbops' schemas: the oracle the upgraded cluster is compared with.
ROWS_SQL = """
SELECT n.nspname || '.' || c.relname, (xpath('/row/c/text()',
       query_to_xml(format('SELECT count(*) AS c FROM %I.%I', n.nspname, c.relname),
                    false, true, '')))[1]::text::bigint
FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace
WHERE c.relkind = 'r' AND n.nspname IN ('public', 'audit', 'archive', 'dbops_monitor')
ORDER BY 1
"""
#: Row-level security as the migrations left it: forced on every table that has it.
FORCED_SQL = """
SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity
FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND c.relkind = 'r' ORDER BY 1
"""


def invoke(*args: str) -> Result:
    return runner.invoke(app, list(args), env={"COLUMNS": "240"})


def _ok(*args: str) -> str:
    result = invoke(*args)
    assert result.exit_code == 0, (args, result.output)
    return result.stdout


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    home = tmp_path / "home"
    monkeypatch.setenv("DBOPS_HOME", str(home))
    yield home
    EmbeddedCluster(home).destroy()


def _facts(cluster: EmbeddedCluster) -> dict[str, object]:
    with psycopg.connect(cluster.libpq_url(cluster.database), autocommit=True) as conn:
        return {
            "rows": conn.execute(ROWS_SQL).fetchall(),
            "rls": conn.execute(FORCED_SQL).fetchall(),
            "roles": conn.execute(
                "SELECT rolname, rolcanlogin FROM pg_roles WHERE rolname LIKE 'dbops%' ORDER BY 1"
            ).fetchall(),
        }


@pytest.mark.parametrize("old", [14, 15])
def test_upgrade_to_17_keeps_everything_and_passes_a_drill(
    old: int, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """14 by ``DBOPS_PG_VERSION``; 15 by the pinned 15 build (``DBOPS_PG_BINDIR``): Debian's 15
    carries PostGIS under ``team_locations``, which 17 here lacks (the refusal test)."""
    if old == 15:
        monkeypatch.setenv("DBOPS_PG_BINDIR", str(fetch(15)))
    else:
        monkeypatch.setenv("DBOPS_PG_VERSION", str(old))
    _ok("up", "--users", "300", "--teams", "40", "--seed", "3", "--no-progress")
    cluster = EmbeddedCluster(home)
    assert cluster.data_major() == old
    before = _facts(cluster)
    assert dict(before["rows"])["public.users"] == 303  # type: ignore[call-overload]

    # The upgrade is asked for explicitly, whatever the setting says.
    out = _ok("db", "upgrade", "--to", "17")
    assert f"upgraded PostgreSQL {old}." in out
    assert " -> 17." in out
    assert cluster.data_major() == 17
    kept = cluster.runtime / f"pgdata.{old}" / "PG_VERSION"
    assert kept.read_text().strip() == str(old)

    if old == 14:  # the setting must follow (or go): 14 is refused for a 17 cluster
        refused = invoke("status")
        assert refused.exit_code != 0
        assert "is PostgreSQL 17, and DBOPS_PG_VERSION asks for 14" in refused.output
        monkeypatch.setenv("DBOPS_PG_VERSION", "17")

    after = _facts(cluster)
    assert after == before
    with psycopg.connect(cluster.libpq_url(cluster.database), autocommit=True) as conn:
        version = conn.execute("SHOW server_version_num").fetchone()
        pgss = conn.execute(
            "SELECT extversion FROM pg_extension WHERE extname = 'pg_stat_statements'"
        ).fetchone()
        secrets = conn.execute(SECRET_ENTRIES_SQL).fetchall()
    assert version is not None
    assert int(version[0]) // 10_000 == 17
    assert pgss == ("1.11",)  # updated to 17's (from 1.9 on 14, 1.10 on 15)
    assert secrets == []  # pg_upgrade's ALTER ROLE ... PASSWORD entries are purged

    assert "nothing to do" in _ok("migrate")
    assert "PostgreSQL 17." in _ok("status")
    created = _ok("backup", "create")
    assert "revision" in created
    verified = _ok("backup", "verify")
    assert verified.startswith("verified in")
    assert "hot reads ok" in verified


def test_an_extension_the_new_version_lacks_stops_the_upgrade_unchanged(tmp_path: Path) -> None:
    """Debian's 15 has hypopg and PostGIS, the pinned 17 has neither. Unless they are named to
    drop nothing changes; PostGIS under a table is never dropped (nor, then, anything else);
    hypopg (no state) is, when named."""
    cluster = EmbeddedCluster(tmp_path / "c15", database="app", durable=False, pg_version=15)
    try:
        cluster.ensure_running()
        with psycopg.connect(cluster.libpq_url("app"), autocommit=True) as conn:
            available = {
                r[0]
                for r in conn.execute(
                    "SELECT name FROM pg_available_extensions WHERE name IN ('hypopg', 'postgis')"
                )
            }
            if available != {"hypopg", "postgis"}:
                pytest.skip("needs Debian's PostgreSQL 15 with hypopg and PostGIS")
            conn.execute("CREATE EXTENSION hypopg")
            conn.execute("CREATE EXTENSION postgis")
            conn.execute("CREATE TABLE places (id int, at geography(Point, 4326))")

        with pytest.raises(EmbeddedClusterError, match=r"no .*hypopg \(in app\).*Nothing was"):
            upgrade_cluster(cluster, 17)
        assert cluster.data_major() == 15
        assert cluster.running()
        assert not list(cluster.runtime.glob("pgdata.*"))

        with pytest.raises(EmbeddedClusterError, match="postgis in database app cannot be dropped"):
            upgrade_cluster(cluster, 17, drop_extensions=["hypopg", "postgis"])
        assert cluster.data_major() == 15
        assert cluster.running()
        with psycopg.connect(cluster.libpq_url("app"), autocommit=True) as conn:
            kept = conn.execute("SELECT extname FROM pg_extension ORDER BY 1").fetchall()
        assert ("hypopg",) in kept  # tried and rolled back with postgis: nothing dropped

        with psycopg.connect(cluster.libpq_url("app"), autocommit=True) as conn:
            conn.execute("DROP TABLE places")
            conn.execute("DROP EXTENSION postgis")
        result = upgrade_cluster(cluster, 17, drop_extensions=["hypopg"])
        assert result.dropped == ("hypopg",)
        assert cluster.data_major() == 17
        assert cluster.running()
    finally:
        cluster.destroy()


def test_only_a_newer_version_is_an_upgrade(tmp_path: Path) -> None:
    cluster = EmbeddedCluster(tmp_path / "none")
    with pytest.raises(EmbeddedClusterError, match="no embedded cluster"):
        upgrade_cluster(cluster, 17)
