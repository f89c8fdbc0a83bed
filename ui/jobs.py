"""The server's one job service, the sessions' views of it, and the one progress widget of every page.

:func:`job_service` is the server's :class:`maskdet.jobs.JobService` (``st.cache_resource``): every page
submits through it (training, evaluations, video analyses), so its limits, queue and quotas hold for the
whole server. :func:`session_runner` is this session's runner-like view (the owner is not bound by the
per-session quota); :func:`job_queue` a list of jobs of this session run one after the other (the Compare
page's evaluations). :func:`show_job_progress` is the progress widget of every page: a fragment redrawing
the job's bar (with its queue position while it waits) and Cancel every :data:`POLL_S` seconds, rerunning
the whole page once the job has ended, so the page reads the results on an ordinary run.

The service also watches sessions (:func:`_watch_sessions`, a thread started once per server): a session
that has been gone from Streamlit's runtime for ``MASKDET_SESSION_GRACE_S`` seconds has its jobs cancelled,
its stream slots given back, Streamlit's copy of it closed and, once nothing in it is in use, its files deleted.
Every page run notes its session (:func:`note_session`), so sessions without jobs or files are watched too.

Why close Streamlit's copy: Streamlit keeps a disconnected session for ``server.disconnectedSessionTTL`` (120 s)
so that its tab may reconnect, with its script event loop (an epoll descriptor and a socket pair), its
session state and its uploaded files; a server that many visitors pass through held ~3 descriptors per
recently ended session (13 -> 82 after 16 visitors). Once the grace has passed, the session's jobs are
cancelled and its files deleted, so resuming it would only give a broken page: it is closed at once
(``Runtime.clear_user_info_for_session``, Streamlit's thread-safe call that marks a session non-resumable
and shuts down its stored copy on the server's event loop), and a returning tab starts a fresh session.

NOTE (threading): the jobs run in their own processes; the fragments only read immutable snapshots on the
session's script thread; the session watcher never calls Streamlit's script API.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence

import streamlit as st
from streamlit.runtime import Runtime

from maskdet.jobs import JobAlreadyRunning, JobQueue, JobService, JobState, JobStatus, QueuedJob, QueueStatus, SessionRunner
from maskdet.jobs.registry import get_job_kind
from maskdet.settings import current_settings
from maskdet.workspace import end_session, visitor_folders
from ui.access import NO_SESSION, is_owner, session_id
from ui.markup import plain

logger = logging.getLogger(__name__)

POLL_S = 0.5
WATCH_S = 5.0


class _SeenSessions:
    """The sessions that ran a page and have not been ended yet (a thread-safe set)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sessions: set[str] = set()

    def add(self, session: str) -> None:
        with self._lock:
            self._sessions.add(session)

    def discard(self, session: str) -> None:
        with self._lock:
            self._sessions.discard(session)

    def snapshot(self) -> set[str]:
        with self._lock:
            return set(self._sessions)


def _watch_sessions(service: JobService, seen: _SeenSessions, stop: threading.Event) -> None:
    """Every :data:`WATCH_S` s: end the jobs, streams, Streamlit session and files of sessions gone for longer
    than the grace."""
    gone_since: dict[str, float] = {}
    while not stop.wait(WATCH_S):
        if not Runtime.exists():
            continue
        runtime = Runtime.instance()
        known = service.sessions() | {folder.name for folder in visitor_folders()} | seen.snapshot()
        now = time.monotonic()
        for session in known - {NO_SESSION}:
            if runtime.is_active_session(session):
                gone_since.pop(session, None)
                continue
            if now - gone_since.setdefault(session, now) < current_settings().session_grace_s:
                continue
            service.end_session(session)
            if session in seen.snapshot():
                runtime.clear_user_info_for_session(session)  # closes Streamlit's stored copy (module docstring)
                seen.discard(session)
            if end_session(session):
                gone_since.pop(session, None)


@st.cache_resource(show_spinner=False)
def _watched_service() -> tuple[JobService, _SeenSessions]:
    """The server's job service and the sessions seen, with the session watcher (started once per server)."""
    service, seen = JobService(), _SeenSessions()
    threading.Thread(target=_watch_sessions, args=(service, seen, threading.Event()), daemon=True,
                     name="maskdet-session-watcher").start()
    return service, seen


