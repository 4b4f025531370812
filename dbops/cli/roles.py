"""`dbops roles setup|status`: the owner, app, read-only and monitor roles (dbops.ops.roles)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from dbops.cli import _target
from dbops.cli._render import note, print_kv, say

if TYPE_CHECKING:
    from dbops.ops.roles import RolesReport

__all__ = ["note_cleanup", "roles_app", "setup", "status"]

roles_app = typer.Typer(
    help="Database roles: owner (migrations), app (services, row-level security), read-only "
    "(dashboard, notebooks) and monitor (exporter).",
    epilog="Passwords come from DBOPS_OWNER_PASSWORD, DBOPS_APP_PASSWORD, "
    "DBOPS_READONLY_PASSWORD and DBOPS_MONITOR_PASSWORD (or their _FILE forms); unset ones "
    "are generated and never shown.",
    no_args_is_help=True,
)


def note_cleanup(report: RolesReport) -> None:
    """Say what the setup removed that weakened the roles (stderr; nothing when clean)."""
    for default in report.defaults_removed:
        note(f"removed a role default that dbops did not set: {default}")
    if report.secret_statements:
        note(
            f"removed {report.secret_statements} pg_stat_statements entries holding a password "
            "literal (readable by every pg_read_all_stats member): change those passwords"
        )


@roles_app.command("setup")
def setup() -> None:
    """Create or update the four roles, give dbops' objects to the owner and grant the rest.

    Runs as DATABASE_URL's role (an administrator: it creates roles and changes owners), or
    as the embedded cluster's superuser. Idempotent: run it again after migrations.
    """
    from dbops.ops.roles import role_passwords, setup_roles

    settings = _target.settings()
    passwords, generated = role_passwords(settings)
    with _target.database(settings, _target.dsn_to_change(settings)) as db:
        report = setup_roles(db, passwords)
    print_kv(
        "roles",
        [
            ("created", ", ".join(report.created) or "none"),
            ("updated", ", ".join(report.updated) or "none"),
            ("objects given to dbops_owner", f"{report.reowned:,}"),
        ],
    )
    note_cleanup(report)
    if generated:
        note(
            "generated passwords (not shown) for: "
            + ", ".join(generated)
            + "; set DBOPS_<ROLE>_PASSWORD(_FILE) to choose them"
        )
    say("roles ready")


@roles_app.command("status")
def status() -> None:
    """Each dbops role: whether it exists, can log in, bypasses row-level security."""
    from dbops.ops.roles import role_status

    settings = _target.settings()
    with _target.database(settings, _target.dsn_to_read(settings)) as db:
        found = role_status(db)
    rows = []
    for state in found:
        if not state.exists:
            rows.append((f"{state.role} ({state.name})", "missing: run `dbops roles setup`"))
            continue
        flags = ["login" if state.login else "no login"]
        flags.append("BYPASSRLS" if state.bypass_rls else "row-level security applies")
        if state.superuser:
            flags.append("SUPERUSER")
        rows.append((f"{state.role} ({state.name})", ", ".join(flags)))
    print_kv("roles", rows)
