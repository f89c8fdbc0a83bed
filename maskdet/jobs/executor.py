"""Where a job runs, chosen by name: :data:`EXECUTORS` and :func:`get_executor`.

``subprocess`` (the default, :class:`maskdet.jobs.subprocess_executor.SubprocessExecutor`) gives each
job a fresh process; ``ray`` (:class:`maskdet.jobs.ray_executor.RayExecutor`) runs jobs as Ray tasks.
The interface both implement is in :mod:`maskdet.jobs.protocol`; the setting ``job_executor``
(``MASKDET_JOB_EXECUTOR``) names the default.
"""

from __future__ import annotations

from collections.abc import Callable

from maskdet.jobs.protocol import Executor
from maskdet.jobs.subprocess_executor import SubprocessExecutor
from maskdet.settings import current_settings, env_variable

EXECUTOR_ENV = env_variable("job_executor")


def _ray_executor() -> Executor:
    from maskdet.jobs.ray_executor import RayExecutor  # imports Ray: only when asked for

    return RayExecutor()


EXECUTORS: dict[str, Callable[[], Executor]] = {"subprocess": SubprocessExecutor, "ray": _ray_executor}


def get_executor(name: str | None = None) -> Executor:
    """The executor ``name`` (else the ``job_executor`` setting); ValueError for an unknown name."""
    name = name or current_settings().job_executor
    try:
        factory = EXECUTORS[name]
    except KeyError:
        raise ValueError(f"unknown job executor {name!r} (from {EXECUTOR_ENV}?); known: {', '.join(EXECUTORS)}") from None
    return factory()
