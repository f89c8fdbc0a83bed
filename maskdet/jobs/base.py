"""What every job shares: its states, the snapshot readers get, and the context a job function receives.

A *job* is long work (training, a folder evaluation, ...) that runs outside the process that
asked for it. Readers (pages, the CLI, tests) only ever see :class:`JobStatus`, an immutable
snapshot; the job function only sees a :class:`JobContext`: it reports progress objects
(anything with ``phase``, ``message`` and ``fraction``, e.g. :class:`JobProgress` or the
engine's ``TrainProgress``) and checks the cancel flag between steps.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol


class JobState(StrEnum):
    IDLE = "idle"
    QUEUED = "queued"  # admitted by the job service, waiting for its group to have room
    RUNNING = "running"
    CANCELLING = "cancelling"
    FINISHED = "finished"
    FAILED = "failed"
    CANCELLED = "cancelled"


ACTIVE_STATES = frozenset({JobState.QUEUED, JobState.RUNNING, JobState.CANCELLING})


class JobAlreadyRunning(RuntimeError):
    """A job is already running on this runner; only one at a time."""


class JobCancelled(Exception):
    """Raised inside a job when its cancel flag is set; the job ends as cancelled.

    ``saved`` says in one line what a job that writes as it goes kept (None: nothing was saved).
    """

    def __init__(self, message: str = "job cancelled", saved: str | None = None) -> None:
        super().__init__(message)
        self.saved = saved


class ProgressLike(Protocol):
    phase: str
    message: str
    fraction: float


@dataclass(frozen=True)
class JobProgress:
    """A generic progress snapshot for jobs without a richer one of their own."""

    phase: str = "starting"
    message: str = ""
    fraction: float = 0.0  # of the whole job, 0..1


class CancelFlag(Protocol):
    def is_set(self) -> bool: ...


class JobContext:
    """Handed to a job function: report progress, check cancellation. Runs in the job's own process."""

    def __init__(self, report: Callable[[ProgressLike], None], flag: CancelFlag) -> None:
        self._report = report
        self._flag = flag

    def report(self, progress: ProgressLike) -> None:
        """Send a progress snapshot to the readers (raises :class:`JobCancelled` once cancelled)."""
        self.raise_if_cancelled()
        self._report(progress)

    @property
    def cancelled(self) -> bool:
        return self._flag.is_set()

    def raise_if_cancelled(self) -> None:
        if self._flag.is_set():
            raise JobCancelled("job cancelled")


JobFunction = Callable[[dict, JobContext], dict]
"""``function(params, job) -> result``: params and result are JSON-like dicts (they cross processes)."""


@dataclass(frozen=True)
class JobStatus:
    """What a reader needs to draw a job: an immutable copy, safe to keep after the lock is released."""

    state: JobState = JobState.IDLE
    job_id: str | None = None
    kind: str | None = None
    config: dict = field(default_factory=dict)  # the job's parameters (training: TrainConfig.to_json(), resolved)
    progress: Any = None  # the last ProgressLike the job reported
    log: tuple[str, ...] = ()
    error: str | None = None
    result: dict | None = None  # what the job function returned (finished jobs only)
    worker_pid: int | None = None  # the job's process, while it runs (None for executors without one)
    started: float | None = None  # time.time()
    finished: float | None = None
    position: int | None = None  # a queued job's place in the service's queue (1 = next to start)

    @property
    def active(self) -> bool:
        """True while the job waits or runs (queued, running or cancelling)."""
        return self.state in ACTIVE_STATES

    @property
    def fraction(self) -> float:
        """Overall progress 0..1 (1 once finished)."""
        if self.state == JobState.FINISHED:
            return 1.0
        return self.progress.fraction if self.progress else 0.0

    @property
    def model_name(self) -> str | None:
        """Training jobs: the saved model's name."""
        return (self.result or {}).get("model_name")

    @property
    def model_path(self) -> str | None:
        """Training jobs: the saved model's folder."""
        return (self.result or {}).get("model_path")

    @property
    def metrics(self) -> dict | None:
        """Training jobs: the saved model's metadata["metrics"] ({"val": ..., "test": ...})."""
        return (self.result or {}).get("metrics")

    def elapsed(self, now: float | None = None) -> float:
        """Wall seconds since the start (until the end for a completed job)."""
        if self.started is None:
            return 0.0
        return (self.finished or now or time.time()) - self.started
