"""Side-by-side comparison of trained models: one row per model, best values, latency, unseen data.

Everything the Compare page shows comes from here, so it can be tested without Streamlit:

- :func:`summarize` turns a model's metadata (held-out test metrics, raw test scores,
  history, size, training time) into a typed :class:`ModelSummary`;
- :func:`cpu_latency_ms` times the product's :class:`~maskdet.inference.predictor.Classifier` on one
  face (batch 1, median of N runs), cached in memory per weights SHA-256;
- :func:`comparison_table` / :func:`best_mask` build the table and mark the best value of
  each column (higher is better for quality, lower for cost and errors);
- :func:`evaluate_dataset` scores a model on another data-set folder and caches metrics,
  file paths, labels and scores on disk under ``cache_dir()/evaluations``, keyed by (weights
  SHA-256, data fingerprint), so a second look at the same model and folder costs nothing;
- :func:`held_out_files` / :meth:`DataEvaluation.scored_files` give the scored files of the
  held-out test split (``split.json`` + the scores in the metadata) or of an evaluation;
  :func:`misclassified` lists the false positives and negatives among them at a threshold,
  hardest first, and :func:`error_overlap` / :func:`overlap_summary` say which errors several
  models share and which are one model's own;
- :func:`table_csv` / :func:`metrics_json` export what the page shows.

All metrics come from :mod:`maskdet.evaluation.metrics` (:func:`~maskdet.evaluation.metrics.compute_metrics`,
:func:`~maskdet.evaluation.metrics.calibration`), the one implementation the CLI, the training engine
and the tests share.
"""

from __future__ import annotations

import hashlib
import json
import logging
import statistics
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Literal

import numpy as np
import pandas as pd
import torch
from PIL import Image

from maskdet.zoo.folders import card_scores, load_model, load_split, model_classes, operating_threshold
from maskdet.inference.predictor import Classifier
from maskdet.data.datasets import load_catalog, scan_dataset
from maskdet.evaluation.folder import evaluate_folder
from maskdet.evaluation.metrics import calibration
from maskdet.zoo.decision import WITH_MASK, as_probabilities, predicted_labels
from maskdet.settings import CLASSES, KNOWN_CLASSES, POSITIVE_CLASS, REPO_ROOT, cache_dir, data_root
from maskdet.store import write_json

logger = logging.getLogger(__name__)

LATENCY_RUNS = 30
LATENCY_WARMUP = 3
COMPILE_WAIT_S = 120.0  # compiling takes 5-11 s on 2 quiet cores (runtime.compile_network); far more under load
PROBE_FACE_PX = 160  # a typical face crop; the Classifier resizes it, as it does in the product
EVALUATIONS_SUBDIR = "evaluations"
EVALUATION_CACHE_VERSION = 2  # 2: file paths kept for the error gallery

Direction = Literal["max", "min"]
StageProgress = Callable[[str, int, int], None]
"""Called as ``progress(stage, done, total)``; stage is ``"reading"`` (first visit of a folder) or ``"classifying"``."""

# Table columns, in display order. Per-class columns are generated from CLASSES.
COL_MODEL = "model"
COL_ARCH = "arch"
COL_ACCURACY = "accuracy"
COL_AUC = "ROC AUC"
COL_AP = "avg precision"
COL_FP = "false positives"
COL_FN = "false negatives"
COL_ECE = "ECE"
COL_BRIER = "Brier score"
COL_THRESHOLD = "operating threshold"
COL_N = "test images"
COL_PARAMS = "parameters"
COL_SIZE = "checkpoint MB"
COL_TRAIN_S = "training s"
COL_LATENCY = "CPU ms / face"
COL_OUTSIDE = "unseen faces of a class the model lacks"
COL_OUTSIDE_MASKED = "of those, called with_mask"


def class_column(metric: str, class_name: str) -> str:
    """Column name of a per-class metric, e.g. ``F1 with_mask``."""
    return f"{metric} {class_name}"


