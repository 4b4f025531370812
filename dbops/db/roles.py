"""The names of dbops' database roles (what each may do: ``dbops.ops.roles``)."""

from __future__ import annotations

from typing import Literal

__all__ = ["ROLE_NAMES", "SYSTEM_ROLE", "RoleName"]

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
