"""Shared partials of the dashboard pages: notes, findings, formatting, snapshot frames."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

import altair as alt
import pandas as pd
import streamlit as st

from dashboard.data import Note
from dbops.errors import DbopsError
from dbops.monitoring import Finding, Snapshot

__all__ = [
    "bar_chart",
    "collector_note",
    "findings_table",
    "frame",
    "show_note",
]

_SEVERITY_ICON = {"critical": "🔴", "warning": "🟠", "ok": "🟢"}


def age_s(when: datetime | None, now: datetime) -> float | None:
    """Seconds from ``when`` to ``now``; ``None`` when never."""
    return None if when is None else (now - when).total_seconds()


def show_note(note: Note) -> None:
    """A panel's "no data" note."""
    (st.warning if note.warning else st.info)(note.message)


def collector_note(snap: Snapshot, *collectors: str) -> bool:
    """Show a warning for each failed collector named (prefix match); True if any failed."""
    failed = False
    for err in snap.errors:
        if any(err.collector == c or err.collector.startswith(c + ".") for c in collectors):
            hint = f" — {err.hint}" if err.hint else ""
            st.warning(f"Collector `{err.collector}` failed: {err.message}{hint}")
            failed = True
    return failed


def frame(rows: Iterable[Any], columns: list[str] | None = None) -> pd.DataFrame:
    """Frozen dataclasses (or dicts) as a DataFrame."""
    items = [
        r if isinstance(r, dict) else {k: getattr(r, k) for k in r.__dataclass_fields__}
        for r in rows
    ]
    return pd.DataFrame(items, columns=columns) if columns else pd.DataFrame(items)


def findings_table(found: list[Finding], *, include_ok: bool = False) -> None:
    """Findings with severity, message and fix hint, worst first."""
    shown = [f for f in found if include_ok or f.severity.value != "ok"]
    if not shown:
        st.success("All checks pass.")
        return
    df = pd.DataFrame(
        [
            {
                "": _SEVERITY_ICON.get(f.severity.value, ""),
                "severity": f.severity.value,
                "check": f.check,
                "message": f.message,
                "hint": f.hint or "",
            }
            for f in shown
        ]
    )
    st.dataframe(df, hide_index=True, width="stretch")


def bar_chart(df: pd.DataFrame, x: str, y: str, *, title: str, sort: str = "-x") -> None:
    """A horizontal Altair bar chart of ``x`` by category ``y``."""
    if df.empty:
        st.info(f"No data for {title.lower()}.")
        return
    chart = (
        alt.Chart(df, title=title)
        .mark_bar()
        .encode(x=alt.X(x, type="quantitative"), y=alt.Y(y, type="nominal", sort=sort))
    )
    st.altair_chart(chart, width="stretch")


def current_snapshot() -> Snapshot:
    """The snapshot every page reads; a database or file problem stops the page with a note."""
    from dashboard import data

    try:
        return data.load_snapshot()
    except (DbopsError, OSError, ValueError) as exc:
        st.error(f"No snapshot: {exc}")
        st.stop()
        raise  # pragma: no cover - st.stop() raises


def metric(label: str, value: str, help_text: str | None = None) -> None:
    """One headline number."""
    st.metric(label, value, help=help_text)
