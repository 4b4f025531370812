"""`dbops seed`, `dbops up [--serve]` and `dbops workload`: demo data, the main job, a load."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated

import typer

from dbops.cli import _target
from dbops.cli._render import SeedProgress, print_status, say
from dbops.cli.migrations import require_head, upgrade
from dbops.cli.monitor import status_report

if TYPE_CHECKING:
    from dbops.db import Database
    from dbops.errors import WouldReplaceData
    from dbops.ops.seed import SeedResult
    from dbops.workload import WorkloadResult

__all__ = ["seed", "up", "workload"]

#: Demo data of `dbops up` (the README's main job).
UP_USERS = 10_000
UP_TEAMS = 1_000
DEFAULT_SEED = 42
#: The demo personas (admin, owner, member) every seed adds on top of ``--users``; a test
#: checks this against ``dbops.ops.seed.PERSONAS`` (the help must not import the seed module).
PERSONAS = 3

_UsersOpt = Annotated[
    int,
    typer.Option(
        "--users",
        min=0,
        help=f"Generated users; {PERSONAS} demo personas come on top (N+{PERSONAS} users in all).",
    ),
]
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
        "--replace",
        help="Replace existing demo data of other sizes without asking, even when it is larger.",
    ),
]


def _is_tty() -> bool:
    return sys.stderr.isatty()


def _seed_once(
    db: Database, *, users: int, teams: int, seed: int, replace: bool, progress: bool
) -> SeedResult:
    """One call of :func:`dbops.ops.seed.seed`, drawing the progress bar from its callback."""
    from dbops.ops.seed import seed as run

    if not progress:
        return run(db, users=users, teams=teams, seed=seed, replace=replace)
    with SeedProgress() as bar:
        return run(db, users=users, teams=teams, seed=seed, replace=replace, progress=bar.update)


def _confirm_replace(exc: WouldReplaceData) -> bool:
    """Ask on a terminal whether to replace larger existing demo data; refuse otherwise."""
    from dbops.errors import Conflict

    question = (
        f"existing demo data has {exc.existing_rows:,} rows; this seed writes "
        f"{exc.new_rows:,}. Replace it?"
    )
    if not (sys.stdin.isatty() and sys.stderr.isatty()):
        raise Conflict(
            f"existing demo data has {exc.existing_rows:,} rows, more than the {exc.new_rows:,} "
            "this seed writes: pass --replace to replace it"
        ) from exc
    return typer.confirm(question, default=False, err=True)


def run_seed(
    db: Database, *, users: int, teams: int, seed: int, progress: bool, replace: bool
) -> None:
    """Seed ``db`` (migrated to head), asking before replacing larger demo data; print counts."""
    from dbops.errors import WouldReplaceData

    require_head(db.dsn)
    try:
        result = _seed_once(
            db, users=users, teams=teams, seed=seed, replace=replace, progress=progress
        )
    except WouldReplaceData as exc:
        if not _confirm_replace(exc):
            say("seed cancelled: the existing demo data is unchanged")
            raise typer.Exit(1) from None
        result = _seed_once(
            db, users=users, teams=teams, seed=seed, replace=True, progress=progress
        )
    personas = result.users - users
    replaced = f" (replaced {result.replaced_rows:,} rows)" if result.replaced_rows else ""
    verb = "seeded" if result.created else "demo data already present:"
    say(
        f"{verb} {result.users:,} users ({users:,} + {personas} personas), {result.teams:,} teams, "
        f"{result.memberships:,} memberships, {result.invitations:,} invitations, "
        f"{result.locations:,} team locations in {result.seconds:.1f} s{replaced}"
    )


def seed(
    users: _UsersOpt = 1_000,
    teams: _TeamsOpt = 100,
    seed: _SeedOpt = DEFAULT_SEED,
    progress: _ProgressOpt = True,
    replace: _ReplaceOpt = False,
) -> None:
    """Create deterministic demo data (idempotent: a rerun with the same options adds nothing).

    Demo data of other sizes is replaced; when it has more rows than the new seed writes, dbops
    asks first (on a terminal) or needs --replace.
    """
    settings = _target.settings()
    dsn = _target.dsn_to_change(settings)
    with _target.database(settings, dsn) as db:
        run_seed(
            db,
            users=users,
            teams=teams,
            seed=seed,
            progress=progress and _is_tty(),
            replace=replace,
        )


def up(
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
    serve: Annotated[
        bool,
        typer.Option(
            "--serve",
            help="Then keep running until Ctrl-C: a workload through the services, the "
            "exporter (/metrics), the dashboard and the scheduled history capture.",
        ),
    ] = False,
) -> None:
    """The main job: database (embedded unless DATABASE_URL), migrations, demo data, status.

    With --serve it goes on running (`make run`): workload, exporter and dashboard on
    127.0.0.1, history capture on a schedule; Ctrl-C stops all of it.
    """
    from dbops.ops import migrate as ops_migrate

    settings = _target.settings()
    if serve:
        from dbops.cli.serve import check_port

        # Before any work: a taken port is a one-line error naming the setting to change.
        check_port(settings.serve.exporter_port, what="the exporter", setting="serve_exporter_port")
    if demo_data is None:
        # Never put fake users into a database someone else runs unless they ask for it.
        demo_data = settings.embedded
    dsn = _target.dsn_to_change(settings)
    say(f"database: {dsn.redacted}")
    if settings.embedded:
        binaries = _target.cluster(settings).binaries()
        say(f"server: PostgreSQL {binaries.version} ({binaries.bindir})")
    migrate_as = dsn
    if settings.embedded:
        # The embedded default runs as production should: dbops' roles exist, the owner role
        # runs the migrations, the services run as the app role under row-level security.
        from dbops.cli.roles import note_cleanup
        from dbops.ops.roles import role_passwords, setup_roles

        with _target.database(settings, dsn) as admin:
            note_cleanup(setup_roles(admin, role_passwords(settings)[0]))
        from dbops.db import dsn_for

        migrate_as = dsn_for(settings, "owner")
        say("roles: dbops_owner (migrations), dbops_app (services), dbops_readonly, dbops_monitor")
    head = ops_migrate.head_revision()
    pending = ops_migrate.pending(dsn.sqlalchemy)
    change = upgrade(migrate_as, settings, "head") if pending else None
    if change is not None and change.applied:
        say(f"migrated to {head} (applied {', '.join(change.applied)})")
    else:
        say(f"schema at head ({head})")
    with _target.database(settings, dsn) as db:
        if settings.embedded:
            from dbops.ops.roles import grant_privileges

            with db.connection() as conn:
                grant_privileges(conn)  # on the tables the migrations just created
        if demo_data:
            run_seed(
                db,
                users=users,
                teams=teams,
                seed=seed,
                progress=progress and _is_tty(),
                replace=replace,
            )
        elif settings.embedded:
            say("demo data skipped (--no-demo-data)")
        else:
            say("demo data skipped (DATABASE_URL is set; pass --demo-data to load it)")
        report = status_report(db)
        print_status(report)
        if serve:
            from dbops.cli.serve import serve as run_serve

            run_serve(db, settings, dsn)


def _print_workload(result: WorkloadResult) -> None:
    """The workload summary: one row per kind, then the totals."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"workload: {result.duration_s:.1f} s, {result.threads} threads")
    for column in ("kind", "ops", "ops/s", "expected errors", "unexpected"):
        table.add_column(column, justify="left" if column == "kind" else "right")
    for kind in sorted(result.ops, key=lambda k: -result.ops[k]):
        table.add_row(
            kind,
            f"{result.ops[kind]:,}",
            f"{result.ops[kind] / result.duration_s:.1f}",
            f"{result.errors.get(kind, 0):,}",
            f"{result.unexpected.get(kind, 0):,}",
        )
    table.add_section()
    table.add_row(
        "total",
        f"{result.total:,}",
        f"{result.rate:.1f}",
        f"{sum(result.errors.values()):,}",
        f"{sum(result.unexpected.values()):,}",
    )
    Console(highlight=False).print(table)
    say(f"achieved {result.rate:.1f} operations/s of {result.target_rate:g} asked")
    if result.last_unexpected is not None:
        say(f"last unexpected error: {result.last_unexpected}")


