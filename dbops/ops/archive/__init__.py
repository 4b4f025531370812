"""Archiving: move old soft-deleted users and teams into schema ``archive``, and back.

:func:`run` moves, in batches of one transaction each, every team and user soft-deleted before
a cutoff (``deleted_at < now() - older_than``) out of the live tables into ``archive.*``
(migration 0005); :func:`restore` moves one user or team back; :func:`status` counts.

The candidates are read once per phase (a cursor held across the batches); a batch locks its
share ``FOR UPDATE SKIP LOCKED`` (rows another transaction holds wait for the next run),
copies them with ``INSERT ... SELECT ... ON CONFLICT DO NOTHING``, deletes them from the live
tables, checks that every table lost exactly as many rows as its archive gained, and commits.
A crash at any point therefore leaves each row live or archived, never both and never
neither; running again picks up what is left, and a second run finds nothing.

The rules (docs/schema.md, "Archive"):

* A team goes with all its memberships, invitations and its location (teams go first).
* A user goes with every membership still pointing at it. A user who is an OWNER of a live team
  with no other live owner is **skipped** and reported: archiving it would leave that team no
  owner to bring back. Live invitations the user sent lose ``invited_by`` (its foreign key sets
  NULL); the link is kept in ``archive.invitation_senders`` and put back by a restore.
* A restore brings rows back exactly as they were (still soft-deleted: undo the soft delete
  with the services), memberships only where the other side is present again, and refuses when
  a live row now holds the e-mail or slug, or when a team would come back without an owner.

Modules: :mod:`~dbops.ops.archive.moving` (``run``, ``status``),
:mod:`~dbops.ops.archive.restoring` (``restore``), :mod:`~dbops.ops.archive.reports` (what they
return), :mod:`~dbops.ops.archive._sql` (the statements).
"""

from __future__ import annotations

from dbops.ops.archive.moving import DEFAULT_BATCH_SIZE, run, status
from dbops.ops.archive.reports import (
    ArchiveProgress,
    ArchiveReport,
    ArchiveStatus,
    RestoreReport,
    SkippedUser,
    TableCounts,
)
from dbops.ops.archive.restoring import restore

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "ArchiveProgress",
    "ArchiveReport",
    "ArchiveStatus",
    "RestoreReport",
    "SkippedUser",
    "TableCounts",
    "restore",
    "run",
    "status",
]
