"""The dbops dashboard: `streamlit run dashboard/app.py` (frame, navigation, refresh, source)."""

from __future__ import annotations

import time

import streamlit as st

from dashboard import data

REFRESH_CHOICES: dict[str, float | None] = {"off": None, "5 s": 5.0, "15 s": 15.0, "60 s": 60.0}

# Safe by default whatever config the server started with: no tracebacks in the browser.
st.set_option("client.showErrorDetails", False)
st.set_page_config(page_title="dbops", page_icon=":material/database:", layout="wide")

# The pages live in views/, not pages/: Streamlit serves a pages/ folder next to the main
# script as pages of their own, and a deep link (http://.../pool) then ran the page without
# this frame (no navigation, no refresh, no page config).
PAGES = {
    "Monitor": [
        st.Page("views/overview.py", title="Overview", icon=":material/dashboard:", default=True),
        st.Page("views/queries.py", title="Queries", icon=":material/timer:"),
        st.Page("views/indexes.py", title="Indexes", icon=":material/account_tree:"),
        st.Page("views/tables.py", title="Tables and space", icon=":material/storage:"),
        st.Page("views/activity.py", title="Activity", icon=":material/cable:"),
        st.Page("views/pool.py", title="Pool and app", icon=":material/hub:"),
    ],
    "Data": [
        st.Page("views/teams.py", title="Teams and users", icon=":material/group:"),
    ],
    "Ops": [
        st.Page("views/backups.py", title="Backups", icon=":material/backup:"),
    ],
}


def _sidebar() -> float | None:
    """Refresh interval, snapshot time and source; returns the interval in seconds."""
    with st.sidebar:
        choice = st.selectbox("Auto-refresh", list(REFRESH_CHOICES), key="refresh")
        src = data.source()
        st.caption(f"Source: {src.kind} — `{src.label}`")
        try:
            snap = data.load_snapshot()
        except Exception:  # the page itself shows why
            snap = None
        if snap is not None:
            st.caption(
                f"Snapshot: {snap.taken_at:%Y-%m-%d %H:%M:%S} UTC "
                f"({snap.duration_s * 1000:.0f} ms, {len(snap.errors)} collector errors)"
            )
            if snap.carried:
                st.caption(data.carried_note(snap))
        if st.button("Refresh now"):
            data.refresh_now()
    return REFRESH_CHOICES[choice or "off"]


def _auto_refresh(interval: float) -> None:
    """Rerun the whole app every ``interval`` seconds (a fragment's timer triggers it)."""
    st.session_state["_last_full_run"] = time.monotonic()

    @st.fragment(run_every=interval)
    def ticker() -> None:
        last = float(st.session_state.get("_last_full_run", 0.0))
        if time.monotonic() - last >= interval * 0.9:
            st.rerun(scope="app")

    with st.sidebar:
        ticker()


page = st.navigation(PAGES)
interval = _sidebar()
if interval:
    _auto_refresh(interval)
page.run()
