"""The audit trail's head (``audit.head``): its newest record's id and hash, as an anchor.

What a backup's manifest records (:mod:`dbops.ops.backup`), what the exporter publishes as
``dbops_audit_head_id`` (the data collector reads it) and what ``dbops audit verify`` checks
the chain against (:mod:`dbops.ops.audit`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.rows import class_row

from dbops.errors import InvalidInput

__all__ = ["HEAD_READABLE_SQL", "HEAD_SQL", "Anchor", "HeadRow", "read_head"]

HEAD_SQL = "SELECT last_id, last_hash FROM audit.head"
#: Whether the trail exists and this role may read its head (by oid: resolving the name
#: ``audit.head`` without USAGE on the schema is itself an error). The backup manifest's
#: anchor and the exporter's ``dbops_audit_head_id`` read the head only then.
HEAD_READABLE_SQL = """
SELECT coalesce((
  SELECT has_schema_privilege(n.oid, 'USAGE') AND has_table_privilege(c.oid, 'SELECT')
  FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace
  WHERE n.nspname = 'audit' AND c.relname = 'head'
), false) AS readable
"""


@dataclass(frozen=True)
class Anchor:
    """A record of the chain known from outside the database: its id and its hash.

    What an earlier verify printed, what a backup's manifest recorded, or what Prometheus kept
    of ``dbops_audit_head_id``: deleting the newest records and rewinding ``audit.head`` leaves
    a chain that holds by itself, but not one that still reaches this record unchanged.
    """

    record_id: int
    hash: bytes

    def __str__(self) -> str:
        return f"{self.record_id}:{self.hash.hex()}"

    @classmethod
    def parse(cls, text: str) -> Anchor:
        """``SEQ:HASH`` (the record id and its sha256 in hex, as verify prints them).

        Raises:
            InvalidInput: not of that form.
        """
        seq, sep, digest = text.strip().partition(":")
        try:
            record_id, value = int(seq), bytes.fromhex(digest)
        except ValueError:
            record_id, value = 0, b""
        if not sep or record_id < 1 or len(value) != 32:
            raise InvalidInput(
                "anchor: expected SEQ:HASH, a record id and its 64-hex-digit sha256 "
                "(as `dbops audit verify` prints it)",
                field="anchor",
            )
        return cls(record_id, value)


@dataclass(frozen=True)
class HeadRow:
    """One row of :data:`HEAD_SQL`."""

    last_id: int
    last_hash: bytes


def read_head(conn: psycopg.Connection[Any]) -> Anchor | None:
    """The trail's head as an :class:`Anchor` (id 0: no record yet), if this role may read it.

    ``None`` when there is no trail or the role may not read its head. What the backup
    manifest records and the exporter publishes as ``dbops_audit_head_id``.
    """
    readable = conn.execute(HEAD_READABLE_SQL).fetchone()
    if not (readable and readable[0]):
        return None
    head = conn.cursor(row_factory=class_row(HeadRow)).execute(HEAD_SQL).fetchone()
    return None if head is None else Anchor(head.last_id, head.last_hash)
