"""Server-wide job queues of the pages, and the timed fragment that follows one.

A page with a list of long work (the Compare page's unseen-data and scene evaluations) submits it
to :func:`job_queue` (one :class:`maskdet.jobs.JobQueue` per name and server, in
``st.cache_resource``, so every tab sees the same jobs) and calls :func:`show_queue_progress`:
while the queue runs, a fragment redraws its progress bar and Cancel button every :data:`POLL_S`
seconds, and reruns the whole page once when the queue has ended, so the page reads the results
(which the jobs cache on disk) on an ordinary run. A run after the queue has ended shows the
results without any fragment, which is what AppTest checks.

NOTE (threading): the jobs run in their own processes; the fragment only reads
``queue.snapshot()`` (an immutable copy) on the session's script thread.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import streamlit as st

from maskdet.jobs import JobAlreadyRunning, JobQueue, JobState, QueuedJob, QueueStatus
from ui.markup import plain

POLL_S = 0.5


@st.cache_resource(show_spinner=False)
def job_queue(name: str) -> JobQueue:
    """The server's queue called ``name`` (one list of jobs at a time), shared by every session."""
    return JobQueue()


def submit_jobs(queue: JobQueue, jobs: Sequence[QueuedJob]) -> None:
    """Start ``jobs`` on ``queue``; a warning when it is already busy (another tab started jobs)."""
    try:
        queue.submit(jobs)
    except JobAlreadyRunning as exc:
        st.warning(str(exc))


def _progress_text(status: QueueStatus) -> str:
    current = status.current
    if current is None:
        return "Starting…"
    index, job, job_status = current
    detail = job_status.progress.message if job_status.progress and job_status.progress.message else "starting"
    return f"{job.label} ({index + 1}/{len(status.jobs)}): {detail}"


def _progress(queue: JobQueue, key: str, was_active: bool) -> None:
    status = queue.snapshot()
    if status.active != was_active:  # the jobs ended (or started) since the page was drawn: redraw it all
        st.rerun(scope="app")
    if not status.active:
        return
    st.progress(status.fraction, text=_progress_text(status))
    cancelling = any(s.state == JobState.CANCELLING for s in status.statuses)
    st.button("Cancel", key=f"{key}_cancel", on_click=queue.cancel, disabled=cancelling)


def show_queue_progress(queue: JobQueue, key: str) -> QueueStatus:
    """Progress and Cancel of ``queue`` while it runs (polled by a timed fragment); returns its status."""
    status = queue.snapshot()
    # The refresh interval depends on whether jobs run, so the fragment is made here, on every full run.
    st.fragment(_progress, run_every=POLL_S if status.active else None)(queue, key, status.active)
    return status


def show_failures(status: QueueStatus, expected: Sequence[QueuedJob], describe: Callable[[QueuedJob], str]) -> None:
    """An error (``describe(job)`` failed: the job's message) per failed job of the queue's last list that is
    one of ``expected`` (work still missing here: another folder's or another tab's failures are not shown)."""
    if status.active:
        return
    for job, message in status.failures():
        if job in expected:
            st.error(f"{describe(job)} failed: {plain(message)}")
