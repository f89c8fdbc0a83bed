"""One background training job per server, observable from any number of readers.

The dashboard cannot train inside a Streamlit script run: a run must finish in well
under a second, and every browser tab has its own session. :class:`TrainingJobRunner`
therefore runs :func:`maskdet.engine.fit` in a worker thread and keeps the job's state
in one lock-guarded record; pages poll :meth:`TrainingJobRunner.snapshot`, which returns
an immutable :class:`JobStatus`. One runner per server (the page keeps it in
``st.cache_resource``) means every tab, and a tab reopened later, sees the same job.

NOTE (threading): the worker thread only ever writes through ``_lock``; readers get
copies. Nothing here imports Streamlit, and the worker never calls back into a page.
Cancellation goes through the engine's :class:`~maskdet.engine.CancelToken`, checked
between batches, so a cancelled run stops within a few seconds and writes nothing
(the engine saves models and caches atomically).

NOTE (CPU): the worker thread keeps normal priority. Lowering it (nice +10) made webcam frames
faster during a job on 2 busy cores (37-44 ms instead of 56-78 ms), but a niced thread that is
descheduled while holding the GIL blocks every other thread of the server (priority inversion),
and a CI run with it timed out waiting for a page to rerender.
"""

from __future__ import annotations

import copy
import datetime as dt
import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from enum import StrEnum

from maskdet.checkpoint import validate_model_name
from maskdet.engine import CancelToken, TrainConfig, TrainingCancelled, TrainProgress, TrainResult, fit

logger = logging.getLogger(__name__)

MAX_LOG_LINES = 400
CAPTURED_LOGGER = "maskdet"  # the engine, data, zoo and checkpoint modules log under this name


class JobState(StrEnum):
    IDLE = "idle"
    RUNNING = "running"
    CANCELLING = "cancelling"
    FINISHED = "finished"
    FAILED = "failed"
    CANCELLED = "cancelled"


ACTIVE_STATES = frozenset({JobState.RUNNING, JobState.CANCELLING})


class JobAlreadyRunning(RuntimeError):
    """A training job is already running on this server; only one at a time."""


@dataclass(frozen=True)
class JobStatus:
    """What a reader needs to draw a job: an immutable copy, safe to keep after the lock is released."""

    state: JobState = JobState.IDLE
    job_id: str | None = None
    config: dict = field(default_factory=dict)  # TrainConfig.to_json() of the resolved config
    progress: TrainProgress | None = None
    log: tuple[str, ...] = ()
    error: str | None = None
    model_name: str | None = None
    model_path: str | None = None
    metrics: dict | None = None  # the saved model's metadata["metrics"] ({"val": ..., "test": ...})
    started: float | None = None  # time.time()
    finished: float | None = None

    @property
    def active(self) -> bool:
        """True while the worker thread runs (running or cancelling)."""
        return self.state in ACTIVE_STATES

    @property
    def fraction(self) -> float:
        """Overall progress 0..1 (1 once finished)."""
        if self.state == JobState.FINISHED:
            return 1.0
        return self.progress.fraction if self.progress else 0.0

    def elapsed(self, now: float | None = None) -> float:
        """Wall seconds since the start (until the end for a completed job)."""
        if self.started is None:
            return 0.0
        return (self.finished or now or time.time()) - self.started


class _ThreadLogHandler(logging.Handler):
    """Sends records emitted by one thread to ``sink``; other threads' records are ignored."""

    def __init__(self, thread_id: int, sink: Callable[[str], None]) -> None:
        super().__init__(level=logging.INFO)
        self.thread_id = thread_id
        self.sink = sink

    def filter(self, record: logging.LogRecord) -> bool:
        return record.thread == self.thread_id and super().filter(record)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
            if record.levelno >= logging.WARNING:
                text = f"{record.levelname}: {text}"
            self.sink(text)
        except Exception:  # noqa: BLE001 - logging must never break training
            self.handleError(record)


