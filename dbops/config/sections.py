"""The settings by subsystem: a frozen view of each part's own settings.

:class:`~dbops.config.model.Settings` stays flat because the environment is flat
(``DBOPS_POOL_MIN_SIZE``, not ``DBOPS_POOL__MIN_SIZE``: the names users already set). Each
subsystem reads its section instead of all 115 fields: ``settings.pool.max_size``,
``settings.backup.keep_daily``. A section is a frozen dataclass whose field ``x`` is the
setting ``PREFIX + x`` (or the setting's own name, for the few in ``UNPREFIXED``), so a part
that needs one changed value gets a ``dataclasses.replace`` of its section, not a copy of all
the settings validated again.

Every setting belongs to exactly one section (``tests/test_config_sections.py``), and
docs/settings.md lists them under one heading per section, in the order of :data:`SECTIONS`.
A new setting: a field in ``Settings`` (validation, default, description) and a field in its
section here.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Literal, Self

from pydantic import SecretStr

if TYPE_CHECKING:
    from dbops.config.model import Settings

__all__ = [
    "SECTIONS",
    "AdviceSettings",
    "BackupSettings",
    "CheckSettings",
    "ConnectionSettings",
    "CryptoSettings",
    "DashboardSettings",
    "EmbeddedSettings",
    "ExporterSettings",
    "HistorySettings",
    "MaintainSettings",
    "MigrationSettings",
    "MonitorSettings",
    "PitrSettings",
    "PoolSettings",
    "ReplicaSettings",
    "RoleSettings",
    "Section",
    "ServeSettings",
    "ServiceSettings",
]


class Section:
    """Base of the section dataclasses: where each field comes from, and how to build one."""

    #: The heading of the section in docs/settings.md.
    TITLE: ClassVar[str]
    #: Field ``x`` of the section is the setting ``PREFIX + x`` ...
    PREFIX: ClassVar[str] = ""
    #: ... except these, which have the setting's own name.
    UNPREFIXED: ClassVar[tuple[str, ...]] = ()

    @classmethod
    @functools.cache
    def setting_names(cls) -> dict[str, str]:
        """Section field name -> ``Settings`` field name."""
        assert dataclasses.is_dataclass(cls)
        return {
            f.name: f.name if f.name in cls.UNPREFIXED else cls.PREFIX + f.name
            for f in dataclasses.fields(cls)
        }

    @classmethod
    def of(cls, settings: Settings) -> Self:
        """This section of ``settings``."""
        values = {name: getattr(settings, source) for name, source in cls.setting_names().items()}
        return cls(**values)


@dataclass(frozen=True)
class ConnectionSettings(Section):
    """Which database, and how this process names itself to it."""

    TITLE = "Connection"

    database_url: SecretStr | None
    home: Path
    embedded_database: str
    application_name: str
    connect_timeout_s: int
    #: How often a process writes its pools and caches to ``dbops_monitor`` (0: never).
    process_report_s: float
    process_name: str | None


@dataclass(frozen=True)
class PoolSettings(Section):
    """The connection pool and the timeouts every session starts with.

    ``dbops status`` shows this section as it is (``StatusReport.pool``).
    """

    TITLE = "Pool and sessions"
    PREFIX = "pool_"
    UNPREFIXED = (
        "prepared_statements",
        "prepare_threshold",
        "statement_timeout_ms",
        "lock_timeout_ms",
        "idle_in_transaction_timeout_ms",
    )

    min_size: int
    max_size: int
    max_idle_s: float
    timeout_s: float
    max_lifetime_s: float
    pre_ping: bool
    pre_ping_bypass_s: float
    prepared_statements: bool
    prepare_threshold: int
    statement_timeout_ms: int
    lock_timeout_ms: int
    idle_in_transaction_timeout_ms: int


@dataclass(frozen=True)
class ReplicaSettings(Section):
    """Read replicas: which the services read from, and when a read goes to the primary."""

    TITLE = "Read replicas"
    PREFIX = "replica_"

    urls: SecretStr | None
    reads: bool
    max_lag_s: float
    wait_s: float
    check_s: float


@dataclass(frozen=True)
class ServiceSettings(Section):
    """Limits and tuning of the service API."""

    TITLE = "Services"

    json_max_bytes: int
    search_similarity_threshold: float


@dataclass(frozen=True)
class MigrationSettings(Section):
    """How `dbops migrate` waits: for locks behind its DDL, for another run to finish."""

    TITLE = "Migrations"
    PREFIX = "migration_"

    lock_timeout_ms: int
    wait_s: float


@dataclass(frozen=True)
class MonitorSettings(Section):
    """What the collectors read (``DBOPS_MONITOR_*``)."""

    TITLE = "Monitoring"
    PREFIX = "monitor_"

    #: ``statement_timeout`` of each query.
    collector_timeout_ms: int
    #: ... of the queries refreshed in the background (:mod:`dbops.monitoring.cadence`).
    slow_collector_timeout_ms: int
    #: Statements kept, top by total time.
    top_statements: int
    #: Query texts are cut to this many characters.
    query_text_chars: int
    explain_max_chars: int
    #: Sessions and blocked pairs kept.
    max_sessions: int
    #: Tables kept, largest first.
    max_tables: int
    pgbouncer_url: SecretStr | None
    patroni_url: str | None
    access_window_s: float


@dataclass(frozen=True)
class CheckSettings(Section):
    """Thresholds of the health checks.

    A check reads its thresholds by name from the whole settings (``Check.settings`` lists
    them: some checks also read another section's value, e.g. ``backup_max_age_s``).
    """

    TITLE = "Checks"
    PREFIX = "check_"

    replication_lag_warning_s: float
    replication_lag_critical_s: float
    slot_retained_warning_bytes: int
    slot_retained_critical_bytes: int
    bouncer_wait_warning_s: float
    bouncer_wait_critical_s: float
    long_running_query_s: float
    long_running_query_critical_s: float
    idle_in_transaction_s: float
    cache_hit_warning: float
    cache_hit_critical: float
    cache_hit_min_blocks: int
    connections_warning: float
    connections_critical: float
    wraparound_warning: float
    wraparound_critical: float
    sequence_warning: float
    sequence_critical: float
    unused_index_min_bytes: int
    unused_index_min_stats_age_s: float
    slow_query_ms: float
    slow_query_calls: int
    pool_saturation_warning: float
    statements_capacity: float
    failed_logins_warning: int


@dataclass(frozen=True)
class ExporterSettings(Section):
    """The Prometheus endpoint's scrape budget, cadence and label sizes."""

    TITLE = "Exporter"
    PREFIX = "exporter_"

    scrape_budget_s: float
    min_interval_s: float
    slow_interval_s: float
    top_statements: int
    query_label_chars: int


@dataclass(frozen=True)
class AdviceSettings(Section):
    """Index advice (hypothetical indexes with hypopg)."""

    TITLE = "Index advice"
    PREFIX = "advice_"

    top_statements: int
    min_cost_factor: float
    timeout_ms: int
    update_overhead: float


@dataclass(frozen=True)
class HistorySettings(Section):
    """The history the scheduler captures into ``dbops_monitor``."""

    TITLE = "History"
    PREFIX = "history_"

    retention_days: int
    capture_interval_s: float
    top_statements: int
    capture_timeout_ms: int


@dataclass(frozen=True)
class DashboardSettings(Section):
    """The Streamlit dashboard."""

    TITLE = "Dashboard"
    PREFIX = "dashboard_"

    database_url: SecretStr | None
    snapshot_file: Path | None
    cache_ttl_s: float
    slow_interval_s: float
    show_emails: bool


@dataclass(frozen=True)
class ServeSettings(Section):
    """``dbops up --serve``: the ports, the scheduler's jobs and the demo workload."""

    TITLE = "Serve (scheduler and processes)"
    PREFIX = "serve_"
    UNPREFIXED = ("workload_rate", "workload_threads")

    exporter_port: int
    dashboard_port: int
    dashboard_app: Path
    stop_timeout_s: float
    backup_interval_s: float
    verify_interval_s: float
    maintain_interval_s: float
    maintain_apply: bool
    workload_rate: float
    workload_threads: int


@dataclass(frozen=True)
class MaintainSettings(Section):
    """What ``dbops maintain`` plans (the thresholds) and how long its statements may wait."""

    TITLE = "Maintenance"
    PREFIX = "maintain_"

    lock_timeout_ms: int
    statement_timeout_ms: int
    dead_rows_min: int
    dead_ratio: float
    vacuum_age_days: float
    analyze_ratio: float
    analyze_rows_min: int
    bloat_ratio: float
    bloat_min_bytes: int


@dataclass(frozen=True)
class BackupSettings(Section):
    """Logical backups: where, how, how many kept, how old is too old."""

    TITLE = "Backups"
    PREFIX = "backup_"

    dir: Path | None
    format: Literal["custom", "directory"]
    jobs: int
    keep_last: int
    keep_daily: int
    keep_weekly: int
    max_age_s: float
    verified_max_age_s: float


@dataclass(frozen=True)
class PitrSettings(Section):
    """Point-in-time recovery with pgBackRest (the embedded cluster)."""

    TITLE = "Point-in-time recovery"
    PREFIX = "pitr_"

    repo_dir: Path | None
    retention_full: int
    compress_type: Literal["none", "gz", "bz2", "lz4", "zst"]
    timeout_s: float


@dataclass(frozen=True)
class EmbeddedSettings(Section):
    """The embedded cluster's PostgreSQL version and server configuration."""

    TITLE = "Embedded cluster"
    PREFIX = "embedded_"
    UNPREFIXED = ("pg_version",)

    tls: bool
    log_connections: bool
    log_min_duration_ms: int
    auto_explain_min_duration_ms: int
    auto_explain_analyze: bool
    pg_version: int | None


@dataclass(frozen=True)
class RoleSettings(Section):
    """Passwords ``dbops roles setup`` gives the four roles (unset: generated)."""

    TITLE = "Roles"

    owner_password: SecretStr | None
    app_password: SecretStr | None
    readonly_password: SecretStr | None
    monitor_password: SecretStr | None


@dataclass(frozen=True)
class CryptoSettings(Section):
    """Keys of the encrypted columns and their blind indexes."""

    TITLE = "Encryption"

    encryption_keys: SecretStr | None
    encryption_keys_file: Path | None
    blind_index_key: SecretStr | None
    blind_index_key_file: Path | None
    keys_rotate_batch_size: int


#: Every section, in the order of docs/settings.md.
SECTIONS: tuple[type[Section], ...] = (
    ConnectionSettings,
    PoolSettings,
    ReplicaSettings,
    ServiceSettings,
    MigrationSettings,
    MonitorSettings,
    CheckSettings,
    ExporterSettings,
    AdviceSettings,
    HistorySettings,
    DashboardSettings,
    ServeSettings,
    MaintainSettings,
    BackupSettings,
    PitrSettings,
    EmbeddedSettings,
    RoleSettings,
    CryptoSettings,
)
