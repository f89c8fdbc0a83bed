"""The server's training job, shared by every page: its view and a sidebar status.

:func:`training_runner` is the server's view of training on its one job service (``ui.jobs``, at most
``MASKDET_MAX_TRAINING_JOBS`` at once, normally one): the Train page starts (the owner only) and cancels
jobs through it, and every session reads the same, newest, training job. :func:`sidebar_status` shows that job on the other pages (Photo, Webcam,
...), so someone analysing photos sees that training is using the CPU and how far it got.

NOTE (threading): the job runs in its own process (:mod:`maskdet.jobs`); a monitor thread of the
runner updates a lock-guarded record and never calls Streamlit. The status is a fragment that reads
``runner.snapshot()`` (an immutable copy) on the session's own script thread every
:data:`SIDEBAR_REFRESH_S` seconds. Its reruns redraw only the sidebar status, never the page under
it (a live webcam stream or a photo analysis is left alone).
"""

from __future__ import annotations

import streamlit as st

from maskdet.jobs import JobAlreadyRunning, JobService, JobState, JobStatus
from ui.access import session_id
from ui.jobs import job_service
from ui.navigation import page_named

SIDEBAR_REFRESH_S = 2.0  # one cheap snapshot per session per interval; also how soon a new job shows up
TRAIN_PAGE = page_named("Train").file
STATE_LABELS = {
    JobState.QUEUED: "Waiting for the running training to finish",
    JobState.RUNNING: "Running",
    JobState.CANCELLING: "Cancelling…",
    JobState.FINISHED: "Finished",
    JobState.FAILED: "Failed",
    JobState.CANCELLED: "Cancelled",
}


class TrainingView:
    """Training on the job service as the pages see it: the newest training job, start and cancel."""

    def __init__(self, service: JobService) -> None:
        self.service = service

    def snapshot(self) -> JobStatus:
        """The newest training job on this server (any session's), or an idle status."""
        return self.service.latest("train")

    def start(self, config: object) -> str:
        """Start training ``config`` (a ``TrainConfig``) for this session (the owner's: callers check
        ``ui.access.may(Action.TRAIN)``); its data set is leased until the job ends. Raises
        :class:`~maskdet.jobs.JobAlreadyRunning` while a training waits or runs: the page shows one training,
        and a second one queued behind it would start unseen."""
        current = self.snapshot()
        if current.active:
            raise JobAlreadyRunning(f"A training job is already running on this server ({current.config.get('name')}): "
                                    "wait for it to finish or cancel it.")
        return self.service.submit("train", config.to_json(), session_id(), owner=True,
                                   label=f"Training {config.name or config.arch}", holds=[config.data])

    def cancel(self) -> bool:
        status = self.snapshot()
        return self.service.cancel(status.job_id) if status.job_id else False

    def wait(self, timeout: float | None = None) -> JobStatus:
        """Block until the newest training job has ended (or ``timeout`` passes)."""
        status = self.snapshot()
        return self.service.wait(status.job_id, timeout) if status.job_id else status


def training_runner() -> TrainingView:
    """The server's training, shared by every session and browser tab."""
    return TrainingView(job_service())


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
