"""Evaluate a classifier on a data-set folder: the one evaluation entry point (CLI, pages, tests).

``split="all"`` scores every readable image; ``split="test"`` only the model's saved held-out test
files (the folder must be its training folder). Either way the result says how much of what was
scored the model has seen (:func:`maskdet.evaluation.leakage.training_overlap`): evaluating on the training
folder is allowed, never silent.

:func:`choose_threshold_on_folder` chooses a model's operating threshold on a labelled folder of faces from the
camera it will watch, by the one rule (:func:`maskdet.zoo.decision.choose_threshold`): the probabilities shift with
the camera, so a threshold chosen on our validation faces can call a new camera's bare faces masked.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from maskdet.zoo.folders import choose_operating_threshold, load_split, resolve_model
from maskdet.inference.predictor import Predictor, load_classifier
from maskdet.data.datasets import ProgressFn, load_catalog
from maskdet.data.images import ImageDecodeError, load_rgb
from maskdet.evaluation.leakage import TrainingOverlap, training_overlap
from maskdet.evaluation.metrics import compute_metrics
from maskdet.settings import KNOWN_CLASSES
from maskdet.zoo.decision import (
    MAX_BARE_CALLED_MASKED,
    THRESHOLD,
    WITH_MASK,
    as_probabilities,
    compact_scores,
)

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
    fingerprint: str | None = None  # the folder's content fingerprint when it was scored (which version of it)

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
        fingerprint=catalog.fingerprint,
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


@dataclass(frozen=True)
class ChosenThreshold:
    """An operating threshold chosen on a folder of faces, and what it does to them compared with the old one."""

    model: str
    data: Path
    previous: float
    threshold: float
    faces: dict[str, int]  # per class, as labelled in the folder
    not_masked_called_masked: tuple[int, int]  # (at the previous threshold, at the new one)
    masked_called_masked: tuple[int, int]
    chosen_on: str  # what the card records beside the threshold
    max_bare_called_masked: float = MAX_BARE_CALLED_MASKED

    @property
    def not_masked_faces(self) -> int:
        """Bare and incorrectly masked faces in the folder: those the bound is about."""
        return sum(n for name, n in self.faces.items() if name != KNOWN_CLASSES[WITH_MASK])

    @property
    def bound_met(self) -> bool:
        """Whether the chosen threshold keeps the not-masked faces called masked within the bound (at 0.99, the
        highest the rule goes, it may not: the model does not rank these faces apart)."""
        return self.not_masked_called_masked[1] <= self.max_bare_called_masked * self.not_masked_faces

    def summary(self) -> str:
        """For the CLI: the new threshold, the faces of the folder at the old and the new one, and a warning when
        the bound is not met."""
        not_masked = self.not_masked_faces
        masked = self.faces.get(KNOWN_CLASSES[WITH_MASK], 0)
        return (f"{self.model}: operating threshold {self.previous:g} -> {self.threshold:g} (chosen on {self.chosen_on})\n"
                f"  on these faces: not-masked called masked {self.not_masked_called_masked[0]} -> "
                f"{self.not_masked_called_masked[1]} of {not_masked}; masked called masked "
                f"{self.masked_called_masked[0]} -> {self.masked_called_masked[1]} of {masked}"
                + ("" if self.bound_met else f"\n  even at {self.threshold:g} more than {self.max_bare_called_masked:.1%} of "
                   "the not-masked faces are called masked: check the folder's labels, or allow more with "
                   "--max-bare-called-masked"))


def describe_faces_chosen_on(root: str | Path, labels: np.ndarray, fingerprint: str | None, seen: int = 0,
                             unreadable: int = 0) -> str:
    """How a model card names the faces a threshold was chosen on, wherever it is chosen (``threshold --on``, the
    Compare page): the folder, its faces per class, how many the model trained on and how many files were left
    out, and the folder's content fingerprint (which version of it)."""
    labels = np.asarray(labels)
    text = f"{root}: " + ", ".join(f"{int((labels == index).sum())} {name}" for index, name in enumerate(KNOWN_CLASSES)
                                   if (labels == index).any())
    if seen:  # allowed, never silent: a threshold chosen on training faces promises more than a new camera keeps
        text += f"; {seen} of them seen in training"
    if unreadable:
        text += f"; {unreadable} unreadable files left out"
    return text + (f"; content fingerprint {fingerprint}" if fingerprint else "")


def choose_threshold_on_folder(model: str | Path | None, data: str | Path,
                               max_bare_called_masked: float = MAX_BARE_CALLED_MASKED,
                               progress: ProgressFn | None = None) -> ChosenThreshold:
    """Choose ``model``'s operating threshold on every readable face of the class folders in ``data`` (crops from
    the camera the model will watch: ``without_mask``, ``with_mask`` and, if any, ``incorrect_mask``) and record it
    in its card, with the folder, its faces and content fingerprint (``metadata.json`` only, atomically).

    The rule is the one the validation scores use: the lowest threshold >= 0.5 calling at most
    ``max_bare_called_masked`` of the not-masked faces (bare or worn incorrectly) masked. Raises ValueError (nothing
    written) when the folder holds no not-masked face to bound. Faces the model trained on are allowed, never silent:
    how many is recorded with the folder (a threshold chosen on them promises more than a new camera keeps).
    """
    folder = resolve_model(None if model is None else str(model))
    classifier = load_classifier(str(folder))
    evaluation = evaluate_folder(classifier, data, progress=progress)
    labels = evaluation.labels
    faces = {name: int((labels == index).sum()) for index, name in enumerate(KNOWN_CLASSES) if (labels == index).any()}
    p_masked = as_probabilities(evaluation.scores)[:, WITH_MASK]

    def called_masked(mask: np.ndarray, at: float) -> int:
        return int((mask & (p_masked >= at)).sum())

    seen = evaluation.overlap.overlapping if evaluation.overlap is not None else 0
    previous = classifier.threshold
    metadata = choose_operating_threshold(folder, max_bare_called_masked, scored=(labels, evaluation.scores),
                                          chosen_on=describe_faces_chosen_on(evaluation.data, labels, evaluation.fingerprint,
                                                                             seen, len(evaluation.unreadable)))
    threshold, chosen_on = metadata["operating_threshold"], metadata["operating_threshold_chosen_on"]
    not_masked, masked = labels != WITH_MASK, labels == WITH_MASK
    logger.info("operating threshold of %s chosen on %s: %g", folder.name, evaluation.data, threshold)
    return ChosenThreshold(model=folder.name, data=evaluation.data, previous=previous, threshold=threshold, faces=faces,
                           not_masked_called_masked=(called_masked(not_masked, previous), called_masked(not_masked, threshold)),
                           masked_called_masked=(called_masked(masked, previous), called_masked(masked, threshold)),
                           chosen_on=chosen_on, max_bare_called_masked=max_bare_called_masked)