PER_CLASS_METRICS = ("precision", "recall", "F1")
BEST_DIRECTION: dict[str, Direction] = {
    COL_ACCURACY: "max",
    COL_AUC: "max",
    COL_AP: "max",
    **{class_column(m, c): "max" for c in KNOWN_CLASSES for m in PER_CLASS_METRICS},
    COL_FP: "min",
    COL_FN: "min",
    COL_ECE: "min",
    COL_BRIER: "min",
    COL_PARAMS: "min",
    COL_SIZE: "min",
    COL_TRAIN_S: "min",
    COL_LATENCY: "min",
}
"""Which way is better for each column that has a best value (``test images``, thresholds and names have none)."""
TABLE_COLUMNS = [COL_MODEL, COL_ARCH, COL_ACCURACY, COL_AUC, COL_AP,
                 *[class_column(m, c) for c in reversed(CLASSES) for m in PER_CLASS_METRICS],
                 COL_FP, COL_FN, COL_ECE, COL_BRIER, COL_THRESHOLD, COL_N, COL_PARAMS, COL_SIZE, COL_TRAIN_S,
                 COL_LATENCY]
"""The columns of a comparison of two-class models; :func:`table_columns` adds the third class's."""


def table_columns(summaries: Sequence[ModelSummary]) -> list[str]:
    """:data:`TABLE_COLUMNS`, plus the ``incorrect_mask`` columns after the others per class when a model knows it."""
    extra = [class_column(m, c) for c in KNOWN_CLASSES[2:] for m in PER_CLASS_METRICS
             if any(c in s.classes for s in summaries)]
    cut = TABLE_COLUMNS.index(COL_FP)
    return [*TABLE_COLUMNS[:cut], *extra, *TABLE_COLUMNS[cut:]]
TEST_SPLIT = "test split"


@dataclass(frozen=True)
class ModelSummary:
    """What the comparison needs about one trained model, read from its metadata (no weights loaded)."""

    name: str
    arch: str
    path: Path
    created: str
    weights_sha256: str
    input_size: int
    test: dict | None  # compute_metrics() of the held-out test split; None if the model did not record it
    labels: list[int] = field(repr=False)  # held-out test labels, for curves
    scores: list = field(repr=False)  # P(with_mask) of the same images (three-class models: class probabilities)
    history: list[dict] = field(repr=False)  # per epoch: epoch, train_loss, train_acc, val_loss, val_acc
    params: int | None
    weights_bytes: int | None
    training_seconds: float | None
    training_data: str | None
    training_fingerprint: str | None
    latency_ms: float | None = None  # filled in by with_latency()
    identity: str = ""  # weights SHA-256 plus how they are read (arch, input, classes): the cache key
    operating_threshold: float = 0.5  # the card's p(with_mask) from which a face is with_mask
    classes: tuple[str, ...] = CLASSES  # the model's classes (its card's list)
    has_validation_scores: bool = False  # the card stores them: the threshold can be chosen on them
    threshold_chosen_on: str | None = None  # which data that threshold was chosen on, when recorded

    @property
    def cache_key(self) -> str:
        return self.identity or self.weights_sha256


def summarize(metadata: dict) -> ModelSummary:
    """A :class:`ModelSummary` from :func:`maskdet.zoo.folders.list_models` metadata; missing parts become None."""
    test_eval = (metadata.get("evaluation") or {}).get("test") or {}
    dataset = metadata.get("dataset") or {}
    weights = metadata.get("weights") or {}
    params = (metadata.get("params") or {}).get("total")
    seconds = metadata.get("training_seconds")
    return ModelSummary(
        name=str(metadata["name"]),
        arch=str(metadata.get("arch", "?")),
        path=Path(metadata["path"]),
        created=str(metadata.get("created", "")),
        weights_sha256=str(weights.get("sha256", "")),
        input_size=int((metadata.get("input") or {}).get("size", 0)),
        test=(metadata.get("metrics") or {}).get("test"),
        labels=[int(v) for v in test_eval.get("labels", [])],
        scores=list(test_eval.get("probabilities") or test_eval.get("scores") or []),
        history=list(metadata.get("history") or []),
        params=int(params) if params is not None else None,
        weights_bytes=int(weights["bytes"]) if "bytes" in weights else None,
        training_seconds=float(seconds) if seconds is not None else None,
        training_data=dataset.get("path"),
        training_fingerprint=dataset.get("fingerprint"),
        identity=_identity(metadata, str(weights.get("sha256", ""))),
        operating_threshold=operating_threshold(metadata),
        threshold_chosen_on=metadata.get("operating_threshold_chosen_on"),
        classes=model_classes(metadata),
        has_validation_scores=card_scores(metadata, "val") is not None,
    )


def _identity(metadata: dict, weights_sha256: str) -> str:
    """Same weights read as another arch, input or class list are another model: key caches on all of it."""
    if not weights_sha256:
        return ""
    described = {"weights": weights_sha256, "arch": metadata.get("arch"), "input": metadata.get("input"),
                 "classes": metadata.get("classes")}
    return hashlib.sha256(json.dumps(described, sort_keys=True, default=str).encode()).hexdigest()[:32]


