"""Backups: the logical backups, their age and restore drills, and the maintenance plan."""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from dashboard import components as c
from dashboard import data
from dbops.core.manifest import DRILL_LABELS
from dbops.errors import DbopsError
from dbops.monitoring import Snapshot
from dbops.units import format_bytes


def _hours(value: float | None) -> str:
    if value is None or pd.isna(value):
        return "never"
    if value < 1:
        return f"{value * 60:.0f} min"
    return f"{value:.1f} h" if value < 48 else f"{value / 24:.1f} days"


def _headline(found: data.Backups | data.Note) -> None:
    cols = st.columns(4)
    if isinstance(found, data.Note):
        cols[0].metric("Newest backup", "none")
        cols[1].metric("Newest verified", "none")
        cols[2].metric("Backups", "0")
        cols[3].metric("Total size", format_bytes(0))
        return
    table = found.table
    verified = table[table["verified"]]
    cols[0].metric("Newest backup", _hours(table["age_h"].min()), help=str(table["id"].iloc[0]))
    cols[1].metric(
        "Newest verified",
        _hours(verified["age_h"].min() if not verified.empty else None),
        help="Age of the newest backup that passed a restore drill (`dbops backup verify`).",
    )
    cols[2].metric("Backups", str(len(table)))
    cols[3].metric("Total size", format_bytes(float(table["size_bytes"].sum())))


def _charts(found: data.Backups) -> None:
    left, right = st.columns(2)
    sizes = found.table.assign(size_mb=found.table["size_bytes"] / 2**20)
    with left:
        st.altair_chart(
            alt.Chart(sizes, title="Backup size (MiB)")
            .mark_line(point=True)
            .encode(
                x=alt.X("created:T", title="created (UTC)", axis=alt.Axis(format="%m-%d %H:%M")),
                y=alt.Y("size_mb:Q", title="MiB"),
                tooltip=["id:N", "created:T", "size_mb:Q", "rows:Q", "format:N"],
            ),
            width="stretch",
        )
    with right:
        if found.drills.empty:
            st.info("No restore drill yet: `dbops backup verify` runs one on the newest backup.")
            return
        st.altair_chart(
            alt.Chart(found.drills, title="Restore drill duration (s)")
            .mark_point(filled=True, size=80)
            .encode(
                x=alt.X("at:T", title="drill at (UTC)", axis=alt.Axis(format="%m-%d %H:%M")),
                y=alt.Y("duration_s:Q", title="seconds"),
                color=alt.Color(
                    "result:N",
                    scale=alt.Scale(domain=list(DRILL_LABELS), range=["#2e7d32", "#c62828"]),
                ),
                tooltip=["backup:N", "at:T", "result:N", "duration_s:Q", "message:N"],
            ),
            width="stretch",
        )


def _plan() -> None:
    st.subheader("Maintenance plan")
    st.caption(
        "What `dbops maintain run --apply` would do now, computed from the current snapshot. "
        "This page runs nothing: `dbops maintain plan` shows the same, `--apply` carries it out."
    )
    upkeep = data.maintenance_plan()
    if isinstance(upkeep, data.Note):
        c.show_note(upkeep)
        return
    runnable = int(upkeep["runs"].sum())
    st.caption(f"{runnable} action(s) to run, {len(upkeep) - runnable} advisory (run by hand).")
    st.dataframe(
        upkeep.assign(gives_back=[format_bytes(n) if n else "" for n in upkeep["estimated_bytes"]]),
        hide_index=True,
        width="stretch",
        column_order=["kind", "target", "reason", "gives_back", "runs", "sql", "note"],
        column_config={
            "gives_back": st.column_config.TextColumn("gives back"),
            "runs": st.column_config.CheckboxColumn("runs"),
            "sql": st.column_config.TextColumn("statement", width="large"),
        },
    )


def _checks(snap: Snapshot) -> None:
    if c.collector_note(snap, "backups") or snap.backups is None:
        st.info("The backup checks did not run: this snapshot has no backups section.")
        return
    checks = data.backup_findings()
    if checks:
        c.findings_table(checks)
    else:
        st.success("Backup checks pass: a recent backup exists and passed its restore drill.")


def main() -> None:
    """Render the page."""
    st.title("Backups")
    found = data.backups()  # manifests on disk: shown even when the database is down
    _headline(found)
    try:
        snap: Snapshot | None = data.load_snapshot()
    except (DbopsError, OSError, ValueError) as exc:
        snap = None
        st.warning(f"No snapshot, so no backup checks and no maintenance plan: {exc}")
    if snap is not None:
        _checks(snap)
    if isinstance(found, data.Note):
        c.show_note(found)
    else:
        st.caption(f"Backups in `{found.directory}`, newest first.")
        for problem in found.broken:
            st.warning(f"Skipped a backup folder with an unreadable manifest: {problem}")
        shown = found.table.assign(
            size=[format_bytes(n) for n in found.table["size_bytes"]],
            age=[_hours(h) for h in found.table["age_h"]],
        )
        st.dataframe(
            shown,
            hide_index=True,
            width="stretch",
            column_order=[
                "id",
                "created",
                "age",
                "format",
                "size",
                "revision",
                "tables",
                "rows",
                "last_drill",
                "drill_s",
                "verified",
                "drill_message",
            ],
            column_config={
                "created": st.column_config.DatetimeColumn(
                    "created (UTC)", format="YYYY-MM-DD HH:mm:ss"
                ),
                "last_drill": st.column_config.TextColumn("last drill"),
                "drill_s": st.column_config.NumberColumn("drill (s)", format="%.1f"),
                "verified": st.column_config.CheckboxColumn("verified"),
                "drill_message": st.column_config.TextColumn("drill result", width="large"),
            },
        )
        _charts(found)
    if snap is not None:
        _plan()


main()
