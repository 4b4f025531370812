"""Pool and app: the psycopg pool, the service cache and statement latency."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import components as c


def main() -> None:
    """Render the page."""
    st.title("Pool and app")
    snap = c.current_snapshot()
    c.collector_note(snap, "pool", "cache")
    pool = snap.pool
    st.subheader("Connection pool")
    st.caption("The pool of the process that took the snapshot (here: the dashboard itself).")
    if pool is None:
        st.info("No pool statistics: this snapshot was not taken inside an app process.")
    else:
        cols = st.columns(5)
        cols[0].metric("Size", f"{pool.size} ({pool.min_size}-{pool.max_size})")
        cols[1].metric("In use", pool.in_use())
        cols[2].metric("Idle", pool.idle)
        cols[3].metric("Waiting", pool.waiting)
        cols[4].metric("Timeouts", pool.timeouts)
        wait = pool.mean_checkout_wait_ms()
        st.caption(
            f"{pool.requests:,} checkouts, {pool.requests_queued:,} queued"
            + (f" (mean wait {wait:,.1f} ms)" if wait is not None else "")
            + f", {pool.connection_errors} connection errors, {pool.connections_lost} lost"
        )
        c.bar_chart(
            pd.DataFrame(
                [
                    {"state": "in use", "connections": pool.in_use()},
                    {"state": "idle", "connections": pool.idle},
                    {"state": "waiting", "connections": pool.waiting},
                ]
            ),
            "connections",
            "state",
            title="Pool now",
            sort="x",
        )
    st.subheader("Query cache")
    cache = snap.cache
    if cache is None:
        st.info("No service cache counters in this snapshot.")
    else:
        looked = cache.hits + cache.misses
        counters = st.columns(4)
        counters[0].metric("Backend", cache.backend)
        counters[1].metric("Hit ratio", f"{cache.hits / looked:.1%}" if looked else "-")
        counters[2].metric("Invalidations", cache.invalidations)
        counters[3].metric("Entries", "-" if cache.size is None else cache.size)
    st.subheader("Statement latency")
    if snap.statements is None:
        c.collector_note(snap, "statements")
    else:
        top = sorted(snap.statements.top, key=lambda q: q.calls, reverse=True)[:15]
        df = pd.DataFrame(
            [
                {
                    "statement": " ".join((q.query or "").split())[:80],
                    "mean_ms": q.mean_exec_time_ms,
                    "calls": q.calls,
                }
                for q in top
            ],
            columns=["statement", "mean_ms", "calls"],
        )
        c.bar_chart(df, "mean_ms", "statement", title="Mean latency of the busiest statements (ms)")


main()
