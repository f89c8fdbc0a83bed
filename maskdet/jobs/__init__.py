"""Long work outside the server process: one interface, a registry of kinds, pluggable executors.

- :mod:`maskdet.jobs.base`: states, :class:`JobStatus` snapshots, the :class:`JobContext` a job gets;
- :mod:`maskdet.jobs.registry`: job kinds by name (``@job_kind("name")``);
- :mod:`maskdet.jobs.kinds`: ``train`` and ``evaluate-folder``;
- :mod:`maskdet.jobs.executor`: where a job runs (a fresh subprocess by default);
- :mod:`maskdet.jobs.runner`: :class:`JobRunner` / :class:`TrainingJobRunner`, one job at a time, many readers.
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
from maskdet.jobs.executor import Executor, JobHandle, SubprocessExecutor
from maskdet.jobs.registry import get_job_kind, job_kind, job_kinds
from maskdet.jobs.runner import JobRunner, TrainingJobRunner

__all__ = [
    "ACTIVE_STATES", "Executor", "JobAlreadyRunning", "JobCancelled", "JobContext", "JobHandle", "JobProgress",
    "JobRunner", "JobState", "JobStatus", "SubprocessExecutor", "TrainingJobRunner", "get_job_kind", "job_kind",
    "job_kinds",
]
