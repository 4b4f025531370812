"""TLS on the embedded cluster: encrypted and verified connections, refused impostors, files.

The session cluster (``pg_cluster``) runs with the defaults, so TLS is on there: the tests that
only connect use it. Certificates made for a test live in ``tmp_path``; the tests that swap
the server's certificate or restart with other settings use a private cluster.
"""

from __future__ import annotations

import datetime as dt
import os
import pwd
import shutil
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from cryptography import x509

from dbops.config import to_libpq_url
from dbops.db import EmbeddedCluster
from dbops.db.embedded import ServerOptions
from dbops.db.tls import (
    certificate_names,
    ensure_server_tls,
    issue_server_certificate,
    new_certificate_authority,
)

OWN_SSL = "SELECT ssl, version, cipher FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
AS_ROOT = os.geteuid() == 0


def _libpq_tcp(cluster: EmbeddedCluster, **params: str) -> str:
    """The cluster's TCP URL with ``params`` replacing its TLS options."""
    base = to_libpq_url(cluster.tcp_url()).split("?", 1)[0]
    query = "&".join(f"{key}={value}" for key, value in params.items())
    return f"{base}?{query}" if query else base


def _serial(path: Path) -> int:
    return x509.load_pem_x509_certificate(path.read_bytes()).serial_number


# ------------------------------------------------------------- the session cluster
def test_tcp_url_is_verify_full_and_encrypted(pg_cluster: EmbeddedCluster) -> None:
    url = to_libpq_url(pg_cluster.tcp_url())
    assert "sslmode=verify-full" in url
    assert f"sslrootcert={pg_cluster.tls_dir / 'ca.crt'}" in url
    with psycopg.connect(url) as conn:
        row = conn.execute(OWN_SSL).fetchone()
        assert conn.info.host == "127.0.0.1"
    assert row is not None
    ssl, version, cipher = row
    assert ssl is True
    assert version == "TLSv1.3"
    assert cipher


def test_unix_socket_needs_no_tls(pg_cluster: EmbeddedCluster) -> None:
    with psycopg.connect(pg_cluster.libpq_url()) as conn:
        assert conn.execute(OWN_SSL).fetchone() == (False, None, None)


def test_tcp_without_tls_is_refused(pg_cluster: EmbeddedCluster) -> None:
    with pytest.raises(psycopg.OperationalError, match="no encryption"):
        psycopg.connect(_libpq_tcp(pg_cluster, sslmode="disable"), connect_timeout=5)


def test_a_different_ca_is_refused(pg_cluster: EmbeddedCluster, tmp_path: Path) -> None:
    other_ca = tmp_path / "other-ca.crt"
    new_certificate_authority(other_ca, tmp_path / "other-ca.key", common_name="impostor CA")
    url = _libpq_tcp(pg_cluster, sslmode="verify-full", sslrootcert=str(other_ca))
    with pytest.raises(psycopg.OperationalError, match="certificate verify failed"):
        psycopg.connect(url, connect_timeout=5)
    # verify-ca checks the chain only: refused too.
    url = _libpq_tcp(pg_cluster, sslmode="verify-ca", sslrootcert=str(other_ca))
    with pytest.raises(psycopg.OperationalError, match="certificate verify failed"):
        psycopg.connect(url, connect_timeout=5)


def test_a_host_name_not_in_the_certificate_is_refused(pg_cluster: EmbeddedCluster) -> None:
    # libpq connects to `hostaddr` and checks the certificate against `host`: a name that
    # reaches the server (here by address) but is not in its certificate must be refused.
    ca = str(pg_cluster.tls_dir / "ca.crt")
    base = _libpq_tcp(pg_cluster, sslmode="verify-full", sslrootcert=ca)
    with pytest.raises(psycopg.OperationalError, match="does not match host name"):
        psycopg.connect(base, host="db.invalid", hostaddr="127.0.0.1", connect_timeout=5)
    # The same connection with a name the certificate holds succeeds.
    with psycopg.connect(base, host="localhost", hostaddr="127.0.0.1") as conn:
        row = conn.execute(OWN_SSL).fetchone()
    assert row is not None
    assert row[0] is True


