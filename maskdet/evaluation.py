"""Evaluate a classifier on every readable image of a data-set folder."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from maskdet.classifier import Classifier
from maskdet.data import ProgressFn, load_catalog
from maskdet.images import ImageDecodeError, load_rgb
from maskdet.metrics import THRESHOLD, compute_metrics

logger = logging.getLogger(__name__)

BATCH_SIZE = 64


THRESHOLD_KEYS = ("accuracy", "per_class", "confusion", "false_positives", "false_negatives")
"""The metrics that depend on the threshold (ROC AUC and AP do not)."""


@dataclass
class Evaluation:
    """Metrics (at 0.5 and at the model's operating threshold) plus the raw material for curves and errors."""

    model: str
    data: Path
    metrics: dict  # at the default threshold, 0.5
    relpaths: list[str]
    labels: np.ndarray
    scores: np.ndarray  # P(with_mask)
    unreadable: list[tuple[str, str]]
    skipped: list[tuple[str, str]] = field(default_factory=list)  # entries the scan left out (pipes, link loops...)
    threshold: float = THRESHOLD  # the model's operating threshold
    operating_metrics: dict | None = None  # compute_metrics at ``threshold``; None when it is 0.5

    def to_json(self) -> dict:
        """The ``evaluate --json`` contract: model, n, accuracy, roc_auc, ... at 0.5 (see the CLI), then
        ``operating_threshold`` and ``at_operating_threshold`` (the threshold-dependent metrics at it)."""
        keys = ("n", "accuracy", "roc_auc", "average_precision", "per_class", "confusion",
                "false_positives", "false_negatives")
        at_threshold = self.operating_metrics or self.metrics
        return {"model": self.model, **{key: self.metrics[key] for key in keys},
                "operating_threshold": self.threshold,
                "at_operating_threshold": {key: at_threshold[key] for key in THRESHOLD_KEYS}}


def evaluate_folder(
    classifier: Classifier, root: str | Path, progress: ProgressFn | None = None, batch_size: int = BATCH_SIZE
) -> Evaluation:
    """Classify every readable image under ``root``'s class folders; ``progress(done, total)`` per batch."""
    catalog = load_catalog(root)
    records = catalog.readable
    size = classifier.input.size
    scores = np.zeros(len(records), dtype=np.float64)
    with ThreadPoolExecutor(max_workers=2) as pool:
        for start in range(0, len(records), batch_size):
            chunk = records[start : start + batch_size]
            try:
                images = list(pool.map(lambda r: load_rgb(catalog.root / r.relpath, draft_size=size * 2), chunk))
            except ImageDecodeError as exc:
                raise ImageDecodeError(f"{exc.reason} (the file changed since the folder was scanned)", exc.source) from exc
            scores[start : start + len(chunk)] = classifier.predict_proba(images)[:, 1]
            if progress:
                progress(min(start + batch_size, len(records)), len(records))
    labels = np.array([r.label for r in records], dtype=np.int64)
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
    )
