"""The archive's SQL: moving soft-deleted rows out, counting them, and bringing them back."""

from __future__ import annotations

from dbops.core.ownership import SOLE_OWNERS_SQL, sole_owner_condition

SET_LIMITS = """
SELECT set_config('statement_timeout', %(statement_ms)s, true),
       set_config('lock_timeout', %(lock_ms)s, true)
"""


LOCATIONS_TABLE = "SELECT to_regclass('public.team_locations') IS NOT NULL"


CUTOFF = "SELECT now() - %(older_than)s::interval"


#: The candidates of a run, read once through a held cursor (one scan, not one per batch).
CANDIDATE_TEAMS = "SELECT id FROM teams WHERE deleted_at < %(cutoff)s ORDER BY id"


#: A batch takes the candidates nobody holds, checking the cutoff again under the lock.
PICK_TEAMS = """
SELECT id FROM teams
WHERE id = ANY(%(ids)s::uuid[]) AND deleted_at < %(cutoff)s
ORDER BY id
FOR UPDATE SKIP LOCKED
"""


ARCHIVE_TEAMS = """
INSERT INTO archive.teams
    (id, name, slug, settings, created_at, updated_at, deleted_at, archived_at, run_id)
SELECT id, name, slug, settings, created_at, updated_at, deleted_at, now(), %(run_id)s
FROM teams WHERE id = ANY(%(ids)s::uuid[])
ON CONFLICT (id) DO NOTHING
"""


ARCHIVE_MEMBERS_OF_TEAMS = """
INSERT INTO archive.team_members
    (team_id, user_id, role, created_at, updated_at, archived_at, run_id)
SELECT team_id, user_id, role, created_at, updated_at, now(), %(run_id)s
FROM team_members WHERE team_id = ANY(%(ids)s::uuid[])
ON CONFLICT (team_id, user_id) DO NOTHING
"""


ARCHIVE_INVITATIONS_OF_TEAMS = """
INSERT INTO archive.invitations
    (id, team_id, email, role, invited_by, token_hash, status, expires_at, accepted_at,
     created_at, updated_at, archived_at, run_id)
SELECT id, team_id, email, role, invited_by, token_hash, status, expires_at, accepted_at,
       created_at, updated_at, now(), %(run_id)s
FROM invitations WHERE team_id = ANY(%(ids)s::uuid[])
ON CONFLICT (id) DO NOTHING
"""


ARCHIVE_LOCATIONS_OF_TEAMS = """
INSERT INTO archive.team_locations (team_id, location, created_at, updated_at, archived_at, run_id)
SELECT team_id, location::text, created_at, updated_at, now(), %(run_id)s
FROM team_locations WHERE team_id = ANY(%(ids)s::uuid[])
ON CONFLICT (team_id) DO NOTHING
"""


DELETE_LOCATIONS_OF_TEAMS = "DELETE FROM team_locations WHERE team_id = ANY(%(ids)s::uuid[])"


DELETE_INVITATIONS_OF_TEAMS = "DELETE FROM invitations WHERE team_id = ANY(%(ids)s::uuid[])"


DELETE_MEMBERS_OF_TEAMS = "DELETE FROM team_members WHERE team_id = ANY(%(ids)s::uuid[])"


DELETE_TEAMS = "DELETE FROM teams WHERE id = ANY(%(ids)s::uuid[])"


CANDIDATE_USERS = "SELECT id FROM users WHERE deleted_at < %(cutoff)s ORDER BY id"


PICK_USERS = """
SELECT id FROM users
WHERE id = ANY(%(ids)s::uuid[]) AND deleted_at < %(cutoff)s
ORDER BY id
FOR UPDATE SKIP LOCKED
"""


#: The team lock every membership write takes first (services/_ownership.py), in id order, on
#: the live teams the picked users own: no demotion can slip in between check and delete.
LOCK_TEAMS_OWNED_BY = """
SELECT t.id FROM teams AS t
WHERE t.deleted_at IS NULL
  AND t.id IN (
    SELECT m.team_id FROM team_members AS m
    WHERE m.user_id = ANY(%(ids)s::uuid[]) AND m.role = 'OWNER'
  )
ORDER BY t.id
FOR UPDATE OF t
"""


#: Picked users holding an OWNER row of a live team that has no other live owner: the
#: services' own last-owner statement, so deleting and archiving refuse the same users.
SOLE_OWNERS = SOLE_OWNERS_SQL


ARCHIVE_USERS = """
INSERT INTO archive.users
    (id, email, password_hash, display_name, role, profile, tags, created_at, updated_at,
     deleted_at, phone_ciphertext, phone_key_version, phone_blind_index, archived_at, run_id)
SELECT id, email, password_hash, display_name, role, profile, tags, created_at, updated_at,
       deleted_at, phone_ciphertext, phone_key_version, phone_blind_index, now(), %(run_id)s
FROM users WHERE id = ANY(%(ids)s::uuid[])
ON CONFLICT (id) DO NOTHING
"""