def test_certificate_files_and_permissions(pg_cluster: EmbeddedCluster) -> None:
    tls = pg_cluster.tls_dir
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in tls.iterdir()}
    assert modes == {"ca.crt": 0o644, "ca.key": 0o600, "server.crt": 0o644, "server.key": 0o600}
    expected_owner = pwd.getpwnam("postgres").pw_uid if AS_ROOT else os.geteuid()
    assert (tls / "server.key").stat().st_uid == expected_owner
    assert (tls / "ca.key").stat().st_uid == os.geteuid()
    assert certificate_names(tls / "server.crt") == (
        frozenset({"localhost"}),
        frozenset({"127.0.0.1", "::1"}),
    )
    cert = x509.load_pem_x509_certificate((tls / "server.crt").read_bytes())
    ca = x509.load_pem_x509_certificate((tls / "ca.crt").read_bytes())
    cert.verify_directly_issued_by(ca)
    assert cert.not_valid_after_utc - dt.datetime.now(dt.UTC) > dt.timedelta(days=300)


def test_server_log_shows_connections(pg_cluster: EmbeddedCluster) -> None:
    with psycopg.connect(pg_cluster.tcp_url().replace("+psycopg", ""), application_name="tls-log"):
        pass
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        log = pg_cluster.logfile.read_text(errors="replace")
        if "application_name=tls-log SSL enabled" in log:
            break
        time.sleep(0.1)
    assert "application_name=tls-log SSL enabled (protocol=TLSv1.3" in log
    assert "disconnection: session time:" in log


def test_running_cluster_with_current_certificates_skips_cryptography(
    pg_cluster: EmbeddedCluster,
) -> None:
    """`dbops` commands on a running cluster do not import cryptography to check the files."""
    code = (
        "import sys\nfrom pathlib import Path\nfrom dbops.db import EmbeddedCluster\n"
        f"EmbeddedCluster(Path({str(pg_cluster.home)!r}), database='dbops_test').ensure_running()\n"
        "print('cryptography' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "False"


# ------------------------------------------------------------------ ensure_server_tls
def test_ensure_server_tls_is_idempotent_and_renews(tmp_path: Path) -> None:
    first = ensure_server_tls(tmp_path / "tls")
    assert first.renewed is True
    ca_serial, server_serial = _serial(first.ca_cert), _serial(first.server_cert)

    again = ensure_server_tls(tmp_path / "tls")
    assert again.renewed is False
    assert (_serial(again.ca_cert), _serial(again.server_cert)) == (ca_serial, server_serial)
    assert again.not_after == first.not_after

    # Within `renew_before` of expiry: the server certificate is replaced, the CA kept.
    near = ensure_server_tls(tmp_path / "tls", renew_before=dt.timedelta(days=400))
    assert near.renewed is True
    assert _serial(near.ca_cert) == ca_serial
    assert _serial(near.server_cert) != server_serial

    # A CA near its end: both are replaced.
    both = ensure_server_tls(tmp_path / "tls", renew_before=dt.timedelta(days=4000))
    assert both.renewed is True
    assert _serial(both.ca_cert) != ca_serial


def test_ensure_server_tls_replaces_a_certificate_of_another_ca(tmp_path: Path) -> None:
    tls = ensure_server_tls(tmp_path / "tls")
    new_certificate_authority(tmp_path / "x.crt", tmp_path / "x.key")
    issue_server_certificate(
        tmp_path / "x.crt", tmp_path / "x.key", tls.server_cert, tls.server_key
    )
    fixed = ensure_server_tls(tmp_path / "tls")
    assert fixed.renewed is True
    cert = x509.load_pem_x509_certificate(fixed.server_cert.read_bytes())
    cert.verify_directly_issued_by(x509.load_pem_x509_certificate(fixed.ca_cert.read_bytes()))


def test_ensure_server_tls_replaces_wrong_names(tmp_path: Path) -> None:
    ensure_server_tls(tmp_path / "tls", ip_addresses=["127.0.0.1"])
    fixed = ensure_server_tls(tmp_path / "tls")
    assert fixed.renewed is True
    assert certificate_names(fixed.server_cert)[1] == frozenset({"127.0.0.1", "::1"})


# --------------------------------------------------------------------- a private cluster
@pytest.fixture(scope="module")
def private_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedCluster]:
    """A cluster of its own: these tests swap certificates and restart it."""
    home = Path(tmp_path_factory.mktemp("tls")) / "cluster"
    options = ServerOptions(auto_explain_min_duration_ms=50, log_min_duration_ms=50)
    cluster = EmbeddedCluster(home, database="tls_test", durable=False, options=options)
    cluster.ensure_running()
    yield cluster
    cluster.destroy()


