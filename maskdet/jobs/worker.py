"""The job side of a job: runs one job function and streams messages to the reader.

:func:`execute` is shared by every executor (it takes a ``send(kind, payload)`` callable);
:func:`run_job` is the entry point of a subprocess job, whose messages go on a one-way pipe.
Messages are ``(kind, payload)`` tuples: ``("log", text)``, ``("progress", snapshot)``, then
exactly one of ``("done", result)``, ``("failed", error)`` or ``("cancelled", saved)`` (what the job
kept, or None). A process that dies without sending one (killed, out of memory, a crash in native
code) is reported by the parent from its exit code. The process leaves itself when its parent dies, so a crashed server
leaves no orphan training."""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection

from maskdet.jobs.base import CancelFlag, JobContext, JobFunction
from maskdet.settings import Settings, current_settings, env_variable

logger = logging.getLogger(__name__)

CAPTURED_LOGGER = "maskdet"  # the engine, data, zoo and checkpoint modules log under this name
PARENT_CHECK_S = 1.0
DEFAULT_JOB_NICENESS = Settings.model_fields["job_niceness"].default
"""The ``job_niceness`` setting's default: how much a subprocess job lowers its own CPU priority: the server's pages and webcam frames come first and the
job takes what they leave (``benchmarks/bench_during_training.py``: on 2 cores a training job at the server's
priority slowed webcam frames from 26 to 86 ms; set it to 0 to run jobs at full priority)."""


class _Channel:
    """Thread-safe sender; silent in forked grandchildren (DataLoader workers inherit the pipe)."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection
        self._lock = threading.Lock()
        self._pid = os.getpid()

    def send(self, kind: str, payload: object) -> None:
        if os.getpid() != self._pid:
            return
        with self._lock:
            self._connection.send((kind, payload))


class _LogHandler(logging.Handler):
    """Forwards log records as ``("log", text)`` messages."""

    def __init__(self, send: Callable[[str, object], None]) -> None:
        super().__init__(level=logging.INFO)
        self.send = send

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
            if record.levelno >= logging.WARNING:
                text = f"{record.levelname}: {text}"
            self.send("log", text)
        except Exception:  # noqa: BLE001 - logging must never break the job
            self.handleError(record)


def _leave_when_orphaned(parent: int) -> None:
    while True:
        time.sleep(PARENT_CHECK_S)
        if os.getppid() != parent:
            os._exit(1)


def handled_input_error(exc: BaseException) -> bool:
    """maskdet's own ``ValueError`` subclasses (VideoDecodeError, ImageDecodeError, DatasetError, CheckpointError...)
    are bad input, reported in one clear line; anything else is a fault worth its traceback."""
    return isinstance(exc, ValueError) and type(exc).__module__.split(".")[0] == "maskdet"


def execute(function: JobFunction, params: dict, send: Callable[[str, object], None], cancel: CancelFlag) -> None:
    """Run ``function`` once, sending its log lines, progress and exactly one final message through ``send``.

    The ``maskdet`` loggers are captured for the duration of the call only (a Ray worker may run
    other tasks afterwards).
    """
    captured = logging.getLogger(CAPTURED_LOGGER)
    handler = _LogHandler(send)
    level = captured.level
    captured.setLevel(logging.INFO)
    captured.addHandler(handler)
    job = JobContext(lambda progress: send("progress", progress), cancel)
    try:
        result = function(params, job)
    except BaseException as exc:  # noqa: BLE001 - every ending is reported to the reader
        if job.cancelled:
            send("cancelled", getattr(exc, "saved", None))
        else:
            if handled_input_error(exc):  # a bad file or folder, already explained: one line, no traceback
                print(f"job failed on its input: {type(exc).__name__}: {exc}", file=sys.stderr)
            else:
                traceback.print_exc()  # the full story on the job's console; readers get the message
            send("failed", str(exc) or type(exc).__name__)
    else:
        send("done", result)
    finally:
        captured.removeHandler(handler)
        captured.setLevel(level)


def _lower_priority() -> None:
    try:
        niceness = current_settings().job_niceness
    except ValueError:  # a malformed value: the job still runs, at the default priority
        logger.warning("ignoring a malformed %s; jobs run at niceness %d", env_variable("job_niceness"),
                       DEFAULT_JOB_NICENESS)
        niceness = DEFAULT_JOB_NICENESS
    if niceness > 0:
        os.nice(niceness)  # this process's own priority (and its loader workers'), never the server's


def run_job(function: JobFunction, params: dict, connection: Connection, cancel: CancelFlag, parent: int) -> None:
    """Entry point of the job process (``python -m maskdet.jobs``), at a lower CPU priority than the server."""
    _lower_priority()
    threading.Thread(target=_leave_when_orphaned, args=(parent,), daemon=True, name="maskdet-job-parent").start()
    try:
        execute(function, params, _Channel(connection).send, cancel)
    finally:
        connection.close()
