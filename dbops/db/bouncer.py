"""PgBouncer in front of the embedded cluster, in transaction pooling: ``dbops db bouncer``.

PgBouncer is the pooler users put in front of PostgreSQL when many processes each hold a few
connections; dbops runs it as it is run in production, never a home-made pooler:

- ``pool_mode = transaction``: a server connection serves one client's transaction, then the
  next client's. dbops keeps no session state there: with ``DBOPS_PREPARED_STATEMENTS=false``
  (PgBouncer 1.18 predates prepared-statement support) the services put the actor and the
  session limits on each transaction (``SET LOCAL``), never on the session.
- Clients authenticate with SCRAM against the roles' own verifiers, copied from ``pg_authid``
  into ``userlist.txt`` (mode 0600, the server user's); PgBouncer reaches the cluster over its
  private unix socket.
- ``dbops_monitor`` is a ``stats_users`` member: it reads ``SHOW POOLS`` and ``SHOW STATS``
  on the ``pgbouncer`` console (``DBOPS_MONITOR_PGBOUNCER_URL``), which the snapshot and the
  exporter show.

Files live in ``<cluster runtime>/pgbouncer/``: ``pgbouncer.ini``, ``userlist.txt``, the pid
file and the log.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import shutil
import signal
import socket
import time
from collections.abc import Sequence
from pathlib import Path

from dbops.db.embedded import EmbeddedCluster, free_port
from dbops.errors import EmbeddedClusterError

__all__ = ["BOUNCER_ROLES", "Bouncer", "find_pgbouncer"]

#: The roles that may connect through the bouncer by default: the application and the monitor
#: (the console only; it reads the pool figures).
BOUNCER_ROLES = ("dbops_app", "dbops_monitor")
_SERVICE_USER = "postgres"

VERIFIERS_SQL = """
SELECT rolname::text, rolpassword FROM pg_authid
WHERE rolname = ANY(%(roles)s) AND rolcanlogin AND rolpassword LIKE 'SCRAM-SHA-256$%%'
ORDER BY rolname
"""


def find_pgbouncer() -> str:
    """The ``pgbouncer`` program; EmbeddedClusterError with the install hint when absent."""
    found = shutil.which("pgbouncer") or (
        "/usr/sbin/pgbouncer" if os.access("/usr/sbin/pgbouncer", os.X_OK) else None
    )
    if found is None:
        raise EmbeddedClusterError(
            "pgbouncer is not installed (Debian/Ubuntu: `apt-get install pgbouncer`; "
            "`make setup` installs it)"
        )
    return found


class Bouncer:
    """A PgBouncer for ``cluster``, in transaction pooling on a loopback port."""

    def __init__(
        self,
        cluster: EmbeddedCluster,
        *,
        pool_size: int = 10,
        max_client_conn: int = 200,
        roles: Sequence[str] = BOUNCER_ROLES,
    ) -> None:
        """Describe (not start) the bouncer of ``cluster``.

        Args:
            cluster: the embedded cluster it pools connections to (running when started).
            pool_size: server connections per database and role (``default_pool_size``).
            max_client_conn: client connections it accepts in all.
            roles: the roles that may log in through it (their SCRAM verifiers are copied).
        """
        self.cluster = cluster
        self.pool_size = pool_size
        self.max_client_conn = max_client_conn
        self.roles = tuple(roles)
        self.dir = cluster.runtime / "pgbouncer"
        self._as_root = os.geteuid() == 0

    @property
    def ini(self) -> Path:
        """The configuration file PgBouncer runs with."""
        return self.dir / "pgbouncer.ini"

    @property
    def logfile(self) -> Path:
        """PgBouncer's log."""
        return self.dir / "pgbouncer.log"

    @property
    def port(self) -> int | None:
        """The loopback port it listens on (None before the first start)."""
        state = self._state()
        value = state.get("port")
        return value if isinstance(value, int) else None

    def _state(self) -> dict[str, object]:
        try:
            data = json.loads((self.dir / "state.json").read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def _pid(self) -> int | None:
        try:
            return int((self.dir / "pgbouncer.pid").read_text().strip())
        except (OSError, ValueError):
            return None

    def running(self) -> bool:
        """Whether its process is alive."""
        pid = self._pid()
        if pid is None:
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    def start(self, *, timeout: float = 10) -> str:
        """Write the configuration, start PgBouncer (if not running), return the app's URL.

        The URL has no password: the application gives its role's, as with the cluster.
        """
        if self.running():
            return self.url()
        if not self.cluster.running():
            raise EmbeddedClusterError("the embedded cluster is not running: `dbops db start`")
        program = find_pgbouncer()
        port = self.port or free_port()
        self._write_files(port)
        self._run([program, "-d", str(self.ini)])
        deadline = time.monotonic() + timeout
        while not _accepts(port):
            if time.monotonic() > deadline:
                raise EmbeddedClusterError(
                    f"pgbouncer did not accept connections in {timeout:.0f}s (log: {self.logfile})"
                )
            time.sleep(0.05)
        return self.url()

    def reload(self) -> None:
        """Copy the roles' verifiers again (a changed password) and make PgBouncer reread them."""
        pid = self._pid()
        if pid is None or not self.running() or self.port is None:
            raise EmbeddedClusterError("pgbouncer is not running: `dbops db bouncer start`")
        self._write_files(self.port)
        os.kill(pid, signal.SIGHUP)

    def stop(self, *, timeout: float = 10) -> bool:
        """Stop PgBouncer (SIGINT: it waits for transactions to end); False if not running."""
        pid = self._pid()
        if pid is None or not self.running():
            return False
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGINT)
        deadline = time.monotonic() + timeout
        while self.running():
            if time.monotonic() > deadline:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
                break
            time.sleep(0.05)
        return True

    def url(self, user: str = "dbops_app", database: str | None = None) -> str:
        """A libpq URL through the bouncer as ``user`` (``pgbouncer``: its console)."""
        if self.port is None:
            raise EmbeddedClusterError("pgbouncer was never started: `dbops db bouncer start`")
        return f"postgresql://{user}@127.0.0.1:{self.port}/{database or self.cluster.database}"

    # ------------------------------------------------------------------ files
    def _write_files(self, port: int) -> None:
        import psycopg

        self.dir.mkdir(parents=True, exist_ok=True)
        with psycopg.connect(self.cluster.libpq_url("postgres"), autocommit=True) as conn:
            rows = conn.execute(VERIFIERS_SQL, {"roles": list(self.roles)}).fetchall()
        if not rows:
            raise EmbeddedClusterError(
                f"none of {', '.join(self.roles)} has a SCRAM password to log in through "
                "pgbouncer: run `dbops up` (or `dbops roles setup`) first"
            )
        userlist = "".join(f'"{name}" "{verifier}"\n' for name, verifier in rows)
        socket_dir = self.cluster.socket_dir
        database = self.cluster.database
        ini = "\n".join(
            [
                "; written by dbops (dbops.db.bouncer): edits are replaced at the next start",
                "[databases]",
                f"{database} = host={socket_dir} port={self.cluster.port} dbname={database}",
                "",
                "[pgbouncer]",
                "listen_addr = 127.0.0.1",
                f"listen_port = {port}",
                "unix_socket_dir =",
                "auth_type = scram-sha-256",
                f"auth_file = {self.dir / 'userlist.txt'}",
                "pool_mode = transaction",
                f"default_pool_size = {self.pool_size}",
                f"max_client_conn = {self.max_client_conn}",
                "stats_users = dbops_monitor",
                "admin_users = postgres",
                # Sessions keep nothing: a returned server connection is clean for the next.
                "server_reset_query =",
                f"logfile = {self.logfile}",
                f"pidfile = {self.dir / 'pgbouncer.pid'}",
                "",
            ]
        )
        self._write(self.dir / "userlist.txt", userlist)
        self._write(self.ini, ini)
        (self.dir / "state.json").write_text(json.dumps({"port": port}))
        if self._as_root:
            entry = pwd.getpwnam(_SERVICE_USER)
            os.chown(self.dir, entry.pw_uid, entry.pw_gid)
            self.logfile.touch()
            os.chown(self.logfile, entry.pw_uid, entry.pw_gid)
        self.dir.chmod(0o700)

    def _write(self, path: Path, text: str) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        if self._as_root:
            entry = pwd.getpwnam(_SERVICE_USER)
            os.chown(path, entry.pw_uid, entry.pw_gid)

    def _run(self, argv: list[str]) -> None:
        self.cluster.run_as_server(argv, timeout=30)


def _accepts(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0
