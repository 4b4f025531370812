"""Pool and app: the application processes' pools, query caches and service statements.

Each process that opens the app database reports them (``dbops.telemetry.report``); this page reads
those reports from the snapshot (``snapshot.processes``), never the dashboard's own pool.
"""

from __future__ import annotations

from datetime import timedelta

import altair as alt
import pandas as pd
import streamlit as st

from dashboard import components as c
from dashboard import data
from dbops.monitoring.snapshot import ProcessReport, Snapshot

#: How far back the pool chart goes.
HISTORY_WINDOW = timedelta(hours=1)


def _process_table(snap: Snapshot) -> pd.DataFrame:
    rows = []
    for p in snap.processes or ():
        hits = sum(x.hits for x in p.caches)
        looked = hits + sum(x.misses for x in p.caches)
        rows.append(
            {
                "process": p.label,
                "state": p.state(),
                "host": p.host,
                "role": p.reported_by,
                "started": p.started_at,
                "report age s": round(p.age_s, 1),
                "in use": sum(x.in_use() for x in p.pools),
                "open": sum(x.size for x in p.pools),
                "max": sum(x.max_size for x in p.pools),
                "waiting": sum(x.waiting for x in p.pools),
                "timeouts": sum(x.timeouts for x in p.pools),
                "cache hit": f"{hits / looked:.1%}" if looked else "-",
                "calls": sum(s.count for s in p.app.statements) if p.app else 0,
            }
        )
    return pd.DataFrame(rows)


def _pools(process: ProcessReport) -> None:
    for pool in process.pools:
        cols = st.columns(5)
        cols[0].metric("Size", f"{pool.size} ({pool.min_size}-{pool.max_size})")
        cols[1].metric("In use", pool.in_use())
        cols[2].metric("Idle", pool.idle)
        cols[3].metric("Waiting", pool.waiting)
        cols[4].metric("Timeouts", pool.timeouts)
        wait = pool.mean_checkout_wait_ms()
        st.caption(
            f"pool {pool.name}: {pool.requests:,} checkouts, {pool.requests_queued:,} queued"
            + (f" (mean wait {wait:,.1f} ms)" if wait is not None else "")
            + f", {pool.connection_errors} connection errors, {pool.connections_lost} lost"
            + " (counters since the process started)"
        )
    for cache in process.caches:
        looked = cache.hits + cache.misses
        counters = st.columns(4)
        counters[0].metric("Cache", cache.backend)
        counters[1].metric("Hit ratio", f"{cache.hits / looked:.1%}" if looked else "-")
        counters[2].metric("Invalidations", f"{cache.invalidations:,}")
        counters[3].metric("Entries", "-" if cache.size is None else f"{cache.size:,}")
    if not process.caches:
        st.caption("No query cache in this process.")


def _routing(process: ProcessReport) -> None:
    """Where the process's lag-tolerant reads ran: its read replicas, or the primary."""
    for routing in process.routing:
        total = routing.replica_reads + routing.primary_reads
        cols = st.columns(3)
        cols[0].metric(
            "Reads on replicas",
            f"{routing.replica_reads:,}",
            help="Lag-tolerant service reads (docs/scale-out.md) served by a replica",
        )
        cols[1].metric(
            "Share on replicas", f"{routing.replica_reads / total:.1%}" if total else "-"
        )
        cols[2].metric(
            "Waited for a write",
            f"{routing.waited:,}",
            help="Reads that waited for the replica to replay the actor's own last write",
        )
        if routing.fallbacks:
            st.caption(
                "On the primary: "
                + ", ".join(f"{f.count:,} {f.key}" for f in routing.fallbacks)
                + " (no replica usable; behind: the wait ran out; failed: the replica could "
                "not answer, the read ran again)"
            )
        st.dataframe(c.frame(routing.replicas), hide_index=True, width="stretch")


def _statements(process: ProcessReport) -> None:
    app = process.app
    if app is None or not app.statements:
        st.info("No service call recorded by this process yet.")
        return
    df = pd.DataFrame(
        [
            {
                "statement": s.name,
                "calls": s.count,
                "mean_ms": s.sum_s / s.count * 1000 if s.count else 0.0,
                "errors": s.error_count(),
            }
            for s in sorted(app.statements, key=lambda s: s.count, reverse=True)
        ]
    )
    st.dataframe(df, hide_index=True, width="stretch")
    c.bar_chart(df.head(15), "mean_ms", "statement", title="Mean latency of service calls (ms)")


def _history(snap: Snapshot) -> None:
    series = data.process_series(since=snap.taken_at - HISTORY_WINDOW)
    if isinstance(series, data.Note):
        c.show_note(series)
        return
    long = series.melt(
        id_vars=["reported_at", "process"],
        value_vars=["in_use", "waiting"],
        var_name="what",
        value_name="connections",
    )
    chart = (
        alt.Chart(long, title="Pool over the last hour (in use, waiting)")
        .mark_line(point=True)
        .encode(
            x=alt.X("reported_at:T", title=None),
            y=alt.Y("connections:Q"),
            color=alt.Color("process:N"),
            strokeDash=alt.StrokeDash("what:N"),
        )
    )
    st.altair_chart(chart, width="stretch")


def _bouncer(snap: Snapshot) -> None:
    """PgBouncer's pools and traffic, when one is watched (``DBOPS_MONITOR_PGBOUNCER_URL``)."""
    if snap.bouncer is None and snap.error("bouncer") is None:
        return
    st.subheader("PgBouncer")
    if c.collector_note(snap, "bouncer") or snap.bouncer is None:
        return
    b = snap.bouncer
    st.caption(f"{b.version or 'PgBouncer'}: its pools (SHOW POOLS) and traffic (SHOW STATS).")
    st.dataframe(c.frame(b.pools), hide_index=True, width="stretch")
    if b.databases:
        st.dataframe(c.frame(b.databases), hide_index=True, width="stretch")
    found = data.bouncer_findings()
    if found:
        c.findings_table(found)


def main() -> None:
    """Render the page."""
    st.title("Pool and app")
    snap = c.current_snapshot()
    c.collector_note(snap, "processes")
    st.caption(
        "The application's processes, from the reports each writes every "
        "DBOPS_PROCESS_REPORT_S seconds (the dashboard's own pool is not shown)."
    )
    st.subheader("Application processes")
    if not snap.processes:
        st.info(data.NO_PROCESS_HISTORY)
    else:
        st.dataframe(_process_table(snap), hide_index=True, width="stretch")
        choices = {p.label: p for p in snap.processes}
        live = snap.live_processes()
        chosen = st.selectbox(
            "Process", list(choices), index=list(choices).index(live[0].label) if live else 0
        )
        process = choices[chosen]
        st.subheader(f"{process.label}: connection pool and query cache")
        _pools(process)
        if process.routing:
            st.subheader("Read replicas")
            _routing(process)
        st.subheader("Service calls")
        _statements(process)
    _bouncer(snap)
    st.subheader("History")
    _history(snap)


main()
