"""Secrets in SQL text: one pattern, applied in Python and on the server (``dbops.redact``).

pg_stat_statements normalizes the constants of plain DML into ``$1``, but utility statements
(``CREATE/ALTER ROLE ... PASSWORD``, ``SET``, ``CREATE USER MAPPING ... OPTIONS``, a
subscription's connection string) keep their literals, so a statistics reader would see them.
Every query text dbops shows or stores passes through :func:`redact` (Python: snapshots,
whatever their source) or :func:`redact_sql` (the server: history it stores, the count of
entries that hold a secret). The pattern is written in the subset both regex engines read the
same way (Python's ``re`` and PostgreSQL's ARE, case-insensitive): no word-boundary escapes, no
look-around; ``tests/test_redact.py`` runs one table of texts through both.
"""

from __future__ import annotations

import re

__all__ = ["REDACTED", "SECRET_PATTERN", "SECRET_PATTERN_SQL", "has_secret", "redact", "redact_sql"]

#: What a secret becomes.
REDACTED = "[redacted]"

_NAME = r"(?:password|passwd|secret|token|api_?key|access_?key|private_?key|encryption_?key)"
_QUOTED = r"E?'(?:[^']|'')*(?:'|$)"
#: Group 1 keeps what precedes the secret; group 2 is the secret. Alternatives, in order:
#: a quoted literal after a secret-named word (``PASSWORD 'x'``, ``password 'x'`` in OPTIONS,
#: ``SET app.secret_key TO 'x'``, ``api_key = 'x'``); an unquoted value after ``name=`` (a
#: connection string: ``password=x``), never a ``$1`` placeholder; a password verifier
#: (``SCRAM-SHA-256$...``, ``md5`` and 32 hex digits) anywhere.
SECRET_PATTERN = (
    r"((?:^|[^a-z0-9_$])" + _NAME + r"[a-z0-9_]*\s*(?:(?:=|:=|\s|\s+to\s+)\s*))(" + _QUOTED + r")"
    r"|((?:^|[^a-z0-9_$])" + _NAME + r"[a-z0-9_]*\s*=\s*)([^\s'$,)][^\s',)]*)"
    r"|()(SCRAM-SHA-256\$[^\s']+|md5[0-9a-f]{32})"
)
_COMPILED = re.compile(SECRET_PATTERN, re.IGNORECASE)


def redact(text: str) -> str:
    """``text`` with every secret-looking literal replaced by :data:`REDACTED`."""
    return _COMPILED.sub(lambda m: (m.group(1) or m.group(3) or "") + REDACTED, text)


def has_secret(text: str) -> bool:
    """Whether ``text`` holds a secret-looking literal."""
    return _COMPILED.search(text) is not None


#: :data:`SECRET_PATTERN` as the body of a SQL string literal (quotes doubled), for ``~*``.
SECRET_PATTERN_SQL = SECRET_PATTERN.replace("'", "''")


def redact_sql(expression: str) -> str:
    """A SQL expression: ``expression`` (a text column, a constant of dbops) redacted.

    The same pattern as :func:`redact`, applied by the server; PostgreSQL numbers the groups
    the same way, and an unmatched group is empty there too.
    """
    return f"regexp_replace({expression}, '{SECRET_PATTERN_SQL}', '\\1\\3{REDACTED}', 'gi')"
