"""The restore drill: a backup restored in a scratch cluster and read through the services.

:func:`dbops.ops.backup.verify_backup` proves the files, the restore, the revision and every
table's row count; this workflow adds the application's hot reads on a real member of a real
team of the restored data (ops imports no service, so the check is passed in here). The CLI
(``dbops backup verify``), the scheduler of ``dbops up --serve`` and notebook 04 run this.
"""

from __future__ import annotations

from dbops.config import Settings
from dbops.core.manifest import Drill
from dbops.db.dsn import Dsn
from dbops.errors import BackupError
from dbops.ops.backup import Progress, verify_backup

__all__ = ["SAMPLE_MEMBER_SQL", "hot_reads", "restore_drill"]

#: A live user who belongs to a live team: the subject of the hot reads.
SAMPLE_MEMBER_SQL = """
SELECT u.id AS user_id, u.email AS email, t.id AS team_id, t.slug AS slug
FROM team_members AS m
JOIN users AS u ON u.id = m.user_id AND u.deleted_at IS NULL
JOIN teams AS t ON t.id = m.team_id AND t.deleted_at IS NULL
LIMIT 1
"""


def restore_drill(
    settings: Settings,
    backup_id: str | None = None,
    *,
    scratch: Dsn | None = None,
    jobs: int | None = None,
    progress: Progress | None = None,
) -> Drill:
    """:func:`~dbops.ops.backup.verify_backup` of ``backup_id`` with the services' hot reads.

    The arguments and errors are :func:`~dbops.ops.backup.verify_backup`'s; the drill is
    recorded in the backup's manifest either way.
    """
    return verify_backup(
        settings, backup_id, scratch=scratch, jobs=jobs, progress=progress, reads=hot_reads
    )


def hot_reads(settings: Settings, target: Dsn) -> str:
    """Run the services' hot reads on a real member of a real team of ``target``.

    Returns a one-line summary; raises a :class:`DbopsError` when a read fails.
    """
    from dbops.db.engine import open_database
    from dbops.services import Actor, MembershipService, TeamService, UserService

    actor = Actor.system("backup-verify")
    scratch_settings = settings.model_copy(update={"pool_min_size": 0, "pool_max_size": 2})
    with open_database(scratch_settings, target, purpose="admin") as db:
        with db.connection() as conn:
            sample = conn.execute(SAMPLE_MEMBER_SQL).fetchone()
        if sample is None:
            return "no live member of a live team: hot reads skipped"
        user_id, email, team_id, slug = sample
        users, teams = UserService(db), TeamService(db)
        user = users.get(actor, user_id)
        if users.get_by_email(actor, email).id != user.id:
            raise BackupError("hot read get_by_email found another user")
        mine = teams.teams_of_user(actor, user_id)
        if team_id not in {t.team_id for t in mine}:
            raise BackupError("hot read teams_of_user misses the user's team")
        if teams.get_by_slug(actor, slug).id != team_id:
            raise BackupError("hot read get_by_slug found another team")
        members = MembershipService(db).members(actor, team_id)
        if user_id not in {m.user_id for m in members}:
            raise BackupError("hot read members misses the user")
    return f"hot reads ok on user {user_id} and team {slug}"