class TrainingJobRunner:
    """Holds at most one training job; thread-safe; share one instance per server."""

    def __init__(self, max_log_lines: int = MAX_LOG_LINES) -> None:
        self._lock = threading.Lock()
        self._status = JobStatus()
        self._log: deque[str] = deque(maxlen=max_log_lines)
        self._cancel: CancelToken | None = None
        self._thread: threading.Thread | None = None

    def start(self, config: TrainConfig) -> str:
        """Start training ``config`` in the background; returns the job id.

        Raises :class:`JobAlreadyRunning` while another job is active, and ``ValueError``
        (e.g. an unknown architecture) before any thread starts.
        """
        resolved = config.resolved()
        validate_model_name(resolved.name)
        with self._lock:
            if self._status.active:
                raise JobAlreadyRunning(
                    f"A training job is already running on this server ({self._status.config.get('name')}): "
                    "wait for it to finish or cancel it."
                )
            job_id = uuid.uuid4().hex[:12]
            self._cancel = CancelToken()
            self._log.clear()
            self._status = JobStatus(
                state=JobState.RUNNING, job_id=job_id, config=resolved.to_json(), started=time.time()
            )
            self._append(f"Job {job_id}: training {resolved.name} ({resolved.arch}) on {resolved.data}")
            self._thread = threading.Thread(
                target=self._run, args=(job_id, resolved, self._cancel), name=f"maskdet-train-{job_id}", daemon=True
            )
            self._thread.start()
        return job_id

    def snapshot(self) -> JobStatus:
        """The current job (or the last one) as an immutable record."""
        with self._lock:
            # The engine sends a fresh TrainProgress each time and nothing mutates it, so sharing it is safe.
            return replace(self._status, log=tuple(self._log))

    def cancel(self) -> bool:
        """Ask the running job to stop; True when there was one. Returns at once."""
        with self._lock:
            if self._status.state != JobState.RUNNING or self._cancel is None:
                return False
            self._cancel.cancel()
            self._status = replace(self._status, state=JobState.CANCELLING)
            self._append("Cancelling…")
            return True

    def wait(self, timeout: float | None = None) -> JobStatus:
        """Block until the current job ends (or ``timeout`` passes) and return its status."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        return self.snapshot()

    # --- worker thread -------------------------------------------------------------------

    def _run(self, job_id: str, config: TrainConfig, cancel: CancelToken) -> None:
        handler = _ThreadLogHandler(threading.get_ident(), self._append_locked)
        captured = logging.getLogger(CAPTURED_LOGGER)
        captured.addHandler(handler)
        try:
            result = fit(config, progress=lambda p: self._on_progress(job_id, p), cancel=cancel)
        except TrainingCancelled:
            self._finish(job_id, JobState.CANCELLED, note="Cancelled: nothing was saved")
        except Exception as exc:  # noqa: BLE001 - any failure is reported to the page, the server keeps running
            logger.exception("training job %s failed", job_id)
            self._finish(job_id, JobState.FAILED, error=str(exc) or type(exc).__name__, note=f"Failed: {exc}")
        else:
            self._finish(job_id, JobState.FINISHED, result=result, note=f"Finished: {result.name} saved in {result.path}")
        finally:
            captured.removeHandler(handler)

    def _on_progress(self, job_id: str, progress: TrainProgress) -> None:
        with self._lock:
            if self._status.job_id != job_id:
                return
            previous = self._status.progress
            new_phase = previous is None or previous.phase != progress.phase
            epoch_ended = previous is not None and len(progress.history) > len(previous.history)
            if (new_phase or epoch_ended) and progress.message:
                self._append(progress.message)
            self._status = replace(self._status, progress=progress)

    def _finish(
        self, job_id: str, state: JobState, *, note: str, error: str | None = None, result: TrainResult | None = None
    ) -> None:
        with self._lock:
            if self._status.job_id != job_id:
                return
            self._append(note)
            changes: dict = {"state": state, "error": error, "finished": time.time()}
            if result is not None:
                changes |= {
                    "model_name": result.name,
                    "model_path": str(result.path),
                    "metrics": copy.deepcopy(result.metadata.get("metrics")),
                }
            self._status = replace(self._status, **changes)

    # --- helpers: callers hold the lock, except for _append_locked -------------------------

    def _append(self, text: str) -> None:
        stamp = dt.datetime.now().strftime("%H:%M:%S")
        for line in text.splitlines() or [""]:
            self._log.append(f"{stamp}  {line}")

    def _append_locked(self, text: str) -> None:
        with self._lock:
            self._append(text)
