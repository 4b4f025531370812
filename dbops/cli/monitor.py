"""`dbops status`, `dbops monitor ...`, `dbops exporter`: monitoring commands.

`status`, `exporter` and `monitor snapshot|checks|explain` are read-only and never start a
stopped embedded cluster: they report it (exit 3). `monitor capture|prune` write the query
history (schema ``dbops_monitor``), so they take the target like `dbops migrate` does.
"""

from __future__ import annotations

import contextlib
import json
from typing import TYPE_CHECKING, Annotated

import typer

from dbops.cli import _target
from dbops.cli._render import (
    capture_line,
    note,
    print_findings,
    print_snapshot,
    print_status,
    prune_line,
)

if TYPE_CHECKING:
    from dbops.config import Settings
    from dbops.db import Database
    from dbops.monitoring.snapshot import Snapshot
    from dbops.monitoring.status import StatusReport

__all__ = [
    "CRITICAL_EXIT",
    "capture",
    "checks",
    "explain",
    "exporter",
    "monitor_app",
    "prune",
    "snapshot",
    "status",
    "status_report",
]

#: Exit code of `dbops monitor checks` when a finding is critical (1-3 are dbops errors).
CRITICAL_EXIT = 4

monitor_app = typer.Typer(
    name="monitor",
    help="Monitoring: one snapshot of the database and this process, health checks, "
    "safe EXPLAIN, and the query history (capture, prune).",
    no_args_is_help=True,
    rich_markup_mode=None,
)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
AdviceOption = Annotated[
    bool,
    typer.Option(
        "--advice",
        help="Also propose planner-verified indexes (hypopg) for the top statements; "
        "costs planning time.",
    ),
]


def status_report(db: Database) -> StatusReport:
    """The status report of ``db`` against this code's migration history."""
    from dbops.monitoring.status import collect_status
    from dbops.ops.revisions import code_head, revision_chain

    return collect_status(db, head_revision=code_head(), revisions=revision_chain())


def status(
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Server version, size, revision vs head, row counts, pool settings, redacted DSN."""
    settings = _target.settings()
    dsn = _target.dsn_to_read(settings)
    with _target.database(settings, dsn) as db:
        report = status_report(db)
    if as_json:
        typer.echo(report.to_json())
    else:
        print_status(report)


def _snapshot(settings: Settings, *, advice: bool) -> Snapshot:
    from dbops.monitoring.collect import collect_snapshot

    dsn = _target.dsn_to_read(settings)
    with _target.database(settings, dsn) as db:
        return collect_snapshot(db, settings, advice=advice)


@monitor_app.command("snapshot")
def snapshot(
    as_json: JsonOption = False,
    advice: AdviceOption = False,
    wide: Annotated[
        bool, typer.Option("--wide", help="Whole query texts (folded) instead of one line each.")
    ] = False,
    everyone: Annotated[
        bool,
        typer.Option(
            "--all", help="Top statements of every role, dbops' own (setup, monitoring) too."
        ),
    ] = False,
) -> None:
    """One snapshot: server, size, connections, top statements, index findings, errors.

    A failing collector is listed under errors; the command still exits 0. Fits 80 columns.
    """
    from dbops.monitoring.checks import evaluate

    settings = _target.settings()
    snap = _snapshot(settings, advice=advice)
    if as_json:
        typer.echo(snap.to_json())
    else:
        print_snapshot(snap, evaluate(snap, settings), wide=wide, everyone=everyone)


@monitor_app.command("checks")
def checks(as_json: JsonOption = False, advice: AdviceOption = False) -> None:
    """Health checks over a fresh snapshot: severity, check, message, fix hint.

    Exit code 0 when no finding is critical (warnings included), 4 when any finding is
    critical, so cron and CI can alert on it; 1-3 are errors (3: database unreachable).
    See docs/checks.md.
    """
    from dbops.monitoring.checks import Severity, evaluate, worst

    settings = _target.settings()
    snap = _snapshot(settings, advice=advice)
    findings = evaluate(snap, settings)
    overall = worst(findings)
    if as_json:
        document = {
            "taken_at": snap.taken_at.isoformat(),
            "worst": str(overall),
            "findings": [
                {
                    "check": f.check,
                    "severity": str(f.severity),
                    "message": f.message,
                    "hint": f.hint,
                    "subject": f.subject,
                }
                for f in findings
            ],
        }
        typer.echo(json.dumps(document, indent=2))
    else:
        print_findings(findings)
    if overall is Severity.CRITICAL:
        raise typer.Exit(CRITICAL_EXIT)


@monitor_app.command("explain")
def explain(
    sql_text: Annotated[
        str,
        typer.Argument(
            metavar="SQL",
            help="Exactly one SELECT, INSERT, UPDATE, DELETE or MERGE; $1 placeholders give a "
            "generic plan.",
        ),
    ],
    analyze: Annotated[
        bool,
        typer.Option(
            "--analyze", help="Run it (EXPLAIN ANALYZE): a plain SELECT only, never a write."
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the JSON plan.")] = False,
) -> None:
    """The plan of one statement, in a read-only transaction that is rolled back.

    Runs under statement_timeout (monitor_collector_timeout_ms).
    """
    from dbops.monitoring.explain import explain as explain_statement

    settings = _target.settings()
    dsn = _target.dsn_to_read(settings)
    with _target.database(settings, dsn) as db:
        result = explain_statement(db, sql_text, settings=settings, analyze=analyze)
    if as_json:
        typer.echo(result.plan_json)
        return
    typer.echo(result.text)
    if result.generic:
        note("generic plan: the text has $n parameters")


@monitor_app.command("capture")
def capture() -> None:
    """Store what pg_stat_statements grew by since the last capture (never resets it)."""
    from dbops.monitoring.history import capture as capture_history

    settings = _target.settings()
    dsn = _target.dsn_to_change(settings)
    with _target.database(settings, dsn) as db:
        result = capture_history(db, settings)
    typer.echo(capture_line(result))


@monitor_app.command("prune")
def prune() -> None:
    """Delete query history older than history_retention_days (the last capture stays)."""
    from dbops.monitoring.history import prune as prune_history

    settings = _target.settings()
    dsn = _target.dsn_to_change(settings)
    with _target.database(settings, dsn) as db:
        result = prune_history(db, settings)
    typer.echo(prune_line(result))


def exporter(
    host: Annotated[
        str, typer.Option(help="Listen address (loopback by default; put a proxy in front).")
    ] = "127.0.0.1",
    port: Annotated[
        int, typer.Option(min=0, max=65535, help="Listen port (0 picks a free one).")
    ] = 9187,
) -> None:
    """Serve Prometheus metrics on /metrics (and /healthz) until Ctrl-C; read-only.

    On the embedded cluster it reads as dbops_monitor (no tenant row; the data section from
    aggregate functions); with DATABASE_URL as the URL's role.
    """
    from dbops.exporter import make_server

    settings = _target.settings()
    dsn = _target.dsn_to_read(settings)  # never starts a stopped embedded cluster
    dsn = _target.monitor_dsn(settings, dsn)  # dbops_monitor on the embedded cluster
    with (
        _target.database(settings, dsn) as db,
        make_server(settings, host=host, port=port, db=db) as server,
    ):
        note(f"serving {server.url}/metrics (Ctrl-C stops)")
        with contextlib.suppress(KeyboardInterrupt):
            server.serve_forever()