# --- CPU latency ----------------------------------------------------------------------------------

_latency_ms: dict[str, float] = {}
# NOTE: one lock for all measurements. Several Streamlit sessions may ask at once; timing two
# models concurrently on a shared CPU would make both numbers wrong, so measurements queue up.
_latency_lock = threading.Lock()


def probe_face(size: int = PROBE_FACE_PX) -> Image.Image:
    """A smooth, face-crop-sized RGB image (fixed seed): latency does not depend on the pixels."""
    generator = torch.Generator().manual_seed(0)
    coarse = torch.rand(1, 3, 8, 8, generator=generator)
    pixels = torch.nn.functional.interpolate(coarse, size=(size, size), mode="bilinear")[0]
    return Image.fromarray((pixels.permute(1, 2, 0).numpy() * 255).astype(np.uint8), "RGB")


def measure_latency_ms(classifier: Classifier, runs: int = LATENCY_RUNS, warmup: int = LATENCY_WARMUP) -> float:
    """Median wall time, in ms, of ``classifier.predict_proba`` on one face crop (resize + normalise + forward)."""
    if runs < 1:
        raise ValueError("runs must be at least 1")
    face = probe_face()
    for _ in range(warmup):
        classifier.predict_proba([face])
    timings = []
    for _ in range(runs):
        start = time.perf_counter()
        classifier.predict_proba([face])
        timings.append(time.perf_counter() - start)
    return statistics.median(timings) * 1000


def cpu_latency_ms(summary: ModelSummary, runs: int = LATENCY_RUNS, classifier: Classifier | None = None) -> float:
    """CPU latency per face of ``summary``'s model, measured once per weights and serving path per process.

    ``classifier``: the instance the product serves the model with (the dashboard's cached, compiled one),
    so the figure is what a user gets; its compilation is waited for (up to ``COMPILE_WAIT_S``). Without
    it a fresh eager classifier is timed. Raises :class:`maskdet.zoo.folders.CheckpointError` when the
    model cannot be loaded.
    """
    with _latency_lock:
        key = f"{summary.cache_key}-fresh"
        if classifier is not None:
            classifier.wait_for_compilation(timeout=COMPILE_WAIT_S)
            key = f"{summary.cache_key}-{classifier.backend.name}-{classifier.precision}-{classifier.compiled}"
        cached = _latency_ms.get(key)
        if cached is None:
            cached = measure_latency_ms(classifier or Classifier(load_model(summary.path, device="cpu")), runs=runs)
            _latency_ms[key] = cached
            logger.info("CPU latency of %s (%s): %.2f ms per face (median of %d)", summary.name, key, cached, runs)
        return cached


def with_latency(summary: ModelSummary, runs: int = LATENCY_RUNS, classifier: Classifier | None = None) -> ModelSummary:
    """A copy of ``summary`` with ``latency_ms`` measured (or taken from the in-memory cache)."""
    return replace(summary, latency_ms=cpu_latency_ms(summary, runs=runs, classifier=classifier))


# --- the comparison table -------------------------------------------------------------------------

def _metric(metrics: dict | None, key: str) -> float | None:
    return None if metrics is None else metrics.get(key)


def comparison_table(summaries: Sequence[ModelSummary]) -> pd.DataFrame:
    """One row per model, columns :func:`table_columns`; unknown values are NaN (a two-class model has no
    ``incorrect_mask`` figures)."""
    rows = []
    for s in summaries:
        test = s.test
        reliability = calibration(s.labels, s.scores)
        per_class = (test or {}).get("per_class", {})
        row: dict[str, object] = {
            COL_MODEL: s.name,
            COL_ARCH: s.arch,
            COL_ACCURACY: _metric(test, "accuracy"),
            COL_AUC: _metric(test, "roc_auc"),
            COL_AP: _metric(test, "average_precision"),
            COL_FP: _metric(test, "false_positives"),
            COL_FN: _metric(test, "false_negatives"),
            COL_ECE: _metric(reliability, "expected_calibration_error"),
            COL_BRIER: _metric(reliability, "brier_score"),
            COL_THRESHOLD: s.operating_threshold,
            COL_N: _metric(test, "n"),
            COL_PARAMS: s.params,
            COL_SIZE: None if s.weights_bytes is None else s.weights_bytes / 1e6,
            COL_TRAIN_S: s.training_seconds,
            COL_LATENCY: s.latency_ms,
        }
        for class_name in KNOWN_CLASSES:
            values = per_class.get(class_name, {})
            for metric in PER_CLASS_METRICS:
                row[class_column(metric, class_name)] = values.get(metric.lower())
        rows.append(row)
    columns = table_columns(summaries)
    frame = pd.DataFrame(rows, columns=columns)
    numeric = [c for c in columns if c not in (COL_MODEL, COL_ARCH)]
    frame[numeric] = frame[numeric].apply(pd.to_numeric, errors="coerce").astype("float64")
    return frame


