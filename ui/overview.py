"""The owner's view of the server: running and waiting jobs, live streams, sessions, storage and limits.

Shown on the Home page to the owner only (``ui.access.is_owner``); the limits can be changed there for the
running server (they start from the ``MASKDET_*`` settings at every start).
"""

from __future__ import annotations

from dataclasses import replace

import pandas as pd
import streamlit as st

from maskdet.jobs import Limits
from maskdet.settings import current_settings
from maskdet.workspace import MB, OWNER, session_folder, tree_bytes, visitor_folders
from ui.jobs import job_service


def _limits_form(limits: Limits) -> None:
    with st.form("overview_limits", border=False):
        cols = st.columns(6)
        training = cols[0].number_input("Trainings at once", 1, 4, limits.running["training"])
        analysis = cols[1].number_input("Analyses at once", 1, 8, limits.running["analysis"])
        evaluation = cols[2].number_input("Evaluations at once", 1, 8, limits.running["evaluation"])
        queued = cols[3].number_input("Jobs waiting or running", 1, 100, limits.queued)
        per_session = cols[4].number_input("Jobs per visitor", 1, 20, limits.per_session)
        streams = cols[5].number_input("Live streams", 0, 32, limits.streams)
        if st.form_submit_button("Apply limits"):
            job_service().set_limits(replace(limits, running={"training": int(training), "analysis": int(analysis),
                                                              "evaluation": int(evaluation)},
                                              queued=int(queued), per_session=int(per_session), streams=int(streams)))
            st.rerun()


def show_overview() -> None:
    """Jobs, streams, sessions, storage and limits, for the owner."""
    service = job_service()
    st.subheader("This server (owner's view)")
    jobs = service.jobs()
    live = [j for j in jobs if j.status.active]
    streams = service.streams()
    folders = visitor_folders()
    visitors_bytes = sum(tree_bytes(f) for f in folders)
    settings = current_settings()
    cols = st.columns(4)
    cols[0].metric("Jobs waiting or running", len(live))
    cols[1].metric("Live streams", sum(streams.values()))
    cols[2].metric("Sessions with jobs, streams or files", len(service.sessions() | {f.name for f in folders}))
    cols[3].metric("Visitors' storage", f"{visitors_bytes / MB:,.0f} / {settings.visitor_storage_mb:,} MB")
    if jobs:
        st.dataframe(pd.DataFrame([{
            "job": j.job_id, "kind": j.kind, "what": j.label, "session": "owner" if j.owner else j.session[:8],
            "state": str(j.status.state), "queue position": j.status.position, "progress": j.status.fraction,
        } for j in jobs[:50]]), hide_index=True, key="overview_jobs",
            column_config={"progress": st.column_config.ProgressColumn(min_value=0.0, max_value=1.0)})
    st.caption(f"Owner's files: {tree_bytes(session_folder(OWNER)) / MB:,.0f} MB. Each visitor may store "
               f"{settings.session_storage_mb:,} MB; a visitor's jobs, streams and files go "
               f"{settings.session_grace_s:.0f} s after the session ends.")
    _limits_form(service.limits)
