"""Which of dbops' roles exist, may log in, and bypass row-level security (``dbops status``)."""

from __future__ import annotations

from dataclasses import dataclass

from dbops.db import Database
from dbops.db.roles import (
    ROLE_NAMES,
    RoleName,
)

ROLE_STATE_SQL = """
SELECT rolname::text AS name, rolcanlogin AS login, rolbypassrls AS bypass_rls,
       rolsuper AS superuser
FROM pg_roles
WHERE rolname = ANY(%(names)s)
"""


@dataclass(frozen=True)
class RoleState:
    """One of dbops' roles as the server has it."""

    role: RoleName
    name: str
    exists: bool
    login: bool = False
    bypass_rls: bool = False
    superuser: bool = False


def role_status(db: Database) -> list[RoleState]:
    """Each of dbops' roles: does it exist, can it log in, does it bypass RLS (``dbops roles``)."""
    with db.read() as conn:
        rows = {
            r[0]: r[1:] for r in conn.execute(ROLE_STATE_SQL, {"names": list(ROLE_NAMES.values())})
        }
    states = []
    for role, name in ROLE_NAMES.items():
        found = rows.get(name)
        if found is None:
            states.append(RoleState(role, name, exists=False))
        else:
            states.append(
                RoleState(role, name, True, bool(found[0]), bool(found[1]), bool(found[2]))
            )
    return states
