"""The server's one training job, shared by every page: the runner and a sidebar status.

:func:`training_runner` is the single :class:`maskdet.jobs.TrainingJobRunner` of the server
(``st.cache_resource``): the Train page starts and cancels jobs through it, and every session
reads the same job. :func:`sidebar_status` shows that job on the other pages (Photo, Webcam,
...), so someone analysing photos sees that training is using the CPU and how far it got.

NOTE (threading): the job runs in its own process (:mod:`maskdet.jobs`); a monitor thread of the
runner updates a lock-guarded record and never calls Streamlit. The status is a fragment that reads
``runner.snapshot()`` (an immutable copy) on the session's own script thread every
:data:`SIDEBAR_REFRESH_S` seconds. Its reruns redraw only the sidebar status, never the page under
it (a live webcam stream or a photo analysis is left alone).
"""

from __future__ import annotations

import streamlit as st

from maskdet.jobs import JobState, JobStatus, TrainingJobRunner
from ui.navigation import page_named

SIDEBAR_REFRESH_S = 2.0  # one cheap snapshot per session per interval; also how soon a new job shows up
TRAIN_PAGE = page_named("Train").file
STATE_LABELS = {
    JobState.RUNNING: "Running",
    JobState.CANCELLING: "Cancelling…",
    JobState.FINISHED: "Finished",
    JobState.FAILED: "Failed",
    JobState.CANCELLED: "Cancelled",
}


@st.cache_resource
def training_runner() -> TrainingJobRunner:
    """One runner per server process, shared by every session and browser tab."""
    return TrainingJobRunner()


def status_line(status: JobStatus) -> str:
    """The one-line summary a browser test can read: ``Progress: 100% · Finished: <model name>``."""
    percent = int(status.fraction * 100)
    label = STATE_LABELS[status.state]
    if status.state == JobState.FINISHED:
        return f"Progress: {percent}% · Finished: {status.model_name}"
    detail = status.progress.message if status.progress and status.active else ""
    return f"Progress: {percent}% · {label}" + (f" · {detail}" if detail else "")


@st.fragment(run_every=SIDEBAR_REFRESH_S)
def _status() -> None:
    status = training_runner().snapshot()
    if status.state == JobState.IDLE:
        return
    name = status.config.get("name")
    if status.active:
        st.progress(status.fraction, text=f"**Training job** `{name}`")
        st.caption(status_line(status))
        st.page_link(TRAIN_PAGE, label="Follow or cancel it on the Train page", icon="🏋️")
    else:
        st.caption(f"Last training job `{name}`: {status_line(status)}")


def sidebar_status() -> None:
    """The server's training job in the sidebar, kept current (nothing while no job has run)."""
    with st.sidebar:
        _status()
