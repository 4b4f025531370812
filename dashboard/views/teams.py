"""Teams and users: signups, team sizes, roles, invitations, zero-owner teams, team search."""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from dashboard import components as c
from dashboard import data


def main() -> None:
    """Render the page."""
    st.title("Teams and users")
    snap = c.current_snapshot()
    c.collector_note(snap, "data")
    stats = snap.data
    if stats is None:
        st.info("No application data in this snapshot (no dbops tables, or the collector failed).")
    else:
        cols = st.columns(5)
        cols[0].metric("Users", f"{stats.live_users:,}", help=f"{stats.deleted_users:,} deleted")
        cols[1].metric("Teams", f"{stats.live_teams:,}", help=f"{stats.deleted_teams:,} deleted")
        cols[2].metric("Pending invitations", f"{stats.pending_invitations:,}")
        cols[3].metric("Expired invitations", f"{stats.expired_invitations:,}")
        cols[4].metric("Teams without owner", stats.zero_owner_teams)
        if stats.zero_owner_teams:
            st.warning(
                f"{stats.zero_owner_teams} live teams have no owner, e.g. "
                + ", ".join(stats.zero_owner_team_sample)
            )
        left, right = st.columns(2)
        signups = pd.DataFrame(
            [{"day": d.day, "signups": d.count} for d in stats.signups_per_day],
            columns=["day", "signups"],
        )
        with left:
            if signups.empty:
                st.info("No signups in the window.")
            else:
                st.altair_chart(
                    alt.Chart(signups, title="Signups per day")
                    .mark_bar()
                    .encode(x="day:T", y="signups:Q"),
                    width="stretch",
                )
        sizes = pd.DataFrame(
            [{"members": str(s.members), "teams": s.teams} for s in stats.team_sizes],
            columns=["members", "teams"],
        )
        with right:
            if sizes.empty:
                st.info("No teams yet.")
            else:
                st.altair_chart(
                    alt.Chart(sizes, title="Team size distribution")
                    .mark_bar()
                    .encode(x=alt.X("members:N", sort=None), y="teams:Q"),
                    width="stretch",
                )
        left, right = st.columns(2)
        with left:
            roles = pd.DataFrame(
                [{"role": r.key or "?", "memberships": r.count} for r in stats.memberships_by_role],
                columns=["role", "memberships"],
            )
            c.bar_chart(roles, "memberships", "role", title="Memberships by role")
        with right:
            funnel = pd.DataFrame(
                [
                    {"stage": "pending", "invitations": stats.pending_invitations},
                    {"stage": "expired", "invitations": stats.expired_invitations},
                ]
            )
            c.bar_chart(funnel, "invitations", "stage", title="Invitations", sort="y")

    st.subheader("Find a team")
    q = st.text_input("Team name or words", key="team-q")
    if q.strip():
        found = data.search_teams(q.strip())
        if isinstance(found, data.Note):
            c.show_note(found)
        elif found.empty:
            st.info(f"No team matches {q!r}.")
        else:
            st.dataframe(found, hide_index=True, width="stretch")
            team = st.selectbox(
                "Members of",
                list(found["id"]),
                format_func=lambda tid: str(found.loc[found["id"] == tid, "name"].iloc[0]),
            )
            if team is not None:
                members = data.team_members(str(team))
                if isinstance(members, data.Note):
                    c.show_note(members)
                else:
                    st.dataframe(members, hide_index=True, width="stretch")


main()
