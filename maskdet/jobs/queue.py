"""Several jobs one after the other on one runner: what a page submits when it has a list of work.

The Compare page evaluates N models on a folder: one ``evaluate-folder`` job per model, in order,
on one server-wide :class:`JobQueue`. A thread of the queue submits each job when the one before
has ended, so the work goes on whether or not a browser is watching; readers poll
:meth:`JobQueue.snapshot` (an immutable :class:`QueueStatus`). A job that fails (or whose
parameters are refused) is recorded with its error and the next one starts; cancel stops the
running job and drops the waiting ones.

NOTE (threading): the queue's thread writes its record under ``_lock``; readers get copies. The
queue's lock is never held while waiting for a job.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from maskdet.jobs.base import JobAlreadyRunning, JobState, JobStatus
from maskdet.jobs.runner import JobRunner
from maskdet.workspace import LEASES

logger = logging.getLogger(__name__)

ENDED_STATES = frozenset({JobState.FINISHED, JobState.FAILED, JobState.CANCELLED})


@dataclass(frozen=True)
class QueuedJob:
    """One job of a queue: what users call it, its kind, its parameters and the folders it reads (``holds``:
    leased, :data:`maskdet.workspace.LEASES`, from the list's submission until the list ends, so that no pruning
    removes them while the job waits, runs, or waits for the job before it)."""

    label: str
    kind: str
    params: dict
    holds: tuple[str, ...] = ()


@dataclass(frozen=True)
class QueueStatus:
    """The queue's jobs with the last status of each (idle while waiting), and whether the queue runs."""

    jobs: tuple[QueuedJob, ...] = ()
    statuses: tuple[JobStatus, ...] = ()
    active: bool = False

    @property
    def fraction(self) -> float:
        """Overall progress 0..1: ended jobs count whole, the running one by its own progress."""
        if not self.jobs:
            return 0.0
        done = sum(1.0 if s.state in ENDED_STATES else s.fraction if s.active else 0.0 for s in self.statuses)
        return min(done / len(self.jobs), 1.0)

    @property
    def current(self) -> tuple[int, QueuedJob, JobStatus] | None:
        """(index, job, status) of the running job, if any."""
        return next(((i, j, s) for i, (j, s) in enumerate(zip(self.jobs, self.statuses, strict=True)) if s.active),
                    None)

    def failures(self) -> list[tuple[QueuedJob, str]]:
        """(job, error message) of every failed job."""
        return [(j, s.error or "failed") for j, s in zip(self.jobs, self.statuses, strict=True)
                if s.state == JobState.FAILED]


class JobQueue:
    """Runs a list of jobs in order on one :class:`JobRunner` (or a job service's
    :class:`~maskdet.jobs.service.SessionRunner`, which the dashboard uses); one list at a time; thread-safe."""

    def __init__(self, runner: JobRunner | None = None) -> None:
        self._runner = runner or JobRunner()
        self._lock = threading.Lock()
        self._jobs: tuple[QueuedJob, ...] = ()
        self._ended: dict[int, JobStatus] = {}
        self._current: int | None = None
        self._active = False
        self._cancelled = False
        self._idle = threading.Event()
        self._idle.set()

    def submit(self, jobs: Sequence[QueuedJob]) -> None:
        """Start running ``jobs`` one after the other; raises :class:`JobAlreadyRunning` while a list runs."""
        with self._lock:
            if self._active:
                raise JobAlreadyRunning("Jobs of this kind are already running on this server: wait for them to "
                                        "finish or cancel them.")
            self._jobs, self._ended, self._current = tuple(jobs), {}, None
            self._active, self._cancelled = True, False
            self._idle.clear()
        held = [LEASES.acquire(path) for job in self._jobs for path in job.holds]
        threading.Thread(target=self._run, args=(held,), daemon=True, name="maskdet-job-queue").start()

    def snapshot(self) -> QueueStatus:
        with self._lock:
            statuses = tuple(
                self._ended.get(index) or (self._runner.snapshot() if index == self._current
                                           else JobStatus(kind=job.kind, config=job.params))
                for index, job in enumerate(self._jobs))
            return QueueStatus(jobs=self._jobs, statuses=statuses, active=self._active)

    def cancel(self) -> bool:
        """Cancel the running job and drop the waiting ones; True when the queue was running."""
        with self._lock:
            if not self._active:
                return False
            self._cancelled = True
        self._runner.cancel()
        return True

    def wait(self, timeout: float | None = None) -> QueueStatus:
        """Block until every job has ended (or ``timeout`` passes) and return the status."""
        self._idle.wait(timeout)
        return self.snapshot()

    def _run(self, held: list[Path]) -> None:
        try:
            for index, job in enumerate(self._jobs):
                status = self._run_one(job, index)
                with self._lock:
                    self._ended[index], self._current = status, None
        finally:
            for path in held:
                LEASES.release(path)
            with self._lock:
                self._active = False
            self._idle.set()

    def _run_one(self, job: QueuedJob, index: int) -> JobStatus:
        if self._cancelled:
            return JobStatus(state=JobState.CANCELLED, kind=job.kind, config=job.params)
        try:
            self._runner.submit(job.kind, job.params)
        except Exception as exc:  # noqa: BLE001 - a refused job is reported; the next one still runs
            logger.warning("job %s refused: %s", job.label, exc)
            return JobStatus(state=JobState.FAILED, kind=job.kind, config=job.params, error=str(exc))
        with self._lock:
            self._current = index
        if self._cancelled:  # cancelled while the job was being submitted
            self._runner.cancel()
        return self._runner.wait()