ARCHIVE_MEMBERS_OF_USERS = """
INSERT INTO archive.team_members
    (team_id, user_id, role, created_at, updated_at, archived_at, run_id)
SELECT team_id, user_id, role, created_at, updated_at, now(), %(run_id)s
FROM team_members WHERE user_id = ANY(%(ids)s::uuid[])
ON CONFLICT (team_id, user_id) DO NOTHING
"""


ARCHIVE_SENDERS_OF_USERS = """
INSERT INTO archive.invitation_senders (invitation_id, invited_by, archived_at, run_id)
SELECT id, invited_by, now(), %(run_id)s
FROM invitations WHERE invited_by = ANY(%(ids)s::uuid[])
ON CONFLICT (invitation_id) DO NOTHING
"""


DELETE_MEMBERS_OF_USERS = "DELETE FROM team_members WHERE user_id = ANY(%(ids)s::uuid[])"


#: The foreign key sets ``invitations.invited_by`` to NULL (the link is in the archive).
DELETE_USERS = "DELETE FROM users WHERE id = ANY(%(ids)s::uuid[])"


DRY_RUN_COUNTS = f"""
WITH t AS (
    SELECT id FROM teams WHERE deleted_at < %(cutoff)s
), u AS (
    SELECT id FROM users WHERE deleted_at < %(cutoff)s
), skipped AS (
    SELECT DISTINCT m.user_id AS id
    FROM team_members AS m
    JOIN teams AS lt ON lt.id = m.team_id
    WHERE m.user_id IN (SELECT id FROM u)
      AND {sole_owner_condition("lt")}
), mu AS (
    SELECT id FROM u WHERE id NOT IN (SELECT id FROM skipped)
)
SELECT
    (SELECT count(*) FROM mu) AS users,
    (SELECT count(*) FROM t) AS teams,
    (SELECT count(*) FROM team_members AS m
     WHERE m.team_id IN (SELECT id FROM t) OR m.user_id IN (SELECT id FROM mu)) AS team_members,
    (SELECT count(*) FROM invitations AS i WHERE i.team_id IN (SELECT id FROM t)) AS invitations,
    (SELECT count(*) FROM invitations AS i
     WHERE i.invited_by IN (SELECT id FROM mu)
       AND i.team_id NOT IN (SELECT id FROM t)) AS invitation_senders,
    0::bigint AS team_locations
"""


DRY_RUN_LOCATIONS = """
SELECT count(*) FROM team_locations
WHERE team_id IN (SELECT id FROM teams WHERE deleted_at < %(cutoff)s)
"""


STATUS_COUNTS = """
SELECT
    (SELECT count(*) FROM archive.users) AS users,
    (SELECT count(*) FROM archive.teams) AS teams,
    (SELECT count(*) FROM archive.team_members) AS team_members,
    (SELECT count(*) FROM archive.invitations) AS invitations,
    (SELECT count(*) FROM archive.invitation_senders) AS invitation_senders,
    (SELECT count(*) FROM archive.team_locations) AS team_locations
"""


STATUS_SUMMARY = """
SELECT
    (SELECT count(*) FROM users WHERE deleted_at IS NOT NULL) AS soft_deleted_users,
    (SELECT count(*) FROM teams WHERE deleted_at IS NOT NULL) AS soft_deleted_teams,
    (SELECT max(archived_at) FROM (
        SELECT max(archived_at) AS archived_at FROM archive.users
        UNION ALL SELECT max(archived_at) FROM archive.teams
    ) AS a) AS last_archived_at
"""


FIND_ARCHIVED_USERS_BY_EMAIL = """
SELECT id FROM archive.users WHERE lower(email) = lower(%(email)s) ORDER BY archived_at, id
"""


LOCK_ARCHIVED_USER = """
SELECT id, email FROM archive.users WHERE id = %(id)s FOR UPDATE
"""


LIVE_USER_WITH_EMAIL = """
SELECT EXISTS (
    SELECT 1 FROM users WHERE email = lower(%(email)s) AND deleted_at IS NULL
)
"""


#: The team lock (services/_ownership.py), in id order, of the teams memberships return to.
LOCK_TEAMS_OF_ARCHIVED_USER = """
SELECT t.id FROM teams AS t
WHERE t.id IN (SELECT a.team_id FROM archive.team_members AS a WHERE a.user_id = %(id)s)
ORDER BY t.id
FOR UPDATE OF t
"""


RESTORE_USER = """
INSERT INTO users
    (id, email, password_hash, display_name, role, profile, tags, created_at, updated_at,
     deleted_at, phone_ciphertext, phone_key_version, phone_blind_index)
SELECT id, email, password_hash, display_name, role, profile, tags, created_at, updated_at,
       deleted_at, phone_ciphertext, phone_key_version, phone_blind_index
FROM archive.users WHERE id = %(id)s
"""


