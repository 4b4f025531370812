"""``prune_backups``: keep the last N, one per day for D days, one per week for W weeks.

The plan is a pure function of the manifests (:func:`plan_prune`); ``apply=False`` (the
default) only shows it. Whatever the settings, the newest backup and the newest *proven*
backup are always kept, so pruning can never leave you without a backup known to restore.
Proven means verified (a passing restore drill) *and* still intact: its files are re-checked
against the manifest's checksums now, since a dump can rot after its drill; a verified
backup that fails the check is not the proven one (the next intact verified one is), and the
plan names it. A backup whose manifest cannot be read is never touched.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from dbops.config import Settings
from dbops.core.manifest import Manifest, read_manifests
from dbops.errors import BackupCorrupt, BackupError
from dbops.ops.backup._common import backup_root, check_files

__all__ = ["PruneDecision", "PrunePlan", "plan_prune", "prune_backups"]


@dataclass(frozen=True)
class PruneDecision:
    """One backup and why it stays (``reasons`` empty: it goes)."""

    manifest: Manifest
    reasons: tuple[str, ...]

    @property
    def keep(self) -> bool:
        """True when at least one rule keeps the backup."""
        return bool(self.reasons)


@dataclass(frozen=True)
class PrunePlan:
    """Every backup, newest first, with its decision; ``applied`` once deletions ran."""

    decisions: tuple[PruneDecision, ...]
    applied: bool = False
    #: Verified backups whose files no longer match their checksums (newest first), with why.
    corrupt: tuple[tuple[str, str], ...] = ()

    @property
    def keep(self) -> tuple[Manifest, ...]:
        """Backups that stay."""
        return tuple(d.manifest for d in self.decisions if d.keep)

    @property
    def delete(self) -> tuple[Manifest, ...]:
        """Backups that go (or went, when ``applied``)."""
        return tuple(d.manifest for d in self.decisions if not d.keep)

    @property
    def freed_bytes(self) -> int:
        """Bytes the deletions free."""
        return sum(m.size_bytes for m in self.delete)


#: Why a backup is not intact (a message), or ``None`` when its files match the manifest.
IntactCheck = Callable[[Manifest], str | None]


def plan_prune(
    manifests: Sequence[Manifest],
    *,
    keep_last: int,
    keep_daily: int,
    keep_weekly: int,
    damage: IntactCheck = lambda _m: None,
) -> PrunePlan:
    """Which backups the retention rules keep (days and weeks are UTC, ISO weeks).

    A day (week) counts toward ``keep_daily`` (``keep_weekly``) only if it has a backup; its
    newest backup is the one kept. ``damage`` is asked about verified backups, newest first,
    until one is intact: that one is kept as "newest verified" (pure when ``damage`` is).
    """
    ordered = sorted(manifests, key=lambda m: (m.created_at, m.id), reverse=True)
    reasons: dict[str, list[str]] = {m.id: [] for m in ordered}
    for m in ordered[:keep_last]:
        reasons[m.id].append("last")
    days: list[object] = []
    weeks: list[object] = []
    for m in ordered:
        day = m.created_at.date()
        if day not in days:
            days.append(day)
            if len(days) <= keep_daily:
                reasons[m.id].append("daily")
        week = m.created_at.isocalendar()[:2]
        if week not in weeks:
            weeks.append(week)
            if len(weeks) <= keep_weekly:
                reasons[m.id].append("weekly")
    if ordered:
        reasons[ordered[0].id].append("newest")
    corrupt: list[tuple[str, str]] = []
    for m in ordered:
        if m.verified_at is None:
            continue
        problem = damage(m)
        if problem is None:
            reasons[m.id].append("newest verified")
            break
        corrupt.append((m.id, problem))
    return PrunePlan(
        tuple(PruneDecision(m, tuple(reasons[m.id])) for m in ordered), corrupt=tuple(corrupt)
    )


def prune_backups(
    settings: Settings,
    *,
    apply: bool = False,
    keep_last: int | None = None,
    keep_daily: int | None = None,
    keep_weekly: int | None = None,
    backup_dir: Path | None = None,
) -> PrunePlan:
    """Plan (and with ``apply`` carry out) the deletions the retention rules call for.

    The rule counts default to ``backup_keep_last``, ``backup_keep_daily`` and
    ``backup_keep_weekly``. A backup is first renamed to a hidden name, then deleted, so a
    half-deleted backup never appears in a listing.

    Raises:
        BackupError: a backup directory cannot be deleted (those before it are gone).
    """
    root = backup_dir.absolute() if backup_dir is not None else backup_root(settings)

    def damage(manifest: Manifest) -> str | None:
        try:
            check_files(root / manifest.id, manifest)
        except BackupCorrupt as exc:
            return exc.message
        return None

    plan = plan_prune(
        read_manifests(root),
        keep_last=settings.backup.keep_last if keep_last is None else keep_last,
        keep_daily=settings.backup.keep_daily if keep_daily is None else keep_daily,
        keep_weekly=settings.backup.keep_weekly if keep_weekly is None else keep_weekly,
        damage=damage,
    )
    if not apply:
        return plan
    for manifest in plan.delete:
        doomed = root / f".deleting-{manifest.id}"
        try:
            (root / manifest.id).rename(doomed)
            shutil.rmtree(doomed)
        except OSError as exc:
            raise BackupError(f"cannot delete backup {manifest.id}: {exc}") from exc
    return PrunePlan(plan.decisions, applied=True, corrupt=plan.corrupt)
