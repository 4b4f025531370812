"""Patroni's cluster: which member leads, which run, how far each replica is behind."""

from __future__ import annotations

from dbops.exporter.families._base import Families
from dbops.monitoring.snapshot import HaStat


def ha_metrics(f: Families, ha: HaStat) -> None:
    """The ha section's families into ``f``."""
    f.gauge("dbops_patroni_members", "Members of the Patroni cluster.", len(ha.members))
    for m in ha.members:
        f.gauge(
            "dbops_patroni_member_leader",
            "1 for the member that leads and runs (the primary), else 0.",
            float(m.role == "leader" and m.serving),
            member=m.name,
        )
        f.gauge(
            "dbops_patroni_member_running",
            "1 when the member is up and doing its job (leading or streaming), else 0.",
            float(m.serving),
            member=m.name,
        )
        f.gauge(
            "dbops_patroni_member_lag_bytes",
            "WAL bytes a replica is behind the leader (absent for the leader).",
            m.lag_bytes,
            member=m.name,
        )
        f.gauge(
            "dbops_patroni_member_timeline", "The member's timeline.", m.timeline, member=m.name
        )
