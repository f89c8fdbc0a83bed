"""The server's one job service: every job of every page, admitted, queued, owned and cleaned up in one place.

A dashboard shared by many people must not run what each of them asks at once: four video analyses are
four processes of ~700 MB each. :class:`JobService` (one per server process; the pages reach it through
``ui.jobs.job_service``) takes every job kind and:

- runs at most a set number of each *group* of kinds at once (:data:`KIND_GROUPS`: one training; a few
  analyses; a few evaluations) and queues the rest in arrival order; a queued job's status says its
  position (:attr:`JobStatus.position`);
- refuses (:class:`JobRefused`) a visitor's job beyond the per-session quota and any job beyond the
  server-wide cap of waiting and running jobs, so a new tab never buys more than the server allows;
- records the session that owns each job; :meth:`end_session` cancels a session's jobs and gives back its
  streams when the session has ended;
- runs each job once (no automatic retries: a job that dies ends as failed) on a fresh
  :class:`~maskdet.jobs.runner.JobRunner`, which closes every pipe and reaps every process however the job
  ends;
- holds a lease (:data:`maskdet.workspace.LEASES`) on every folder a job reads or writes while it waits and
  runs, so no pruning removes it;
- counts live streams (not jobs) against a server-wide cap: :meth:`try_acquire_stream` / :meth:`release_stream`.

Limits come from :class:`maskdet.settings.Settings` and the owner may change them while the server runs
(:meth:`set_limits`). NOTE (threading): every method is thread-safe; the lock is never held while waiting
for a job, and a job's end starts the next waiting ones from the runner's watcher thread.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

from maskdet.jobs.base import JobState, JobStatus
from maskdet.jobs.executor import Executor, get_executor
from maskdet.jobs.registry import get_job_kind
from maskdet.jobs.runner import JobRunner
from maskdet.settings import Settings, current_settings
from maskdet.workspace import LEASES

logger = logging.getLogger(__name__)

KIND_GROUPS = {"train": "training", "analyse-video": "analysis", "score-batch": "analysis",
               "evaluate-folder": "evaluation", "evaluate-scenes": "evaluation"}
"""Which concurrency limit each job kind counts against; a kind not listed counts as an evaluation."""
KEPT_ENDED = 200  # ended jobs remembered (their status stays readable), oldest forgotten first


class JobRefused(RuntimeError):
    """The job was not admitted (a quota or a cap); the message says which, for the user."""


@dataclass(frozen=True)
class Limits:
    """What the service admits: jobs per group at once, jobs waiting or running (server, session), live streams."""

    running: dict[str, int] = field(default_factory=lambda: {"training": 1, "analysis": 2, "evaluation": 2})
    queued: int = 16
    per_session: int = 2
    streams: int = 4

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> Limits:
        s = settings or current_settings()
        return cls(running={"training": s.max_training_jobs, "analysis": s.max_analysis_jobs,
                            "evaluation": s.max_evaluation_jobs},
                   queued=s.max_queued_jobs, per_session=s.session_jobs, streams=s.max_streams)


@dataclass(frozen=True)
class JobEntry:
    """One job as the owner's overview lists it."""

    job_id: str
    kind: str
    label: str
    session: str
    owner: bool
    status: JobStatus


@dataclass
class _Job:
    job_id: str
    kind: str
    params: dict
    session: str
    owner: bool
    label: str
    holds: tuple[Path, ...]
    submitted: float
    runner: JobRunner | None = None
    ended: JobStatus | None = None  # cancelled while waiting, or refused at start
    released: bool = False


def kind_group(kind: str) -> str:
    return KIND_GROUPS.get(kind, "evaluation")


