"""`dbops status` says whether its connection is encrypted; secrets read from `*_FILE`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from dbops.cli import app
from dbops.cli._render import tls_line
from dbops.db import Database, EmbeddedCluster
from dbops.monitoring.status import ConnectionSecurity

runner = CliRunner()


def invoke(*args: str) -> Result:
    return runner.invoke(app, list(args), env={"COLUMNS": "240"})


@pytest.fixture(autouse=True)
def _isolated_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No `.env` or `.dbops/` of the checkout is ever read by the CLI under test."""
    monkeypatch.chdir(tmp_path)


def test_status_over_tcp_shows_tls_on(
    db: Database, pg_cluster: EmbeddedCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The URL comes from a secret file, as in a container: the same report, no password shown.
    secret = tmp_path / "database_url"
    secret.write_text(pg_cluster.tcp_url() + "\n")
    monkeypatch.setenv("DATABASE_URL_FILE", str(secret))

    result = invoke("status")
    assert result.exit_code == 0, result.output
    assert str(pg_cluster.password) not in result.output
    line = next(row for row in result.stdout.splitlines() if " TLS " in row)
    assert "on (TLSv1.3, TLS_" in line

    report = json.loads(invoke("status", "--json").stdout)
    assert report["tls"]["ssl"] is True
    assert report["tls"]["version"] == "TLSv1.3"
    assert report["tls"]["cipher"].startswith("TLS_")
    assert report["tls"]["unix_socket"] is False
    assert "sslmode=verify-full" in report["url"]


def test_status_over_the_socket_shows_tls_off(
    db: Database, pg_cluster: EmbeddedCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", pg_cluster.url())
    result = invoke("status")
    assert result.exit_code == 0, result.output
    assert "off (unix socket: local only)" in result.stdout
    report = json.loads(invoke("status", "--json").stdout)
    assert report["tls"] == {
        "ssl": False,
        "version": None,
        "cipher": None,
        "bits": None,
        "unix_socket": True,
    }


def test_tls_line_for_plain_tcp() -> None:
    plain = ConnectionSecurity(ssl=False, version=None, cipher=None, bits=None, unix_socket=False)
    assert tls_line(plain) == "off: connection not encrypted"


def test_a_missing_secret_file_is_a_one_line_settings_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "no-such-secret"
    monkeypatch.setenv("DATABASE_URL_FILE", str(missing))
    result = invoke("status")
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert result.stderr.strip() == (
        f"error: DATABASE_URL_FILE: cannot read {missing} (No such file or directory)"
    )