RESTORE_MEMBERS_OF_USER = """
WITH moved AS (
    DELETE FROM archive.team_members AS a
    WHERE a.user_id = %(id)s AND EXISTS (SELECT 1 FROM teams AS t WHERE t.id = a.team_id)
    RETURNING a.team_id, a.user_id, a.role, a.created_at, a.updated_at
)
INSERT INTO team_members (team_id, user_id, role, created_at, updated_at)
SELECT team_id, user_id, role, created_at, updated_at FROM moved
"""


#: Sender links of live invitations: dropped from the archive, put back where still NULL.
RESTORE_SENDERS_OF_USER = """
WITH links AS (
    DELETE FROM archive.invitation_senders AS s
    WHERE s.invited_by = %(id)s
      AND EXISTS (SELECT 1 FROM invitations AS i WHERE i.id = s.invitation_id)
    RETURNING s.invitation_id
)
UPDATE invitations AS i SET invited_by = %(id)s
FROM links
WHERE i.id = links.invitation_id AND i.invited_by IS NULL
"""


ARCHIVED_MEMBERS_OF_USER = "SELECT count(*) FROM archive.team_members WHERE user_id = %(id)s"


DELETE_ARCHIVED_USER = "DELETE FROM archive.users WHERE id = %(id)s"


FIND_ARCHIVED_TEAMS_BY_SLUG = """
SELECT id FROM archive.teams WHERE slug = %(slug)s ORDER BY archived_at, id
"""


LOCK_ARCHIVED_TEAM = "SELECT id, slug FROM archive.teams WHERE id = %(id)s FOR UPDATE"


LIVE_TEAM_WITH_SLUG = """
SELECT EXISTS (SELECT 1 FROM teams WHERE slug = %(slug)s AND deleted_at IS NULL)
"""


#: Owners of the archived team that can come back (their user row is in ``users``).
RETURNING_OWNERS = """
SELECT count(*) FROM archive.team_members AS a
WHERE a.team_id = %(id)s AND a.role = 'OWNER'
  AND EXISTS (SELECT 1 FROM users AS u WHERE u.id = a.user_id)
"""


ARCHIVED_OWNER_IDS = """
SELECT a.user_id FROM archive.team_members AS a
WHERE a.team_id = %(id)s AND a.role = 'OWNER'
ORDER BY a.user_id
"""


RESTORE_TEAM = """
INSERT INTO teams (id, name, slug, settings, created_at, updated_at, deleted_at)
SELECT id, name, slug, settings, created_at, updated_at, deleted_at
FROM archive.teams WHERE id = %(id)s
"""


RESTORE_MEMBERS_OF_TEAM = """
WITH moved AS (
    DELETE FROM archive.team_members AS a
    WHERE a.team_id = %(id)s AND EXISTS (SELECT 1 FROM users AS u WHERE u.id = a.user_id)
    RETURNING a.team_id, a.user_id, a.role, a.created_at, a.updated_at
)
INSERT INTO team_members (team_id, user_id, role, created_at, updated_at)
SELECT team_id, user_id, role, created_at, updated_at FROM moved
"""


#: Invitations whose sender is not in ``users`` any more keep the link in the archive instead.
KEEP_SENDERS_OF_TEAM = """
INSERT INTO archive.invitation_senders (invitation_id, invited_by, archived_at, run_id)
SELECT a.id, a.invited_by, a.archived_at, a.run_id
FROM archive.invitations AS a
WHERE a.team_id = %(id)s
  AND a.invited_by IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM users AS u WHERE u.id = a.invited_by)
ON CONFLICT (invitation_id) DO NOTHING
"""


RESTORE_INVITATIONS_OF_TEAM = """
WITH moved AS (
    DELETE FROM archive.invitations AS a WHERE a.team_id = %(id)s
    RETURNING a.*
)
INSERT INTO invitations
    (id, team_id, email, role, invited_by, token_hash, status, expires_at, accepted_at,
     created_at, updated_at)
SELECT m.id, m.team_id, m.email, m.role,
       CASE WHEN EXISTS (SELECT 1 FROM users AS u WHERE u.id = m.invited_by)
            THEN m.invited_by END,
       m.token_hash, m.status, m.expires_at, m.accepted_at, m.created_at, m.updated_at
FROM moved AS m
"""


ARCHIVED_LOCATIONS_OF_TEAM = "SELECT count(*) FROM archive.team_locations WHERE team_id = %(id)s"


RESTORE_LOCATION_OF_TEAM = """
WITH moved AS (
    DELETE FROM archive.team_locations AS a WHERE a.team_id = %(id)s
    RETURNING a.team_id, a.location, a.created_at, a.updated_at
)
INSERT INTO team_locations (team_id, location, created_at, updated_at)
SELECT team_id, location::geography, created_at, updated_at FROM moved
"""


ARCHIVED_MEMBERS_OF_TEAM = "SELECT count(*) FROM archive.team_members WHERE team_id = %(id)s"


DELETE_ARCHIVED_TEAM = "DELETE FROM archive.teams WHERE id = %(id)s"
