"""Maintenance actions as data: what a plan proposes (monitoring) and a run executes (ops).

Shared by :mod:`dbops.monitoring.maintenance`, which plans them from a snapshot, and
:mod:`dbops.ops.maintenance`, which runs them; neither imports the other. Every statement is built
from identifiers with :mod:`psycopg.sql`, never stored as text.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from psycopg import sql

from dbops.errors import InvalidInput

__all__ = [
    "ADVISORY_DROP_SQL",
    "ALTER_SEQUENCE_SQL",
    "DROP_INDEX_SQL",
    "REINDEX_SQL",
    "TABLE_KINDS",
    "TABLE_SQL",
    "Action",
    "ActionKind",
    "is_reindex_leftover",
]


class ActionKind(enum.StrEnum):
    """What an action does. ``advisory`` runs nothing: it says what a person should do."""

    ANALYZE = "analyze"
    VACUUM = "vacuum"
    VACUUM_ANALYZE = "vacuum_analyze"
    REINDEX = "reindex"
    ADVISORY = "advisory"


#: Kinds that work on a table (and need ``Action.table``).
TABLE_KINDS = frozenset({ActionKind.ANALYZE, ActionKind.VACUUM, ActionKind.VACUUM_ANALYZE})

TABLE_SQL = {
    ActionKind.ANALYZE: sql.SQL("ANALYZE {}"),
    ActionKind.VACUUM: sql.SQL("VACUUM {}"),
    ActionKind.VACUUM_ANALYZE: sql.SQL("VACUUM (ANALYZE) {}"),
}
REINDEX_SQL = sql.SQL("REINDEX INDEX CONCURRENTLY {}")
DROP_INDEX_SQL = sql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}")
ALTER_SEQUENCE_SQL = sql.SQL("ALTER SEQUENCE {} AS bigint")
ADVISORY_DROP_SQL = sql.SQL("DROP INDEX CONCURRENTLY {}")


@dataclass(frozen=True)
class Action:
    """One maintenance step on one object, with the reason it was planned.

    Attributes:
        kind: what to do.
        schema: the schema of the table, index or sequence.
        table: the table (every kind except a sequence advisory).
        index: the index (``reindex``, or an advisory about an index).
        sequence: the sequence (an advisory about a sequence near its maximum).
        reason: why, in one line, with the numbers that triggered it.
        estimated_bytes: space the action should give back (dead rows, index bloat), when
            known; the plan orders by it.
        note: for an advisory, what a person should do (it may need a table rewrite).
    """

    kind: ActionKind
    schema: str
    table: str | None
    reason: str
    index: str | None = None
    sequence: str | None = None
    estimated_bytes: int | None = None
    note: str | None = None

    def __post_init__(self) -> None:
        if self.kind in TABLE_KINDS and not self.table:
            raise InvalidInput(f"a {self.kind} action needs a table")
        if self.kind is ActionKind.REINDEX and not (self.index and self.table):
            raise InvalidInput("a reindex action needs a table and an index")
        if self.kind is ActionKind.ADVISORY and not (self.index or self.sequence):
            raise InvalidInput("an advisory action names an index or a sequence")

    @property
    def target(self) -> str:
        """The object acted on, ``schema.name``, for people."""
        name = self.index or self.sequence or self.table or ""
        return f"{self.schema}.{name}"

    @property
    def runs(self) -> bool:
        """False for an advisory: :func:`run` never executes anything for it."""
        return self.kind is not ActionKind.ADVISORY

    def statement(self) -> sql.Composed:
        """The statement, built from the identifiers (for an advisory: the suggested one)."""
        if self.kind in TABLE_KINDS:
            assert self.table is not None
            return TABLE_SQL[self.kind].format(sql.Identifier(self.schema, self.table))
        if self.kind is ActionKind.REINDEX:
            assert self.index is not None
            return REINDEX_SQL.format(sql.Identifier(self.schema, self.index))
        if self.sequence is not None:
            return ALTER_SEQUENCE_SQL.format(sql.Identifier(self.schema, self.sequence))
        assert self.index is not None
        return ADVISORY_DROP_SQL.format(sql.Identifier(self.schema, self.index))

    @property
    def sql(self) -> str:
        """The exact SQL :func:`run` executes (for an advisory: what to run by hand)."""
        return self.statement().as_string(None)


#: Name of the index ``REINDEX ... CONCURRENTLY`` builds (``_ccnew``) or swaps out (``_ccold``),
#: with the digits PostgreSQL adds when the name is taken.
_LEFTOVER_NAME = re.compile(r"_cc(?:new|old)[0-9]*$")


def is_reindex_leftover(name: str) -> bool:
    """True for a name ``REINDEX ... CONCURRENTLY`` gives the index it builds or swaps out."""
    return _LEFTOVER_NAME.search(name) is not None
