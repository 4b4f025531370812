"""The names of dbops' database roles (what each may do: ``dbops.ops.roles``)."""

from __future__ import annotations

from typing import Literal

__all__ = ["ROLE_NAMES", "RoleName"]

RoleName = Literal["owner", "app", "readonly", "monitor"]

#: dbops' role -> PostgreSQL role name.
ROLE_NAMES: dict[RoleName, str] = {
    "owner": "dbops_owner",
    "app": "dbops_app",
    "readonly": "dbops_readonly",
    "monitor": "dbops_monitor",
}
