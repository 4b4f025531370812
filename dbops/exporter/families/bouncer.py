"""PgBouncer: its pools (clients, server connections, the longest wait) and its traffic.

Names follow the pool's own (``SHOW POOLS``/``SHOW STATS`` columns), as the pgbouncer
exporter's do, under ``dbops_pgbouncer_``.
"""

from __future__ import annotations

from dbops.exporter.families._base import Families
from dbops.monitoring.snapshot import BouncerStat


def bouncer_metrics(f: Families, b: BouncerStat) -> None:
    """The bouncer section's families into ``f``."""
    for p in b.pools:
        labels = {"database": p.database, "user": p.user}
        f.gauge(
            "dbops_pgbouncer_clients_active",
            "Client connections linked to a server connection or idle.",
            p.clients_active,
            **labels,
        )
        f.gauge(
            "dbops_pgbouncer_clients_waiting",
            "Client connections waiting for a server connection.",
            p.clients_waiting,
            **labels,
        )
        f.gauge(
            "dbops_pgbouncer_servers_active",
            "Server connections serving a client.",
            p.servers_active,
            **labels,
        )
        f.gauge(
            "dbops_pgbouncer_servers_idle",
            "Server connections idle and ready.",
            p.servers_idle,
            **labels,
        )
        f.gauge(
            "dbops_pgbouncer_max_wait_seconds",
            "How long the oldest waiting client has waited (0: none waits).",
            p.max_wait_s,
            **labels,
        )
    for d in b.databases:
        f.counter(
            "dbops_pgbouncer_transactions",
            "Transactions pooled by PgBouncer since it started.",
            d.transactions,
            database=d.database,
        )
        f.counter(
            "dbops_pgbouncer_queries",
            "Queries pooled by PgBouncer since it started.",
            d.queries,
            database=d.database,
        )
        f.counter(
            "dbops_pgbouncer_wait_seconds",
            "Time clients spent waiting for a server connection, summed.",
            d.wait_s,
            database=d.database,
        )
        f.counter(
            "dbops_pgbouncer_transaction_seconds",
            "Time spent in pooled transactions, summed.",
            d.transaction_s,
            database=d.database,
        )
