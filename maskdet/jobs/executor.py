"""Where a job runs. :class:`SubprocessExecutor` (the default) gives each job a fresh process.

A fresh process (``multiprocessing`` 'spawn': nothing inherited but the environment) has its
own memory, torch thread pool and random generators, so a job can set threads, seed
generators and allocate gigabytes without touching the server; a crash or out-of-memory kill
ends the job, which the runner reports as failed, and never the server.

An executor turns ``(function, params)`` into a :class:`JobHandle`, which the runner polls for
messages (see :mod:`maskdet.jobs.worker` for the protocol) and can ask to cancel or stop. Another
executor only needs the same two methods: a Ray executor would submit ``run_job`` as a Ray task
(or actor) with a ``ray.util.queue.Queue`` for messages, a shared flag for cancel and
``ray.cancel(force=True)`` for :meth:`JobHandle.stop`.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
from typing import Protocol

from maskdet.jobs.base import JobFunction
from maskdet.jobs.worker import run_job

logger = logging.getLogger(__name__)

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


class SubprocessJob:
    """A job in a child process: messages on a pipe, a process-shared cancel event."""

    def __init__(self, context: multiprocessing.context.SpawnContext, function: JobFunction, params: dict) -> None:
        receiver, sender = context.Pipe(duplex=False)
        self._cancel = context.Event()
        self._receiver = receiver
        self._process = context.Process(
            target=run_job, args=(function, params, sender, self._cancel, os.getpid()),
            name=f"maskdet-job-{getattr(function, '__name__', 'job')}", daemon=True,
        )
        self._process.start()
        sender.close()  # the child holds the only writer: end of file on the pipe means it is gone
        self.pid = self._process.pid

    def next_message(self, timeout: float) -> Message | None:
        try:
            if not self._receiver.poll(timeout):
                return None
            return self._receiver.recv()
        except (EOFError, OSError):  # all writers closed (the child ended) or a message cut short by a kill
            self._process.join(STOP_WAIT_S)
            raise JobEnded from None

    def request_cancel(self) -> None:
        self._cancel.set()

    def stop(self, wait: float = 0.0) -> None:
        self._process.join(wait)
        if self._process.is_alive():
            self._process.terminate()
            self._process.join(STOP_WAIT_S)
        if self._process.is_alive():
            self._process.kill()
        self._process.join()

    def exit_reason(self) -> str:
        code = self._process.exitcode
        if code is None:
            return "the job process stopped responding"
        if code < 0:
            name = signal.Signals(-code).name
            hint = " (out of memory?)" if -code == signal.SIGKILL else ""
            return f"the job process was killed by {name}{hint}"
        return f"the job process exited with code {code} before reporting a result"


class SubprocessExecutor:
    """Runs each job in a new 'spawn' process (the default executor)."""

    def __init__(self) -> None:
        self._context = multiprocessing.get_context("spawn")

    def submit(self, function: JobFunction, params: dict) -> SubprocessJob:
        return SubprocessJob(self._context, function, params)
