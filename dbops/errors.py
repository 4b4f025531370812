"""The one exception tree of dbops, and the translation of driver errors into it.

Every error carries a human message with no SQL and no secret in it; the CLI prints that message
as one line. Driver and SQLAlchemy errors are translated at the service/ops boundary with
:func:`translate_db_errors`.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import psycopg

__all__ = [
    "ArchiveError",
    "AuditUnavailable",
    "AuthenticationFailed",
    "BackupCorrupt",
    "BackupError",
    "BackupNotFound",
    "BackupVerifyFailed",
    "ConfigError",
    "Conflict",
    "DatabaseUnavailable",
    "DbopsError",
    "DecryptionError",
    "EmbeddedClusterError",
    "FeatureUnavailable",
    "Forbidden",
    "InvalidInput",
    "LockTimeout",
    "LoginFailed",
    "MigrationError",
    "NotFound",
    "OperationTimeout",
    "PendingMigrations",
    "PitrError",
    "RestoreRefused",
    "RetryableConflict",
    "WouldReplaceData",
    "translate_db_errors",
    "translate_exception",
]


class DbopsError(Exception):
    """Base of every error dbops raises on purpose; ``str(err)`` is safe to show a user."""

    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConfigError(DbopsError):
    """A setting is missing or invalid."""

    exit_code = 2


class EmbeddedClusterError(DbopsError):
    """The embedded PostgreSQL cluster cannot be found, created, started or stopped."""


class DatabaseUnavailable(DbopsError):
    """The database server cannot be reached."""

    exit_code = 3


#: Why a read-only caller (``dbops status``, the dashboard) has no embedded database to read.
EMBEDDED_STOPPED = "embedded cluster is stopped (start it with `dbops db start` or `dbops up`)"
EMBEDDED_NOT_CREATED = (
    "no embedded cluster in {home} yet (create it with `dbops db start` or `dbops up`)"
)


class AuthenticationFailed(DatabaseUnavailable):
    """The server refused the credentials."""


class OperationTimeout(DbopsError):
    """A statement or a wait for a pooled connection took longer than allowed."""


class LockTimeout(OperationTimeout):
    """A lock could not be taken in time (another transaction holds it): retry later."""


class MigrationError(DbopsError):
    """A migration could not be applied or reverted."""


class PendingMigrations(MigrationError):
    """The database schema is behind the code: run ``dbops migrate``."""


class NotFound(DbopsError):
    """The requested row does not exist (or is soft-deleted)."""


class Conflict(DbopsError):
    """A unique value is taken already; ``field`` names it when known."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class InvalidInput(DbopsError):
    """A value breaks a rule (validation, check constraint, bad type)."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class Forbidden(DbopsError):
    """The actor's role does not allow this action."""


class LoginFailed(Forbidden):
    """A sign-in was refused: the message never says whether the e-mail or the password was wrong.

    A :class:`Forbidden`, so callers that catch that keep working; the access monitor
    (:mod:`dbops.telemetry.access`) counts it as a failed login rather than a denial.
    """


class FeatureUnavailable(DbopsError):
    """The database lacks an optional extension a call needs (for example PostGIS)."""


class RetryableConflict(DbopsError):
    """A serialization failure or deadlock: the transaction can be retried as a whole."""


#: Constraint name -> (field, human message) for unique violations. Filled by the model layer.
UNIQUE_CONSTRAINTS: dict[str, tuple[str, str]] = {}
#: Constraint name -> (field, human message) for check violations. Filled by the model layer.
CHECK_CONSTRAINTS: dict[str, tuple[str, str]] = {}

#: The first column named in a key violation's DETAIL (``Key (lower(email))=(...)``): only the
#: column name is ever taken from it, never the values after ``=``, which are other rows' data.
_KEY_FIELD = re.compile(r"Key \((?:lower\()?\(?(?P<field>[a-z_]+)")


def _field_from_detail(diag: psycopg.errors.Diagnostic) -> str | None:
    match = _KEY_FIELD.search(diag.message_detail or "")
    return match.group("field") if match else None


