"""Queries: top statements by total time, mean time or calls; one statement's detail."""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from dashboard import components as c
from dashboard import data

SORTS = {
    "Total time": "total_ms",
    "Mean time": "mean_ms",
    "Calls": "calls",
}


def _frame() -> tuple[pd.DataFrame, float]:
    snap = c.current_snapshot()
    if c.collector_note(snap, "statements") or snap.statements is None:
        st.stop()
    stats = snap.statements
    total = stats.total_exec_time_ms or 1.0
    roles = ", ".join(sorted(snap.app_roles()))
    everyone = st.toggle(
        "Include dbops' own statements",
        value=False,
        help=f"Off: only the application's roles ({roles}); on: setup, migrations, backups "
        "and monitoring too (the owner, read-only, monitor and administrator roles).",
    )
    shown = stats.top if everyone else snap.app_statements()
    df = pd.DataFrame(
        [
            {
                # A string: a browser's numbers round 64-bit queryids (two statements would
                # share one label); int() of it gets the queryid back.
                "queryid": None if q.queryid is None else str(q.queryid),
                "query": " ".join((q.query or "").split()),
                "total_ms": q.total_exec_time_ms,
                "share": q.total_exec_time_ms / total,
                "mean_ms": q.mean_exec_time_ms,
                "max_ms": q.max_exec_time_ms,
                "calls": q.calls,
                "rows": q.rows,
                "cache_hit": (
                    q.shared_blks_hit / (q.shared_blks_hit + q.shared_blks_read)
                    if q.shared_blks_hit + q.shared_blks_read
                    else None
                ),
                "user": q.user,
            }
            for q in shown
        ],
        columns=[
            "queryid",
            "query",
            "total_ms",
            "share",
            "mean_ms",
            "max_ms",
            "calls",
            "rows",
            "cache_hit",
            "user",
        ],
    )
    st.caption(
        f"{stats.entries} of {stats.max_entries or '?'} statement entries, "
        f"{stats.total_calls:,} calls, {stats.total_exec_time_ms / 1000:,.1f} s in total"
        + (f" since {stats.stats_reset:%Y-%m-%d %H:%M} UTC" if stats.stats_reset else "")
    )
    return df, total


def _detail(row: pd.Series) -> None:
    st.subheader(f"Statement {row['queryid']}")
    cols = st.columns(4)
    cols[0].metric("Calls", f"{int(row['calls']):,}")
    cols[1].metric("Mean", f"{row['mean_ms']:,.2f} ms")
    cols[2].metric("Total", f"{row['total_ms'] / 1000:,.2f} s")
    cols[3].metric("Rows", f"{int(row['rows']):,}")
    st.code(str(row["query"]), language="sql")

    series = data.statement_series(int(row["queryid"]))
    if isinstance(series, data.Note):
        c.show_note(series)
    else:
        base = alt.Chart(series).encode(x=alt.X("captured_at:T", title=None))
        left, right = st.columns(2)
        left.altair_chart(
            base.mark_line(point=True).encode(y=alt.Y("calls_per_s:Q", title="calls/s")),
            width="stretch",
        )
        right.altair_chart(
            base.mark_line(point=True).encode(y=alt.Y("mean_exec_time_ms:Q", title="mean ms")),
            width="stretch",
        )

    if st.button("EXPLAIN", key=f"explain-{row['queryid']}"):
        plan = data.explain(str(row["query"]))
        if isinstance(plan, data.Note):
            c.show_note(plan)
        else:
            st.code(plan, language="text")


def main() -> None:
    """Render the page."""
    st.title("Queries")
    df, _ = _frame()
    if df.empty:
        st.info(
            "No statement of the application's roles in pg_stat_statements yet; "
            'turn on "Include dbops\' own statements" for setup and monitoring.'
        )
        return
    sort = st.radio("Sort by", list(SORTS), horizontal=True)
    df = df.sort_values(SORTS[sort or "Total time"], ascending=False).reset_index(drop=True)
    event = st.dataframe(
        df,
        hide_index=True,
        width="stretch",
        on_select="rerun",
        selection_mode="single-row",
        key="queries-table",
        column_config={
            "query": st.column_config.TextColumn("query", width="large"),
            "share": st.column_config.ProgressColumn("share", min_value=0.0, max_value=1.0),
            "total_ms": st.column_config.NumberColumn("total ms", format="%.1f"),
            "mean_ms": st.column_config.NumberColumn("mean ms", format="%.2f"),
            "max_ms": st.column_config.NumberColumn("max ms", format="%.1f"),
            "cache_hit": st.column_config.NumberColumn("cache hit", format="percent"),
            "queryid": st.column_config.TextColumn("queryid"),
        },
    )
    selected = getattr(getattr(event, "selection", None), "rows", None) or []
    options = [str(q) for q in df["queryid"].dropna()]
    if not options:
        return
    default = options.index(str(df.loc[selected[0], "queryid"])) if selected else 0
    chosen = st.selectbox(
        "Statement detail",
        options,
        index=default,
        format_func=lambda qid: f"{qid}: {df.loc[df['queryid'] == qid, 'query'].iloc[0][:100]}",
    )
    if chosen is not None:
        _detail(df.loc[df["queryid"] == chosen].iloc[0])


main()
