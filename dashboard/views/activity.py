"""Activity: connections, replication, access events, long and blocked queries."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import components as c
from dashboard import data
from dbops.monitoring.snapshot import AccessStat, CountBy, Snapshot
from dbops.units import format_bytes


def _counts(items: tuple[CountBy, ...] | None, label: str) -> pd.DataFrame:
    return pd.DataFrame(
        [{label: i.key or "(none)", "connections": i.count} for i in items or ()],
        columns=[label, "connections"],
    )


def _access_table(acc: AccessStat) -> pd.DataFrame:
    """One row per kind of event; an empty cell where the source does not count that kind."""
    app = {str(x.key): x.count for x in acc.app.by_kind()} if acc.app else {}
    server = {str(x.key): x.count for x in acc.server.by_kind()} if acc.server else {}
    kinds = ("login_failed", "forbidden", "not_found", "rls_denied", "privilege_denied")
    return pd.DataFrame(
        [{"event": k, "app": app.get(k), "server": server.get(k)} for k in kinds],
        columns=["event", "app", "server"],
    ).astype({"app": "Int64", "server": "Int64"})


def _num(value: int | None) -> str:
    return "-" if value is None else str(value)


def _access(snap: Snapshot) -> None:
    st.subheader("Access")
    if c.collector_note(snap, "access"):
        return
    acc = snap.access
    if acc is None:
        st.info("No access events in this snapshot.")
        return
    window = f"last {acc.window_s / 60:.0f} min"
    cols = st.columns(4)
    cols[0].metric(
        f"Failed logins, server ({window})",
        _num(acc.server.login_failed_recent if acc.server else None),
        help="SQLSTATE 28P01/28000 lines of the server log",
    )
    cols[1].metric(
        f"Failed sign-ins, app ({window})",
        _num(acc.app.login_failed_recent if acc.app else None),
        help="UserService.authenticate refusals in the process that took the snapshot",
    )
    cols[2].metric("RLS denials (server)", _num(acc.server.rls_denied if acc.server else None))
    cols[3].metric(
        "Privilege denials (server)",
        _num(acc.server.privilege_denied if acc.server else None),
    )
    st.dataframe(_access_table(acc), hide_index=True, width="stretch")
    notes = []
    if acc.app is None:
        notes.append("app: counted in the application process (a snapshot it takes itself)")
    if acc.server is None:
        notes.append("server: its log is not on this host")
    if notes:
        st.caption("Unknown here — " + "; ".join(notes) + ". Counts are since start.")
    else:
        st.caption("Counts are since start (the server's: since its log was first read).")


def _ha(snap: Snapshot) -> None:
    """Patroni's cluster, when one is watched (``DBOPS_MONITOR_PATRONI_URL``)."""
    if c.collector_note(snap, "ha") or snap.ha is None:
        return
    ha = snap.ha
    leader = ha.leader()
    st.metric(
        "Patroni leader (the primary)",
        "none running" if leader is None else f"{leader.name} at {leader.address or '?'}",
        help=f"{ha.serving()} of {len(ha.members)} members running; from {ha.source}",
    )
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "member": m.name,
                    "role": m.role,
                    "state": m.state,
                    "address": m.address,
                    "timeline": m.timeline,
                    "behind": None if m.lag_bytes is None else format_bytes(m.lag_bytes),
                }
                for m in ha.members
            ]
        ),
        hide_index=True,
        width="stretch",
    )


def _replication(snap: Snapshot) -> None:
    """This server's role, Patroni's members, the standbys and slots, with their checks."""
    st.subheader("Replication")
    _ha(snap)
    server, db = snap.server, snap.database
    if c.collector_note(snap, "database.replicas", "database.slots") or db is None:
        return
    cols = st.columns(3)
    role = "-" if server is None else ("standby" if server.in_recovery else "primary")
    cols[0].metric("This server", role)
    if server is not None and server.in_recovery:
        lag = db.replica_lag_s
        cols[1].metric(
            "Replay lag (this standby)",
            "-" if lag is None else f"{lag:.1f} s",
            help="0 while streaming with everything received replayed",
        )
    else:
        cols[1].metric("Standbys streaming", "-" if db.replicas is None else len(db.replicas))
    cols[2].metric("Replication slots", "-" if db.slots is None else len(db.slots))
    if db.replicas:
        st.dataframe(
            pd.DataFrame(
                [
                    {
                        "standby": r.application or r.client_addr or "replica",
                        "client": r.client_addr or "local",
                        "state": r.state,
                        "sync": r.sync_state,
                        "behind": format_bytes(r.lag_bytes),
                        "replay lag s": r.replay_lag_s,
                    }
                    for r in db.replicas
                ]
            ),
            hide_index=True,
            width="stretch",
            column_config={"replay lag s": st.column_config.NumberColumn(format="%.3f")},
        )
    if db.slots:
        st.dataframe(
            pd.DataFrame(
                [
                    {
                        "slot": s.name,
                        "type": s.slot_type,
                        "active": s.active,
                        "WAL kept": format_bytes(s.retained_bytes),
                        "wal_status": s.wal_status,
                    }
                    for s in db.slots
                ]
            ),
            hide_index=True,
            width="stretch",
        )
    found = data.replication_findings()
    if found:
        c.findings_table(found)
    elif db.replicas or db.slots or (server is not None and server.in_recovery):
        st.success("No replica lags and no slot keeps much WAL.")
    else:
        st.caption("No standby streams from this server (`dbops db replica add` makes one).")


def main() -> None:
    """Render the page."""
    st.title("Activity")
    snap = c.current_snapshot()
    c.collector_note(snap, "activity")
    act = snap.activity
    if act is None:
        st.info("No activity in this snapshot.")
        _replication(snap)
        _access(snap)
        return
    cols = st.columns(3)
    cols[0].metric("Connections", "-" if act.total is None else act.total)
    cols[1].metric("max_connections", "-" if act.max_connections is None else act.max_connections)
    cols[2].metric("Blocked", "-" if act.blocked is None else len(act.blocked))

    left, mid, right = st.columns(3)
    with left:
        c.bar_chart(_counts(act.by_state, "state"), "connections", "state", title="By state")
    with mid:
        c.bar_chart(
            _counts(act.by_application, "application"),
            "connections",
            "application",
            title="By application",
        )
    with right:
        c.bar_chart(_counts(act.by_user, "user"), "connections", "user", title="By user")
    if act.by_client is not None:
        c.bar_chart(
            _counts(act.by_client, "client"),
            "connections",
            "client",
            title="By client address (local = unix socket)",
        )

    _replication(snap)
    _access(snap)

    st.subheader("Blocked queries")
    if act.blocked is None:
        st.info("Lock waits unknown (collector failed).")
    elif not act.blocked:
        st.success("Nothing is waiting for a lock.")
    else:
        st.dataframe(c.frame(act.blocked), hide_index=True, width="stretch")

    st.subheader("Open sessions (longest first)")
    if act.sessions is None:
        st.info("Sessions unknown (collector failed).")
    elif not act.sessions:
        st.info("No session is running a statement or holding a transaction open.")
    else:
        df = c.frame(act.sessions)
        df = df.sort_values(["query_s", "transaction_s"], ascending=False, na_position="last")
        st.dataframe(
            df,
            hide_index=True,
            width="stretch",
            column_config={
                "query_s": st.column_config.NumberColumn("query s", format="%.1f"),
                "state_s": st.column_config.NumberColumn("state s", format="%.1f"),
                "transaction_s": st.column_config.NumberColumn("xact s", format="%.1f"),
            },
        )


main()
