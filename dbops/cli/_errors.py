"""The one error handler of the `dbops` command: every failure becomes one ``error:`` line.

Exit codes come from the error type: 2 for settings (including an invalid ``DATABASE_URL``),
3 when the database cannot be reached (including a stopped embedded cluster), 1 otherwise.
Bad arguments keep click's usage error (exit 2). Every message goes through
:func:`dbops.config.redact_dsn`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer
from typer.core import TyperGroup

if TYPE_CHECKING:
    from pydantic import ValidationError

    from dbops.errors import ConfigError, DbopsError

__all__ = ["ErrorHandlingGroup", "report"]


def _one_line(text: str) -> str:
    """Collapse ``text`` to one line and redact any DSN password in it."""
    from dbops.config import redact_dsn

    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    return redact_dsn(" ".join(lines))


def _config_error(exc: ValidationError) -> ConfigError:
    """A one-line :class:`ConfigError` naming the bad settings, never echoing their values."""
    from dbops.config import Settings
    from dbops.errors import ConfigError

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
    import sys

    from dbops.errors import translate_exception

    # Only a process that loaded pydantic can hold its ValidationError.
    if "pydantic" in sys.modules:
        from pydantic import ValidationError

        if isinstance(exc, ValidationError):
            return _config_error(exc)
    return translate_exception(exc)


def report(exc: Exception, *, verbose: bool) -> int:
    """Print ``exc`` as one ``error:`` line on stderr (traceback first if verbose); exit code."""
    from rich.console import Console

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


class ErrorHandlingGroup(TyperGroup):
    """The root group: turns every exception of a command into one ``error:`` line."""

    # ``Any``: typer >= 0.2x vendors click privately; its Context type is not public API.
    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, typer.TyperException, BrokenPipeError):
            # Exits, usage errors and a closed pipe keep click's own handling.
            raise
        except Exception as exc:
            code = report(exc, verbose=bool(ctx.find_root().params.get("verbose")))
            raise typer.Exit(code) from None