def best_mask(frame: pd.DataFrame, directions: Mapping[str, Direction] = BEST_DIRECTION) -> pd.DataFrame:
    """Boolean frame shaped like ``frame``: True where a cell holds its column's best value (ties all win).

    Only columns in ``directions`` take part, and only when at least two models have a value:
    a lone number is not "best" of anything.
    """
    mask = pd.DataFrame(False, index=frame.index, columns=frame.columns)
    for column, direction in directions.items():
        if column not in frame.columns:
            continue
        values = pd.to_numeric(frame[column], errors="coerce")
        if values.notna().sum() < 2:
            continue
        best = values.max() if direction == "max" else values.min()
        mask[column] = np.isclose(values.to_numpy(dtype=float), best, rtol=1e-12, atol=0.0)
    return mask


# --- unseen data ----------------------------------------------------------------------------------

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
                           labels=self.labels, scores=self.scores)


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
    summary: ModelSummary, data: str | Path, progress: StageProgress | None = None
) -> DataEvaluation:
    """Score ``summary``'s model on every readable image of ``data``; cached per (weights, data fingerprint).

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
    classifier = Classifier(load_model(summary.path, device="cpu"))
    result = evaluate_folder(classifier, data, progress=report("classifying"))
    evaluation = DataEvaluation(
        model=summary.name, weights_sha256=summary.weights_sha256, data=str(result.data), fingerprint=fingerprint,
        metrics=result.metrics, relpaths=list(result.relpaths), labels=result.labels.tolist(),
        scores=np.round(result.scores, 6).tolist(),
        unreadable=len(result.unreadable),
    )
    write_json(evaluation_cache_path(summary.cache_key, fingerprint), evaluation.to_json())
    return evaluation


def unseen_table(summaries: Sequence[ModelSummary], evaluations: Mapping[str, DataEvaluation]) -> pd.DataFrame:
    """Held-out test numbers next to unseen-data numbers, one row per evaluated model (keyed by name)."""
    rows = []
    for s in summaries:
        evaluation = evaluations.get(s.name)
        if evaluation is None:
            continue
        row: dict[str, object] = {COL_MODEL: s.name, "unseen images": evaluation.metrics["n"]}
        for label, key in (("accuracy", "accuracy"), ("ROC AUC", "roc_auc"), ("avg precision", "average_precision")):
            test_value, unseen_value = _metric(s.test, key), evaluation.metrics.get(key)
            row[f"test {label}"] = test_value
            row[f"unseen {label}"] = unseen_value
            row[f"Δ {label}"] = None if test_value is None or unseen_value is None else unseen_value - test_value
        row[f"unseen {COL_FP}"] = evaluation.metrics["false_positives"]
        row[f"unseen {COL_FN}"] = evaluation.metrics["false_negatives"]
        outside = evaluation.metrics.get("outside_classes") or {}
        # A class the model does not know (incorrect_mask for a two-class model): its faces are neither
        # errors nor right; how many there were and how many the model called with_mask, apart.
        row[COL_OUTSIDE] = sum(v["faces"] for v in outside.values())
        row[COL_OUTSIDE_MASKED] = sum(v["called"].get(POSITIVE_CLASS, 0) for v in outside.values())
        reliability = calibration(evaluation.labels, evaluation.scores)
        row[f"unseen {COL_ECE}"] = _metric(reliability, "expected_calibration_error")
        row[f"unseen {COL_BRIER}"] = _metric(reliability, "brier_score")
        rows.append(row)
    return pd.DataFrame(rows)


# --- errors ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ScoredFiles:
    """Image files with their true labels and a model's P(with_mask): a test split or an unseen-data evaluation."""

    source: str  # "test split" or the evaluated folder's name
    root: Path | None  # the folder ``relpaths`` are relative to; None when it cannot be found on this machine
    relpaths: list[str] = field(repr=False)
    labels: list[int] = field(repr=False)
    scores: list[float] = field(repr=False)

    def file_key(self, relpath: str) -> str:
        """What identifies a file across models: its path (two models' test splits of one folder meet here)."""
        return str(self.root / relpath) if self.root is not None else f"{self.source}:{relpath}"


