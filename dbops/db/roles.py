"""The names of dbops' database roles (what each may do: ``dbops.ops.roles``)."""

from __future__ import annotations

from typing import Literal

__all__ = [
    "ALL_ROLES",
    "DATA_FUNCTIONS",
    "EXPECTED_ROLE_DEFAULTS",
    "POLICY_ROLE",
    "ROLE_DEFAULTS_SQL",
    "ROLE_NAMES",
    "SYSTEM_ROLE",
    "RoleName",
]

RoleName = Literal["owner", "app", "readonly", "monitor"]

#: dbops' role -> PostgreSQL role name.
ROLE_NAMES: dict[RoleName, str] = {
    "owner": "dbops_owner",
    "app": "dbops_app",
    "readonly": "dbops_readonly",
    "monitor": "dbops_monitor",
}

#: NOLOGIN, BYPASSRLS: what the services switch to for an explicit system actor (granted to
#: the app role), so system statements plan without the tenant policies (decision 0007).
SYSTEM_ROLE = "dbops_system"

#: NOLOGIN, BYPASSRLS: owns the functions behind the tenant policies (``rls_*``), which must
#: bypass RLS to read ``team_members`` without recursing. Granted to no role the application
#: can log in as or become (only to the owner, who runs migrations): whoever could become the
#: functions' owner could drop or rewrite them, and with them the policies.
POLICY_ROLE = "dbops_policy"

#: Every role dbops makes.
ALL_ROLES = (*ROLE_NAMES.values(), SYSTEM_ROLE, POLICY_ROLE)

#: The one role-level default dbops sets itself, as ``pg_db_role_setting`` has it: ``(role,
#: database or None for all, "name=value")``. Any other default on a dbops role is suspect:
#: ``dbops roles setup`` removes it and the ``role_defaults`` check is critical.
EXPECTED_ROLE_DEFAULTS = frozenset(
    {(ROLE_NAMES["readonly"], None, "default_transaction_read_only=on")}
)

#: Role-level defaults of dbops' roles (``pg_db_role_setting`` is readable by every role).
ROLE_DEFAULTS_SQL = """
SELECT r.rolname::text AS role, d.datname::text AS database, cfg AS setting
FROM pg_db_role_setting AS s
JOIN pg_roles AS r ON r.oid = s.setrole
LEFT JOIN pg_database AS d ON d.oid = s.setdatabase
CROSS JOIN LATERAL unnest(s.setconfig) AS cfg
WHERE r.rolname = ANY(%(names)s)
ORDER BY 1, 2 NULLS FIRST, 3
"""

#: The SECURITY DEFINER aggregate functions of the data section (migration 0009), in schema
#: ``dbops_monitor``, by their identity (argument types only), as ``to_regprocedure`` takes them.
DATA_FUNCTIONS = (
    "dbops_monitor.data_counts()",
    "dbops_monitor.data_memberships_by_role()",
    "dbops_monitor.data_signups_per_day(integer)",
    "dbops_monitor.data_team_sizes(integer)",
    "dbops_monitor.data_zero_owner_teams(integer)",
)
