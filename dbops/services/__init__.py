"""The service API: typed, validated, transactional access to the domain. Owns all domain SQL."""

from __future__ import annotations

from dbops.services._base import Actor, UnitOfWork, retrying, unit_of_work

__all__ = ["Actor", "UnitOfWork", "retrying", "unit_of_work"]
