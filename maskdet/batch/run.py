"""One batch run: stream paths, skip what an earlier run wrote, score, write, report."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from maskdet.batch.engines import BatchEngine, EngineReport, PipelineSpec
from maskdet.batch.sinks import RecordSink
from maskdet.batch.sources import Item, chunked, count_image_paths, item_path, iter_image_paths

logger = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 16  # images per chunk: their face crops are classified together

BatchProgress = Callable[[int, "int | None"], None]
"""``on_batch(scored, total)``: images scored so far, and how many this run has to score (None if not counted)."""


def check_output(output: str | Path | None, resume: bool) -> None:
    """Refuse an output choice that would lose records: ValueError with what to do instead.

    ``resume`` needs the JSON-lines file of the earlier run; without it an existing, non-empty file
    is never overwritten.
    """
    from maskdet.batch.sinks import is_parquet

    if resume and not output:
        raise ValueError("--resume needs --output FILE: the records of the earlier run")
    if resume and is_parquet(output):
        raise ValueError("--resume works with JSON-lines output (a .jsonl FILE); Parquet files are written whole")
    if output and not resume and Path(output).exists() and Path(output).stat().st_size:
        raise ValueError(f"{output} already exists: pass --resume to continue that run, or choose another file")


@dataclass(frozen=True)
class BatchSummary:
    """How a run went: records written, files that failed, files lost with a dead worker."""

    images: int
    errors: int
    worker_failures: int
    skipped: int
    seconds: float

    @property
    def images_per_second(self) -> float:
        return self.images / self.seconds if self.seconds > 0 else 0.0


def run_batch(
    paths: Iterable[str | Path],
    spec: PipelineSpec,
    engine: BatchEngine,
    sink: RecordSink,
    *,
    done: set[str] | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: bool | None = None,
    on_batch: BatchProgress | None = None,
) -> BatchSummary:
    """Score every image and clip under ``paths`` not in ``done`` with ``engine``, writing each record to ``sink``.

    ``progress`` shows a tqdm bar (images/s, ETA) on stderr; None = only when stderr is a terminal.
    ``on_batch(scored, total)`` is called after each batch's records are written (a job reports its
    progress there, and stops the run by raising, e.g. when cancelled). The sink is closed (made
    durable) when the run completes and abandoned when it stops early (``sink.saved`` then says
    what was kept).
    """
    paths = list(paths)  # the arguments as given (a few), walked lazily below
    done = done or set()
    show = sys.stderr.isatty() if progress is None else progress
    total = max(0, count_image_paths(paths) - len(done)) if show or on_batch else None
    skipped = 0

    def todo() -> Iterable[Item]:
        nonlocal skipped
        for item in iter_image_paths(paths):
            if str(item_path(item)) in done:
                skipped += 1
            else:
                yield item

    from tqdm import tqdm

    report = EngineReport()
    images = errors = 0
    started = time.perf_counter()
    bar = tqdm(total=total, unit="img", disable=not show, file=sys.stderr, dynamic_ncols=True, smoothing=0.1)
    try:
        for records in engine.run(spec, chunked(todo(), batch_size), report):
            for record in records:
                sink.write(record)
                images += 1
                errors += "error" in record
            bar.update(len(records))
            if on_batch:
                on_batch(images, total)
    except BaseException:
        sink.abandon()
        logger.warning("batch run stopped early: %s", sink.saved)
        raise
    else:
        sink.close()
    finally:
        bar.close()
    seconds = time.perf_counter() - started
    logger.info("scored %d images in %.1f s (%d errors, %d skipped)", images, seconds, errors, skipped)
    return BatchSummary(images=images, errors=errors, worker_failures=report.worker_failures, skipped=skipped,
                        seconds=seconds)
