"""The `dbops` command: embedded database, migrations, demo data and status (typer + rich).

Errors end every command the same way: ``error: <message>`` on one line of stderr, no traceback
(``dbops --verbose ...`` prints it), and the exit code of the error type (2 for settings, 3 for
an unreachable database, 1 otherwise). Bad arguments keep click's usage error (exit 2).
Any DSN printed has its password redacted.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any, NoReturn

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table
from rich.text import Text
from typer.core import TyperGroup

from dbops.config import Settings, redact_dsn, to_libpq_url
from dbops.db import Database, EmbeddedCluster, find_binaries, open_database, resolve_url
from dbops.errors import (
    ConfigError,
    DbopsError,
    EmbeddedClusterError,
    PendingMigrations,
    translate_exception,
)
from dbops.ops import migrate
from dbops.ops.status import StatusReport, collect_status

__all__ = ["app", "main"]

#: Demo data of `dbops up` (the README's main job).
UP_USERS = 10_000
UP_TEAMS = 1_000
DEFAULT_SEED = 42

_EXTERNAL_NO_SERVER = "DATABASE_URL is set: dbops manages no server"


# ----------------------------------------------------------------------------- error handling
def _one_line(text: str) -> str:
    """Collapse ``text`` to one line and redact any DSN password in it."""
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    return redact_dsn(" ".join(lines))


def _config_error(exc: ValidationError) -> ConfigError:
    """A one-line :class:`ConfigError` naming the bad settings, never echoing their values."""
    parts = []
    for error in exc.errors(include_url=False, include_input=False, include_context=False):
        field = str(error["loc"][0]) if error["loc"] else "settings"
        if field.lower() in ("database_url", "dbops_database_url"):
            name = "DATABASE_URL"
        elif field in Settings.model_fields:
            name = f"DBOPS_{field.upper()}"
        else:
            name = field
        parts.append(f"{name}: {error['msg']}")
    return ConfigError("invalid setting " + "; ".join(parts))


def _as_dbops_error(exc: Exception) -> DbopsError | None:
    if isinstance(exc, ValidationError):
        return _config_error(exc)
    return translate_exception(exc)


def _report(exc: Exception, *, verbose: bool) -> int:
    """Print ``exc`` as one ``error:`` line on stderr (traceback first if verbose); exit code."""
    console = Console(stderr=True, highlight=False, soft_wrap=True)
    if verbose:
        console.print_exception(show_locals=False, suppress=[typer])
    known = _as_dbops_error(exc)
    if known is not None:
        console.print(f"error: {_one_line(known.message)}", markup=False)
        return known.exit_code
    message = _one_line(str(exc)) or "(no message)"
    hint = "" if verbose else " (run with --verbose for the traceback)"
    console.print(f"error: unexpected {type(exc).__name__}: {message}{hint}", markup=False)
    return 1


class _Group(TyperGroup):
    """The root group: turns every exception of a command into one ``error:`` line."""

    # ``Any``: typer >= 0.2x vendors click privately; its Context type is not public API.
    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, typer.TyperException, BrokenPipeError):
            # Exits, usage errors and a closed pipe keep click's own handling.
            raise
        except Exception as exc:
            code = _report(exc, verbose=bool(ctx.params.get("verbose")))
            raise typer.Exit(code) from None


app = typer.Typer(
    cls=_Group,
    name="dbops",
    help="PostgreSQL data layer and data-ops toolkit: database, migrations, demo data, status.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(
    help="The embedded PostgreSQL cluster under .dbops/ (DBOPS_HOME).",
    epilog=(
        "With DATABASE_URL set dbops manages no server: start and stop fail (exit 1), "
        "status and url describe that URL (password redacted)."
    ),
    no_args_is_help=True,
)
app.add_typer(db_app, name="db")


@app.callback()
def _root(
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Show the traceback of an error.")
    ] = False,
) -> None:
    """PostgreSQL data layer and data-ops toolkit: database, migrations, demo data, status."""


# ---------------------------------------------------------------------------------- helpers
def _out() -> Console:
    return Console(highlight=False)


def _say(message: str) -> None:
    """Print a plain line to stdout (no markup, never wrapped)."""
    _out().print(message, markup=False, soft_wrap=True)


def _note(message: str) -> None:
    """Print a progress note to stderr, so that stdout stays parseable (``--json``)."""
    Console(stderr=True, highlight=False).print(message, markup=False, soft_wrap=True)


def _kv_table(title: str) -> Table:
    table = Table(title=title, show_header=False)
    table.add_column("key", style="bold")
    table.add_column("value", overflow="fold")
    return table


def _row(table: Table, key: str, value: str) -> None:
    """Add a row whose value is plain text (brackets in data are not rich markup)."""
    table.add_row(key, Text(value))


def _settings() -> Settings:
    """Fresh settings for this command (a ValidationError becomes a one-line config error)."""
    return Settings()


def _cluster(settings: Settings) -> EmbeddedCluster:
    return EmbeddedCluster(settings.home, database=settings.embedded_database)


def _resolve(settings: Settings) -> str:
    """The database URL; starts the embedded cluster first when needed (and says so)."""
    if settings.embedded:
        cluster = _cluster(settings)
        if not cluster.initialized():
            find_binaries()  # no binaries: fail with the install hint before saying anything
        if not cluster.running():
            _note(f"starting the embedded PostgreSQL in {cluster.home} ...")
    return resolve_url(settings)


@contextmanager
def _database(settings: Settings, url: str) -> Iterator[Database]:
    database = open_database(settings, url)
    try:
        yield database
    finally:
        database.close()


def _rev(revision: str | None) -> str:
    return revision if revision is not None else "base (empty)"


def _revision_line(current: str | None, head: str, pending: list[str]) -> str:
    if current == head and not pending:
        return f"{current} (head)"
    if current is not None and current != head and not pending:
        return f"{current} (not a revision of this code; head is {head})"
    return f"{_rev(current)}; head is {head}: {len(pending)} pending ({', '.join(pending)})"


def _require_head(url: str) -> None:
    current = migrate.current_revision(url)
    head = migrate.head_revision()
    if current != head:
        raise PendingMigrations(
            f"database is at {current or 'no revision'}, code expects {head}: run `dbops migrate`"
        )


# ------------------------------------------------------------------------------------- db
def _external_only(settings: Settings) -> str | None:
    if settings.database_url is None:
        return None
    return redact_dsn(to_libpq_url(settings.database_url.get_secret_value()))


@db_app.command("start")
def db_start() -> None:
    """Create (first time) and start the embedded cluster; reuse it when running."""
    settings = _settings()
    if _external_only(settings) is not None:
        raise DbopsError(_EXTERNAL_NO_SERVER)
    cluster = _cluster(settings)
    was_running = cluster.running()
    cluster.ensure_running()
    state = "already running" if was_running else "started"
    _say(f"embedded PostgreSQL {state}: {cluster.libpq_url()}")


@db_app.command("stop")
def db_stop() -> None:
    """Stop the embedded cluster (fast shutdown: open sessions are ended)."""
    settings = _settings()
    if _external_only(settings) is not None:
        raise DbopsError(_EXTERNAL_NO_SERVER)
    cluster = _cluster(settings)
    _say("embedded PostgreSQL stopped" if cluster.stop() else "embedded PostgreSQL was not running")


@db_app.command("status")
def db_status() -> None:
    """Whether the embedded cluster exists and runs, with pid, port, version and paths."""
    settings = _settings()
    external = _external_only(settings)
    if external is not None:
        _say(f"{_EXTERNAL_NO_SERVER}; database: {external}")
        return
    cluster = _cluster(settings)
    status = cluster.status()
    if status.running:
        state = "running"
    elif status.initialized:
        state = "stopped"
    else:
        state = "not created (`dbops db start` creates it)"
    table = _kv_table("embedded PostgreSQL")
    _row(table, "state", state)
    _row(table, "version", status.version or "-")
    _row(table, "pid", str(status.pid) if status.pid else "-")
    _row(table, "port", str(status.port) if status.port else "-")
    _row(table, "data", str(status.datadir))
    _row(table, "socket", str(status.socket_dir))
    _row(table, "log", str(cluster.logfile))
    _out().print(table)


@db_app.command("url")
def db_url(
    tcp: Annotated[
        bool, typer.Option("--tcp", help="Loopback TCP URL (with password) instead of the socket.")
    ] = False,
    show_password: Annotated[
        bool, typer.Option("--show-password", help="Print the TCP password instead of ***.")
    ] = False,
) -> None:
    """Print the database URL (a libpq URL: works with psql and as DATABASE_URL)."""
    settings = _settings()
    external = _external_only(settings)
    if external is not None:
        typer.echo(external)
        return
    cluster = _cluster(settings)
    if not cluster.initialized() or cluster.port is None:
        raise EmbeddedClusterError(
            f"no embedded cluster in {cluster.home} yet: run `dbops db start` first"
        )
    if not tcp:
        typer.echo(cluster.libpq_url())
        return
    url = to_libpq_url(cluster.tcp_url())
    typer.echo(url if show_password else redact_dsn(url))


# ------------------------------------------------------------------------------ migrations
@app.command("migrate")
def migrate_cmd(
    revision: Annotated[str, typer.Argument(metavar="REV", help="Target revision.")] = "head",
) -> None:
    """Upgrade the schema to REV (default: head)."""
    settings = _settings()
    url = _resolve(settings)
    before = migrate.current_revision(url)
    migrate.upgrade(url, settings, revision)
    after = migrate.current_revision(url)
    head = migrate.head_revision()
    mark = " (head)" if after == head else ""
    if before == after:
        _say(f"already at {_rev(after)}{mark}: nothing to do")
    else:
        _say(f"upgraded {_rev(before)} -> {_rev(after)}{mark}")


@app.command("downgrade")
def downgrade_cmd(
    revision: Annotated[
        str, typer.Argument(metavar="REV", help="Target revision (`base` drops everything).")
    ],
) -> None:
    """Downgrade the schema to REV."""
    settings = _settings()
    url = _resolve(settings)
    before = migrate.current_revision(url)
    migrate.downgrade(url, settings, revision)
    after = migrate.current_revision(url)
    if before == after:
        _say(f"already at {_rev(after)}: nothing to do")
    else:
        _say(f"downgraded {_rev(before)} -> {_rev(after)}")


@app.command("current")
def current_cmd() -> None:
    """Print the database's revision and whether it is at head."""
    settings = _settings()
    url = _resolve(settings)
    current = migrate.current_revision(url)
    _say(_revision_line(current, migrate.head_revision(), migrate.pending(url)))


