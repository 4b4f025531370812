"""Database URLs: the libpq and SQLAlchemy spellings, and redaction of their passwords."""

from __future__ import annotations

import re

__all__ = ["REDACTED", "redact_dsn", "to_libpq_url", "to_sqlalchemy_url"]

#: ``password=...`` in a key/value conninfo string.
_KV_PASSWORD = re.compile(r"(?<![?&])(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)
#: ``scheme://user:password@`` in a URL.
_URL_PASSWORD = re.compile(r"([a-z][a-z0-9+.-]*://[^:/@?#\s]*:)(\S*)(@)", re.IGNORECASE)
#: ``?password=...`` / ``&password=...`` in a URL query string.
_QUERY_PASSWORD = re.compile(r"([?&]password=)([^&#]*)", re.IGNORECASE)
_DRIVER = re.compile(r"^postgres(?:ql)?(?:\+\w+)?://", re.IGNORECASE)

REDACTED = "***"


def redact_dsn(dsn: str) -> str:
    """Return ``dsn`` with any password replaced by ``***``.

    Handles URLs (``postgresql://u:pw@h/db``, ``?password=``) and libpq key/value strings
    (``host=h password=pw``). Every DSN that reaches a log line, an error or a status line
    goes through here first.
    """
    out = _URL_PASSWORD.sub(rf"\g<1>{REDACTED}\g<3>", dsn)
    out = _QUERY_PASSWORD.sub(rf"\g<1>{REDACTED}", out)
    return _KV_PASSWORD.sub(rf"\g<1>{REDACTED}", out)


def to_libpq_url(url: str) -> str:
    """Turn ``postgresql+psycopg://`` (SQLAlchemy style) into a URL libpq accepts."""
    return _DRIVER.sub("postgresql://", url)


def to_sqlalchemy_url(url: str) -> str:
    """Turn any ``postgres://`` / ``postgresql://`` URL into ``postgresql+psycopg://``."""
    return _DRIVER.sub("postgresql+psycopg://", url)
