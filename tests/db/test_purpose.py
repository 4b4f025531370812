"""The connection plan: one answer to "as whom and where" for every purpose.

On the embedded cluster each purpose is its own role (checked by asking the server who it is),
the library's default is the application role under row-level security, and reading never
starts a cluster; with ``DATABASE_URL`` the operator's URL is used as given.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pytest

from dbops.config import Settings, load_settings
from dbops.db import EmbeddedCluster, dsn_for, open_database
from dbops.db.engine import NO_ROLE_YET
from dbops.db.purpose import PURPOSES, project_cluster, role_of
from dbops.errors import DatabaseUnavailable, NotFound
from dbops.services import Actor, TeamService, UserService
from tests.fixtures.db import make_settings

WHO = (
    "SELECT current_user::text, r.rolsuper, r.rolbypassrls FROM pg_roles AS r "
    "WHERE r.rolname = current_user"
)


def _embedded(cluster: EmbeddedCluster, database: str, **extra: Any) -> Settings:
    """Settings of a project whose ``.dbops`` is the test cluster (no DATABASE_URL)."""
    return Settings(
        _env_file=None,
        home=cluster.home,
        embedded_database=database,
        **extra,
    )


def _database(url: str) -> str:
    return urlsplit(url).path.lstrip("/")


@pytest.mark.parametrize(
    ("purpose", "user", "superuser", "bypassrls"),
    [
        ("app", "dbops_app", False, False),
        ("owner", "dbops_owner", False, False),
        ("readonly", "dbops_readonly", False, True),
        ("monitor", "dbops_monitor", False, False),
        ("admin", None, True, True),
    ],
)
def test_each_purpose_is_its_own_role_on_the_embedded_cluster(
    pg_cluster: EmbeddedCluster,
    migrated: str,
    purpose: Any,
    user: str | None,
    superuser: bool,
    bypassrls: bool,
) -> None:
    settings = _embedded(pg_cluster, _database(migrated))
    dsn = dsn_for(settings, purpose)
    with psycopg.connect(dsn.libpq) as conn:
        row = conn.execute(WHO).fetchone()
    assert row is not None
    who, is_super, bypasses = row
    assert who == (user or urlsplit(pg_cluster.libpq_url()).username)
    assert (is_super, bypasses) == (superuser, bypassrls)
    assert role_of(purpose) == user


def test_with_database_url_every_purpose_is_that_url_but_readonly_may_have_its_own() -> None:
    settings = make_settings("postgresql://app:SECRET@db.example/app")
    assert {p: dsn_for(settings, p).redacted for p in PURPOSES} == dict.fromkeys(
        PURPOSES, "postgresql://app:***@db.example/app"
    )
    both = make_settings(
        "postgresql://app:SECRET@db.example/app",
        dashboard_database_url="postgresql://reader:R@replica.example/app",
    )
    assert dsn_for(both, "readonly").redacted == "postgresql://reader:***@replica.example/app"
    assert dsn_for(both, "app").redacted == "postgresql://app:***@db.example/app"


def test_an_unknown_purpose_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown purpose 'root'"):
        role_of("root")  # type: ignore[arg-type]


def test_reading_never_creates_a_cluster(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, home=tmp_path / ".dbops")
    for purpose in PURPOSES:
        with pytest.raises(DatabaseUnavailable, match="dbops up"):
            dsn_for(settings, purpose)
    assert not (tmp_path / ".dbops").exists()
    assert not project_cluster(settings).initialized()


def test_the_readme_default_is_the_app_role_under_row_level_security(
    pg_cluster: EmbeddedCluster,
    migrated: str,
    clean_db: object,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`open_database(load_settings())` on the embedded default, as README's example does."""
    for name in ("DATABASE_URL", "DBOPS_DASHBOARD_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DBOPS_HOME", str(pg_cluster.home))
    monkeypatch.setenv("DBOPS_EMBEDDED_DATABASE", _database(migrated))
    load_settings.cache_clear()
    try:
        with open_database(load_settings()) as db:
            with db.read() as conn:
                assert conn.execute(WHO).fetchone() == ("dbops_app", False, False)
            system = Actor.system("test")
            users = UserService(db)
            mine = users.create(
                system, email="mine@example.com", password="x" * 12, display_name="Mine"
            )
            other = users.create(
                system, email="other@example.com", password="x" * 12, display_name="Other"
            )
            teams = TeamService(db)
            teams.create(Actor.user(other.id), name="Not Mine", slug=f"n-{uuid.uuid4().hex[:6]}")
            # Row-level security applies: another user's teams are "not found" to Mine, and a
            # statement without an actor sees no row at all.
            with pytest.raises(NotFound):
                teams.teams_of_user(Actor.user(mine.id), other.id)
            assert teams.teams_of_user(Actor.user(mine.id), mine.id) == []
            with db.read() as conn:
                assert conn.execute("SELECT count(*) FROM teams").fetchone() == (0,)
        # The superuser (what the default was) bypasses it: the protection was not there.
        with open_database(load_settings(), purpose="admin") as admin, admin.read() as conn:
            assert conn.execute("SELECT count(*) FROM teams").fetchone() == (1,)
    finally:
        load_settings.cache_clear()