@pytest.mark.slow
def test_certificate_without_the_ip_is_refused_then_renewed(
    private_cluster: EmbeddedCluster,
) -> None:
    tls = private_cluster.tls_dir
    owner = None
    if AS_ROOT:
        entry = pwd.getpwnam("postgres")
        owner = (entry.pw_uid, entry.pw_gid)
    # A certificate signed by the right CA, for localhost only (no 127.0.0.1 in its SAN).
    issue_server_certificate(
        tls / "ca.crt",
        tls / "ca.key",
        tls / "server.crt",
        tls / "server.key",
        ip_addresses=(),
        owner=owner,
    )
    private_cluster._reload()  # the server rereads the files as they are (SIGHUP)
    url = to_libpq_url(private_cluster.tcp_url())
    deadline = time.monotonic() + 5
    refusal = ""
    while not refusal:  # SIGHUP is handled asynchronously: wait for the new certificate
        try:
            psycopg.connect(url, connect_timeout=5).close()
        except psycopg.OperationalError as exc:
            refusal = str(exc)
        assert time.monotonic() < deadline, "the certificate without 127.0.0.1 was accepted"
        time.sleep(0.05)
    assert "does not match host name" in refusal
    # ensure_running sees the wrong names, issues a new certificate and reloads the server.
    private_cluster.ensure_running()
    with psycopg.connect(url) as conn:
        row = conn.execute(OWN_SSL).fetchone()
    assert row is not None
    assert row[0] is True


@pytest.mark.slow
def test_slow_statement_is_logged_with_its_plan(private_cluster: EmbeddedCluster) -> None:
    marker = "tls_slow_marker"
    with psycopg.connect(private_cluster.libpq_url(), autocommit=True) as conn:
        conn.execute(f"SELECT pg_sleep(0.1), '{marker}' AS marker")
    deadline = time.monotonic() + 5
    log = ""
    while time.monotonic() < deadline:
        log = private_cluster.logfile.read_text(errors="replace")
        if "Query Text:" in log and marker in log.split("Query Text:", 1)[1]:
            break
        time.sleep(0.1)
    assert f"statement: SELECT pg_sleep(0.1), '{marker}'" in log
    explained = log.split("Query Text:", 1)[1]
    assert marker in explained
    assert "Result  (cost=" in explained  # auto_explain's plan, without ANALYZE's actual times
    assert "actual time" not in explained


@pytest.mark.slow
def test_turning_tls_off_serves_plain_tcp(tmp_path_factory: pytest.TempPathFactory) -> None:
    home = Path(tmp_path_factory.mktemp("notls")) / "cluster"
    cluster = EmbeddedCluster(home, database="plain", durable=False)
    try:
        cluster.ensure_running()
        assert cluster.tls_ca == cluster.tls_dir / "ca.crt"
        cluster.stop()
        # The same cluster, next start with TLS (and auto_explain) off.
        options = ServerOptions(tls=False, auto_explain_min_duration_ms=-1)
        cluster = EmbeddedCluster(home, database="plain", durable=False, options=options)
        cluster.ensure_running()
        assert cluster.tls_ca is None
        url = to_libpq_url(cluster.tcp_url())
        assert "sslmode" not in url
        with psycopg.connect(url, sslmode="disable") as conn:
            assert conn.execute(OWN_SSL).fetchone() == (False, None, None)
            preload = conn.execute("SHOW shared_preload_libraries").fetchone()
            ssl = conn.execute("SHOW ssl").fetchone()
        assert preload == ("pg_stat_statements",)
        assert ssl == ("off",)
    finally:
        cluster.destroy()
        shutil.rmtree(home, ignore_errors=True)
