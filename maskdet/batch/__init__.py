"""Batch scoring: photo archives of any size through the detect -> classify pipeline.

A run streams file paths (:mod:`maskdet.batch.sources`), skips the ones an earlier run already
wrote (``resume``), sends the rest through an *engine* and writes one record per image to a
*sink* as soon as it is ready, so memory stays flat however many files there are:

- engines (:mod:`maskdet.batch.engines`, looked up by name in :data:`ENGINES`): ``local`` (this
  process), ``processes`` (N local worker processes, each with its own detector and classifier)
  and ``ray`` (Ray Data ``map_batches`` over an actor pool, on a local Ray or a cluster);
- sinks (:mod:`maskdet.batch.sinks`): JSON lines on stdout or in a file (whole lines only, so a
  crash never leaves a torn line and ``--resume`` picks up where it stopped) and Parquet.

Every engine produces the same records as ``predict --json`` (:func:`maskdet.batch.records.score_paths`).

May import: :mod:`maskdet.evaluation`, :mod:`maskdet.inference`, :mod:`maskdet.zoo`, :mod:`maskdet.data`
and the bottom modules (and :mod:`maskdet.video` for clips in an archive).
"""

from maskdet.batch.engines import ENGINES, PipelineSpec, get_engine
from maskdet.batch.run import BatchSummary, run_batch

__all__ = ["ENGINES", "BatchSummary", "PipelineSpec", "get_engine", "run_batch"]
