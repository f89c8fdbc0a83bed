"""The default executor: :class:`SubprocessExecutor` gives each job a fresh process.

A fresh interpreter (``python -m maskdet.jobs``: nothing inherited but the environment) has its
own memory, torch thread pool and random generators, so a job can set threads, seed generators
and allocate gigabytes without touching the server; a crash or out-of-memory kill ends the job,
which the runner reports as failed, and never the server. (Not ``multiprocessing`` 'spawn': under
Streamlit ``sys.modules["__main__"]`` is the page script, which a spawned child runs again before
the job: the whole page, model recovery included, in every job process.)
"""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
from multiprocessing.connection import Connection
from pathlib import Path

from maskdet.jobs.base import JobFunction
from maskdet.jobs.protocol import STOP_WAIT_S, JobEnded, Message

PACKAGE_ROOT = Path(__file__).resolve().parents[2]  # the folder holding maskdet/, on the child's import path


class SubprocessJob:
    """A job in a child interpreter: messages on one pipe, the cancel flag on another (see :mod:`maskdet.jobs.__main__`)."""

    def __init__(self, function: JobFunction, params: dict) -> None:
        messages_read, messages_write = os.pipe()
        cancel_read, cancel_write = os.pipe()
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(PACKAGE_ROOT), os.environ.get("PYTHONPATH")]))}
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "maskdet.jobs", str(messages_write), str(cancel_read), str(os.getpid())],
                stdin=subprocess.PIPE, pass_fds=(messages_write, cancel_read), env=env,
            )
        finally:
            os.close(messages_write)  # the child holds the only writer: end of file on the pipe means it is gone
            os.close(cancel_read)
        self._receiver = Connection(messages_read, writable=False)
        self._cancel: int | None = cancel_write
        self.pid = self._process.pid
        with self._process.stdin as stdin:  # the job itself, by reference (module and name) and its params
            pickle.dump((function, params), stdin)

    def next_message(self, timeout: float) -> Message | None:
        try:
            if not self._receiver.poll(timeout):
                return None
            return self._receiver.recv()
        except (EOFError, OSError):  # all writers closed (the child ended) or a message cut short by a kill
            self._wait(STOP_WAIT_S)
            raise JobEnded from None

    def request_cancel(self) -> None:
        if self._cancel is None:
            return
        try:
            os.write(self._cancel, b"x")
        except OSError:  # the child is already gone
            pass

    def stop(self, wait: float = 0.0) -> None:
        if not self._wait(wait):
            self._process.terminate()
            if not self._wait(STOP_WAIT_S):
                self._process.kill()
                self._process.wait()
        self._close()

    def exit_reason(self) -> str:
        code = self._process.poll()
        if code is None:
            return "the job process stopped responding"
        if code < 0:
            name = signal.Signals(-code).name
            hint = " (out of memory?)" if -code == signal.SIGKILL else ""
            return f"the job process was killed by {name}{hint}"
        return f"the job process exited with code {code} before reporting a result"

    def _close(self) -> None:
        """Close this side's pipes (a later read ends the job: :class:`JobEnded`)."""
        self._receiver.close()
        if self._cancel is not None:
            os.close(self._cancel)
            self._cancel = None

    def _wait(self, timeout: float) -> bool:
        """True once the process has ended (waiting at most ``timeout`` seconds)."""
        try:
            self._process.wait(timeout)
        except subprocess.TimeoutExpired:
            return False
        return True


class SubprocessExecutor:
    """Runs each job in a new Python process (the default executor)."""

    def submit(self, function: JobFunction, params: dict) -> SubprocessJob:
        return SubprocessJob(function, params)
