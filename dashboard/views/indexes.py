"""Indexes: usage, unused, duplicate/covered, invalid, bloat and verified suggestions."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import components as c
from dashboard import data
from dbops.monitoring.checks import problems
from dbops.units import format_bytes


def _frame() -> pd.DataFrame:
    snap = c.current_snapshot()
    if c.collector_note(snap, "indexes") and snap.indexes is None:
        st.stop()
    if snap.indexes is None:
        st.info("No index statistics in this snapshot.")
        st.stop()
    return pd.DataFrame(
        [
            {
                "index": i.name,
                "schema": i.schema,
                "table": f"{i.schema}.{i.table}",
                "scans": i.scans,
                "size": i.size_bytes,
                "size_mb": i.size_bytes / 2**20,
                "size_h": format_bytes(i.size_bytes),
                "bloat": i.bloat_bytes,
                "bloat_h": format_bytes(i.bloat_bytes),
                "unique": i.is_unique,
                "primary": i.is_primary,
                "valid": i.is_valid,
                "covered_by": i.covered_by,
                "definition": i.definition,
            }
            for i in snap.indexes
        ],
        columns=[
            "index",
            "schema",
            "table",
            "scans",
            "size",
            "size_mb",
            "size_h",
            "bloat",
            "bloat_h",
            "unique",
            "primary",
            "valid",
            "covered_by",
            "definition",
        ],
    )


def main() -> None:
    """Render the page."""
    st.title("Indexes")
    df = _frame()
    if df.empty:
        st.info("No indexes in the monitored schemas.")
        return
    # The same findings as the checks, `dbops monitor checks` and the exporter: one definition.
    found = data.findings()
    unused_found = problems(found, "unused_indexes")
    covered_found = problems(found, "duplicate_indexes")
    qualified = df["schema"] + "." + df["index"]
    unused = df[qualified.isin({f.subject for f in unused_found})]
    covered = df[qualified.isin({f.subject for f in covered_found})]
    invalid = df[~df["valid"]]
    cols = st.columns(4)
    cols[0].metric("Indexes", len(df), help=format_bytes(float(df["size"].sum())))
    cols[1].metric("Unused", len(unused), help=format_bytes(float(unused["size"].sum())))
    cols[2].metric("Duplicate / covered", len(covered))
    cols[3].metric("Invalid", len(invalid))

    tabs = st.tabs(["Unused", "Duplicate", "Invalid", "Bloat", "Usage", "Suggestions"])
    shown = ["index", "table", "scans", "size_h", "definition"]
    with tabs[0]:
        st.caption(
            "The unused_indexes check: never scanned since the statistics reset, valid, at "
            "least DBOPS_CHECK_UNUSED_INDEX_MIN_BYTES, not unique, primary or covered by "
            "another (those are under Duplicate). Check replicas before dropping one."
        )
        if unused.empty:
            st.success("No unused indexes.")
        else:
            st.dataframe(unused[shown], hide_index=True, width="stretch")
            st.code("\n".join(f.hint or "" for f in unused_found), language="sql")
    with tabs[1]:
        if covered.empty:
            st.success("No duplicate or covered indexes.")
        else:
            st.dataframe(
                covered[["index", "covered_by", "table", "size_h", "definition"]],
                hide_index=True,
                width="stretch",
            )
            st.code("\n".join(f.hint or "" for f in covered_found), language="sql")
    with tabs[2]:
        if invalid.empty:
            st.success("No invalid indexes.")
        else:
            st.warning("Invalid indexes (a failed CREATE INDEX CONCURRENTLY): drop and rebuild.")
            st.dataframe(invalid[shown], hide_index=True, width="stretch")
    with tabs[3]:
        bloated = df[df["bloat"].fillna(0) > 0].sort_values("bloat", ascending=False)
        if bloated.empty:
            st.info("No btree bloat estimated (or pg_stats not readable).")
        else:
            st.dataframe(
                bloated[["index", "table", "bloat_h", "size_h"]], hide_index=True, width="stretch"
            )
    with tabs[4]:
        usage = df.sort_values("size", ascending=False)
        st.dataframe(
            usage[["index", "table", "scans", "size_h", "unique", "valid"]],
            hide_index=True,
            width="stretch",
        )
        c.bar_chart(usage.head(15), "size_mb", "index", title="Largest indexes (MB)")
    with tabs[5]:
        st.caption(
            "Candidates from the top statements, kept only if the planner uses them (hypopg)."
        )
        advice = data.index_advice()
        if isinstance(advice, data.Note):
            c.show_note(advice)
        elif advice.empty:
            st.success("No index would make a top statement much cheaper.")
        else:
            st.dataframe(advice.drop(columns=["create_sql"]), hide_index=True, width="stretch")
            for _, row in advice.iterrows():
                st.code(str(row["create_sql"]), language="sql")


main()