def job_service() -> JobService:
    """The server's job service (one per server process)."""
    return _watched_service()[0]


def note_session() -> None:
    """Watch this session: once it has been gone for the grace, it is ended and closed (module docstring)."""
    session = session_id()
    if session != NO_SESSION:
        _watched_service()[1].add(session)


def session_runner(key: str) -> SessionRunner:
    """This session's runner kept as ``st.session_state[key]`` (it follows the last job it submitted)."""
    runner = st.session_state.get(key)
    if runner is None or runner.service is not job_service():
        runner = SessionRunner(job_service(), session_id(), owner=is_owner())
        st.session_state[key] = runner
    runner.owner = is_owner()
    return runner


def job_queue(name: str) -> JobQueue:
    """This session's queue called ``name`` (one list of jobs at a time) on the server's job service."""
    queues: dict[str, JobQueue] = st.session_state.setdefault("jobs_queues", {})
    if name not in queues:
        queues[name] = JobQueue(session_runner(f"jobs_queue_{name}"))
    return queues[name]


def submit_jobs(queue: JobQueue, jobs: Sequence[QueuedJob]) -> None:
    """Start ``jobs`` on ``queue``; a warning when it is already busy."""
    try:
        queue.submit(jobs)
    except JobAlreadyRunning as exc:
        st.warning(str(exc))


def progress_text(status: JobStatus, label: str = "") -> str:
    """One line for a job: what it is, its queue position or progress, and its time."""
    name = label or (get_job_kind(status.kind).title.capitalize() if status.kind else "Job")
    if status.state == JobState.QUEUED:
        return f"{name}: waiting, number {status.position} in this server's queue"
    detail = status.progress.message if status.progress and status.progress.message else "starting"
    if status.state == JobState.CANCELLING:
        detail = "cancelling"
    return f"{name}: {detail} · {status.elapsed():.0f} s"


def _job_progress(read: Callable[[], JobStatus], cancel: Callable[[], object], key: str, label: str,
                  was_active: bool) -> None:
    status = read()
    if status.active != was_active:  # the job ended (or started) since the page was drawn: redraw it all
        st.rerun(scope="app")
    if not status.active:
        return
    st.progress(status.fraction, text=progress_text(status, label))
    st.button("Cancel", key=f"{key}_cancel", on_click=cancel, disabled=status.state == JobState.CANCELLING)


def show_job_progress(read: Callable[[], JobStatus], cancel: Callable[[], object], key: str,
                      label: str = "") -> JobStatus:
    """The progress widget of every page: a job's bar (or queue position) and Cancel, polled while it is active;
    ``read`` returns its status. Returns the status read on this run."""
    status = read()
    # The refresh interval depends on whether the job is active, so the fragment is made here, on every full run.
    st.fragment(_job_progress, run_every=POLL_S if status.active else None)(read, cancel, key, label, status.active)
    return status


def _queue_as_job(queue: JobQueue) -> JobStatus:
    """A queue's status as one job's: the current job's state and queue position, the queue's overall fraction."""
    status = queue.snapshot()
    current = status.current
    if current is None:
        return JobStatus(state=JobState.RUNNING if status.active else JobState.IDLE)
    index, job, job_status = current
    return JobStatus(state=job_status.state, kind=job.kind, position=job_status.position, started=job_status.started,
                     progress=job_status.progress)


def show_queue_progress(queue: JobQueue, key: str) -> QueueStatus:
    """Progress and Cancel of ``queue`` while it runs (:func:`show_job_progress`); returns its status."""

    def label() -> str:
        current = queue.snapshot().current
        return f"{current[1].label} ({current[0] + 1}/{len(queue.snapshot().jobs)})" if current else ""

    show_job_progress(lambda: _queue_as_job(queue), queue.cancel, key, label())
    return queue.snapshot()


def show_failures(status: QueueStatus, expected: Sequence[QueuedJob], describe: Callable[[QueuedJob], str]) -> None:
    """An error (``describe(job)`` failed: the job's message) per failed job of the queue's last list that is
    one of ``expected`` (work still missing here: another list's failures are not shown)."""
    if status.active:
        return
    for job, message in status.failures():
        if job in expected:
            st.error(f"{describe(job)} failed: {plain(message)}")