def workload(
    duration: Annotated[float, typer.Option("--duration", min=0.1, help="Seconds to run.")] = 10.0,
    rate: Annotated[
        float | None,
        typer.Option(
            "--rate", min=0.1, help="Operations per second (default: DBOPS_WORKLOAD_RATE)."
        ),
    ] = None,
    threads: Annotated[
        int | None,
        typer.Option("--threads", min=1, help="Worker threads (default: DBOPS_WORKLOAD_THREADS)."),
    ] = None,
    seed: Annotated[
        int | None, typer.Option("--seed", help="Random seed of the choices (default: random).")
    ] = None,
) -> None:
    """Run a realistic mix through the services (sign-ins, lookups, role checks, writes).

    Needs demo data (`dbops seed`). Expected errors (wrong passwords, races) are counted;
    exits 1 when any unexpected error happened.
    """
    from dbops.workload import WORKLOAD_PROCESS, run_workload

    settings = _target.settings()
    from dbops.db import open_database

    _target.dsn_to_change(settings)  # says so when it starts the embedded cluster
    named = settings.model_copy(update={"process_name": settings.process_name or WORKLOAD_PROCESS})
    with open_database(named, purpose="app") as db:
        result = run_workload(
            db,
            duration_s=duration,
            rate=rate if rate is not None else settings.serve.workload_rate,
            seed=seed,
            threads=threads if threads is not None else settings.serve.workload_threads,
        )
    _print_workload(result)
    if result.unexpected:
        raise typer.Exit(1)
