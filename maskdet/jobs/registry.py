"""Job kinds by name: what to run in the job's process, and how to check parameters before starting.

A kind is registered once, at import of the module defining it (see :mod:`maskdet.jobs.kinds`)::

    @job_kind("evaluate-scenes", describe=lambda p: f"evaluating scenes in {p['data']}")
    def evaluate_scenes(params: dict, job: JobContext) -> dict: ...

The function must be a module-level function: executors send it to the job's process by
reference (module and name), and only JSON-like ``params`` and results cross processes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from maskdet.jobs.base import JobFunction


@dataclass(frozen=True)
class JobKind:
    name: str
    run: JobFunction
    prepare: Callable[[dict], dict] | None = None  # runs in the caller: validate / resolve params, raise ValueError
    describe: Callable[[dict], str] | None = None  # the first log line, e.g. "training NAME (ARCH) on DATA"
    title: str = ""  # what users call it: "training", "folder evaluation"
    # runs in the caller after the runner had to terminate the job (it ignored its cancel flag): cleans up what
    # the job left half-written and says what was saved, the job's final note ("Cancelled: <that>")
    after_kill: Callable[[dict], str] | None = None

    def prepared(self, params: dict) -> dict:
        return self.prepare(params) if self.prepare else dict(params)

    def description(self, params: dict) -> str:
        return self.describe(params) if self.describe else self.name


_KINDS: dict[str, JobKind] = {}


def job_kind(
    name: str, *, title: str = "", prepare: Callable[[dict], dict] | None = None,
    describe: Callable[[dict], str] | None = None, after_kill: Callable[[dict], str] | None = None,
) -> Callable[[JobFunction], JobFunction]:
    """Decorator registering a job function under ``name`` (a name registered twice is a programming error)."""

    def register(function: JobFunction) -> JobFunction:
        if name in _KINDS and _KINDS[name].run is not function:
            raise ValueError(f"job kind {name!r} is already registered")
        _KINDS[name] = JobKind(name=name, run=function, prepare=prepare, describe=describe, title=title or name,
                               after_kill=after_kill)
        return function

    return register


def get_job_kind(name: str) -> JobKind:
    try:
        return _KINDS[name]
    except KeyError:
        raise ValueError(f"unknown job kind {name!r}; known: {', '.join(sorted(_KINDS))}") from None


def job_kinds() -> list[str]:
    return sorted(_KINDS)
