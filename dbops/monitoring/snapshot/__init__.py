"""The monitoring snapshot: frozen dataclasses of everything collected, and its JSON form.

Standard library only, so that the dashboard, notebooks and the exporter can load a snapshot
from JSON without a database driver. ``None`` always means "unknown" (a collector failed, the
server does not expose it, or the role may not read it), never a sentinel value. Durations are
seconds (``_s``) or milliseconds (``_ms``) as the name says; sizes are bytes.

One module per part, as the collectors are (``collectors/statements.py`` fills the types of
``snapshot/statements.py``); ``model`` holds :class:`Snapshot` itself, ``codec`` its JSON form.
"""

from __future__ import annotations

from dbops.monitoring.snapshot._base import SCHEMA_VERSION, CountBy, ServerInfo
from dbops.monitoring.snapshot.access import AccessStat, AppAccessStat, ServerAccessStat
from dbops.monitoring.snapshot.activity import ActivityStat, BlockedPair, SessionStat
from dbops.monitoring.snapshot.advice import Advice, IndexSuggestion, Rejection, StatementGain
from dbops.monitoring.snapshot.app import (
    APP_ROLES,
    STALE_GRACE_S,
    STALE_INTERVALS,
    AppStat,
    CacheStat,
    PoolStat,
    ProcessReport,
    ReplicaRoute,
    ReplicaRouting,
    StatementLatency,
    is_live,
)
from dbops.monitoring.snapshot.backups import BackupsStat
from dbops.monitoring.snapshot.bouncer import BouncerDatabase, BouncerPool, BouncerStat
from dbops.monitoring.snapshot.data import DataStat, DayCount, TeamSizeCount
from dbops.monitoring.snapshot.database import (
    WRAPAROUND_LIMIT,
    CheckpointStat,
    ConstraintStat,
    DatabaseStat,
    ReplicaStat,
    RoleDefault,
    SequenceStat,
    SettingStat,
    SlotStat,
    XidAgeStat,
)
from dbops.monitoring.snapshot.ha import HaMember, HaStat
from dbops.monitoring.snapshot.history import (
    CaptureResult,
    DatabasePoint,
    ProcessPoint,
    PruneResult,
    StatementPoint,
    StatementTotal,
    TableGrowth,
)
from dbops.monitoring.snapshot.indexes import IndexStat
from dbops.monitoring.snapshot.model import CarriedSection, SectionError, Snapshot
from dbops.monitoring.snapshot.resources import ResourceStat
from dbops.monitoring.snapshot.statements import QueryStat, StatementsStat
from dbops.monitoring.snapshot.tables import TableStat

__all__ = [
    "APP_ROLES",
    "SCHEMA_VERSION",
    "STALE_GRACE_S",
    "STALE_INTERVALS",
    "WRAPAROUND_LIMIT",
    "AccessStat",
    "ActivityStat",
    "Advice",
    "AppAccessStat",
    "AppStat",
    "BackupsStat",
    "BlockedPair",
    "BouncerDatabase",
    "BouncerPool",
    "BouncerStat",
    "CacheStat",
    "CaptureResult",
    "CarriedSection",
    "CheckpointStat",
    "ConstraintStat",
    "CountBy",
    "DataStat",
    "DatabasePoint",
    "DatabaseStat",
    "DayCount",
    "HaMember",
    "HaStat",
    "IndexStat",
    "IndexSuggestion",
    "PoolStat",
    "ProcessPoint",
    "ProcessReport",
    "PruneResult",
    "QueryStat",
    "Rejection",
    "ReplicaRoute",
    "ReplicaRouting",
    "ReplicaStat",
    "ResourceStat",
    "RoleDefault",
    "SectionError",
    "SequenceStat",
    "ServerAccessStat",
    "ServerInfo",
    "SessionStat",
    "SettingStat",
    "SlotStat",
    "Snapshot",
    "StatementGain",
    "StatementLatency",
    "StatementPoint",
    "StatementTotal",
    "StatementsStat",
    "TableGrowth",
    "TableStat",
    "TeamSizeCount",
    "XidAgeStat",
    "is_live",
]
