"""The job side of a subprocess job: runs one job function and streams messages to the parent.

Messages are ``(kind, payload)`` tuples on a one-way pipe: ``("log", text)``, ``("progress",
snapshot)``, then exactly one of ``("done", result)``, ``("failed", error)`` or ``("cancelled",
None)``. A process that dies without sending one (killed, out of memory, a crash in native code)
is reported by the parent from its exit code. The process leaves itself when its parent dies,
so a crashed server leaves no orphan training.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import traceback
from multiprocessing.connection import Connection

from maskdet.jobs.base import CancelFlag, JobContext, JobFunction

CAPTURED_LOGGER = "maskdet"  # the engine, data, zoo and checkpoint modules log under this name
PARENT_CHECK_S = 1.0


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


class _PipeLogHandler(logging.Handler):
    def __init__(self, channel: _Channel) -> None:
        super().__init__(level=logging.INFO)
        self.channel = channel

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
            if record.levelno >= logging.WARNING:
                text = f"{record.levelname}: {text}"
            self.channel.send("log", text)
        except Exception:  # noqa: BLE001 - logging must never break the job
            self.handleError(record)


def _leave_when_orphaned(parent: int) -> None:
    while True:
        time.sleep(PARENT_CHECK_S)
        if os.getppid() != parent:
            os._exit(1)


def run_job(function: JobFunction, params: dict, connection: Connection, cancel: CancelFlag, parent: int) -> None:
    """Entry point of the job process (``multiprocessing`` target)."""
    threading.Thread(target=_leave_when_orphaned, args=(parent,), daemon=True, name="maskdet-job-parent").start()
    channel = _Channel(connection)
    captured = logging.getLogger(CAPTURED_LOGGER)
    captured.setLevel(logging.INFO)
    captured.addHandler(_PipeLogHandler(channel))
    job = JobContext(lambda progress: channel.send("progress", progress), cancel)
    try:
        result = function(params, job)
    except BaseException as exc:  # noqa: BLE001 - every ending is reported to the parent
        if job.cancelled:
            channel.send("cancelled", None)
        else:
            traceback.print_exc()  # the full story on the server's console; readers get the message
            channel.send("failed", str(exc) or type(exc).__name__)
    else:
        channel.send("done", result)
    finally:
        connection.close()
