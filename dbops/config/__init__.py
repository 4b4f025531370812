"""Typed settings read from the environment and `.env`, by subsystem, and DSN redaction.

``model`` holds the flat :class:`Settings` (the environment's names), ``sections`` a frozen view
of each subsystem's part of it (``settings.pool``, ``settings.backup`` ...), ``sources`` the
``<NAME>_FILE`` secrets and the home directory, ``urls`` the URL spellings and redaction.
"""

from __future__ import annotations

from dbops.config.model import Settings, load_settings
from dbops.config.sections import (
    SECTIONS,
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
    Section,
    ServeSettings,
    ServiceSettings,
)
from dbops.config.sources import HOME_DIR_NAME, SecretFileError, SecretFilesSource, default_home
from dbops.config.urls import REDACTED, redact_dsn, to_libpq_url, to_sqlalchemy_url

__all__ = [
    "HOME_DIR_NAME",
    "REDACTED",
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
    "SecretFileError",
    "SecretFilesSource",
    "Section",
    "ServeSettings",
    "ServiceSettings",
    "Settings",
    "default_home",
    "load_settings",
    "redact_dsn",
    "to_libpq_url",
    "to_sqlalchemy_url",
]
