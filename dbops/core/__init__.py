"""What monitoring, ops and services share, below all three: no one of them imports another.

- :mod:`dbops.core.manifest`: the backup manifest format (written by ``ops.backup``, read by
  the backups collector and the dashboard);
- :mod:`dbops.core.maintenance`: maintenance actions as data (planned by monitoring, run by
  ops);
- :mod:`dbops.core.ownership`: the sole-owner rule (the services' and archiving's);
- :mod:`dbops.core.audit_head`: the audit trail's head (recorded in backups, exported).
"""
