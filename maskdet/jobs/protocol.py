"""What an executor is: the interface between a job runner and the place a job runs.

An executor turns ``(function, params)`` into a :class:`JobHandle`, which the runner polls for
messages (see :mod:`maskdet.jobs.worker` for the protocol) and can ask to cancel or stop. The
implementations (:mod:`maskdet.jobs.subprocess_executor`, :mod:`maskdet.jobs.ray_executor`) import
this module; the registry that names them is :mod:`maskdet.jobs.executor`.
"""

from __future__ import annotations

from typing import Protocol

from maskdet.jobs.base import JobFunction

STOP_WAIT_S = 2.0  # between SIGTERM and SIGKILL

Message = tuple[str, object]


class JobEnded(Exception):
    """The job's process is gone and every message it sent has been read."""


class JobHandle(Protocol):
    pid: int | None

    def next_message(self, timeout: float) -> Message | None:
        """The next message, None if none came within ``timeout``; raises :class:`JobEnded` after the last."""

    def request_cancel(self) -> None:
        """Set the job's cooperative cancel flag."""

    def stop(self, wait: float = 0.0) -> None:
        """End the job after at most ``wait`` seconds (terminate, then kill); returns once it is gone."""

    def exit_reason(self) -> str:
        """Why the process ended without a final message, for the user (e.g. killed by SIGKILL)."""


class Executor(Protocol):
    def submit(self, function: JobFunction, params: dict) -> JobHandle: ...
