"""The settings model: every ``DBOPS_*`` variable, flat, as the environment names it."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from dbops.config.sections import (
    AdviceSettings,
    BackupSettings,
    CheckSettings,
    ConnectionSettings,
    CryptoSettings,
    DashboardSettings,
    EmbeddedSettings,
    ExporterSettings,
    HistorySettings,
    MaintainSettings,
    MigrationSettings,
    MonitorSettings,
    PitrSettings,
    PoolSettings,
    ReplicaSettings,
    RoleSettings,
    ServeSettings,
    ServiceSettings,
)
from dbops.config.sources import SecretFilesSource, default_home

__all__ = ["Settings", "load_settings"]


class Settings(BaseSettings):
    """Everything dbops reads from its environment.

    Every field can be set as ``DBOPS_<NAME>`` (or in `.env`); the database URL is also read from
    the conventional ``DATABASE_URL``. Durations are milliseconds unless the name says seconds.
    """

    model_config = SettingsConfigDict(
        env_prefix="DBOPS_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        frozen=True,
    )

    database_url: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("DATABASE_URL", "DBOPS_DATABASE_URL"),
        description=(
            "PostgreSQL URL (postgresql://user:pass@host:port/db). "
            "Unset: dbops runs its own embedded cluster under `home`."
        ),
    )
    home: Path = Field(
        default_factory=default_home,
        description=(
            "Directory of the embedded cluster (data, socket, logs, backups). Unset: the "
            "nearest `.dbops` directory in the working directory or one of its parents (as git "
            "finds `.git`: `notebooks/` finds the checkout's), else `.dbops` in the working "
            "directory (outside the project, set it)."
        ),
    )
    embedded_database: str = Field(
        default="dbops", description="Database name created in the embedded cluster."
    )
    application_name: str = Field(
        default="dbops", description="`application_name` set on every connection."
    )
    pool_min_size: int = Field(
        default=1, ge=0, description="Connections the pool keeps open when idle."
    )
    pool_max_size: int = Field(default=20, ge=1, description="Most connections the pool opens.")
    pool_max_idle_s: float = Field(
        default=30.0,
        gt=0,
        description="An idle connection above `pool_min_size` closes after this.",
    )
    pool_timeout_s: float = Field(
        default=2.0, gt=0, description="Longest wait for a free connection before an error."
    )
    pool_max_lifetime_s: float = Field(
        default=3600.0, gt=0, description="A connection is replaced after this age."
    )
    pool_pre_ping: bool = Field(
        default=True, description="Check a connection is alive before handing it out."
    )
    pool_pre_ping_bypass_s: float = Field(
        default=0.5,
        ge=0,
        description="Skip the pre-ping for a connection returned less than this long ago.",
    )
    # Read replicas (dbops.db.replicas): where reads that tolerate lag go, and when not.
    replica_urls: SecretStr | None = Field(
        default=None,
        description="Streaming replicas the services read from, as URLs separated by spaces "
        "(each as the app's role). Unset: the embedded cluster's replicas (`dbops db replica "
        "add`) when dbops runs its own cluster, else none.",
    )
    replica_reads: bool = Field(
        default=True,
        description="Send the reads that tolerate lag to a replica (docs/scale-out.md says which).",
    )
    replica_max_lag_s: float = Field(
        default=5.0,
        gt=0,
        description="A replica missing WAL the primary had this long ago is skipped until it "
        "catches up.",
    )
    replica_wait_s: float = Field(
        default=0.2,
        ge=0,
        description="Longest wait for a replica to replay the actor's last write before its "
        "read goes to the primary instead (read-your-writes).",
    )
    replica_check_s: float = Field(
        default=1.0,
        gt=0,
        description="How often each replica's health and replay position are checked; a "
        "replica that is down is tried again after this.",
    )
    process_report_s: float = Field(
        default=10.0,
        ge=0,
        description="How often a process that opened the app database writes its pools, query "
        "caches and service statements to `dbops_monitor` for the dashboard, notebooks and "
        "exporter (decision 0009). 0 = never.",
    )
    process_name: str | None = Field(
        default=None,
        max_length=100,
        description="What the dashboard calls this process in its report (default: the "
        "program's name, e.g. `gunicorn`; never its arguments).",
    )
    prepared_statements: bool = Field(
        default=True,
        description=(
            "Use server-side prepared statements. Turn off behind pgbouncer in transaction mode."
        ),
    )
    prepare_threshold: int = Field(
        default=2, ge=0, description="Executions of one query before psycopg prepares it."
    )
    connect_timeout_s: int = Field(
        default=5, ge=1, description="libpq `connect_timeout` for each new connection."
    )
    json_max_bytes: int = Field(
        default=65_536,
        ge=1_024,
        description=(
            "Largest JSON object a service stores (team settings, user profile), in bytes of "
            "its text; the audit trail keeps each change twice."
        ),
    )
    statement_timeout_ms: int = Field(
        default=30_000, ge=0, description="`statement_timeout` of every connection (0 = none)."
    )
    lock_timeout_ms: int = Field(
        default=5_000, ge=0, description="`lock_timeout` of every connection (0 = none)."
    )
    idle_in_transaction_timeout_ms: int = Field(
        default=60_000,
        ge=0,
        description="`idle_in_transaction_session_timeout` of every connection (0 = none).",
    )
    search_similarity_threshold: float = Field(
        default=0.4,
        gt=0,
        le=1,
        description=(
            "pg_trgm strict_word_similarity a team name needs to match a mistyped search term "
            "(0.4 still finds one dropped or swapped letter in a short word)."
        ),
    )
    migration_lock_timeout_ms: int = Field(
        default=3_000,
        ge=1,
        description="`lock_timeout` for migration DDL: fail fast behind a long transaction.",
    )
    migration_wait_s: float = Field(
        default=120.0,
        gt=0,
        description="How long `dbops migrate` waits for another migration run to finish.",
    )
    # Monitoring: collection limits and the thresholds of the health checks (docs/checks.md).
    monitor_collector_timeout_ms: int = Field(
        default=2_000,
        ge=1,
        description="`statement_timeout` of each monitoring collector query.",
    )
    monitor_slow_collector_timeout_ms: int = Field(
        default=10_000,
        ge=1,
        description="`statement_timeout` of the collector queries the exporter and the dashboard "
        "refresh in the background (statements, indexes and bloat, tables, data, slowly "
        "changing catalog state): they hold up no scrape and no page, and at a million users "
        "on a busy server the data counts can take longer than "
        "`DBOPS_MONITOR_COLLECTOR_TIMEOUT_MS`.",
    )
    monitor_top_statements: int = Field(
        default=50, ge=1, description="Statements kept in a snapshot (top by total time)."
    )
    monitor_query_text_chars: int = Field(
        default=1_000,
        ge=16,
        description="Query text is cut to this many characters, on the server.",
    )
    monitor_explain_max_chars: int = Field(
        default=100_000,
        ge=100,
        le=10_000_000,
        description="Longest statement `dbops monitor explain` accepts (characters).",
    )
    monitor_max_sessions: int = Field(
        default=100, ge=1, description="Most sessions and blocked pairs kept in a snapshot."
    )
    monitor_max_tables: int = Field(
        default=1_000, ge=1, description="Most tables kept in a snapshot (largest first)."
    )
    monitor_pgbouncer_url: SecretStr | None = Field(
        default=None,
        description="PgBouncer's console (`postgresql://dbops_monitor:...@host:6432/pgbouncer`, "
        "a `stats_users` role): its pools and traffic in the snapshot, exporter and dashboard. "
        "Unset: none.",
    )
    monitor_patroni_url: str | None = Field(
        default=None,
        description="Patroni's REST API on each node (`http://10.0.0.1:8008 http://10.0.0.2:8008`"
        "): the cluster's members, leader and lag in the snapshot, exporter and dashboard. "
        "Unset: none.",
    )
    monitor_access_window_s: float = Field(
        default=900.0,
        gt=0,
        description="Span of the recent failed-login counts in a snapshot (`failed_logins` check).",
    )
    check_replication_lag_warning_s: float = Field(
        default=30.0, gt=0, description="Replication lag (seconds) that is a warning."
    )
    check_replication_lag_critical_s: float = Field(
        default=300.0, gt=0, description="Replication lag (seconds) that is critical."
    )
    check_slot_retained_warning_bytes: int = Field(
        default=1024**3,
        ge=1,
        description="WAL a replication slot keeps (an absent or lagging replica) that is a "
        "warning; the primary's disk fills with it.",
    )
    check_slot_retained_critical_bytes: int = Field(
        default=10 * 1024**3,
        ge=1,
        description="WAL a replication slot keeps that is critical (a slot whose WAL is "
        "already lost is critical too).",
    )
    check_bouncer_wait_warning_s: float = Field(
        default=1.0,
        gt=0,
        description="A client waiting this long at PgBouncer for a server connection is a "
        "warning (its pool is too small for the load).",
    )
    check_bouncer_wait_critical_s: float = Field(
        default=10.0,
        gt=0,
        description="... and this long is critical.",
    )
    check_long_running_query_s: float = Field(
        default=60.0, gt=0, description="A statement running longer than this is a warning."
    )
    check_long_running_query_critical_s: float = Field(
        default=600.0, gt=0, description="A statement running longer than this is critical."
    )
    check_idle_in_transaction_s: float = Field(
        default=60.0,
        gt=0,
        description="A session idle in an open transaction longer than this is a warning.",
    )
    check_cache_hit_warning: float = Field(
        default=0.99, gt=0, le=1, description="Buffer cache hit ratio below this is a warning."
    )
    check_cache_hit_critical: float = Field(
        default=0.95, gt=0, le=1, description="Buffer cache hit ratio below this is critical."
    )
    check_cache_hit_min_blocks: int = Field(
        default=10_000,
        ge=0,
        description="Block reads needed before the cache hit ratio is judged at all.",
    )
    check_connections_warning: float = Field(
        default=0.8, gt=0, le=1, description="Share of `max_connections` in use that warns."
    )
    check_connections_critical: float = Field(
        default=0.95, gt=0, le=1, description="Share of `max_connections` in use that is critical."
    )
    check_wraparound_warning: float = Field(
        default=0.5,
        gt=0,
        le=1,
        description="Transaction-ID age, as a share of the 2^31 wraparound limit, that warns.",
    )
    check_wraparound_critical: float = Field(
        default=0.75,
        gt=0,
        le=1,
        description="Transaction-ID age, as a share of the 2^31 limit, that is critical.",
    )
    check_sequence_warning: float = Field(
        default=0.75, gt=0, le=1, description="Share of a sequence's range used that warns."
    )
    check_sequence_critical: float = Field(
        default=0.9, gt=0, le=1, description="Share of a sequence's range used that is critical."
    )
    check_unused_index_min_bytes: int = Field(
        default=1_048_576,
        ge=0,
        description="An index without scans is reported unused from this size on.",
    )
    check_unused_index_min_stats_age_s: float = Field(
        default=7 * 86_400.0,
        ge=0,
        description="An index is called unused only once the statistics have counted this "
        "long: since their reset, or (never reset) since the server started, a lower bound. "
        "Minutes after setup every index is unused.",
    )
    check_slow_query_ms: float = Field(
        default=20.0, gt=0, description="Mean execution time (ms) that makes a statement slow."
    )
    check_slow_query_calls: int = Field(
        default=100, ge=1, description="Calls a statement needs before it can count as slow."
    )
    check_pool_saturation_warning: float = Field(
        default=0.8,
        gt=0,
        le=1,
        description="Share of the pool's `max_size` in use that warns (any waiting request too).",
    )
    check_statements_capacity: float = Field(
        default=0.9,
        gt=0,
        le=1,
        description="Share of `pg_stat_statements.max` in use that warns (entries get evicted).",
    )
    check_failed_logins_warning: int = Field(
        default=20,
        ge=1,
        description=(
            "Failed logins within `monitor_access_window_s` that warn, counted apart for the "
            "application's sign-ins and the server's logins."
        ),
    )
    # Prometheus exporter (dbops.exporter): scrape budget, scrape-storm cache, series limits.
    exporter_scrape_budget_s: float = Field(
        default=4.0,
        gt=0,
        description=(
            "Longest a scrape waits for a fresh snapshot; past it the scrape answers with "
            "`dbops_up 0` and the previous snapshot marked stale. Keep it below Prometheus' "
            "`scrape_timeout`."
        ),
    )
    exporter_min_interval_s: float = Field(
        default=5.0,
        ge=0,
        description=(
            "A snapshot younger than this is served again instead of collecting a new one "
            "(stops scrape storms; 0 collects on every scrape)."
        ),
    )
    exporter_slow_interval_s: float = Field(
        default=60.0,
        ge=0,
        description=(
            "The exporter refreshes its expensive collectors (statements, indexes and bloat, "
            "tables, data) and slowly changing catalog state (settings, role defaults, NOT VALID "
            "constraints, sequences, xid ages) in the background at most this often and serves "
            "their latest parts in between, with `dbops_collector_age_seconds` (0 refreshes "
            "them on every scrape)."
        ),
    )
    exporter_top_statements: int = Field(
        default=20,
        ge=0,
        description="Statements exported per scrape (top by total time; about 10 series each).",
    )
    exporter_query_label_chars: int = Field(
        default=120,
        ge=16,
        description=(
            "Query text in the `dbops_statement_info` label is cut to this many characters."
        ),
    )

    # Index advice (dbops.monitoring.advice): hypopg what-if plans over the top statements.
    advice_top_statements: int = Field(
        default=20, ge=1, description="Top statements (by total time) index advice looks at."
    )
    advice_min_cost_factor: float = Field(
        default=2.0,
        gt=1,
        description="A hypothetical index is kept only when it cuts a statement's plan cost "
        "by at least this factor (before / after).",
    )
    advice_timeout_ms: int = Field(
        default=5_000, ge=1, description="`statement_timeout` of the index advice transaction."
    )
    advice_update_overhead: float = Field(
        default=0.25,
        ge=0,
        description="Extra time share an UPDATE pays when an index on a column it sets stops it "
        "being HOT (weighs write cost against time saved).",
    )

    # Query history (dbops.monitoring.history, docs/history.md): pg_stat_statements deltas.
    history_retention_days: int = Field(
        default=14,
        ge=1,
        description="Days of history samples and captures `prune` keeps (the latest capture "
        "always stays: it is the base of the next interval).",
    )
    history_capture_interval_s: float = Field(
        default=60.0, gt=0, description="Seconds between two scheduled history captures."
    )
    history_top_statements: int = Field(
        default=5_000,
        ge=1,
        description="Most statement samples one capture writes (top by time in the interval); "
        "the baseline always keeps every entry.",
    )
    history_capture_timeout_ms: int = Field(
        default=10_000,
        ge=1,
        description="`statement_timeout` and `lock_timeout` of a capture or prune transaction.",
    )

    # The Streamlit dashboard (dashboard/): what it reads, how often, and what it shows.
    dashboard_database_url: SecretStr | None = Field(
        default=None,
        description="URL the dashboard reads with (a read-only role, see "
        "`dbops.ops.roles.ensure_readonly_role`). Unset: the main URL with "
        "`default_transaction_read_only=on`.",
    )
    dashboard_snapshot_file: Path | None = Field(
        default=None,
        description="Show this snapshot JSON (`dbops monitor snapshot --json`) instead of "
        "collecting live (demos, offline review, tests).",
    )
    dashboard_cache_ttl_s: float = Field(
        default=5.0,
        ge=0,
        description="Seconds a collected snapshot is reused by every dashboard page and viewer.",
    )
    dashboard_slow_interval_s: float = Field(
        default=30.0,
        ge=0,
        description=(
            "The dashboard refreshes the expensive parts of its snapshot (statements, indexes "
            "and bloat, tables, data, slowly changing catalog state) in the background at most "
            "this often while someone views it, and shows their latest parts in between with "
            'their time; a page never waits for them after the first ("Refresh now" does).'
        ),
    )
    dashboard_show_emails: bool = Field(
        default=False,
        description="Show e-mail addresses in full; off: masked as `a***@example.com`.",
    )

    # The main job's long-running mode (`dbops up --serve`) and the workload (dbops.workload).
    serve_exporter_port: int = Field(
        default=9187,
        ge=1,
        le=65535,
        description="Port of the Prometheus exporter `dbops up --serve` starts on 127.0.0.1.",
    )
    serve_dashboard_port: int = Field(
        default=8501,
        ge=1,
        le=65535,
        description="Port of the Streamlit dashboard `dbops up --serve` starts on 127.0.0.1.",
    )
    serve_dashboard_app: Path = Field(
        default=Path("dashboard/app.py"),
        description="Streamlit app file `dbops up --serve` runs (skipped with a note if missing).",
    )
    serve_stop_timeout_s: float = Field(
        default=10.0,
        gt=0,
        description="On Ctrl-C, how long the dashboard gets to exit before it is killed.",
    )
    serve_backup_interval_s: float = Field(
        default=21_600.0,
        ge=0,
        description="`dbops up --serve` takes a logical backup (then prunes by `backup_keep_*`) "
        "this often; the first 30 s after start. 0 = never.",
    )
    serve_verify_interval_s: float = Field(
        default=86_400.0,
        ge=0,
        description="`dbops up --serve` proves the newest backup by a restore drill this often; "
        "the first 2 min after start. 0 = never.",
    )
    serve_maintain_interval_s: float = Field(
        default=3_600.0,
        ge=0,
        description="`dbops up --serve` plans maintenance from a fresh snapshot this often (the "
        "first after 1 min) and says what it would do. 0 = never.",
    )
    serve_maintain_apply: bool = Field(
        default=False,
        description="Let `dbops up --serve` carry the maintenance plan out (VACUUM, ANALYZE, "
        "REINDEX CONCURRENTLY under `maintain_*` timeouts) instead of only saying it.",
    )
    workload_rate: float = Field(
        default=20.0,
        gt=0,
        description="Operations per second of the background workload of `dbops up --serve`.",
    )
    workload_threads: int = Field(
        default=2, ge=1, description="Threads of the workload (each holds one connection)."
    )

    # Maintenance (`dbops maintain plan|run`: dbops.monitoring.maintenance, dbops.ops.maintenance).
    maintain_lock_timeout_ms: int = Field(
        default=3_000,
        ge=0,
        description="`lock_timeout` of each maintenance statement: give up rather than queue "
        "writers behind VACUUM or REINDEX (0 = wait for ever).",
    )
    maintain_statement_timeout_ms: int = Field(
        default=1_800_000,
        ge=0,
        description="`statement_timeout` of each maintenance statement (0 = none); also the "
        "longest wait to drop the leftover index of a failed REINDEX CONCURRENTLY.",
    )
    maintain_dead_rows_min: int = Field(
        default=1_000,
        ge=1,
        description="Dead rows a table needs before `maintain plan` proposes VACUUM.",
    )
    maintain_dead_ratio: float = Field(
        default=0.1,
        gt=0,
        le=1,
        description="Share of dead rows (dead / (live + dead)) that makes `maintain plan` "
        "propose VACUUM.",
    )
    maintain_vacuum_age_days: float = Field(
        default=7.0,
        gt=0,
        description="A table with at least `maintain_dead_rows_min` dead rows and no vacuum for "
        "this many days gets VACUUM whatever its dead-row share.",
    )
    maintain_analyze_ratio: float = Field(
        default=0.1,
        gt=0,
        description="Rows modified since the last analyze, as a share of live rows, that makes "
        "`maintain plan` propose ANALYZE.",
    )
    maintain_analyze_rows_min: int = Field(
        default=1_000,
        ge=1,
        description="Rows modified since the last analyze a table needs before ANALYZE is "
        "proposed; a never-analyzed table needs this many rows.",
    )
    maintain_bloat_ratio: float = Field(
        default=0.3,
        gt=0,
        le=1,
        description="Estimated btree bloat, as a share of the index size, that makes "
        "`maintain plan` propose REINDEX INDEX CONCURRENTLY.",
    )
    maintain_bloat_min_bytes: int = Field(
        default=10_485_760,
        ge=0,
        description="Estimated bloat (bytes) an index needs before a reindex is proposed.",
    )
    # Logical backups (dbops.ops.backup, `dbops backup ...`): where, how, what prune keeps.
    backup_dir: Path | None = Field(
        default=None,
        description="Directory of the backups (one subdirectory with a manifest each). "
        "Unset: `backups/` under `home`.",
    )
    backup_format: Literal["custom", "directory"] = Field(
        default="custom",
        description="pg_dump format: `custom` (one file) or `directory` (one file per table, "
        "dumped and restored with `backup_jobs` workers).",
    )
    backup_jobs: int = Field(
        default=2,
        ge=1,
        description="Parallel pg_dump/pg_restore workers for the `directory` format.",
    )
    backup_keep_last: int = Field(
        default=7, ge=0, description="`dbops backup prune` keeps the newest N backups."
    )
    backup_keep_daily: int = Field(
        default=7,
        ge=0,
        description="Prune also keeps the newest backup of each of the last N days that have one.",
    )
    backup_keep_weekly: int = Field(
        default=4,
        ge=0,
        description="Prune also keeps the newest backup of each of the last N ISO weeks that "
        "have one (the newest verified backup is always kept).",
    )
    backup_max_age_s: float = Field(
        default=26 * 3600.0,
        gt=0,
        description="The newest backup older than this is a warning (`backup_stale`).",
    )
    backup_verified_max_age_s: float = Field(
        default=8 * 86400.0,
        gt=0,
        description="The newest verified backup (restore drill passed) older than this is a "
        "warning (`backup_unverified`).",
    )

    # The embedded cluster's TLS and logging (dbops.db.embedded.ServerOptions); next start.
    embedded_tls: bool = Field(
        default=True,
        description="The embedded cluster serves TLS (its own CA under `.dbops/tls/`) and "
        "refuses TCP connections without it; `dbops db url --tcp` asks for "
        "`sslmode=verify-full`. The unix socket is unaffected.",
    )
    embedded_log_connections: bool = Field(
        default=True,
        description="The embedded cluster logs each connection and disconnection "
        "(`log_connections`, `log_disconnections`).",
    )
    embedded_log_min_duration_ms: int = Field(
        default=1_000,
        ge=-1,
        description="The embedded cluster logs statements that run at least this long "
        "(`log_min_duration_statement`; -1 = none).",
    )
    embedded_auto_explain_min_duration_ms: int = Field(
        default=1_000,
        ge=-1,
        description="`auto_explain` logs the plan of statements that run at least this long "
        "(-1 = `auto_explain` not loaded).",
    )
    embedded_auto_explain_analyze: bool = Field(
        default=False,
        description="`auto_explain.log_analyze`: logged plans carry actual rows and times "
        "(costs timing on every statement, not only slow ones).",
    )
    pg_version: int | None = Field(
        default=None,
        ge=14,
        le=18,
        description="Major PostgreSQL version of a new embedded cluster (14 to 18): Debian's "
        "binaries where installed, else a pinned build fetched once (docs/versions.md). "
        "Unset: the newest installed. An existing cluster keeps its version.",
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Arguments, then the environment, then ``<NAME>_FILE`` secrets, then `.env`."""
        return (
            init_settings,
            env_settings,
            SecretFilesSource(settings_cls),
            dotenv_settings,
            file_secret_settings,
        )

    # Encrypted columns (dbops.crypto, docs/encryption.md): versioned AES-256-GCM keys and
    # the blind index key. Unset with no DATABASE_URL: dev keys are generated in `home`/keys.
    owner_password: SecretStr | None = Field(
        default=None,
        description="Password `dbops roles setup` gives the owner role (dbops_owner; runs "
        "migrations). Unset: generated, never shown (the embedded cluster's socket needs none).",
    )
    app_password: SecretStr | None = Field(
        default=None,
        description="Password of the application role (dbops_app; the services, under "
        "row-level security). Unset: generated by `dbops roles setup`.",
    )
    readonly_password: SecretStr | None = Field(
        default=None,
        description="Password of the read-only role (dbops_readonly; dashboard and notebooks). "
        "Unset: generated by `dbops roles setup`.",
    )
    monitor_password: SecretStr | None = Field(
        default=None,
        description="Password of the monitor role (dbops_monitor; pg_monitor and the history "
        "schema). Unset: generated by `dbops roles setup`.",
    )
    encryption_keys: SecretStr | None = Field(
        default=None,
        description="Versioned AES-256 keys of encrypted columns: `v1:<base64>,v2:<base64>` "
        "or a JSON object; the highest version encrypts, every listed one decrypts.",
    )
    encryption_keys_file: Path | None = Field(
        default=None,
        description="File holding `encryption_keys` (same formats, one key a line allowed); "
        "keep it mode 0600.",
    )
    blind_index_key: SecretStr | None = Field(
        default=None,
        description="Base64 HMAC-SHA256 key (32 bytes or more) of the blind indexes used for "
        "equality lookups of encrypted columns.",
    )
    blind_index_key_file: Path | None = Field(
        default=None, description="File holding `blind_index_key` (base64); keep it mode 0600."
    )
    keys_rotate_batch_size: int = Field(
        default=1_000,
        ge=1,
        le=100_000,
        description="Rows `dbops keys rotate` re-encrypts per transaction.",
    )
    # Point-in-time recovery with pgBackRest (dbops.ops.pitr): the embedded cluster only.
    pitr_repo_dir: Path | None = Field(
        default=None,
        description="pgBackRest repository (base backups and archived WAL). Unset: "
        "`pgbackrest/repo` next to the embedded cluster's data directory.",
    )
    pitr_retention_full: int = Field(
        default=2, ge=1, description="Full base backups pgBackRest keeps (older ones expire)."
    )
    pitr_compress_type: Literal["none", "gz", "bz2", "lz4", "zst"] = Field(
        default="lz4", description="Compression of base backups and archived WAL."
    )
    pitr_timeout_s: float = Field(
        default=3600.0,
        gt=0,
        description="Longest a pgBackRest backup or restore, or the start of a restored copy, "
        "may take.",
    )

    @field_validator("application_name")
    @classmethod
    def _ascii_name(cls, value: str) -> str:
        if not value.isascii() or len(value) > 63:
            raise ValueError("application_name must be ASCII and at most 63 characters")
        return value

    @field_validator("database_url", "replica_urls", "monitor_pgbouncer_url", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @property
    def embedded(self) -> bool:
        """True when no `DATABASE_URL` is set and dbops manages its own cluster."""
        return self.database_url is None

    # One frozen view per subsystem (dbops.config.sections); the fields above stay flat.
    @property
    def connection(self) -> ConnectionSettings:
        """Which database, and how this process names itself to it."""
        return ConnectionSettings.of(self)

    @property
    def pool(self) -> PoolSettings:
        """The pool and the session timeouts (``DBOPS_POOL_*`` and the timeouts)."""
        return PoolSettings.of(self)

    @property
    def replicas(self) -> ReplicaSettings:
        """Read replicas (``DBOPS_REPLICA_*``)."""
        return ReplicaSettings.of(self)

    @property
    def services(self) -> ServiceSettings:
        """Limits of the service API."""
        return ServiceSettings.of(self)

    @property
    def migration(self) -> MigrationSettings:
        """``dbops migrate`` (``DBOPS_MIGRATION_*``)."""
        return MigrationSettings.of(self)

    @property
    def monitor(self) -> MonitorSettings:
        """The collectors' section (``DBOPS_MONITOR_*``)."""
        return MonitorSettings.of(self)

    @property
    def checks(self) -> CheckSettings:
        """The checks' thresholds (``DBOPS_CHECK_*``)."""
        return CheckSettings.of(self)

    @property
    def exporter(self) -> ExporterSettings:
        """The Prometheus endpoint (``DBOPS_EXPORTER_*``)."""
        return ExporterSettings.of(self)

    @property
    def advice(self) -> AdviceSettings:
        """Index advice (``DBOPS_ADVICE_*``)."""
        return AdviceSettings.of(self)

    @property
    def history(self) -> HistorySettings:
        """History capture (``DBOPS_HISTORY_*``)."""
        return HistorySettings.of(self)

    @property
    def dashboard(self) -> DashboardSettings:
        """The dashboard (``DBOPS_DASHBOARD_*``)."""
        return DashboardSettings.of(self)

    @property
    def serve(self) -> ServeSettings:
        """``dbops up --serve`` (``DBOPS_SERVE_*``, ``DBOPS_WORKLOAD_*``)."""
        return ServeSettings.of(self)

    @property
    def maintain(self) -> MaintainSettings:
        """``dbops maintain`` (``DBOPS_MAINTAIN_*``)."""
        return MaintainSettings.of(self)

    @property
    def backup(self) -> BackupSettings:
        """Logical backups (``DBOPS_BACKUP_*``)."""
        return BackupSettings.of(self)

    @property
    def pitr(self) -> PitrSettings:
        """Point-in-time recovery with pgBackRest (``DBOPS_PITR_*``)."""
        return PitrSettings.of(self)

    @property
    def embedded_server(self) -> EmbeddedSettings:
        """The embedded cluster's server configuration (``DBOPS_EMBEDDED_*``)."""
        return EmbeddedSettings.of(self)

    @property
    def roles(self) -> RoleSettings:
        """The roles' passwords."""
        return RoleSettings.of(self)

    @property
    def crypto(self) -> CryptoSettings:
        """The keys of the encrypted columns."""
        return CryptoSettings.of(self)

    def session_parameters(self) -> dict[str, str]:
        """The settings every application session runs with, by parameter name.

        The one list: :meth:`connection_options` sends them at connect time; behind a
        transaction-pooling bouncer each transaction sets them itself
        (``dbops.db.engine.local_limits``). They override role-level defaults (``ALTER ROLE
        ... SET``), which any role may set on itself: the session runs as the login role
        (``role=none``: a default ``role = 'dbops_system'`` would bypass row-level security)
        with policies on, and timestamptz values come back in UTC.
        """
        return {
            "role": "none",
            "row_security": "on",
            "statement_timeout": str(self.statement_timeout_ms),
            "lock_timeout": str(self.lock_timeout_ms),
            "idle_in_transaction_session_timeout": str(self.idle_in_transaction_timeout_ms),
            "TimeZone": "UTC",
        }

    def connection_options(self) -> str:
        """The libpq ``options`` string of :meth:`session_parameters` (the startup packet).

        Sent once per connection, so it costs no extra round trip.
        """
        return " ".join(f"-c {name}={value}" for name, value in self.session_parameters().items())


@lru_cache(maxsize=1)
def load_settings() -> Settings:
    """Read settings once per process (environment and `.env`)."""
    return Settings()