class JobService:
    """Every job of the server (see the module); thread-safe; one per server process."""

    def __init__(self, limits: Limits | None = None, executor: Executor | str | None = None) -> None:
        self._executor = executor if executor is not None and not isinstance(executor, str) else get_executor(executor)
        self._limits = limits or Limits.from_settings()
        self._lock = threading.Lock()
        self._jobs: dict[str, _Job] = {}
        self._waiting: deque[str] = deque()
        self._ended_order: deque[str] = deque()
        self._streams: Counter[str] = Counter()
        self._ended_sessions: set[str] = set()  # a queue thread of an ended session must not start more work
        self._changed = threading.Condition(self._lock)

    # --- limits ------------------------------------------------------------------------------

    @property
    def limits(self) -> Limits:
        with self._lock:
            return self._limits

    def set_limits(self, limits: Limits) -> None:
        """The owner's new limits; waiting jobs start at once if they now fit (running ones are left alone)."""
        with self._lock:
            self._limits = limits
        self._dispatch()

    # --- jobs ----------------------------------------------------------------------------------

    def submit(self, kind: str, params: dict, session: str, *, owner: bool = False, label: str = "",
               holds: Iterable[str | Path] = ()) -> str:
        """Queue a job of ``kind`` for ``session``; returns its id (it starts when its group has room).

        ``owner`` jobs are not bound by the per-session quota. ``holds``: folders leased until the job ends.
        Raises ``ValueError`` from the kind's parameter check and :class:`JobRefused` beyond a quota or cap.
        """
        job_kind = get_job_kind(kind)
        params = job_kind.prepared(params)
        with self._lock:
            if session in self._ended_sessions:
                raise JobRefused("This session has ended.")
            live = [j for j in self._jobs.values() if self._is_live(j)]
            if len(live) >= self._limits.queued:
                raise JobRefused(f"This server already has {len(live)} jobs waiting or running (its limit): try "
                                 "again when some have finished.")
            mine = sum(j.session == session for j in live)
            if not owner and mine >= self._limits.per_session:
                raise JobRefused(f"You already have {mine} jobs waiting or running, the most one visitor may have: "
                                 "wait for one to finish or cancel it.")
            job = _Job(job_id=uuid.uuid4().hex[:12], kind=kind, params=params, session=session, owner=owner,
                       label=label or job_kind.description(params),
                       holds=tuple(LEASES.acquire(path) for path in holds), submitted=time.time())
            self._jobs[job.job_id] = job
            self._waiting.append(job.job_id)
        logger.info("job %s (%s) submitted by session %s", job.job_id, kind, session)
        self._dispatch()
        return job.job_id

    def status(self, job_id: str) -> JobStatus:
        """The job's status (a queued job: state QUEUED and its position, 1 = next); KeyError for an unknown id."""
        with self._lock:
            job = self._jobs[job_id]
            return self._status(job)

    def cancel(self, job_id: str) -> bool:
        """Cancel a waiting or running job; True when there was one to cancel."""
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                return False
            if job.job_id in self._waiting:
                self._waiting.remove(job.job_id)
                self._end_waiting(job, JobState.CANCELLED)
                runner = None
            else:
                runner = job.runner
        if runner is None:
            self._dispatch()
            return job.ended is not None and job.ended.state == JobState.CANCELLED
        return runner.cancel()

    def wait(self, job_id: str, timeout: float | None = None) -> JobStatus:
        """Block until the job has ended (or ``timeout`` passes); its status."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._changed:
            while True:
                job = self._jobs[job_id]
                if job.released:  # ended, and its leases given back
                    return self._status(job)
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return self._status(job)
                self._changed.wait(min(left, 0.5) if left is not None else 0.5)

    def latest(self, kind: str, session: str | None = None) -> JobStatus:
        """The newest job of ``kind`` (of ``session`` when given); an idle status when there is none."""
        with self._lock:
            jobs = [j for j in self._jobs.values() if j.kind == kind and (session is None or j.session == session)]
            return self._status(max(jobs, key=lambda j: j.submitted)) if jobs else JobStatus()

    def jobs(self) -> list[JobEntry]:
        """Every remembered job, newest first (the owner's overview)."""
        with self._lock:
            return [JobEntry(j.job_id, j.kind, j.label, j.session, j.owner, self._status(j))
                    for j in sorted(self._jobs.values(), key=lambda j: j.submitted, reverse=True)]

    def sessions(self) -> set[str]:
        """Sessions with a job waiting or running, or a live stream."""
        with self._lock:
            return {j.session for j in self._jobs.values() if self._is_live(j)} | set(self._streams)

    def end_session(self, session: str) -> int:
        """The session has ended: cancel its visitors' waiting and running jobs, give back its streams, refuse its
        later submissions (a list it was running stops); returns how many jobs were cancelled.

        The owner's jobs (``owner=True``) outlive the tab that started them: an owner who starts a long training
        and closes the tab finds it on the Train page of the next session (training is server-wide)."""
        with self._lock:
            ids = [j.job_id for j in self._jobs.values()
                   if j.session == session and not j.owner and self._is_live(j)]
            self._streams.pop(session, None)
            self._ended_sessions.add(session)
        for job_id in ids:
            self.cancel(job_id)
        if ids:
            logger.info("session %s ended: %d job(s) cancelled", session, len(ids))
        return len(ids)

    # --- streams -------------------------------------------------------------------------------

    def try_acquire_stream(self, session: str) -> bool:
        """Take one of the server's live-stream slots for ``session``; False when all are taken."""
        with self._lock:
            if sum(self._streams.values()) >= self._limits.streams:
                return False
            self._streams[session] += 1
            return True

    def release_stream(self, session: str) -> None:
        """Give back one stream slot of ``session`` (nothing when it holds none)."""
        with self._lock:
            if self._streams[session] > 0:
                self._streams[session] -= 1
            if self._streams[session] <= 0:
                del self._streams[session]

    def streams(self) -> dict[str, int]:
        """Live streams per session."""
        with self._lock:
            return dict(self._streams)

    # --- internals -----------------------------------------------------------------------------

    def _dispatch(self) -> None:
        """Start every waiting job whose group has room, in arrival order."""
        with self._lock:
            running = Counter(kind_group(j.kind) for j in self._jobs.values()
                              if j.runner is not None and j.runner.snapshot().active)
            started: list[_Job] = []
            for job_id in list(self._waiting):
                job = self._jobs[job_id]
                group = kind_group(job.kind)
                if running[group] >= self._limits.running.get(group, 1):
                    continue
                self._waiting.remove(job_id)
                running[group] += 1
                job.runner = JobRunner(self._executor, on_end=self._on_end)
                started.append(job)
            for job in started:
                try:
                    job.runner.submit(job.kind, job.params)
                except Exception as exc:  # noqa: BLE001 - a job that cannot start ends as failed, with why
                    logger.warning("job %s could not start: %s", job.job_id, exc)
                    job.runner = None
                    self._end_waiting(job, JobState.FAILED, error=str(exc))
            self._changed.notify_all()

    def _on_end(self, runner: JobRunner) -> None:
        """A runner's job ended (its watcher thread): release its leases, start what waits."""
        with self._lock:
            for job in self._jobs.values():
                if job.runner is runner:
                    self._release(job)
                    self._remember_end(job.job_id)
        self._dispatch()

    def _end_waiting(self, job: _Job, state: JobState, error: str | None = None) -> None:
        job.ended = JobStatus(state=state, kind=job.kind, config=job.params, error=error, finished=time.time())
        self._release(job)
        self._remember_end(job.job_id)
        self._changed.notify_all()

    def _release(self, job: _Job) -> None:
        if not job.released:
            job.released = True
            for path in job.holds:
                LEASES.release(path)

    def _remember_end(self, job_id: str) -> None:
        self._ended_order.append(job_id)
        while len(self._ended_order) > KEPT_ENDED:
            self._jobs.pop(self._ended_order.popleft(), None)

    def _is_live(self, job: _Job) -> bool:
        if job.ended is not None:
            return False
        return job.runner is None or job.runner.snapshot().active

    def _status(self, job: _Job) -> JobStatus:
        if job.ended is not None:
            return replace(job.ended, job_id=job.job_id)
        if job.runner is None:
            position = list(self._waiting).index(job.job_id) + 1
            return JobStatus(state=JobState.QUEUED, job_id=job.job_id, kind=job.kind, config=job.params,
                             position=position)
        return replace(job.runner.snapshot(), job_id=job.job_id)


class SessionRunner:
    """One session's view of the service with a runner's interface (``submit``, ``snapshot``, ``cancel``, ``wait``):
    what :class:`~maskdet.jobs.queue.JobQueue` and a page drive; it follows the last job it submitted."""

    def __init__(self, service: JobService, session: str, owner: bool = False) -> None:
        self.service, self.session, self.owner = service, session, owner
        self._job_id: str | None = None

    def submit(self, kind: str, params: dict, *, label: str = "", holds: Iterable[str | Path] = ()) -> str:
        self._job_id = self.service.submit(kind, params, self.session, owner=self.owner, label=label, holds=holds)
        return self._job_id

    def snapshot(self) -> JobStatus:
        return self.service.status(self._job_id) if self._job_id else JobStatus()

    def cancel(self) -> bool:
        return self.service.cancel(self._job_id) if self._job_id else False

    def wait(self, timeout: float | None = None) -> JobStatus:
        return self.service.wait(self._job_id, timeout) if self._job_id else JobStatus()