def test_a_cluster_without_dbops_roles_says_what_to_run(tmp_path: Path) -> None:
    bare = EmbeddedCluster(tmp_path / "bare", database="bare", durable=False)
    bare.ensure_running()
    try:
        settings = _embedded(bare, "bare")
        with pytest.raises(DatabaseUnavailable) as info:
            open_database(settings)
        assert str(info.value) == NO_ROLE_YET.format(role="dbops_app")
        with open_database(settings, purpose="admin") as admin, admin.read() as conn:
            assert conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
    finally:
        bare.destroy()


def test_replica_urls_are_parsed_named_and_checked_one_by_one(tmp_path: Path) -> None:
    from dbops.db.purpose import replica_dsns
    from dbops.errors import ConfigError

    urls = "postgresql://app:pw@10.0.0.2:5433/dbops  postgresql://app:pw@replica-b/dbops"
    settings = Settings(_env_file=None, home=tmp_path, replica_urls=urls)
    found = replica_dsns(settings, embedded_primary=True)
    assert [name for name, _ in found] == ["10.0.0.2:5433", "replica-b:5432"]
    assert all("pw" not in dsn.redacted for _, dsn in found)
    off = Settings(_env_file=None, home=tmp_path, replica_urls=urls, replica_reads=False)
    assert replica_dsns(off, embedded_primary=True) == []
    bad = Settings(_env_file=None, home=tmp_path, replica_urls=f"{urls.split()[0]} mysql://x")
    with pytest.raises(ConfigError, match=r"DBOPS_REPLICA_URLS \(URL 2\)"):
        replica_dsns(bad, embedded_primary=True)


def test_embedded_replicas_are_used_only_for_the_embedded_primary(tmp_path: Path) -> None:
    from dbops.db.purpose import replica_dsns

    home = tmp_path / ".dbops"
    (home / "replicas" / "r1" / "pgdata").mkdir(parents=True)
    (home / "replicas" / "r1" / "pgdata" / "PG_VERSION").write_text("15\n")
    replica_home = home / "replicas" / "r1"
    (replica_home / "cluster.json").write_text(
        json.dumps({"port": 5999, "runtime": str(replica_home)})
    )
    embedded = Settings(_env_file=None, home=home)
    ((name, dsn),) = replica_dsns(embedded, embedded_primary=True)
    assert name == "r1"
    assert "dbops_app@" in dsn.libpq
    assert "port=5999" in dsn.libpq
    assert replica_dsns(embedded, embedded_primary=False) == []  # an explicit URL was given
    external = Settings(_env_file=None, home=home, database_url="postgresql://u:p@db/x")
    assert replica_dsns(external, embedded_primary=True) == []
