"""Tables and space: sizes, growth, dead rows, vacuum and analyze age."""

from __future__ import annotations

from datetime import datetime

import altair as alt
import pandas as pd
import streamlit as st

from dashboard import components as c
from dashboard import data
from dbops.units import format_bytes


def main() -> None:
    """Render the page."""
    st.title("Tables and space")
    snap = c.current_snapshot()
    c.collector_note(snap, "tables")
    db = snap.database
    if db is not None and db.size_bytes is not None:
        st.metric("Database size", format_bytes(db.size_bytes))
    if snap.tables is None:
        st.info("No table statistics in this snapshot.")
        return
    now = snap.taken_at
    df = pd.DataFrame(
        [
            {
                "table": f"{t.schema}.{t.name}",
                "rows": t.live_rows,
                "dead_rows": t.dead_rows,
                "dead_share": t.dead_share(),
                "total": t.total_bytes,
                "total_mb": t.total_bytes / 2**20,
                "total_h": format_bytes(t.total_bytes),
                "table_h": format_bytes(t.table_bytes),
                "indexes_h": format_bytes(t.indexes_bytes),
                "seq_scans": t.seq_scans,
                "index_scans": t.index_scans,
                "vacuum_age_h": _hours(max_time(t.last_vacuum, t.last_autovacuum), now),
                "analyze_age_h": _hours(max_time(t.last_analyze, t.last_autoanalyze), now),
                "mods_since_analyze": t.modifications_since_analyze,
            }
            for t in snap.tables
        ]
    )
    if df.empty:
        st.info("No tables in the monitored schemas.")
        return
    df = df.sort_values("total", ascending=False)
    c.bar_chart(df.head(15), "total_mb", "table", title="Largest tables (MB, with indexes)")
    st.subheader("Sizes and maintenance")
    st.dataframe(
        df.drop(columns=["total", "total_mb"]),
        hide_index=True,
        width="stretch",
        column_config={
            "dead_share": st.column_config.NumberColumn("dead share", format="percent"),
            "vacuum_age_h": st.column_config.NumberColumn("vacuum age (h)", format="%.1f"),
            "analyze_age_h": st.column_config.NumberColumn("analyze age (h)", format="%.1f"),
        },
    )
    st.subheader("Growth")
    growth = data.table_growth(limit=10)
    if isinstance(growth, data.Note):
        c.show_note(growth)
    else:
        y = "total_bytes" if "total_bytes" in growth.columns else growth.columns[-1]
        colour = "table" if "table" in growth.columns else growth.columns[1]
        st.altair_chart(
            alt.Chart(growth)
            .mark_line()
            .encode(x="captured_at:T", y=alt.Y(f"{y}:Q"), color=f"{colour}:N"),
            width="stretch",
        )


def max_time(*values: datetime | None) -> datetime | None:
    """The latest of the non-null timestamps, or ``None``."""
    known = [v for v in values if v is not None]
    return max(known) if known else None


def _hours(when: datetime | None, now: datetime) -> float | None:
    return None if when is None else (now - when).total_seconds() / 3600


main()
