"""A model's mistakes: which scored files it gets wrong at a threshold, and which errors models share.

- :func:`held_out_files` / :meth:`maskdet.evaluation.unseen.DataEvaluation.scored_files` give the scored
  files of the held-out test split (``split.json`` + the scores in the metadata) or of an evaluation;
- :func:`misclassified` lists the false positives and negatives among them at a threshold, hardest first;
- :func:`error_image` is the picture of one: the file itself, or for a crop-set model whose crop cache is gone
  the crop cut again from its source photo under the data root (the model folder's ``crops.json``,
  :mod:`maskdet.data.provenance`); :func:`missing_note` says plainly when neither is here;
- :func:`error_overlap` / :func:`error_sharing` say which errors several models share and which are one
  model's own.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd

from PIL import Image

from maskdet.data.images import ImageDecodeError, load_rgb
from maskdet.data.provenance import CropOrigin, CropProvenance
from maskdet.evaluation.summary import ModelSummary
from maskdet.inference.detector import Face, crop_faces
from maskdet.settings import KNOWN_CLASSES, POSITIVE_CLASS, REPO_ROOT, data_root, recorded_path
from maskdet.zoo.decision import WITH_MASK, as_probabilities, predicted_labels
from maskdet.zoo.folders import CheckpointError, load_split, read_crops

logger = logging.getLogger(__name__)

TEST_SPLIT = "test split"


@dataclass(frozen=True)
class ScoredFiles:
    """Image files with their true labels and a model's P(with_mask): a test split or an unseen-data evaluation."""

    source: str  # "test split" or the evaluated folder's name
    root: Path | None  # the folder ``relpaths`` are relative to; None when it cannot be found on this machine
    relpaths: list[str] = field(repr=False)
    labels: list[int] = field(repr=False)
    scores: list = field(repr=False)  # P(with_mask), or class probabilities of a three-class model
    provenance: CropProvenance | None = field(default=None, repr=False)  # a crop-set model's crops.json
    fingerprint: str | None = None  # the evaluated folder's content fingerprint; None for a test split

    def file_key(self, relpath: str) -> str:
        """What identifies a file across models: its path (two models' test splits of one folder meet here)."""
        return str(self.root / relpath) if self.root is not None else f"{self.source}:{relpath}"


@dataclass(frozen=True)
class Recut:
    """How to cut a held-out crop again: its source ``photo`` (here or not), the face ``box`` and crop ``margin``."""

    photo: Path
    box: tuple[int, int, int, int]
    margin: float
    occluded: bool  # the crop was an occluded copy: the re-cut shows the bare face

    @classmethod
    def of(cls, origin: CropOrigin, margin: float) -> Recut:
        """Where ``origin``'s photo lies on this machine: ``<data root>/<source>/<photo>``."""
        return cls(data_root() / origin.source / origin.photo, origin.box, margin, origin.occluded)

    def cut(self) -> Image.Image:
        """The crop cut again exactly as :mod:`maskdet.training.crops` cut it; :class:`ImageDecodeError` when the
        photo is not here or not readable."""
        return crop_faces(load_rgb(self.photo), [Face(box=self.box, score=1.0)], margin=self.margin)[0]


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
    recut: Recut | None = None  # how to cut the crop again from its photo (crop-set models with crops.json)

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


def error_image(error: Misclassified) -> Image.Image:
    """The misclassified picture: its file when it is here, else its crop cut again from its source photo;
    :class:`ImageDecodeError` when neither is here (:func:`missing_note` says so in words)."""
    if error.path is not None and error.path.is_file():
        return load_rgb(error.path)
    if error.recut is not None and error.recut.photo.is_file():
        return error.recut.cut()
    raise ImageDecodeError(missing_note(error))


def missing_note(error: Misclassified) -> str:
    """What is not here when :func:`error_image` fails: the crop, and its photo when the model recorded one."""
    if error.recut is None:
        return "file not found here"
    return f"neither the crop nor its photo {error.recut.photo} is here"


def locate_folder(recorded: str | None) -> Path | None:
    """The folder a model's metadata recorded as its training data, found on this machine, or None.

    Paths are recorded as given at training time (often relative to the repository, e.g.
    ``../shared/datasets/face-mask-4k``; a crop set as ``$MASKDET_CACHE_DIR/crops/NAME``): tried as they are, then from the repository root, then
    as a data set of that name under :func:`maskdet.settings.data_root`.
    """
    if not recorded:
        return None
    path = recorded_path(recorded)
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
    try:
        provenance = read_crops(summary.path)
    except CheckpointError as exc:
        logger.warning("%s: crop origins not used (%s)", summary.name, exc)
        provenance = None
    return ScoredFiles(source=TEST_SPLIT, root=locate_folder(summary.training_data), relpaths=[str(p) for p in relpaths],
                       labels=summary.labels, scores=summary.scores, provenance=provenance)


def misclassified(files: ScoredFiles, threshold: float) -> list[Misclassified]:
    """The wrong verdicts among ``files`` at ``threshold``, hardest (most confident) first. Files of a class the
    model does not know are not errors (the comparison reports them apart)."""
    probabilities = as_probabilities(files.scores) if len(files.scores) else np.zeros((0, 2))
    labels = np.asarray(files.labels, dtype=np.int64)
    predicted = predicted_labels(probabilities, threshold)
    p_masked = probabilities[:, WITH_MASK]
    origins, crop_margin = ({}, 0.0) if files.provenance is None else (files.provenance.crops, files.provenance.margin)
    errors = [
        Misclassified(
            relpath=files.relpaths[i], key=files.file_key(files.relpaths[i]),
            path=None if files.root is None else files.root / files.relpaths[i],
            true_label=KNOWN_CLASSES[labels[i]], predicted_label=KNOWN_CLASSES[predicted[i]],
            p_with_mask=float(p_masked[i]), confidence=float(probabilities[i, predicted[i]]),
            margin=abs(float(p_masked[i]) - threshold),
            recut=None if (origin := origins.get(files.relpaths[i])) is None else Recut.of(origin, crop_margin),
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