def translate_exception(exc: BaseException) -> DbopsError | None:
    """Map a driver, SQLAlchemy or secret-file error to a :class:`DbopsError`, else ``None``."""
    if isinstance(exc, DbopsError):
        return exc
    if "dbops.config" in sys.modules:
        from dbops.config import SecretFileError

        if isinstance(exc, SecretFileError):
            return ConfigError(str(exc))
    orig: BaseException = exc
    # Only a process that loaded SQLAlchemy can hold a SQLAlchemy error: importing it here
    # otherwise would slow down every command that never touches it.
    if "sqlalchemy.exc" in sys.modules:
        from sqlalchemy import exc as sa_exc

        if isinstance(exc, sa_exc.TimeoutError):
            return OperationTimeout(
                "timed out waiting for a free database connection from the pool"
            )
        if isinstance(exc, sa_exc.DBAPIError) and exc.orig is not None:
            orig = exc.orig
    if _is_pool_timeout(orig):
        return OperationTimeout("timed out waiting for a free database connection from the pool")
    # Likewise, a driver error needs psycopg loaded (it weighs a fifth of a second to import).
    if "psycopg" not in sys.modules:
        return None
    import psycopg
    from psycopg import errors as pg_errors

    if not isinstance(orig, psycopg.Error):
        return None
    diag = orig.diag
    constraint = diag.constraint_name or ""
    if isinstance(orig, pg_errors.UniqueViolation):
        field, message = UNIQUE_CONSTRAINTS.get(
            constraint, (_field_from_detail(diag) or "value", "")
        )
        return Conflict(message or f"{field} is already taken", field=field)
    if isinstance(orig, pg_errors.CheckViolation):
        field, message = CHECK_CONSTRAINTS.get(constraint, ("value", ""))
        return InvalidInput(message or f"invalid {field} (rule {constraint})", field=field)
    if isinstance(orig, pg_errors.ForeignKeyViolation):
        return NotFound("a referenced row does not exist")
    if isinstance(orig, pg_errors.ExclusionViolation):
        field = _field_from_detail(diag) or "value"
        return Conflict(f"{field} conflicts with an existing row", field=field)
    if isinstance(orig, pg_errors.NotNullViolation):
        column = diag.column_name or "value"
        return InvalidInput(f"{column} is required", field=column)
    if isinstance(orig, psycopg.DataError):
        # SQLSTATE class 22 (data exception) and the driver's own refusals (NUL in text).
        return InvalidInput(f"invalid value: {_without_values(diag.message_primary, orig)}")
    if isinstance(orig, pg_errors.SerializationFailure | pg_errors.DeadlockDetected):
        return RetryableConflict("the operation collided with a concurrent change; retry it")
    if isinstance(orig, pg_errors.LockNotAvailable):
        return LockTimeout(
            "could not get a lock in time: another transaction holds it; retry when it ends"
        )
    if isinstance(orig, pg_errors.QueryCanceled):
        return OperationTimeout("the statement took longer than statement_timeout and was stopped")
    if isinstance(orig, psycopg.IntegrityError):
        # Any other integrity error (class 23): never its text, whose DETAIL names the values.
        return Conflict("the change conflicts with existing data")
    if isinstance(orig, pg_errors.InvalidPassword | pg_errors.InvalidAuthorizationSpecification):
        return AuthenticationFailed("the database refused the user name or password")
    if isinstance(orig, psycopg.OperationalError):
        if "password authentication failed" in str(orig) or "no password supplied" in str(orig):
            return AuthenticationFailed("the database refused the user name or password")
        return DatabaseUnavailable(f"cannot reach the database: {_first_line(orig)}")
    return None


#: A quoted value in a server message (``invalid input syntax for type uuid: "abc"``).
_QUOTED = re.compile(r'\s*:?\s*"[^"]*"')


def _without_values(primary: str | None, exc: BaseException) -> str:
    """The first line of the server's message with any quoted value cut out.

    Never the DETAIL or CONTEXT lines either: they echo the rejected input (for JSON, the
    whole line around the bad character).
    """
    if primary is None and exc.args:  # raised by the driver, before reaching the server
        primary = str(exc.args[0]).splitlines()[0]
    text = _QUOTED.sub("", primary or "").strip()
    return text or "rejected by the database"


def _is_pool_timeout(exc: BaseException) -> bool:
    if "psycopg_pool" not in sys.modules:
        return False
    from psycopg_pool import PoolTimeout

    return isinstance(exc, PoolTimeout)


def _first_line(exc: BaseException) -> str:
    from dbops.config import redact_dsn

    text = str(exc).strip().splitlines()
    return redact_dsn(text[0]) if text else type(exc).__name__


@contextmanager
def translate_db_errors() -> Iterator[None]:
    """Re-raise driver errors inside the block as :class:`DbopsError` subclasses."""
    try:
        yield
    except DbopsError:
        raise
    except Exception as exc:
        translated = translate_exception(exc)
        if translated is None:
            raise
        raise translated from exc


class WouldReplaceData(Conflict):
    """Demo data of another seed or size is loaded, and seeding would delete more than it adds.

    Attributes:
        existing_rows: seeded rows that the new seed would delete.
        new_rows: rows the new seed would load.
    """

    def __init__(self, *, existing_rows: int, new_rows: int) -> None:
        super().__init__(
            f"demo data of another seed or size is loaded ({existing_rows:,} rows); this seed "
            f"would replace it with {new_rows:,} rows: pass replace=True / --replace"
        )
        self.existing_rows = existing_rows
        self.new_rows = new_rows


class ArchiveError(DbopsError):
    """Archiving or restoring stopped: nothing of the batch (or restore) was changed."""


# ------------------------------------------------------------------ backups (dbops.ops.backup)
class BackupError(DbopsError):
    """A backup cannot be created, read, verified, restored or pruned."""


class BackupNotFound(BackupError):
    """No backup has the given id (or there is no backup at all)."""


class BackupCorrupt(BackupError):
    """A backup file is missing or its checksum differs from the manifest; ``path`` names it."""

    exit_code = 4

    def __init__(self, message: str, path: str | None = None) -> None:
        super().__init__(message)
        self.path = path


class BackupVerifyFailed(BackupError):
    """A restore drill ran and found the restored data unlike the manifest (the drill is kept)."""

    exit_code = 4


class RestoreRefused(BackupError):
    """The restore target holds data and ``force`` was not given: nothing was changed."""


class DecryptionError(DbopsError):
    """An encrypted value cannot be decrypted: unknown key version, altered, or out of place.

    The message names the table, column and row, never the value or a key.
    """


class PitrError(DbopsError):
    """Point-in-time recovery (pgBackRest) cannot be set up, back up or restore."""


class AuditUnavailable(MigrationError):
    """The database has no audit trail (migration 0006 is not applied): run ``dbops migrate``."""