@dataclass(frozen=True)
class Misclassified:
    """One wrong verdict of a model at a threshold: a false positive, a false negative or (three classes) a
    face of one not-masked class called the other."""

    relpath: str
    key: str  # :meth:`ScoredFiles.file_key`
    path: Path | None  # the image file, when its folder is known
    true_label: str
    predicted_label: str
    p_with_mask: float
    confidence: float  # the probability of ``predicted_label``
    margin: float  # |p(with_mask) - threshold|: how sure the model was of its mistake

    @property
    def kind(self) -> str:
        """``FP`` (a face without a proper mask called with_mask), ``FN`` (a masked face called anything else) or
        ``mixed`` (bare called incorrect_mask or the reverse: not masked either way)."""
        if self.predicted_label == POSITIVE_CLASS:
            return "FP"
        return "FN" if self.true_label == POSITIVE_CLASS else MIXED

    @property
    def name(self) -> str:
        return PurePosixPath(self.relpath).name


def locate_folder(recorded: str | None) -> Path | None:
    """The folder a model's metadata recorded as its training data, found on this machine, or None.

    Paths are recorded as given at training time (often relative to the repository, e.g.
    ``../shared/datasets/face-mask-4k``): tried as they are, then from the repository root, then
    as a data set of that name under :func:`maskdet.settings.data_root`.
    """
    if not recorded:
        return None
    path = Path(recorded).expanduser()
    candidates = [path] if path.is_absolute() else [path, REPO_ROOT / path]
    candidates.append(data_root() / path.name)
    found = next((candidate for candidate in candidates if candidate.is_dir()), None)
    return None if found is None else found.resolve()


def held_out_files(summary: ModelSummary) -> ScoredFiles | None:
    """The held-out test files of ``summary``'s model (its ``split.json``) with the test scores of its metadata.

    None when the model kept no split or no scores, or when they do not line up (a split file
    that lists other files or labels than the scores were computed on).
    """
    try:
        split = load_split(summary.path)
    except (OSError, ValueError) as exc:
        logger.warning("%s: unreadable split file (%s)", summary.name, exc)
        return None
    if not split or not summary.scores:
        return None
    relpaths, labels = split.get("test"), split.get("labels") or {}
    if not isinstance(relpaths, list) or len(relpaths) != len(summary.labels) or not isinstance(labels, dict):
        logger.warning("%s: split.json does not match the stored test scores", summary.name)
        return None
    if any(labels.get(relpath) != label for relpath, label in zip(relpaths, summary.labels, strict=True)):
        logger.warning("%s: split.json labels differ from the stored test labels", summary.name)
        return None
    return ScoredFiles(source=TEST_SPLIT, root=locate_folder(summary.training_data), relpaths=[str(p) for p in relpaths],
                       labels=summary.labels, scores=summary.scores)


def misclassified(files: ScoredFiles, threshold: float) -> list[Misclassified]:
    """The wrong verdicts among ``files`` at ``threshold``, hardest (most confident) first. Files of a class the
    model does not know are not errors (the comparison reports them apart)."""
    probabilities = as_probabilities(files.scores) if len(files.scores) else np.zeros((0, 2))
    labels = np.asarray(files.labels, dtype=np.int64)
    predicted = predicted_labels(probabilities, threshold)
    p_masked = probabilities[:, WITH_MASK]
    errors = [
        Misclassified(
            relpath=files.relpaths[i], key=files.file_key(files.relpaths[i]),
            path=None if files.root is None else files.root / files.relpaths[i],
            true_label=KNOWN_CLASSES[labels[i]], predicted_label=KNOWN_CLASSES[predicted[i]],
            p_with_mask=float(p_masked[i]), confidence=float(probabilities[i, predicted[i]]),
            margin=abs(float(p_masked[i]) - threshold),
        )
        for i in np.flatnonzero((predicted != labels) & (labels < probabilities.shape[1]))
    ]
    return sorted(errors, key=lambda e: (-e.margin, e.relpath))


ERROR_RIGHT = "right"
ERROR_NOT_SCORED = "—"
MIXED = "mixed"
WRONG = ("FP", "FN", MIXED)
SHARED, OWN, NOT_COMPARED = "shared", "own", "not compared"