@app.command("history")
def history_cmd() -> None:
    """List the migrations of this code, newest first (no database needed)."""
    table = Table(show_edge=False)
    table.add_column("revision")
    table.add_column("down")
    table.add_column("message", overflow="fold")
    for info in migrate.history():
        name = f"{info.revision} (head)" if info.is_head else info.revision
        table.add_row(name, info.down_revision or "base", Text(info.message))
    _out().print(table)


# ----------------------------------------------------------------------------------- seed
_UsersOpt = Annotated[int, typer.Option("--users", min=0, help="Users to create.")]
_TeamsOpt = Annotated[int, typer.Option("--teams", min=0, help="Teams to create.")]
_SeedOpt = Annotated[
    int, typer.Option("--seed", help="Random seed: the same seed gives the same data.")
]
_ProgressOpt = Annotated[
    bool, typer.Option("--progress/--no-progress", help="Show a progress bar on a terminal.")
]


_ReplaceOpt = Annotated[
    bool,
    typer.Option(
        "--replace", help="Replace demo data of another seed or size even when it is bigger."
    ),
]


@contextmanager
def _seed_progress(enabled: bool) -> Iterator[Callable[[str, int, int], None] | None]:
    """A per-table progress bar on stderr, fed by seed()'s progress callback."""
    if not enabled:
        yield None
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TaskID,
        TextColumn,
        TimeElapsedColumn,
    )

    bar = Progress(
        TextColumn("{task.description:<14}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("rows"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
    )
    tasks: dict[str, TaskID] = {}

    def report(table: str, done: int, total: int) -> None:
        if table not in tasks:
            tasks[table] = bar.add_task(table, total=total)
        bar.update(tasks[table], completed=done, total=total)

    with bar:
        yield report


def _run_seed(
    db: Database, *, users: int, teams: int, seed: int, progress: bool, replace: bool = False
) -> None:
    from dbops.ops.seed import seed as run_seed

    _require_head(db.url)
    with _seed_progress(progress) as report:
        result = run_seed(db, users=users, teams=teams, seed=seed, replace=replace, progress=report)
    verb = "seeded" if result.created else "demo data already present:"
    replaced = f" (replaced {result.replaced_rows:,} rows)" if result.replaced_rows else ""
    _say(
        f"{verb} {result.users:,} users, {result.teams:,} teams, "
        f"{result.memberships:,} memberships, {result.invitations:,} invitations, "
        f"{result.locations:,} team locations in {result.seconds:.1f} s{replaced}"
    )


@app.command("seed")
def seed_cmd(
    users: _UsersOpt = 1_000,
    teams: _TeamsOpt = 100,
    seed: _SeedOpt = DEFAULT_SEED,
    progress: _ProgressOpt = True,
    replace: _ReplaceOpt = False,
) -> None:
    """Create deterministic demo data (idempotent: a rerun with the same options adds nothing)."""
    settings = _settings()
    url = _resolve(settings)
    with _database(settings, url) as db:
        _run_seed(
            db,
            users=users,
            teams=teams,
            seed=seed,
            progress=progress and _is_tty(),
            replace=replace,
        )


def _is_tty() -> bool:
    return sys.stderr.isatty()


# ---------------------------------------------------------------------------------- status
def _print_status(report: StatusReport) -> None:
    table = _kv_table("dbops status")
    where = "embedded cluster" if report.embedded else "DATABASE_URL"
    _row(table, "database", f"{report.url}  [{where}]")
    server = report.server
    _row(table, "server", f"PostgreSQL {server.server_version}")
    _row(table, "size", f"{server.size_pretty} ({server.size_bytes:,} bytes) in {server.database}")
    _row(
        table,
        "revision",
        _revision_line(report.current_revision, report.head_revision, list(report.pending)),
    )
    counts = report.counts
    if counts is None:
        _row(table, "rows", "unavailable: schema not migrated (run `dbops migrate`)")
    else:
        _row(table, "users", f"{counts.live_users:,} live, {counts.deleted_users:,} deleted")
        _row(table, "teams", f"{counts.live_teams:,} live, {counts.deleted_teams:,} deleted")
        _row(table, "memberships", f"{counts.memberships:,}")
        by_status = ", ".join(f"{c.status} {c.count:,}" for c in counts.invitations_by_status)
        _row(table, "invitations", f"{counts.invitations:,} ({by_status})")
    pool = report.pool
    _row(
        table,
        "pool",
        f"{pool.min_size}-{pool.max_size} connections, idle {pool.max_idle_s:g} s, "
        f"wait {pool.timeout_s:g} s, lifetime {pool.max_lifetime_s:g} s",
    )
    _row(
        table,
        "pre-ping",
        f"on (skipped within {pool.pre_ping_bypass_s:g} s of use)" if pool.pre_ping else "off",
    )
    _row(
        table,
        "prepared statements",
        f"on (after {pool.prepare_threshold} runs)" if pool.prepared_statements else "off",
    )
    _row(
        table,
        "timeouts",
        f"statement {pool.statement_timeout_ms:,} ms, lock {pool.lock_timeout_ms:,} ms, "
        f"idle in transaction {pool.idle_in_transaction_timeout_ms:,} ms",
    )
    _out().print(table)


@app.command("status")
def status_cmd(
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Server version, size, revision vs head, row counts, pool settings, redacted DSN."""
    settings = _settings()
    url = _resolve(settings)
    with _database(settings, url) as db:
        report = collect_status(db)
    if as_json:
        typer.echo(report.to_json())
    else:
        _print_status(report)


# -------------------------------------------------------------------------------------- up
@app.command("up")
def up_cmd(
    users: _UsersOpt = UP_USERS,
    teams: _TeamsOpt = UP_TEAMS,
    seed: _SeedOpt = DEFAULT_SEED,
    progress: _ProgressOpt = True,
    replace: _ReplaceOpt = False,
    demo_data: Annotated[
        bool | None,
        typer.Option(
            "--demo-data/--no-demo-data",
            help="Load demo data. Default: yes for the embedded cluster, no for DATABASE_URL.",
        ),
    ] = None,
) -> None:
    """The main job: database (embedded unless DATABASE_URL), migrations, demo data, status."""
    settings = _settings()
    if demo_data is None:
        # Never put fake users into a database someone else runs unless they ask for it.
        demo_data = settings.embedded
    url = _resolve(settings)
    _say(f"database: {redact_dsn(to_libpq_url(url))}")
    pending = migrate.pending(url)
    if pending:
        migrate.upgrade(url, settings, "head")
        _say(f"migrated to {migrate.head_revision()} (applied {', '.join(pending)})")
    else:
        _say(f"schema at head ({migrate.head_revision()})")
    with _database(settings, url) as db:
        if demo_data:
            _run_seed(
                db,
                users=users,
                teams=teams,
                seed=seed,
                progress=progress and _is_tty(),
                replace=replace,
            )
        else:
            _say("demo data skipped (DATABASE_URL is set; pass --demo-data to load it)")
        report = collect_status(db)
    _print_status(report)


# ------------------------------------------------------------------------------------ main
def main() -> NoReturn:
    """Entry point of the ``dbops`` script."""
    try:
        app(prog_name="dbops")
    except SystemExit:
        raise
    except Exception as exc:  # pragma: no cover - the root group reports command errors
        sys.exit(_report(exc, verbose="--verbose" in sys.argv or "-v" in sys.argv))
    sys.exit(0)  # pragma: no cover - click exits itself in standalone mode
