"""A model scored on a whole data-set folder it did not train on, cached on disk.

:func:`evaluate_dataset` scores a model on another data-set folder and caches metrics, file paths,
labels and scores under ``cache_dir()/evaluations``, keyed by (model identity, data fingerprint), so a
second look at the same model and folder costs nothing; :func:`cached_evaluation` reads such an entry back.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from maskdet.data.datasets import load_catalog, scan_dataset
from maskdet.evaluation.errors import ScoredFiles
from maskdet.evaluation.folder import evaluate_folder
from maskdet.evaluation.summary import ModelSummary
from maskdet.inference.predictor import Predictor
from maskdet.settings import cache_dir
from maskdet.store import write_json
from maskdet.zoo.folders import ModelFolder

logger = logging.getLogger(__name__)

EVALUATIONS_SUBDIR = "evaluations"
EVALUATION_CACHE_VERSION = 2  # 2: file paths kept for the error gallery

StageProgress = Callable[[str, int, int], None]
"""Called as ``progress(stage, done, total)``; stage is ``"reading"`` (first visit of a folder) or ``"classifying"``."""


@dataclass(frozen=True)
class DataEvaluation:
    """A model scored on a whole data-set folder: metrics plus labels and scores for curves."""

    model: str
    weights_sha256: str
    data: str
    fingerprint: str
    metrics: dict
    relpaths: list[str] = field(repr=False)  # each scored file, relative to ``data``
    labels: list[int] = field(repr=False)
    scores: list = field(repr=False)  # P(with_mask), or class probabilities of a three-class model
    unreadable: int = 0  # files skipped because they could not be decoded

    def to_json(self) -> dict:
        return {"version": EVALUATION_CACHE_VERSION, "model": self.model, "weights_sha256": self.weights_sha256,
                "data": self.data, "fingerprint": self.fingerprint, "metrics": self.metrics,
                "relpaths": self.relpaths, "labels": self.labels, "scores": self.scores,
                "unreadable": self.unreadable}

    def scored_files(self) -> ScoredFiles:
        """The evaluated files with their labels and scores, for the error gallery."""
        return ScoredFiles(source=Path(self.data).name, root=Path(self.data), relpaths=self.relpaths,
                           labels=self.labels, scores=self.scores, fingerprint=self.fingerprint)


def dataset_fingerprint(data: str | Path) -> str:
    """The folder's content fingerprint (relative paths and bytes); raises DatasetError for a bad folder."""
    return scan_dataset(data).fingerprint


def evaluation_cache_path(model_key: str, fingerprint: str) -> Path:
    """Where the evaluation of a model (:attr:`ModelSummary.cache_key`) on this data version is cached."""
    if not model_key or not fingerprint:
        raise ValueError("an evaluation cache key needs both a model key and a data fingerprint")
    return cache_dir() / EVALUATIONS_SUBDIR / f"{model_key}-{fingerprint}.json"


def cached_evaluation(summary: ModelSummary, data: str | Path, fingerprint: str) -> DataEvaluation | None:
    """The cached evaluation of ``summary``'s weights on the folder ``data`` (content ``fingerprint``), or None.

    The cache is keyed by content, so the entry may have been written for a copy of the folder elsewhere
    (a moved or re-extracted data set); the evaluation returned points at ``data``, where its files are now.
    """
    path = evaluation_cache_path(summary.cache_key, fingerprint)
    if not path.is_file():
        return None
    try:
        payload = json.loads(path.read_text())
        if payload.get("version") != EVALUATION_CACHE_VERSION:
            return None
        payload.pop("version")
        evaluation = DataEvaluation(**payload)
    except (OSError, ValueError, TypeError) as exc:
        logger.warning("ignoring unreadable evaluation cache %s (%s)", path, exc)
        return None
    if evaluation.weights_sha256 != summary.weights_sha256 or evaluation.fingerprint != fingerprint:
        return None
    # The model may have been renamed since; the weights are what was evaluated.
    here = {"model": summary.name, "data": str(Path(data))}
    return evaluation if all(payload[k] == v for k, v in here.items()) else DataEvaluation(**{**payload, **here})


def evaluate_dataset(
    summary: ModelSummary, data: str | Path, progress: StageProgress | None = None, folder: ModelFolder | None = None
) -> DataEvaluation:
    """Score ``summary``'s model on every readable image of ``data``; cached per (weights, data fingerprint).

    ``folder`` is the model's folder when the caller opened it already (else it is opened at ``summary.path``).

    Raises :class:`~maskdet.data.datasets.DatasetError` for an unusable folder and
    :class:`~maskdet.zoo.folders.CheckpointError` for a model that cannot be loaded.
    """
    data = Path(data)
    fingerprint = dataset_fingerprint(data)
    cached = cached_evaluation(summary, data, fingerprint)
    if cached is not None:
        logger.info("evaluation of %s on %s: cache hit", summary.name, data)
        return cached

    def report(stage: str) -> Callable[[int, int], None] | None:
        return None if progress is None else (lambda done, total: progress(stage, done, total))

    load_catalog(data, progress=report("reading"))  # decodes a new folder once (cached); the evaluation reuses it
    classifier = Predictor((folder or ModelFolder.at(summary.path)).load(device="cpu"))
    result = evaluate_folder(classifier, data, progress=report("classifying"))
    evaluation = DataEvaluation(
        model=summary.name, weights_sha256=summary.weights_sha256, data=str(result.data), fingerprint=fingerprint,
        metrics=result.metrics, relpaths=list(result.relpaths), labels=result.labels.tolist(),
        scores=np.round(result.scores, 6).tolist(),
        unreadable=len(result.unreadable),
    )
    write_json(evaluation_cache_path(summary.cache_key, fingerprint), evaluation.to_json())
    return evaluation
