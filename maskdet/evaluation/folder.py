"""Evaluate a classifier on a data-set folder: the one evaluation entry point (CLI, pages, tests).

``split="all"`` scores every readable image; ``split="test"`` only the model's saved held-out test
files (the folder must be its training folder). Either way the result says how much of what was
scored the model has seen (:func:`maskdet.evaluation.leakage.training_overlap`): evaluating on the training
folder is allowed, never silent.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from maskdet.zoo.folders import load_split
from maskdet.inference.predictor import Predictor
from maskdet.data.datasets import ProgressFn, load_catalog
from maskdet.data.images import ImageDecodeError, load_rgb
from maskdet.evaluation.leakage import TrainingOverlap, training_overlap
from maskdet.evaluation.metrics import compute_metrics
from maskdet.zoo.decision import THRESHOLD, compact_scores

logger = logging.getLogger(__name__)

BATCH_SIZE = 64
SPLITS = ("all", "test", "val")


THRESHOLD_KEYS = ("accuracy", "per_class", "macro", "confusion", "false_positives", "false_negatives",
                  "outside_classes")
"""The metrics that depend on the threshold (ROC AUC and AP do not)."""


@dataclass
class Evaluation:
    """Metrics (at 0.5 and at the model's operating threshold) plus the raw material for curves and errors."""

    model: str
    data: Path
    metrics: dict  # at the default threshold, 0.5
    relpaths: list[str]
    labels: np.ndarray
    scores: np.ndarray  # P(with_mask) (N,) of a two-class model, class probabilities (N, 3) of a three-class one
    unreadable: list[tuple[str, str]]
    skipped: list[tuple[str, str]] = field(default_factory=list)  # entries the scan left out (pipes, link loops...)
    threshold: float = THRESHOLD  # the model's operating threshold
    operating_metrics: dict | None = None  # compute_metrics at ``threshold``; None when it is 0.5
    split: str = "all"
    overlap: TrainingOverlap | None = None  # what of the scored images the model has seen; None = not checkable

    def to_json(self) -> dict:
        """The ``evaluate --json`` contract: model, split, n, accuracy, roc_auc, ... at 0.5 (see the CLI), then
        ``operating_threshold`` and ``at_operating_threshold`` (the threshold-dependent metrics at it) and
        ``overlap`` (what of the scored images the model has seen)."""
        keys = ("n", "classes", "accuracy", "roc_auc", "average_precision", "per_class", "macro", "confusion",
                "false_positives", "false_negatives", "outside_classes")
        at_threshold = self.operating_metrics or self.metrics
        return {"model": self.model, "split": self.split, **{key: self.metrics[key] for key in keys},
                "operating_threshold": self.threshold,
                "at_operating_threshold": {key: at_threshold[key] for key in THRESHOLD_KEYS},
                "overlap": None if self.overlap is None else self.overlap.to_json()}


def evaluate_folder(
    classifier: Predictor, root: str | Path, progress: ProgressFn | None = None, batch_size: int = BATCH_SIZE,
    split: str = "all",
) -> Evaluation:
    """Classify the readable images under ``root``'s class folders (``split``: all, or the model's saved test
    files); ``progress(done, total)`` per batch. Raises ValueError when ``split="test"`` cannot be honoured."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    catalog = load_catalog(root)
    records = catalog.readable
    if split != "all":
        records = _split_records(classifier, catalog.readable, catalog.root, split)
    size = classifier.input.size
    probabilities = np.zeros((len(records), len(classifier.classes)), dtype=np.float64)
    with ThreadPoolExecutor(max_workers=2) as pool:
        for start in range(0, len(records), batch_size):
            chunk = records[start : start + batch_size]
            try:
                images = list(pool.map(lambda r: load_rgb(catalog.root / r.relpath, draft_size=size * 2), chunk))
            except ImageDecodeError as exc:
                raise ImageDecodeError(f"{exc.reason} (the file changed since the folder was scanned)", exc.source) from exc
            probabilities[start : start + len(chunk)] = classifier.predict_proba(images)
            if progress:
                progress(min(start + batch_size, len(records)), len(records))
    labels = np.array([r.label for r in records], dtype=np.int64)
    scores = compact_scores(probabilities)
    threshold = classifier.threshold
    return Evaluation(
        model=classifier.name,
        data=catalog.root,
        metrics=compute_metrics(labels, scores),
        relpaths=[r.relpath for r in records],
        labels=labels,
        scores=scores,
        unreadable=[(r.relpath, r.error) for r in catalog.unreadable],
        skipped=catalog.skipped,
        threshold=threshold,
        operating_metrics=None if threshold == THRESHOLD else compute_metrics(labels, scores, threshold),
        split=split,
        overlap=training_overlap(classifier.loaded.path, catalog.root, [r.relpath for r in records], catalog),
    )


def _split_records(classifier: Predictor, readable: list, root: Path, split: str) -> list:
    saved = load_split(classifier.loaded.path)
    if not saved:
        raise ValueError(f"{classifier.name} has no saved split: evaluate it with split 'all'")
    wanted = set(saved[split])
    records = [r for r in readable if r.relpath in wanted]
    if len(records) < len(wanted):
        raise ValueError(f"{root} holds {len(records)} of the {len(wanted)} {split} files of {classifier.name}'s saved "
                         "split: evaluate its training folder, or use split 'all'")
    return records
