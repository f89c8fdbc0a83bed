"""One job at a time per runner, observable from any number of readers.

The dashboard cannot do long work inside a Streamlit script run (a run must finish in well
under a second, and every browser tab has its own session), nor in the server process at all:
training sets torch threads, seeds generators and can take gigabytes. :class:`JobRunner`
therefore hands the job to an executor (a child process by default, or a Ray task; see
:mod:`maskdet.jobs.executor`) and keeps the job's state in one lock-guarded record, fed by a
monitor thread that reads the job's messages; pages poll :meth:`JobRunner.snapshot`, which
returns an immutable :class:`~maskdet.jobs.base.JobStatus`. One runner per server and kind
(the page keeps it in ``st.cache_resource``) means every tab, and a tab reopened later, sees
the same job. :class:`TrainingJobRunner` is the runner of training jobs.

Cancel sets the job's cooperative flag (checked between batches: the job stops within a
second or two and writes nothing); a job still running :data:`CANCEL_GRACE_S` later is
terminated. A job whose process dies (killed, out of memory) ends as failed with the reason;
the runner, the server and every other session carry on.

NOTE (threading): only the monitor thread writes, always under ``_lock``; readers get copies.
Nothing here imports Streamlit, and the job never calls back into a page.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import replace

from maskdet.jobs.base import JobAlreadyRunning, JobState, JobStatus
from maskdet.jobs.executor import get_executor
from maskdet.jobs.protocol import Executor, JobEnded, JobHandle
from maskdet.jobs.registry import get_job_kind

logger = logging.getLogger(__name__)

MAX_LOG_LINES = 400
CANCEL_GRACE_S = 3.0
POLL_S = 0.2
FINAL_EXIT_WAIT_S = 10.0  # after its last message a job process only exits (interpreter teardown)
CHILD_LOGGER = "maskdet.jobs.child"  # the job's own log lines, echoed on the server's console
NOTES = {
    JobState.CANCELLED: "Cancelled: nothing was saved",
}


class JobRunner:
    """Holds at most one job; thread-safe; share one instance per server (and kind of work)."""

    def __init__(
        self, executor: Executor | str | None = None, max_log_lines: int = MAX_LOG_LINES,
        cancel_grace_s: float = CANCEL_GRACE_S, on_end: Callable[[JobRunner], None] | None = None,
    ) -> None:
        """``executor``: an :class:`~maskdet.jobs.executor.Executor`, or its name in
        :data:`~maskdet.jobs.executor.EXECUTORS` (None: the ``job_executor`` setting, a subprocess per job unless set).
        ``on_end(runner)`` is called (from the watcher thread, no lock held) after each job has ended."""
        self._on_end = on_end
        self._executor = executor if executor is not None and not isinstance(executor, str) else get_executor(executor)
        self._cancel_grace_s = cancel_grace_s
        self._lock = threading.Lock()
        self._status = JobStatus()
        self._log: deque[str] = deque(maxlen=max_log_lines)
        self._handle: JobHandle | None = None
        self._cancel_asked: float | None = None
        self._terminated = False  # the running job ignored its cancel flag and was terminated
        self._ended = threading.Event()
        self._ended.set()

    def submit(self, kind: str, params: dict) -> str:
        """Start a job of ``kind`` (see :mod:`maskdet.jobs.registry`) with ``params``; returns its id.

        Raises :class:`JobAlreadyRunning` while another job is active and ``ValueError`` from the
        kind's parameter check before anything starts.
        """
        job_kind = get_job_kind(kind)
        params = job_kind.prepared(params)
        with self._lock:
            if self._status.active:
                raise JobAlreadyRunning(
                    f"A {get_job_kind(self._status.kind).title} job is already running on this server ({self._status.config.get('name')}): "
                    "wait for it to finish or cancel it."
                )
            job_id = uuid.uuid4().hex[:12]
            self._log.clear()
            self._cancel_asked, self._terminated = None, False
            self._handle = self._executor.submit(job_kind.run, params)
            self._ended.clear()
            self._status = JobStatus(state=JobState.RUNNING, job_id=job_id, kind=kind, config=params,
                                     started=time.time(), worker_pid=self._handle.pid)
            self._append(f"Job {job_id}: {job_kind.description(params)}")
            threading.Thread(target=self._watch, args=(job_id, self._handle), daemon=True,
                             name=f"maskdet-job-{job_id}").start()
        return job_id

    def snapshot(self) -> JobStatus:
        """The current job (or the last one) as an immutable record."""
        with self._lock:
            # Progress objects arrive unpickled from the job, one fresh object per message: sharing them is safe.
            return replace(self._status, log=tuple(self._log))

    def cancel(self) -> bool:
        """Ask the running job to stop; True when there was one. Returns at once."""
        with self._lock:
            if self._status.state != JobState.RUNNING or self._handle is None:
                return False
            self._handle.request_cancel()
            self._cancel_asked = time.monotonic()
            self._status = replace(self._status, state=JobState.CANCELLING)
            self._append("Cancelling…")
            return True

    def wait(self, timeout: float | None = None) -> JobStatus:
        """Block until the current job ends (or ``timeout`` passes) and return its status."""
        self._ended.wait(timeout)
        return self.snapshot()

    # --- monitor thread ------------------------------------------------------------------

    def _watch(self, job_id: str, handle: JobHandle) -> None:
        while True:
            try:
                message = handle.next_message(POLL_S)
            except JobEnded:
                cancelled = self._cancel_asked is not None
                reason = None if cancelled else handle.exit_reason()
                handle.stop()  # the process is gone: close this side's pipes too (a crash must leak nothing)
                note = self._after_kill() if cancelled and self._terminated else None
                self._finish(job_id, JobState.CANCELLED if cancelled else JobState.FAILED, error=reason, note=note)
                return
            if message is None:
                self._stop_if_overdue(handle)
                continue
            kind, payload = message
            if kind == "log":
                self._on_log(job_id, str(payload))
            elif kind == "progress":
                self._on_progress(job_id, payload)
            else:
                self._on_final(job_id, kind, payload)
                handle.stop(wait=FINAL_EXIT_WAIT_S)  # the process is ending by itself: reap it, close its pipes
                return

    def _stop_if_overdue(self, handle: JobHandle) -> None:
        asked = self._cancel_asked
        if asked is not None and time.monotonic() - asked > self._cancel_grace_s:
            logger.warning("job ignored its cancel flag for %.0f s: terminating it", self._cancel_grace_s)
            self._terminated = True
            handle.stop(wait=0.0)

    def _after_kill(self) -> str | None:
        """The final note of a terminated job: its kind's ``after_kill`` (what was saved, what it left cleaned up)."""
        status = self._status
        after_kill = get_job_kind(status.kind).after_kill
        if after_kill is None:
            return None
        try:
            return f"Cancelled (terminated): {after_kill(status.config)}"
        except Exception:  # noqa: BLE001 - the job has ended whatever this says; the generic note stands
            logger.exception("job %s: could not tell what the terminated job saved", status.job_id)
            return None

    def _on_final(self, job_id: str, kind: str, payload: object) -> None:
        if kind == "done":
            self._finish(job_id, JobState.FINISHED, result=payload if isinstance(payload, dict) else {})
        elif kind == "cancelled":
            self._finish(job_id, JobState.CANCELLED, note=f"Cancelled: {payload}" if payload else None)
        else:
            self._finish(job_id, JobState.FAILED, error=str(payload))

    def _on_log(self, job_id: str, text: str) -> None:
        logging.getLogger(CHILD_LOGGER).info("%s", text)
        with self._lock:
            if self._status.job_id == job_id:
                self._append(text)

    def _on_progress(self, job_id: str, progress: object) -> None:
        with self._lock:
            if self._status.job_id != job_id:
                return
            previous = self._status.progress
            new_phase = previous is None or previous.phase != progress.phase
            epoch_ended = len(getattr(progress, "history", ())) > len(getattr(previous, "history", ()))
            if (new_phase or epoch_ended) and progress.message:
                self._append(progress.message)
            self._status = replace(self._status, progress=progress)

    def _finish(self, job_id: str, state: JobState, *, error: str | None = None, result: dict | None = None,
                note: str | None = None) -> None:
        with self._lock:
            if self._status.job_id != job_id:
                return
            self._append(note or self._note(state, error, result))
            self._status = replace(self._status, state=state, error=error, result=result, finished=time.time(),
                                   worker_pid=None)
            self._ended.set()
        if self._on_end is not None:
            self._on_end(self)

    def _note(self, state: JobState, error: str | None, result: dict | None) -> str:
        """The last log line of a job."""
        if state == JobState.FAILED:
            return f"Failed: {error}"
        if state == JobState.FINISHED:
            return f"Finished: {(result or {}).get('summary', self._status.kind)}"
        return NOTES.get(state, str(state))

    # --- helpers: callers hold the lock ----------------------------------------------------

    def _append(self, text: str) -> None:
        stamp = dt.datetime.now().strftime("%H:%M:%S")
        for line in text.splitlines() or [""]:
            self._log.append(f"{stamp}  {line}")


class TrainingJobRunner(JobRunner):
    """The runner of training jobs: :meth:`start` takes a :class:`~maskdet.training.loop.TrainConfig`."""

    def start(self, config: object) -> str:
        """Start training ``config`` (a ``TrainConfig``) in the background; returns the job id.

        Raises :class:`JobAlreadyRunning` while another job is active, and ``ValueError``
        (e.g. an unknown architecture or an invalid model name) before anything starts.
        """
        return self.submit("train", config.to_json())
