"""The embedded default: a private PostgreSQL cluster under `.dbops/`, run with `pg_ctl`.

`pg_ctl` is PostgreSQL's own process manager (it daemonizes, waits for readiness, stops
cleanly), so this module only finds the binaries, lays out the directories and remembers the
port; see docs/decisions/0002-embedded-cluster.md for why not mirakuru/pytest-postgresql.
When dbops runs as root (as CI does) the server runs as the ``postgres`` system user, because
`initdb` and `postgres` refuse to run as root.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import fcntl
import glob
import hashlib
import json
import os
import pwd
import re
import secrets
import shutil
import socket
import subprocess
import time
import urllib.parse
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from dbops.db.builds import bindir_for, complete, major_of
from dbops.errors import EmbeddedClusterError

if TYPE_CHECKING:
    from dbops.config import Settings

__all__ = [
    "ClusterStatus",
    "EmbeddedCluster",
    "PgBinaries",
    "ServerOptions",
    "find_binaries",
    "free_port",
]

_INSTALL_HINT = (
    "no PostgreSQL server binaries found (looked at $DBOPS_PG_BINDIR, `pg_config --bindir`, "
    "PATH and /usr/lib/postgresql/*/bin). Install PostgreSQL (Debian/Ubuntu: "
    "`apt-get install postgresql`; macOS: `brew install postgresql@15`) or set DATABASE_URL "
    "to use an existing server"
)
#: Longest unix socket path (sun_path is 108 bytes on Linux, minus the NUL).
_MAX_SOCKET_PATH = 100
_SERVICE_USER = "postgres"
#: Certificates of the embedded cluster are replaced this long before they expire.
_TLS_RENEW_BEFORE = dt.timedelta(days=30)


@dataclass(frozen=True)
class PgBinaries:
    """A directory holding `pg_ctl`, `initdb` and `postgres`."""

    bindir: Path
    version: str

    def tool(self, name: str) -> str:
        """Absolute path of one PostgreSQL program in this directory."""
        return str(self.bindir / name)


@dataclass(frozen=True)
class ClusterStatus:
    """What `dbops db status` shows."""

    running: bool
    initialized: bool
    pid: int | None
    port: int | None
    datadir: Path
    socket_dir: Path
    version: str | None


@dataclass(frozen=True)
class ServerOptions:
    """TLS and logging of the embedded server (the ``embedded_*`` settings).

    The defaults equal the settings' defaults, so a cluster described without settings (the
    test fixtures, the benchmarks) runs exactly like the one `dbops` starts.
    """

    tls: bool = True
    log_connections: bool = True
    log_min_duration_ms: int = 1000
    auto_explain_min_duration_ms: int = 1000
    auto_explain_analyze: bool = False

    @classmethod
    def from_settings(cls, settings: Settings) -> ServerOptions:
        """The options ``settings`` ask for: these fields of their ``embedded_server`` section."""
        section = dataclasses.asdict(settings.embedded_server)
        return cls(**{f.name: section[f.name] for f in dataclasses.fields(cls)})


def _candidate_bindirs() -> Iterator[Path]:
    explicit = os.environ.get("DBOPS_PG_BINDIR")
    if explicit:
        yield Path(explicit)
    pg_config = shutil.which("pg_config")
    if pg_config:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, timeout=10, check=True
            )
            yield Path(out.stdout.strip())
    pg_ctl = shutil.which("pg_ctl")
    if pg_ctl:
        yield Path(pg_ctl).resolve().parent

    def _major(path: str) -> float:
        try:
            return float(Path(path).parent.name)
        except ValueError:
            return 0.0

    for found in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_major, reverse=True):
        yield Path(found)


def _version_of(bindir: Path) -> str:
    """``pg_ctl (PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)`` -> ``15.20``."""
    out = subprocess.run(
        [str(bindir / "pg_ctl"), "--version"], capture_output=True, text=True, check=False
    )
    found = re.search(r"\(PostgreSQL\) (\S+)", out.stdout)
    return found.group(1) if found else out.stdout.strip()


def find_binaries(major: int | None = None) -> PgBinaries:
    """PostgreSQL server binaries, or raise with instructions to install them.

    With ``major``, that version's: ``$DBOPS_PG_BINDIR`` when it is that version, else
    Debian's, else the pinned build (:mod:`dbops.db.builds`, fetched once). Without, the first
    complete directory of ``$DBOPS_PG_BINDIR``, ``pg_config --bindir``, ``PATH`` and the
    newest ``/usr/lib/postgresql/*/bin``.
    """
    if major is not None:
        explicit = os.environ.get("DBOPS_PG_BINDIR")
        if explicit and complete(Path(explicit)):
            version = _version_of(Path(explicit))
            if major_of(version) == major:
                return PgBinaries(bindir=Path(explicit), version=version)
        bindir = bindir_for(major)
        return PgBinaries(bindir=bindir, version=_version_of(bindir))
    for bindir in _candidate_bindirs():
        if complete(bindir):
            return PgBinaries(bindir=bindir, version=_version_of(bindir))
    raise EmbeddedClusterError(_INSTALL_HINT)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def free_port() -> int:
    """A loopback TCP port nobody listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


class EmbeddedCluster:
    """A private PostgreSQL cluster in ``home`` (`.dbops/` by default).

    Layout: ``pgdata/`` (the cluster), ``run/`` (the unix socket), ``log/postgresql.log``,
    ``cluster.json`` (port, database, generated password for loopback TCP). Everything is
    created on the first :meth:`ensure_running` and reused afterwards; a file lock makes two
    commands starting at once safe.
    """

    def __init__(
        self,
        home: Path,
        *,
        database: str = "dbops",
        durable: bool = True,
        options: ServerOptions | None = None,
        pg_version: int | None = None,
    ) -> None:
        """Describe (not create) a cluster in ``home``.

        Args:
            home: directory for everything the cluster owns.
            database: database created for the application.
            durable: ``False`` turns off fsync and friends: for throwaway test clusters only.
            pg_version: the major version to create it with (``DBOPS_PG_VERSION``); ``None``:
                the binaries :func:`find_binaries` finds. A cluster of another version is
                refused, never started with the wrong binaries.
            options: TLS and logging; they apply at the next start. Default: TLS on and the
                settings' default logging.
        """
        self.home = home.absolute()
        self.database = database
        self.durable = durable
        self.options = options or ServerOptions()
        self.pg_version = pg_version
        self._as_root = os.geteuid() == 0
        self._state_file = self.home / "cluster.json"
        self._runtime = self._pick_runtime_dir()

    # ----------------------------------------------------------------- layout
    def _pick_runtime_dir(self) -> Path:
        """Where pgdata/run/log live: in ``home`` unless the server user cannot reach it.

        As root the server runs as ``postgres``, which cannot enter a private directory
        (for example pytest's 0700 temp dirs or /root); then the files go to a directory under
        /var/tmp named after ``home``, and ``home/cluster.json`` records where.
        """
        if self._state_file.exists():
            with contextlib.suppress(OSError, ValueError, KeyError):
                recorded = Path(json.loads(self._state_file.read_text())["runtime"])
                if recorded.exists():
                    return recorded
        socket_path = self.home / "run" / ".s.PGSQL.65535"
        if self._server_user_can_reach(self.home) and len(str(socket_path)) <= _MAX_SOCKET_PATH:
            return self.home
        digest = hashlib.sha1(str(self.home).encode(), usedforsecurity=False).hexdigest()[:12]
        return Path("/var/tmp") / f"dbops-{digest}"  # noqa: S108 - fixed name, 0700 inside

    def _server_user_can_reach(self, path: Path) -> bool:
        if not self._as_root:
            return True
        try:
            entry = pwd.getpwnam(_SERVICE_USER)
        except KeyError as exc:
            raise EmbeddedClusterError(
                "running as root needs the `postgres` system user to run the embedded server "
                "(it comes with the PostgreSQL package), or set DATABASE_URL"
            ) from exc
        probe = path
        while not probe.exists():
            probe = probe.parent
        for part in [probe, *probe.parents]:
            st = part.stat()
            if st.st_uid == entry.pw_uid:
                mode_bit = 0o100
            elif st.st_gid == entry.pw_gid:
                mode_bit = 0o010
            else:
                mode_bit = 0o001
            if not st.st_mode & mode_bit:
                return False
        return True

    @property
    def datadir(self) -> Path:
        """The cluster's data directory."""
        return self._runtime / "pgdata"

    @property
    def socket_dir(self) -> Path:
        """Directory of the unix socket."""
        return self._runtime / "run"

    @property
    def logfile(self) -> Path:
        """Server log written by `pg_ctl -l`."""
        return self._runtime / "log" / "postgresql.log"

    # ------------------------------------------------------------------ state
    def _read_state(self) -> dict[str, object]:
        if not self._state_file.exists():
            return {}
        try:
            data = json.loads(self._state_file.read_text())
        except (OSError, ValueError) as exc:
            raise EmbeddedClusterError(f"cannot read {self._state_file}: {exc}") from exc
        return data if isinstance(data, dict) else {}

    def _write_state(self, state: dict[str, object]) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        tmp = self._state_file.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(state, fh, indent=2, sort_keys=True)
        tmp.replace(self._state_file)

    @property
    def port(self) -> int | None:
        """TCP port on 127.0.0.1 (and the socket's name), once initialized."""
        value = self._read_state().get("port")
        return int(value) if isinstance(value, int) else None

    @property
    def password(self) -> str | None:
        """Generated password of the ``postgres`` role, for loopback TCP connections."""
        value = self._read_state().get("password")
        return value if isinstance(value, str) else None

    # --------------------------------------------------------------- commands
    @property
    def runtime(self) -> Path:
        """The directory of ``pgdata``, ``run`` and ``log`` (``home`` unless relocated)."""
        return self._runtime

    def run_as_server(
        self, argv: Sequence[str], *, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """Run a PostgreSQL program as the server's user, in :attr:`runtime`; raise on failure."""
        return self._run(argv, timeout=timeout)

    def record_binaries(self, binaries: PgBinaries) -> None:
        """Make ``binaries`` the ones this cluster runs with (after an upgrade)."""
        state = self._read_state()
        state["bindir"] = str(binaries.bindir)
        self._write_state(state)

    def recorded_binaries(self) -> PgBinaries | None:
        """The binaries the cluster was created (or last upgraded) with, if still there."""
        bindir = self._recorded_bindir()
        return None if bindir is None else PgBinaries(bindir=bindir, version=_version_of(bindir))

    def _recorded_bindir(self) -> Path | None:
        recorded = self._read_state().get("bindir")
        if isinstance(recorded, str) and complete(Path(recorded)):
            return Path(recorded)
        return None

    def _run(
        self, argv: Sequence[str], *, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        cmd = list(argv)
        if self._as_root:
            cmd = ["runuser", "-u", _SERVICE_USER, "--", *cmd]
        try:
            result = subprocess.run(
                cmd, capture_output=True, text=True, timeout=timeout, cwd=self._runtime, check=False
            )
        except subprocess.TimeoutExpired as exc:
            raise EmbeddedClusterError(
                f"{Path(argv[0]).name} did not finish in {timeout:.0f}s"
            ) from exc
        if check and result.returncode != 0:
            detail = (result.stderr or result.stdout).strip().splitlines()
            tail = detail[-1] if detail else f"exit code {result.returncode}"
            raise EmbeddedClusterError(
                f"{Path(argv[0]).name} failed: {tail} (server log: {self.logfile})"
            )
        return result

    def _make_dirs(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        for path in (self._runtime, self.socket_dir, self.logfile.parent):
            path.mkdir(parents=True, exist_ok=True)
        if self._as_root:
            entry = pwd.getpwnam(_SERVICE_USER)
            for path in (self._runtime, self.socket_dir, self.logfile.parent):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        self.socket_dir.chmod(0o700)

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        self.home.mkdir(parents=True, exist_ok=True)
        with open(self.home / ".lock", "w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def initialized(self) -> bool:
        """True when ``pgdata`` holds a cluster."""
        return (self.datadir / "PG_VERSION").exists()

    def _initdb(self, binaries: PgBinaries) -> None:
        password = secrets.token_urlsafe(24)
        self.initdb_at(self.datadir, binaries, password)
        port = free_port()
        self.write_server_files(self.datadir, port)
        self._write_state(
            {
                "port": port,
                "password": password,
                "database": self.database,
                "bindir": str(binaries.bindir),
                "runtime": str(self._runtime),
            }
        )

    def initdb_at(self, datadir: Path, binaries: PgBinaries, password: str) -> None:
        """Run ``initdb`` of ``binaries`` into ``datadir``, as every dbops cluster is made.

        The ``postgres`` superuser gets ``password``; local connections are trusted, TCP needs
        the password (SCRAM); UTF8 with the C.UTF-8 locale.
        """
        self._make_dirs()
        pwfile = self._runtime / "pwfile"
        pwfile.write_text(password + "\n")
        pwfile.chmod(0o600)
        if self._as_root:
            entry = pwd.getpwnam(_SERVICE_USER)
            os.chown(pwfile, entry.pw_uid, entry.pw_gid)
        try:
            self._run(
                [
                    binaries.tool("initdb"),
                    "--pgdata",
                    str(datadir),
                    "--username",
                    "postgres",
                    "--auth-local",
                    "trust",
                    "--auth-host",
                    "scram-sha-256",
                    "--pwfile",
                    str(pwfile),
                    "--encoding",
                    "UTF8",
                    "--locale",
                    "C.UTF-8",
                ],
                timeout=300,
            )
        finally:
            pwfile.unlink(missing_ok=True)

    def write_server_files(self, datadir: Path, port: int) -> None:
        """Dbops' server configuration (``dbops.conf``) and ``pg_hba.conf`` in ``datadir``."""
        self._write_conf(port, datadir)
        self._write_hba(datadir)

    def _write_conf(self, port: int, datadir: Path | None = None) -> None:
        lines = [
            "# written by dbops: the embedded cluster's own settings",
            "listen_addresses = '127.0.0.1'",
            f"port = {port}",
            f"unix_socket_directories = '{self.socket_dir}'",
            "unix_socket_permissions = 0700",
            "shared_preload_libraries = 'pg_stat_statements'",
            "pg_stat_statements.track = all",
            "pg_stat_statements.max = 10000",
            "track_io_timing = on",
            "track_functions = all",
            "log_lock_waits = on",
            # %e (SQLSTATE) lets the resources and access collectors count server errors by
            # class, refused logins (28xxx) and denials (42501); %q ends the prefix of
            # background processes, sessions add user@database and client host. UTC times let
            # the access collector count the refused logins of a recent window.
            "log_line_prefix = '%m [%p] %e %q%u@%d %h '",
            "log_timezone = 'UTC'",
            "max_connections = 100",
            "shared_buffers = 256MB",
        ]
        if not self.durable:
            lines += ["fsync = off", "synchronous_commit = off", "full_page_writes = off"]
        lines += self._tls_and_logging_conf(lines)
        datadir = datadir or self.datadir
        conf = datadir / "dbops.conf"
        conf.write_text("\n".join(lines) + "\n")
        main_conf = datadir / "postgresql.conf"
        text = main_conf.read_text()
        if "include_if_exists = 'dbops.conf'" not in text:
            main_conf.write_text(text + "\ninclude_if_exists = 'dbops.conf'\n")
        if self._as_root:
            entry = pwd.getpwnam(_SERVICE_USER)
            os.chown(conf, entry.pw_uid, entry.pw_gid)

    def data_major(self) -> int | None:
        """The major version of the data directory (``PG_VERSION``); ``None`` before initdb."""
        try:
            return major_of((self.datadir / "PG_VERSION").read_text().strip())
        except OSError:
            return None

    def _binaries(self) -> PgBinaries:
        """The programs of this cluster's version: the ones it was created with, if present."""
        data_major = self.data_major()
        if self.pg_version is not None and data_major not in (None, self.pg_version):
            how = (
                f"unset it, or upgrade the cluster: dbops db upgrade --to {self.pg_version}"
                if self.pg_version > data_major
                else f"set it to {data_major} or unset it (a cluster is never downgraded)"
            )
            raise EmbeddedClusterError(
                f"the embedded cluster in {self.home} is PostgreSQL {data_major}, and "
                f"DBOPS_PG_VERSION asks for {self.pg_version}: {how}"
            )
        recorded = self._recorded_bindir()
        if recorded is not None:
            return PgBinaries(bindir=recorded, version="")  # the version costs a subprocess
        return find_binaries(data_major or self.pg_version)

    def binaries(self) -> PgBinaries:
        """The programs this cluster runs (or will be created) with, and their version."""
        if not self.initialized():
            return find_binaries(self.pg_version)
        found = self._binaries()
        return PgBinaries(bindir=found.bindir, version=found.version or _version_of(found.bindir))

    def _pid(self) -> int | None:
        pidfile = self.datadir / "postmaster.pid"
        try:
            return int(pidfile.read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            return None

    def running(self) -> bool:
        """True when the server of this cluster is up."""
        if not self.initialized():
            return False
        result = self._run(
            [self._binaries().tool("pg_ctl"), "status", "-D", str(self.datadir)], check=False
        )
        return result.returncode == 0

    def ensure_running(self) -> str:
        """Create and start the cluster as needed; return its SQLAlchemy URL (unix socket)."""
        with self._lock():
            if not self.initialized():
                self._initdb(find_binaries(self.pg_version))
            if not self.running():
                self._start()
            elif self.tls_ca is not None and self._ensure_tls_files():
                self._reload()  # a renewed server certificate: the server rereads its files
            self._ensure_database()
        return self.url()

    def _start(self) -> None:
        binaries = self._binaries()
        self._make_dirs()
        port = self.port or free_port()
        if not _port_free(port):
            port = free_port()
        self._ensure_tls_files()
        self._write_conf(port)
        self._write_hba()
        state = self._read_state()
        state["port"] = port
        state["tls_ca"] = str(self.tls_dir / "ca.crt") if self.options.tls else None
        self._write_state(state)
        (self.datadir / "postmaster.opts").unlink(missing_ok=True)
        self._run(
            [
                binaries.tool("pg_ctl"),
                "start",
                "-D",
                str(self.datadir),
                "-l",
                str(self.logfile),
                "-w",
                "-t",
                "60",
            ],
            timeout=90,
        )

    def _ensure_database(self) -> None:
        import psycopg  # only here: `dbops db status|url` should not pay for importing it
        from psycopg import sql

        with psycopg.connect(self.libpq_url("postgres"), autocommit=True) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (self.database,)
            ).fetchone()
            if not exists:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.database)))
        with psycopg.connect(self.libpq_url(self.database), autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")

    def stop(self) -> bool:
        """Stop the server (fast shutdown); return False when it was not running."""
        with self._lock():
            if not self.running():
                return False
            self._run(
                [
                    self._binaries().tool("pg_ctl"),
                    "stop",
                    "-D",
                    str(self.datadir),
                    "-m",
                    "fast",
                    "-w",
                ]
            )
            return True

    def destroy(self) -> None:
        """Stop the server and delete every file of the cluster."""
        self.stop()
        if self._runtime != self.home:
            shutil.rmtree(self._runtime, ignore_errors=True)
        shutil.rmtree(self.home, ignore_errors=True)

    def status(self) -> ClusterStatus:
        """Whether the cluster exists and runs, with its pid, port and version."""
        initialized = self.initialized()
        running = self.running() if initialized else False
        version = (self.datadir / "PG_VERSION").read_text().strip() if initialized else None
        return ClusterStatus(
            running=running,
            initialized=initialized,
            pid=self._pid() if running else None,
            port=self.port,
            datadir=self.datadir,
            socket_dir=self.socket_dir,
            version=version,
        )

    # -------------------------------------------------------- restored copies
    def prepare_restore(self, *, port: int, password: str | None) -> None:
        """Lay out this not-yet-created cluster for a data directory a backup tool fills in.

        Creates the directories (owned by the server user when root, relocated like any
        cluster when that user cannot reach ``home``), an empty ``datadir`` (mode 0700) and the
        state file with ``port`` and ``password`` (a restored copy keeps its source's roles).
        Once the tool has restored ``datadir``, :meth:`ensure_running` starts the copy.
        """
        with self._lock():
            if self.initialized():
                raise EmbeddedClusterError(f"{self.datadir} holds a cluster already")
            self._make_dirs()
            self.datadir.mkdir(mode=0o700, exist_ok=True)
            if self._as_root:
                entry = pwd.getpwnam(_SERVICE_USER)
                os.chown(self.datadir, entry.pw_uid, entry.pw_gid)
            self._write_state(
                {
                    "port": port,
                    "password": password,
                    "database": self.database,
                    "bindir": str(find_binaries(self.pg_version).bindir),
                    "runtime": str(self._runtime),
                }
            )

    def start_restored(self, *, timeout: float = 600) -> str:
        """Start a copy laid out by :meth:`prepare_restore`; return once it is promoted.

        ``pg_ctl start -w`` returns as soon as a recovering server accepts read-only
        connections; this waits on until recovery has ended (the copy is writable), or fails
        with the server log when the server stops during recovery.
        """
        import psycopg

        with self._lock():
            if not self.running():
                self._start()
            deadline = time.monotonic() + timeout
            while True:
                with contextlib.suppress(psycopg.OperationalError):
                    with psycopg.connect(self.libpq_url("postgres"), connect_timeout=5) as conn:
                        row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
                    if row is not None and not row[0]:
                        break
                if not self.running():
                    raise EmbeddedClusterError(
                        f"the server stopped during recovery (server log: {self.logfile})"
                    )
                if time.monotonic() > deadline:
                    raise EmbeddedClusterError(
                        f"recovery did not end in {timeout:.0f}s (server log: {self.logfile})"
                    )
                time.sleep(0.2)
            self._ensure_database()
        return self.url()

    def start_standby(self) -> str:
        """Start a copy that stays in recovery (a streaming replica); return its URL.

        ``pg_ctl start -w`` returns once the standby accepts read-only connections. Nothing
        is created in it (it is read-only): the database and extensions come from the primary.
        """
        with self._lock():
            if not self.running():
                self._start()
        return self.url()

    # ------------------------------------------------------------------- URLs
    def url(self, database: str | None = None, *, user: str = "postgres") -> str:
        """SQLAlchemy URL over the unix socket (no password needed there), as ``user``.

        The socket directory is private to the cluster (mode 0700, owned by the server's
        user), so the socket's ``trust`` authentication reaches only local processes of that
        user; ``user`` picks the role (dbops' roles: ``dbops.ops.roles``).
        """
        db = database or self.database
        return f"postgresql+psycopg://{user}@/{db}?host={self.socket_dir}&port={self.port}"

    def libpq_url(self, database: str | None = None, *, user: str = "postgres") -> str:
        """URL for libpq/psycopg over the unix socket, as ``user``."""
        db = database or self.database
        return f"postgresql://{user}@/{db}?host={self.socket_dir}&port={self.port}"

    def tcp_url(self, database: str | None = None) -> str:
        """SQLAlchemy URL over loopback TCP, with the generated password.

        When the server was started with TLS the URL asks for ``sslmode=verify-full`` against
        the cluster's own CA: the connection is encrypted and the server proven to be this one.
        """
        db = database or self.database
        url = f"postgresql+psycopg://postgres:{self.password}@127.0.0.1:{self.port}/{db}"
        ca = self.tls_ca
        if ca is not None:
            url += f"?sslmode=verify-full&sslrootcert={urllib.parse.quote(str(ca), safe='/')}"
        return url

    # ---------------------------------------------------- TLS and server logging
    # One block on purpose: TLS (dbops/db/tls.py) and the statement/connection logging
    # settings, kept apart from the rest of the cluster's configuration.
    @property
    def tls_dir(self) -> Path:
        """Directory of the CA and server certificate (``.dbops/tls/``)."""
        return self._runtime / "tls"

    @property
    def tls_ca(self) -> Path | None:
        """The CA file clients verify against; None unless the server was last started with TLS."""
        value = self._read_state().get("tls_ca")
        return Path(value) if isinstance(value, str) else None

    def _ensure_tls_files(self) -> bool:
        """Create or renew the certificates when TLS is on; True when the server's changed.

        The certificate files dbops last wrote are remembered in cluster.json (SHA-256 and
        expiry): while they are unchanged and far from expiry nothing is parsed, so commands
        on a running cluster do not pay for importing ``cryptography``.
        """
        if not self.options.tls:
            return False
        if self._tls_files_current():
            return False
        from dbops.db.tls import ensure_server_tls  # only here: cryptography is a heavy import

        owner = None
        if self._as_root:
            entry = pwd.getpwnam(_SERVICE_USER)
            owner = (entry.pw_uid, entry.pw_gid)
        files = ensure_server_tls(self.tls_dir, owner=owner, renew_before=_TLS_RENEW_BEFORE)
        state = self._read_state()
        state["tls_server"] = {
            "sha256": _sha256(files.server_cert),
            "not_after": files.not_after.isoformat(),
        }
        self._write_state(state)
        return files.renewed

    def _tls_files_current(self) -> bool:
        recorded = self._read_state().get("tls_server")
        if not isinstance(recorded, dict):
            return False
        names = ("ca.crt", "ca.key", "server.crt", "server.key")
        if not all((self.tls_dir / name).is_file() for name in names):
            return False
        try:
            not_after = dt.datetime.fromisoformat(str(recorded.get("not_after")))
        except ValueError:
            return False
        if not_after - dt.datetime.now(dt.UTC) <= _TLS_RENEW_BEFORE:
            return False
        return recorded.get("sha256") == _sha256(self.tls_dir / "server.crt")

    def _tls_and_logging_conf(self, base: Sequence[str]) -> list[str]:
        """Lines appended to dbops.conf: TLS, connection and slow-statement logging.

        Later lines win in postgresql.conf, so ``shared_preload_libraries`` is repeated with
        ``auto_explain`` appended to whatever the lines above preload.
        """
        opts = self.options
        lines = ["# TLS and logging (ServerOptions: the embedded_* settings)"]
        if opts.tls:
            lines += [
                "ssl = on",
                f"ssl_cert_file = '{self.tls_dir / 'server.crt'}'",
                f"ssl_key_file = '{self.tls_dir / 'server.key'}'",
                "ssl_min_protocol_version = 'TLSv1.3'",
            ]
        else:
            lines.append("ssl = off")
        on_off = "on" if opts.log_connections else "off"
        lines += [
            f"log_connections = {on_off}",
            f"log_disconnections = {on_off}",
            f"log_min_duration_statement = {opts.log_min_duration_ms}",
        ]
        if opts.auto_explain_min_duration_ms >= 0:
            preload: list[str] = []
            for line in base:
                key, _, value = line.partition("=")
                if key.strip() == "shared_preload_libraries":
                    preload = [p.strip() for p in value.strip().strip("'").split(",") if p.strip()]
            if "auto_explain" not in preload:
                preload.append("auto_explain")
            lines += [
                f"shared_preload_libraries = '{','.join(preload)}'",
                f"auto_explain.log_min_duration = {opts.auto_explain_min_duration_ms}",
                f"auto_explain.log_analyze = {'on' if opts.auto_explain_analyze else 'off'}",
                "auto_explain.log_format = 'text'",
            ]
        return lines

    #: Marks the lines of pg_hba.conf dbops manages.
    _HBA_MARK = "# dbops: embedded_tls"

    def _write_hba(self, datadir: Path | None = None) -> None:
        """With TLS on, refuse TCP connections without TLS (first matching line of pg_hba)."""
        hba = (datadir or self.datadir) / "pg_hba.conf"
        kept = [line for line in hba.read_text().splitlines() if self._HBA_MARK not in line]
        if self.options.tls:
            kept.insert(0, f"hostnossl all all all reject  {self._HBA_MARK}")
        hba.write_text("\n".join(kept) + "\n")

    def _reload(self) -> None:
        self._run([self._binaries().tool("pg_ctl"), "reload", "-D", str(self.datadir)])
