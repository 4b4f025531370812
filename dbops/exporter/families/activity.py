"""Sessions, connections by state and client, blocked sessions, longest transaction."""

from __future__ import annotations

from dbops.exporter.families._base import Families
from dbops.monitoring.snapshot import (
    Snapshot,
)

#: ``dbops_connections_by_client`` has a series for the busiest client addresses only, the
#: others summed as ``client="other"``: a label per address is unbounded (every new pod or NAT
#: port would be a new series), and the snapshot keeps every address for the dashboard.
MAX_CLIENT_SERIES = 10


def activity_metrics(f: Families, snap: Snapshot) -> None:
    """The activity section's families into ``f``."""
    act = snap.activity
    if act is None:
        return
    f.gauge("dbops_max_connections", "max_connections of the server.", act.max_connections)
    f.gauge("dbops_connections", "Client connections of the cluster.", act.total)
    for item in act.by_state or ():
        f.gauge(
            "dbops_connections_by_state",
            "Client connections by state.",
            item.count,
            state=item.key or "unknown",
        )
    # Access monitoring: who is connected and from where. Bounded labels: the roles and the
    # client hosts of the cluster (``local`` for the unix socket), not per session.
    for item in act.by_user or ():
        f.gauge(
            "dbops_connections_by_user",
            "Client connections by database role.",
            item.count,
            user=item.key or "unknown",
        )
    clients = sorted(act.by_client or (), key=lambda c: (-c.count, str(c.key)))
    by_client_doc = (
        f"Client connections by client address (local = unix socket; the {MAX_CLIENT_SERIES} "
        'busiest addresses, the others summed as client="other").'
    )
    for item in clients[:MAX_CLIENT_SERIES]:
        f.gauge(
            "dbops_connections_by_client", by_client_doc, item.count, client=item.key or "unknown"
        )
    if len(clients) > MAX_CLIENT_SERIES:
        rest = sum(c.count for c in clients[MAX_CLIENT_SERIES:])
        f.gauge("dbops_connections_by_client", by_client_doc, rest, client="other")
    if act.sessions is not None:
        running = [s.query_s for s in act.sessions if s.state == "active" and s.query_s is not None]
        idle_tx = [
            s.state_s
            for s in act.sessions
            if s.state and s.state.startswith("idle in transaction") and s.state_s is not None
        ]
        f.gauge(
            "dbops_longest_query_seconds",
            "Longest-running active statement (0 when none).",
            max(running, default=0.0),
        )
        f.gauge(
            "dbops_longest_idle_in_transaction_seconds",
            "Longest idle-in-transaction session (0 when none).",
            max(idle_tx, default=0.0),
        )
    if act.blocked is not None:
        f.gauge(
            "dbops_blocked_sessions",
            "Sessions waiting for a lock held by another.",
            len({p.blocked_pid for p in act.blocked}),
        )
