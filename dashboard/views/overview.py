"""Overview: health findings and the headline numbers."""

from __future__ import annotations

import streamlit as st

from dashboard import components as c
from dashboard import data
from dbops.units import format_bytes


def main() -> None:
    """Render the page."""
    st.title("Overview")
    snap = c.current_snapshot()
    db, act = snap.database, snap.activity
    pools = snap.app_pools()  # the application's live processes, not the dashboard's pool

    cols = st.columns(6)
    with cols[0]:
        c.metric("Database size", format_bytes(db.size_bytes if db else None))
    with cols[1]:
        rate = data.xact_rate(snap)
        c.metric(
            "Transactions/s",
            "-" if rate is None else f"{rate:,.1f}",
            "Commits + rollbacks between the last two snapshots (needs two).",
        )
    with cols[2]:
        ratio = db.cache_hit_ratio() if db else None
        c.metric("Cache hit", "-" if ratio is None else f"{ratio:.2%}")
    with cols[3]:
        used = act.total if act else None
        most = act.max_connections if act else None
        c.metric("Connections", f"{used if used is not None else '-'} / {most or '-'}")
    with cols[4]:
        c.metric(
            "App pool in use / waiting",
            "-"
            if not pools
            else f"{sum(p.in_use() for p in pools)} / {sum(p.waiting for p in pools)}",
            "Summed over the pools of the application's live processes (their reports).",
        )
    with cols[5]:
        # The application's statements: dbops' own (setup, migrations, monitoring) would
        # otherwise win with CREATE EXTENSION or the monitor's bloat query.
        slowest = max(snap.app_statements(), key=lambda q: q.mean_exec_time_ms, default=None)
        c.metric(
            "Slowest app statement",
            "-" if slowest is None else f"{slowest.mean_exec_time_ms:,.1f} ms",
            (
                f"Mean time of the application's slowest statement (roles: "
                f"{', '.join(sorted(snap.app_roles()))})"
                + ("" if slowest is None else f": {(slowest.query or '')[:200]}")
            ),
        )

    st.subheader("Health checks")
    found = data.findings()
    show_ok = st.toggle("Show passing checks", value=False)
    c.findings_table(found, include_ok=show_ok)

    if snap.errors:
        st.subheader("Collector errors")
        c.collector_note(snap, *{e.collector for e in snap.errors})
    if snap.server is not None:
        # The server_version check's verdict, not a second rule.
        unsupported = any(f.check == "server_version" and f.severity.rank > 0 for f in found)
        st.caption(
            f"PostgreSQL {snap.server.version}"
            + (" (**not a supported version**: see Health checks)" if unsupported else "")
            + f" · database `{snap.server.database}` · role `{snap.server.current_user}`"
            + (" · standby" if snap.server.in_recovery else " · primary")
            + (f" at {snap.server.address}" if snap.server.address else "")
        )


main()
