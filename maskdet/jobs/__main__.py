"""Entry point of a subprocess job: ``python -m maskdet.jobs MESSAGES_FD CANCEL_FD PARENT_PID``.

Started by :class:`maskdet.jobs.subprocess_executor.SubprocessJob`, which writes ``(function, params)``
(pickled; the function by reference) on this process's stdin, reads the job's messages from the
``MESSAGES_FD`` pipe and writes a byte to the ``CANCEL_FD`` pipe to cancel.
"""

from __future__ import annotations

import pickle
import select
import sys
from multiprocessing.connection import Connection

from maskdet.jobs.worker import run_job


class PipeFlag:
    """The cancel flag: set once the parent writes to the pipe (or closes it, e.g. by dying)."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._set = False

    def is_set(self) -> bool:
        if not self._set:
            self._set = bool(select.select([self._fd], [], [], 0)[0])
        return self._set


def main(argv: list[str]) -> None:
    messages, cancel, parent = (int(arg) for arg in argv)
    function, params = pickle.load(sys.stdin.buffer)
    run_job(function, params, Connection(messages, readable=False), PipeFlag(cancel), parent)


if __name__ == "__main__":
    main(sys.argv[1:])
