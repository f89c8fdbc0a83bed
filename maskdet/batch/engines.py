"""Batch engines: the same scoring, in this process, in local worker processes, or on Ray.

Each engine turns a stream of path chunks into a stream of record chunks. Workers build their
pipeline once from a :class:`PipelineSpec` (a picklable description, not the loaded models), so
every worker holds exactly one detector and one classifier.

NOTE (process-wide state): worker processes and Ray actors set their own torch thread count
once, at start; the calling process's threads and random generators are never touched.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, replace
from multiprocessing import get_context
from pathlib import Path
from typing import Protocol

from maskdet.batch.records import score_paths, skipped_record, worker_death_record
from maskdet.batch.sources import Item, chunked, item_path
from maskdet.data.files import Skipped
from maskdet.inference.pipeline import DEFAULT_MARGIN, FacePipeline, build_pipeline
from maskdet.settings import current_settings, env_variable

logger = logging.getLogger(__name__)

WORKER_DIED = "the worker process scoring this file died (crash or out of memory)"
RAY_WINDOW = 20_000  # paths per Ray Dataset: bounds the driver's memory on runs of millions of files
RAY_RETRIES = 2  # restarts of a dead actor, and retries of the batch it held
RAY_ADDRESS_ENV = env_variable("ray_address")  # the cluster to use when none is given
RAY_ACTOR_CPUS = 0.5  # fractional, so Ray's read tasks always find a CPU (1-CPU actors hung on 2 CPUs)


@dataclass(frozen=True)
class PipelineSpec:
    """What a worker needs to build the pipeline: resolved model folder, detector and crop settings."""

    model: str
    whole_image: bool = False
    detector: str = "centerface"
    margin: float = DEFAULT_MARGIN
    threads: int | None = None  # torch and detector threads of each worker (None: every core)
    every: int = 1  # video clips: score every N-th frame
    annotate: str | None = None  # video clips: write the annotated clip here

    def build(self) -> FacePipeline:
        options = {"threads": self.threads} if self.threads and not self.whole_image else {}
        return build_pipeline(self.model, whole_image=self.whole_image, detector=self.detector, margin=self.margin,
                              detector_options=options)

    def with_threads(self, threads: int) -> PipelineSpec:
        return replace(self, threads=threads)


@dataclass
class EngineReport:
    """What went wrong outside single files: paths lost with a worker that died."""

    worker_failures: int = 0


class BatchEngine(Protocol):
    """Turns chunks of paths into chunks of records (``score_paths`` records, one per path)."""

    name: str

    def run(self, spec: PipelineSpec, chunks: Iterator[list[Item]], report: EngineReport) -> Iterator[list[dict]]: ...


class InProcessEngine:
    """Scores in the calling process (the default: no start-up cost)."""

    name = "local"

    def __init__(self, workers: int = 1, ray_address: str | None = None) -> None:
        del workers, ray_address  # one process by definition

    def run(self, spec: PipelineSpec, chunks: Iterator[list[Item]], report: EngineReport) -> Iterator[list[dict]]:
        pipeline = spec.build()
        for chunk in chunks:
            yield score_paths(pipeline, chunk, every=spec.every, annotate=spec.annotate)


_WORKER_PIPELINE: FacePipeline | None = None
_WORKER_SPEC: PipelineSpec | None = None


def _start_worker(spec: PipelineSpec) -> None:
    global _WORKER_PIPELINE, _WORKER_SPEC
    os.environ[env_variable("threads")] = str(spec.threads)  # the classifier's ``threads`` setting, this process only
    _WORKER_PIPELINE, _WORKER_SPEC = spec.build(), spec


def _score_in_worker(items: list[Item]) -> list[dict]:
    assert _WORKER_PIPELINE is not None and _WORKER_SPEC is not None, "worker started without its pipeline"
    return score_paths(_WORKER_PIPELINE, items, every=_WORKER_SPEC.every, annotate=_WORKER_SPEC.annotate)


class ProcessPoolEngine:
    """Decodes, detects and classifies in ``workers`` local processes, results in input order.

    At most ``2 x workers`` chunks are in flight, so memory stays flat. When a worker dies (a
    crash, the out-of-memory killer) the pool is restarted and the lost chunks are retried one
    file at a time, each *alone* in the pool (nothing else is submitted meanwhile): a death then
    names its file, which gets a worker-death record (:func:`~maskdet.batch.records.worker_death_record`)
    while every other file is scored. Retries are rare, so running them one by one costs little.
    """

    name = "processes"

    def __init__(self, workers: int = 2, ray_address: str | None = None) -> None:
        del ray_address
        self.workers = max(1, workers)

    def _pool(self, spec: PipelineSpec) -> ProcessPoolExecutor:
        threads = max(1, (os.cpu_count() or 1) // self.workers)
        return ProcessPoolExecutor(max_workers=self.workers, mp_context=get_context("spawn"),
                                   initializer=_start_worker, initargs=(spec.with_threads(threads),))

    def run(self, spec: PipelineSpec, chunks: Iterator[list[Item]], report: EngineReport) -> Iterator[list[dict]]:
        pool = self._pool(spec)
        # (paths, future, is a retry); a retry's future is None until it reaches the head and runs alone
        pending: deque[tuple[list[Item], Future | None, bool]] = deque()
        try:
            while True:
                if not any(retry for _paths, _future, retry in pending):
                    while len(pending) < 2 * self.workers and (chunk := next(chunks, None)) is not None:
                        pending.append((chunk, pool.submit(_score_in_worker, chunk), False))
                if not pending:
                    return
                paths, future, retry = pending.popleft()
                try:
                    yield (future or pool.submit(_score_in_worker, paths)).result()
                except BrokenProcessPool:
                    pool.shutdown(wait=False, cancel_futures=True)
                    pool = self._pool(spec)
                    if retry:  # it ran alone in the pool: this file kills its worker
                        report.worker_failures += len(paths)
                        logger.warning("%s killed its worker again; it gets an error record", item_path(paths[0]))
                        yield [worker_death_record(item_path(p), WORKER_DIED) for p in paths]
                        continue
                    lost = [paths] + [p for p, _f, _r in pending]  # in flight with it: none is a retry
                    logger.warning("a worker process died; restarting the pool and retrying %d files one by one",
                                   sum(map(len, lost)))
                    pending.clear()
                    pending.extend(([p], None, True) for chunk in lost for p in chunk)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


class _RayScorer:
    """A Ray Data actor: one detector and one classifier, built once, scoring batches of paths."""

    def __init__(self, spec: PipelineSpec) -> None:
        os.environ[env_variable("threads")] = "1"  # this actor's process only; its CPU share is fractional
        self.spec = spec
        self.pipeline = spec.with_threads(1).build()

    def __call__(self, batch: dict) -> dict:
        import json

        import numpy as np

        records = score_paths(self.pipeline, [Path(p) for p in batch["path"]], every=self.spec.every,
                              annotate=self.spec.annotate)
        return {"record": np.array([json.dumps(r) for r in records], dtype=object)}


def connect_ray(address: str | None = None) -> bool:
    """Connect this process to Ray unless it already is; True when this call started (or joined) it.

    ``address`` (``ray://host:10001`` or ``host:6379``), else ``$MASKDET_RAY_ADDRESS``, names a
    cluster; with neither a local Ray is started. Quiet: no dashboard, no worker logs on stdout.
    """
    try:
        import ray
    except ImportError as exc:  # pragma: no cover - ray is in requirements.txt
        raise RuntimeError("Ray is needed here: pip install 'ray[data]'") from exc
    if ray.is_initialized():
        return False
    address = address or current_settings().ray_address
    logger.info("starting Ray (%s)", address or "local")
    ray.init(address=address, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING,
             configure_logging=False)
    return True


class RayEngine:
    """Ray Data: paths -> ``map_batches`` over an actor pool -> records, on a local Ray or a cluster.

    Without an address (nor ``$MASKDET_RAY_ADDRESS``) a local Ray is started for the run (and stopped
    after, unless this process was already connected); with one (``ray://host:10001`` or ``host:6379``)
    the run uses that cluster, whose every node must see
    the model folder at the same path. The pool is sized from the CPUs Ray reports.
    """

    name = "ray"

    def __init__(self, workers: int | None = None, ray_address: str | None = None, batch_size: int = 16) -> None:
        self.workers = workers
        self.address = ray_address
        self.batch_size = batch_size

    def run(self, spec: PipelineSpec, chunks: Iterator[list[Item]], report: EngineReport) -> Iterator[list[dict]]:
        import json

        import ray

        started_here = connect_ray(self.address)
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False  # run_batch draws the one progress bar
        context.enable_operator_progress_bars = False
        logging.getLogger("ray.data").setLevel(logging.WARNING)
        try:
            cpus = float(ray.cluster_resources().get("CPU", 1))
            size = self.workers or max(1, int(cpus))
            logger.info("ray: %.0f CPUs, %d scoring actors of %.1f CPU each", cpus, size, RAY_ACTOR_CPUS)
            items = (item for chunk in chunks for item in chunk)
            for window_items in chunked(items, RAY_WINDOW):
                skipped = [i for i in window_items if isinstance(i, Skipped)]
                if skipped:  # never opened, so never sent to a worker
                    yield [skipped_record(item) for item in skipped]
                window = [i for i in window_items if not isinstance(i, Skipped)]
                if not window:
                    continue
                with warnings.catch_warnings():
                    # Ray Data restarts actors and retries tasks forever by default: a file that kills its actor
                    # would loop. The keyword form is deprecated from Ray 2.60 (removed in 2.64, above our pin).
                    warnings.simplefilter("ignore", DeprecationWarning)
                    dataset = ray.data.from_items([{"path": str(p)} for p in window]).map_batches(
                        _RayScorer, fn_constructor_args=(spec,), batch_size=self.batch_size,
                        compute=ray.data.ActorPoolStrategy(size=size), num_cpus=RAY_ACTOR_CPUS,
                        max_restarts=RAY_RETRIES, max_task_retries=RAY_RETRIES,
                    )
                seen: set[str] = set()
                try:
                    for batch in dataset.iter_batches(batch_size=self.batch_size, batch_format="numpy"):
                        records = [json.loads(text) for text in batch["record"]]
                        seen.update(r["path"] for r in records)
                        yield records
                except Exception as exc:  # noqa: BLE001 - a failed window is reported file by file
                    logger.error("ray run failed: %s", exc)
                    lost = [str(p) for p in window if str(p) not in seen]
                    report.worker_failures += len(lost)
                    yield [worker_death_record(p, f"the Ray worker scoring this file failed ({type(exc).__name__})")
                           for p in lost]
        finally:
            if started_here:
                ray.shutdown()


ENGINES: dict[str, Callable[..., BatchEngine]] = {
    InProcessEngine.name: InProcessEngine,
    ProcessPoolEngine.name: ProcessPoolEngine,
    RayEngine.name: RayEngine,
}


def get_engine(name: str, workers: int = 1, ray_address: str | None = None) -> BatchEngine:
    """The engine ``name`` (see :data:`ENGINES`); ``KeyError`` with the valid names otherwise."""
    try:
        factory = ENGINES[name]
    except KeyError:
        raise KeyError(f"unknown engine {name!r}; choose one of {', '.join(ENGINES)}") from None
    return factory(workers=workers, ray_address=ray_address)
