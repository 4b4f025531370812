"""Index advice: planner-verified suggestions and what was rejected."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "Advice",
    "IndexSuggestion",
    "Rejection",
    "StatementGain",
]


@dataclass(frozen=True)
class StatementGain:
    """What one index does to one statement's generic plan (costs in planner units)."""

    queryid: int | None
    calls: int
    mean_exec_time_ms: float
    cost_before: float
    cost_after: float
    saved_ms: float


@dataclass(frozen=True)
class IndexSuggestion:
    """A btree index the planner used in a what-if plan, with the statements it serves.

    ``saved_ms`` is the estimated execution time saved over the statistics period: for each
    served statement, calls x (1 - cost_after / cost_before) x mean time. ``write_ms`` is the
    estimated extra write time of UPDATE statements that set an indexed column (they lose HOT).
    """

    schema: str
    table: str
    columns: tuple[str, ...]
    using: str
    create_sql: str
    statements: tuple[StatementGain, ...]
    saved_ms: float
    write_ms: float
    write_note: str | None
    reason: str

    @property
    def queryids(self) -> tuple[int | None, ...]:
        """The statements this index serves."""
        return tuple(s.queryid for s in self.statements)


@dataclass(frozen=True)
class Rejection:
    """A statement or candidate that produced no suggestion, and why."""

    queryid: int | None
    table: str | None
    columns: tuple[str, ...] | None
    reason: str


@dataclass(frozen=True)
class Advice:
    """Suggestions ranked by net time saved, the rejections, and how long advice took."""

    suggestions: tuple[IndexSuggestion, ...]
    rejected: tuple[Rejection, ...]
    elapsed_ms: float
