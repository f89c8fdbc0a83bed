"""Jobs as Ray tasks: the messages of a subprocess job, on a local Ray or a cluster.

:class:`RayExecutor` submits :func:`maskdet.jobs.worker.execute` as a Ray task with
``max_calls=1`` (the worker process exits after the job, so each job has its own memory, torch
threads and random generators, as with :class:`~maskdet.jobs.subprocess_executor.SubprocessExecutor`) and
no retries: Ray re-runs a task whose worker died three times by default, so a killed job would
silently run again from the start over what it had already written. A job runs once; resuming
is explicit.
Messages travel on a :class:`ray.util.queue.Queue`; the cooperative cancel flag is a tiny actor
the job polls between steps; :meth:`RayJob.stop` is ``ray.cancel(force=True)``.

Ray is connected once per process by :func:`maskdet.batch.engines.connect_ray` (``address``, else
``$MASKDET_RAY_ADDRESS``, else a local Ray) and stays up for later jobs. The job's worker gets the
submitting process's ``MASKDET_*`` variables (models folder, caches, data root), as a subprocess
would; on a cluster every node must see those folders at the same paths.
"""

from __future__ import annotations

import logging
import os

import ray
from ray.util.queue import Empty, Queue

from maskdet.batch.engines import connect_ray
from maskdet.jobs.base import JobFunction
from maskdet.jobs.protocol import STOP_WAIT_S, JobEnded, Message
from maskdet.jobs.worker import execute
from maskdet.settings import ENV_PREFIX  # the variables a job sees as in the submitting process

logger = logging.getLogger(__name__)

JOB_CPUS = 1


@ray.remote(num_cpus=0)
class CancelFlagActor:
    """The shared cancel flag: set by the reader, read by the job."""

    def __init__(self) -> None:
        self._set = False

    def set(self) -> None:
        self._set = True

    def is_set(self) -> bool:
        return self._set


class _RemoteFlag:
    """The job's view of the flag (one small remote call per check; jobs check between steps)."""

    def __init__(self, actor: ray.actor.ActorHandle) -> None:
        self._actor = actor

    def is_set(self) -> bool:
        return bool(ray.get(self._actor.is_set.remote()))


@ray.remote(num_cpus=JOB_CPUS, max_calls=1, max_retries=0, retry_exceptions=False)
def _run_remote(function: JobFunction, params: dict, queue: Queue, flag: ray.actor.ActorHandle) -> None:
    execute(function, params, lambda kind, payload: queue.put((kind, payload)), _RemoteFlag(flag))


class RayJob:
    """A job running as a Ray task; the runner reads it like a subprocess job."""

    pid: int | None = None  # a Ray worker's process is not ours to signal

    def __init__(self, function: JobFunction, params: dict, env: dict[str, str]) -> None:
        self._queue = Queue(actor_options={"num_cpus": 0})
        self._flag = CancelFlagActor.remote()
        self._task = _run_remote.options(runtime_env={"env_vars": env}).remote(function, params, self._queue,
                                                                             self._flag)
        self._released = False

    def next_message(self, timeout: float) -> Message | None:
        try:
            return self._queue.get(timeout=timeout)
        except Empty:
            pass
        ready, _ = ray.wait([self._task], timeout=0)
        if ready and self._queue.empty():  # the task is over and every message it sent has been read
            self._release()
            raise JobEnded
        return None

    def request_cancel(self) -> None:
        self._flag.set.remote()

    def stop(self, wait: float = 0.0) -> None:
        ready, _ = ray.wait([self._task], timeout=wait)
        if not ready:
            ray.cancel(self._task, force=True)  # kills the worker process
            ray.wait([self._task], timeout=STOP_WAIT_S)
        self._release()

    def exit_reason(self) -> str:
        try:
            ray.get(self._task, timeout=0)
        except ray.exceptions.TaskCancelledError:
            return "the Ray task was cancelled"
        except ray.exceptions.OutOfMemoryError:
            return "the Ray worker running the job was killed (out of memory)"
        except ray.exceptions.GetTimeoutError:
            return "the Ray task stopped responding"
        except ray.exceptions.RayError as exc:
            return f"the Ray worker running the job died ({type(exc).__name__})"
        return "the Ray task ended before reporting a result"

    def _release(self) -> None:
        if self._released:
            return
        self._released = True
        self._queue.shutdown(force=True)
        ray.kill(self._flag)


class RayExecutor:
    """Runs each job as a Ray task (see the module docstring); ``address`` as for :func:`connect_ray`."""

    def __init__(self, address: str | None = None) -> None:
        self.address = address

    def submit(self, function: JobFunction, params: dict) -> RayJob:
        connect_ray(self.address)
        env = {name: value for name, value in os.environ.items() if name.startswith(ENV_PREFIX)}
        return RayJob(function, params, env)