def error_overlap(errors: Mapping[str, Sequence[Misclassified]], scored: Mapping[str, ScoredFiles]) -> pd.DataFrame:
    """One row per file some model got wrong (indexed by file key), one column per model: ``FP``, ``FN``,
    ``right`` or ``—`` (the model never scored that file: another test split).

    Column ``wrong in`` counts the models that err on the file; rows are sorted by it, most shared
    first, then by file.
    """
    seen = {name: {files.file_key(p) for p in files.relpaths} for name, files in scored.items()}
    wrong = {name: {e.key: e for e in model_errors} for name, model_errors in errors.items()}
    keys = sorted({key for model_errors in wrong.values() for key in model_errors})
    rows = []
    for key in keys:
        first = next(model_errors[key] for model_errors in wrong.values() if key in model_errors)
        row: dict[str, object] = {"file": first.relpath, "true label": first.true_label}
        for name in errors:
            row[name] = (wrong[name][key].kind if key in wrong[name]
                         else ERROR_RIGHT if key in seen.get(name, ()) else ERROR_NOT_SCORED)
        row["wrong in"] = sum(key in wrong[name] for name in errors)
        rows.append(row)
    frame = pd.DataFrame(rows, columns=["file", "true label", *errors, "wrong in"], index=pd.Index(keys, name="key"))
    return frame.sort_values(["wrong in", "file"], ascending=[False, True], kind="stable")


def error_sharing(overlap: pd.DataFrame, name: str) -> pd.Series:
    """For each error of model ``name`` (by file key): ``shared``, ``own`` or ``not compared``.

    *Shared*: at least one other model gets the file wrong too. *Own*: every other model that
    scored the file gets it right. *Not compared*: no other model scored it.
    """
    mine = overlap[overlap[name].isin(WRONG)]
    others = mine[[c for c in overlap.columns if c not in ("file", "true label", "wrong in", name)]]
    shared = others.isin(WRONG).any(axis=1)
    compared = (others != ERROR_NOT_SCORED).any(axis=1)
    return pd.Series(np.where(shared, SHARED, np.where(compared, OWN, NOT_COMPARED)), index=mine.index, dtype=object)


def overlap_summary(overlap: pd.DataFrame, models: Sequence[str]) -> pd.DataFrame:
    """Per model: its errors (FP, FN) and how many of them are shared with another model or its own."""
    rows = []
    for name in models:
        kinds = overlap.loc[overlap[name].isin(WRONG), name]
        sharing = error_sharing(overlap, name)
        rows.append({COL_MODEL: name, "errors": len(kinds), "FP": int((kinds == "FP").sum()),
                     "FN": int((kinds == "FN").sum()), SHARED: int((sharing == SHARED).sum()),
                     OWN: int((sharing == OWN).sum())})
    return pd.DataFrame(rows, columns=[COL_MODEL, "errors", "FP", "FN", SHARED, OWN])


# --- export ---------------------------------------------------------------------------------------

def table_csv(frame: pd.DataFrame) -> str:
    """The comparison table as CSV text (full precision, no index)."""
    return frame.to_csv(index=False)


def metrics_json(summaries: Sequence[ModelSummary], unseen: Sequence[DataEvaluation] = ()) -> str:
    """Every model's full held-out metrics, cost figures and unseen-data metrics as a JSON document."""
    by_sha: dict[str, list[dict]] = {}
    for evaluation in unseen:
        by_sha.setdefault(evaluation.weights_sha256, []).append(
            {"data": evaluation.data, "fingerprint": evaluation.fingerprint, "unreadable": evaluation.unreadable,
             "metrics": evaluation.metrics}
        )
    models = [
        {
            "name": s.name, "arch": s.arch, "classes": list(s.classes), "path": str(s.path), "created": s.created,
            "weights_sha256": s.weights_sha256, "input_size": s.input_size, "params": s.params,
            "checkpoint_bytes": s.weights_bytes, "training_seconds": s.training_seconds,
            "cpu_latency_ms_per_face": s.latency_ms,
            "training_data": {"path": s.training_data, "fingerprint": s.training_fingerprint},
            "operating_threshold": s.operating_threshold, "operating_threshold_chosen_on": s.threshold_chosen_on,
            "test": s.test, "test_calibration": calibration(s.labels, s.scores), "history": s.history,
            "unseen": by_sha.get(s.weights_sha256, []),
        }
        for s in summaries
    ]
    return json.dumps({"positive_class": POSITIVE_CLASS, "models": models}, indent=2)
