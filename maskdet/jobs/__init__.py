"""Long work outside the server process: one interface, a registry of kinds, pluggable executors.

- :mod:`maskdet.jobs.base`: states, :class:`JobStatus` snapshots, the :class:`JobContext` a job gets;
- :mod:`maskdet.jobs.registry`: job kinds by name (``@job_kind("name")``);
- :mod:`maskdet.jobs.kinds`: the built-in kinds (``train``, ``evaluate-folder``, ``evaluate-scenes``, ``score-batch``, ...);
- :mod:`maskdet.jobs.protocol`: what an executor and a job handle are;
- :mod:`maskdet.jobs.executor`: executors by name (a fresh subprocess by default,
  :mod:`maskdet.jobs.subprocess_executor`, or a Ray task: :mod:`maskdet.jobs.ray_executor`);
- :mod:`maskdet.jobs.runner`: :class:`JobRunner` / :class:`TrainingJobRunner`, one job at a time, many readers;
- :mod:`maskdet.jobs.queue`: :class:`JobQueue`, a list of jobs one after the other on one runner;
- :mod:`maskdet.jobs.service`: :class:`JobService`, the server's one service of every job (limits, queue,
  quotas, owning sessions, stream slots); :class:`SessionRunner` is one session's runner-like view of it.

May import every package below it: :mod:`maskdet.batch`, :mod:`maskdet.video`, :mod:`maskdet.export`,
:mod:`maskdet.training`, :mod:`maskdet.evaluation`, :mod:`maskdet.inference`, :mod:`maskdet.zoo`, :mod:`maskdet.data`.
"""

from maskdet.jobs import kinds  # noqa: F401 - registers the built-in job kinds
from maskdet.jobs.base import (
    ACTIVE_STATES,
    JobAlreadyRunning,
    JobCancelled,
    JobContext,
    JobProgress,
    JobState,
    JobStatus,
)
from maskdet.jobs.executor import EXECUTORS, get_executor
from maskdet.jobs.protocol import Executor, JobHandle
from maskdet.jobs.subprocess_executor import SubprocessExecutor
from maskdet.jobs.queue import JobQueue, QueuedJob, QueueStatus
from maskdet.jobs.registry import get_job_kind, job_kind, job_kinds
from maskdet.jobs.runner import JobRunner, TrainingJobRunner
from maskdet.jobs.service import JobEntry, JobRefused, JobService, Limits, SessionRunner

__all__ = [
    "ACTIVE_STATES", "EXECUTORS", "Executor", "JobAlreadyRunning", "JobCancelled", "JobContext", "JobHandle",
    "JobEntry", "JobProgress", "JobQueue", "JobRefused", "JobRunner", "JobService", "Limits", "SessionRunner", "JobState", "JobStatus", "QueueStatus", "QueuedJob", "SubprocessExecutor",
    "TrainingJobRunner", "get_executor", "get_job_kind", "job_kind", "job_kinds",
]
