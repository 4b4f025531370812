"""Activity: connections by state, application and user; long-running and blocked queries."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import components as c
from dbops.monitoring.snapshot import CountBy


def _counts(items: tuple[CountBy, ...] | None, label: str) -> pd.DataFrame:
    return pd.DataFrame(
        [{label: i.key or "(none)", "connections": i.count} for i in items or ()],
        columns=[label, "connections"],
    )


def main() -> None:
    """Render the page."""
    st.title("Activity")
    snap = c.current_snapshot()
    c.collector_note(snap, "activity")
    act = snap.activity
    if act is None:
        st.info("No activity in this snapshot.")
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
