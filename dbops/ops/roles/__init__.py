"""Database roles dbops runs with: owner, app, read-only and monitor (``dbops roles setup``).

===============  =========================================================================
role             what it may do
===============  =========================================================================
dbops_owner      owns the database, the schemas and every table; runs migrations. No
                 BYPASSRLS: the tenant tables FORCE row-level security, so it sees rows only
                 as an explicit system actor (migrations set one).
dbops_app        what the application's services connect as: reads and writes the tenant
                 tables under row-level security; owns nothing, no BYPASSRLS, no access to
                 ``archive``, ``audit``, ``dbops_monitor`` or ``alembic_version``.
dbops_readonly   the dashboard and the notebooks: SELECT on the tenant tables (BYPASSRLS: an
                 operator's view across tenants) without the secret columns (password hashes,
                 phone ciphertext, invitation token hashes), the monitoring history and the
                 statistics views (``pg_monitor``); ``default_transaction_read_only``; no audit.
dbops_monitor    the exporter and history capture: ``pg_monitor`` and the ``dbops_monitor``
                 schema; no SELECT on any tenant table. The data section's numbers come from
                 the aggregate functions of migration 0009 (:data:`DATA_FUNCTIONS`), which
                 return counts only (and at most 10 ids of teams without an owner).
dbops_system     NOLOGIN, BYPASSRLS, granted to dbops_app: the services switch to it for an
                 explicit system actor (``SET ROLE``), so system statements plan without the
                 tenant policies. It owns nothing: the app role can become it.
dbops_policy     NOLOGIN, BYPASSRLS, granted to the owner only: owns the policies' functions
                 and views (migrations 0008, 0010, 0013; :mod:`dbops.ops.policy_role`) and the
                 data aggregates (:data:`DATA_FUNCTIONS`, which read past RLS) and the
                 member counter's trigger function (migration 0014), which no role the
                 application can become may alter.
===============  =========================================================================

Role-level defaults (``ALTER ROLE ... SET``) are removed from every dbops role on each setup
(any role may set its own: ``SET role = 'dbops_system'`` would make every new app connection
bypass RLS); the read-only role's ``default_transaction_read_only`` is set again.

EXECUTE on :data:`DATA_FUNCTIONS` goes to the monitor and read-only roles; the migration
revokes it from ``PUBLIC``, and the application role never gets it (cross-tenant numbers are
no service's business).

Everything here is idempotent and runs as a role that may create roles and change ownership
(the embedded cluster's superuser; a DBA's role elsewhere). Passwords come from settings or
``*_FILE`` files, or are generated for the embedded cluster. Only a SCRAM-SHA-256 verifier
computed on the client (libpq's ``PQencryptPasswordConn``) is sent, never the password, and
the statements are kept out of pg_stat_statements and the statement log where the session
may (a superuser); statistics entries that hold a password literal (from earlier versions, or
anyone's ``ALTER ROLE ... PASSWORD``) are removed (:func:`purge_secret_statements`).

Modules: :mod:`~dbops.ops.roles.setup` (creating and updating the roles, an operator's
read-only role), :mod:`~dbops.ops.roles.grants` (what each may do on the objects that exist),
:mod:`~dbops.ops.roles.secrets` (passwords as verifiers, purging leaked ones),
:mod:`~dbops.ops.roles.status` (which roles exist and how).
"""

from __future__ import annotations

from dbops.db.roles import DATA_FUNCTIONS, ROLE_NAMES, RoleName
from dbops.ops.roles.grants import APP_TABLES, COUNT_FUNCTION, REPORT_FUNCTION, grant_privileges
from dbops.ops.roles.secrets import password_verifier, purge_secret_statements, role_passwords
from dbops.ops.roles.setup import RolesReport, ensure_readonly_role, setup_roles
from dbops.ops.roles.status import RoleState, role_status

__all__ = [
    "APP_TABLES",
    "COUNT_FUNCTION",
    "DATA_FUNCTIONS",
    "REPORT_FUNCTION",
    "ROLE_NAMES",
    "RoleName",
    "RoleState",
    "RolesReport",
    "ensure_readonly_role",
    "grant_privileges",
    "password_verifier",
    "purge_secret_statements",
    "role_passwords",
    "role_status",
    "setup_roles",
]
