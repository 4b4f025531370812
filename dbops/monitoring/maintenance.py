"""The maintenance plan: ``plan(snapshot, settings)`` -> what VACUUM/ANALYZE/REINDEX to run, pure.

Like :mod:`dbops.monitoring.checks`, this reads one :class:`Snapshot` and the thresholds in
its section of the settings (``settings.maintain``; no SQL, no clock: ages are measured from
``taken_at``), and returns :class:`dbops.core.maintenance.Action` values that
:func:`dbops.ops.maintenance.run` carries out (the action types live in ``core``, which both
import; monitoring and ops never import each other). A notebook or the dashboard calls
:func:`plan` on any snapshot, live or loaded from JSON.

Rules (thresholds are the ``maintain_*`` settings; sequences reuse ``check_sequence_warning``):

- **vacuum**: at least ``maintain_dead_rows_min`` dead rows, and either a dead share of
  ``maintain_dead_ratio`` or more, or no vacuum (manual or auto) for
  ``maintain_vacuum_age_days``;
- **analyze**: a table with rows that was never analyzed, or at least
  ``maintain_analyze_rows_min`` rows modified since the last analyze that are
  ``maintain_analyze_ratio`` of its live rows or more; a table needing both gets one
  ``VACUUM (ANALYZE)``;
- **reindex** (concurrently): an invalid index, or an estimated btree bloat of at least
  ``maintain_bloat_min_bytes`` that is ``maintain_bloat_ratio`` of the index or more;
- **advisory** (nothing run): an invalid ``*_ccnew``/``*_ccold`` index (the leftover of a
  failed ``REINDEX CONCURRENTLY``: drop it, do not rebuild it), and a sequence that has used
  ``check_sequence_warning`` of its range.

Order (most benefit first): invalid indexes (queries cannot use them, every write pays for
them); then vacuums and bloat reindexes by the bytes they should give back; then analyzes by
the share of rows modified; then sequence advisories by how close the sequence is to its end;
last, leftover indexes to drop by hand.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from dbops.config import MaintainSettings, Settings
from dbops.core.maintenance import Action, ActionKind, is_reindex_leftover
from dbops.errors import InvalidInput
from dbops.monitoring.snapshot import IndexStat, SequenceStat, Snapshot, TableStat

__all__ = ["MaintenancePlan", "plan"]

_DAY_S = 86_400.0


@dataclass(frozen=True)
class MaintenancePlan:
    """What maintenance a snapshot calls for, most beneficial first.

    ``unknown`` names the snapshot sections that were missing (their collector failed), so an
    empty plan over an unknown section is not mistaken for "nothing to do".
    """

    taken_at: datetime
    actions: tuple[Action, ...]
    unknown: tuple[str, ...] = ()

    @property
    def runnable(self) -> tuple[Action, ...]:
        """The actions :func:`dbops.ops.maintenance.run` executes (advisories excluded)."""
        return tuple(a for a in self.actions if a.runs)

    def only(self, kinds: Iterable[str] | None = None, table: str | None = None) -> MaintenancePlan:
        """The plan restricted to some kinds and/or one table (``name`` or ``schema.name``).

        Raises:
            InvalidInput: a kind that does not exist.
        """
        wanted: set[ActionKind] | None = None
        if kinds is not None:
            wanted = set()
            for kind in kinds:
                try:
                    wanted.add(ActionKind(kind))
                except ValueError:
                    choices = ", ".join(k.value for k in ActionKind)
                    raise InvalidInput(
                        f"unknown maintenance kind {kind!r} (one of {choices})"
                    ) from None
        actions = tuple(
            a
            for a in self.actions
            if (wanted is None or a.kind in wanted)
            and (table is None or table in (a.table, f"{a.schema}.{a.table}"))
        )
        return MaintenancePlan(self.taken_at, actions, self.unknown)

    def to_json(self, *, indent: int | None = 2) -> str:
        """The plan as JSON: each action with its kind, target, reason and exact SQL."""
        document = {
            "taken_at": self.taken_at.isoformat(),
            "unknown": list(self.unknown),
            "actions": [
                {
                    "kind": str(a.kind),
                    "schema": a.schema,
                    "table": a.table,
                    "index": a.index,
                    "sequence": a.sequence,
                    "reason": a.reason,
                    "estimated_bytes": a.estimated_bytes,
                    "sql": a.sql,
                    "runs": a.runs,
                    "note": a.note,
                }
                for a in self.actions
            ],
        }
        return json.dumps(document, indent=indent)


@dataclass(frozen=True)
class _Ranked:
    rank: int
    weight: float
    action: Action


def plan(snapshot: Snapshot, settings: Settings) -> MaintenancePlan:
    """The maintenance ``snapshot`` calls for under ``settings``' thresholds (pure).

    Args:
        snapshot: a snapshot from :func:`dbops.monitoring.collect_snapshot` or JSON.
        settings: the ``maintain_*`` thresholds (and ``check_sequence_warning``).

    Returns:
        The actions ordered by benefit (see the module docstring), each with its reason.
    """
    m = settings.maintain
    ranked: list[_Ranked] = []
    unknown: list[str] = []
    if snapshot.tables is None:
        unknown.append("tables")
    else:
        for table in snapshot.tables:
            item = _table_action(table, snapshot.taken_at, m)
            if item is not None:
                ranked.append(item)
    if snapshot.indexes is None:
        unknown.append("indexes")
    else:
        for index in snapshot.indexes:
            item = _index_action(index, m)
            if item is not None:
                ranked.append(item)
    sequences = snapshot.database.sequences if snapshot.database is not None else None
    if sequences is None:
        unknown.append("sequences")
    else:
        for seq in sequences:
            item = _sequence_action(seq, settings.check_sequence_warning)
            if item is not None:
                ranked.append(item)
    ranked.sort(key=lambda r: (r.rank, -r.weight, r.action.target, r.action.kind))
    return MaintenancePlan(snapshot.taken_at, tuple(r.action for r in ranked), tuple(unknown))


# ------------------------------------------------------------------------------------ rules
def _pct(ratio: float) -> str:
    return f"{ratio * 100:.1f}%"


def _vacuum_reason(t: TableStat, taken_at: datetime, s: MaintainSettings) -> str | None:
    if t.dead_rows < s.dead_rows_min:
        return None
    ratio = t.dead_share()
    if ratio >= s.dead_ratio:
        return f"{t.dead_rows:,} dead rows ({_pct(ratio)} of rows)"
    vacuumed = [v for v in (t.last_vacuum, t.last_autovacuum) if v is not None]
    if not vacuumed:
        return f"{t.dead_rows:,} dead rows ({_pct(ratio)}), never vacuumed"
    age_days = (taken_at - max(vacuumed)).total_seconds() / _DAY_S
    if age_days >= s.vacuum_age_days:
        return f"{t.dead_rows:,} dead rows ({_pct(ratio)}), last vacuum {age_days:.0f} days ago"
    return None


def _analyze_reason(t: TableStat, s: MaintainSettings) -> tuple[str, float] | None:
    modified = t.modifications_since_analyze or 0
    if t.last_analyze is None and t.last_autoanalyze is None:
        # A handful of rows (alembic_version, a fresh history table) plans fine without
        # statistics and autovacuum gets to it; below the threshold it is noise in the plan.
        if max(t.live_rows, modified) >= s.analyze_rows_min:
            return "never analyzed: the planner guesses row counts", 1.0
        return None
    if modified < s.analyze_rows_min:
        return None
    ratio = modified / max(t.live_rows, 1)
    if ratio < s.analyze_ratio:
        return None
    return f"{modified:,} rows modified since the last analyze ({_pct(ratio)} of live rows)", ratio


def _table_action(t: TableStat, taken_at: datetime, s: MaintainSettings) -> _Ranked | None:
    vacuum = _vacuum_reason(t, taken_at, s)
    analyze = _analyze_reason(t, s)
    if vacuum is None and analyze is None:
        return None
    if vacuum is None:
        assert analyze is not None
        reason, ratio = analyze
        return _Ranked(2, ratio, Action(ActionKind.ANALYZE, t.schema, t.name, reason))
    total = t.live_rows + t.dead_rows
    reclaim = t.dead_rows * t.table_bytes // total if total else 0
    kind = ActionKind.VACUUM if analyze is None else ActionKind.VACUUM_ANALYZE
    reason = vacuum if analyze is None else f"{vacuum}; {analyze[0]}"
    return _Ranked(
        1, float(reclaim), Action(kind, t.schema, t.name, reason, estimated_bytes=reclaim)
    )


def _index_action(ix: IndexStat, s: MaintainSettings) -> _Ranked | None:
    if not ix.is_valid:
        if is_reindex_leftover(ix.name):
            return _Ranked(
                4,
                float(ix.size_bytes),
                Action(
                    ActionKind.ADVISORY,
                    ix.schema,
                    ix.table,
                    "invalid leftover of a failed REINDEX CONCURRENTLY "
                    f"({ix.size_bytes:,} bytes): writes maintain it, queries cannot use it",
                    index=ix.name,
                    note="drop it (check first that no REINDEX CONCURRENTLY is running)",
                ),
            )
        return _Ranked(
            0,
            float(ix.size_bytes),
            Action(
                ActionKind.REINDEX,
                ix.schema,
                ix.table,
                "invalid (a failed CREATE INDEX CONCURRENTLY?): writes maintain it, queries "
                "cannot use it",
                index=ix.name,
            ),
        )
    bloat = ix.bloat_bytes
    if bloat is None or ix.size_bytes <= 0 or bloat < s.bloat_min_bytes:
        return None
    ratio = bloat / ix.size_bytes
    if ratio < s.bloat_ratio:
        return None
    return _Ranked(
        1,
        float(bloat),
        Action(
            ActionKind.REINDEX,
            ix.schema,
            ix.table,
            f"estimated bloat {bloat:,} of {ix.size_bytes:,} bytes ({_pct(ratio)})",
            index=ix.name,
            estimated_bytes=bloat,
        ),
    )


def _sequence_action(seq: SequenceStat, warning: float) -> _Ranked | None:
    if seq.used_ratio is None or seq.used_ratio < warning:
        return None
    column = f" (column {seq.owned_by} is {seq.column_type})" if seq.owned_by else ""
    table = seq.owned_by.split(".", 1)[0] if seq.owned_by else None
    change = (
        f" and ALTER TABLE ... ALTER COLUMN {seq.owned_by.split('.', 1)[-1]} TYPE bigint "
        "(a table rewrite: plan it)"
        if seq.owned_by and seq.column_type not in (None, "bigint")
        else ""
    )
    return _Ranked(
        3,
        seq.used_ratio,
        Action(
            ActionKind.ADVISORY,
            seq.schema,
            table,
            f"sequence has used {_pct(seq.used_ratio)} of its range{column}",
            sequence=seq.name,
            note=f"ALTER SEQUENCE ... AS bigint{change}",
        ),
    )
