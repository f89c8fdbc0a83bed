"""Does a data-set folder overlap what a model was trained on?

"Unseen data" numbers are honest only when the images are. A model's saved split (``split.json``)
names its train and validation files inside its training folder; :func:`training_overlap` compares a
folder with them by **content** (SHA-256 of the file bytes: a renamed or copied file is still the same
image) and by **near-duplicate group** (the dHash + thumbnail grouping the split itself uses: a
re-encoded, resized or slightly cropped copy is still the same photo). The folder's path and
modification times play no part, so a copy of the training folder, or a zip of it uploaded twice, is
recognised.

A model folder that carries ``seen.json`` (:mod:`maskdet.data.fingerprints`: the hashes of its train and
validation files) is checked against those, so the training data need not be on this machine; an older
folder without it is checked against its training folder when that is here, else not at all (None).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from maskdet.zoo.folders import ModelFolder
from maskdet.data.datasets import Catalog, DatasetError, FileRecord, load_catalog
from maskdet.data.fingerprints import SeenFiles, seen_files
from maskdet.settings import CACHE_PLACEHOLDER, data_root, recorded_path
from maskdet.data.split import near_duplicate_groups
from maskdet.store import sha256_file

logger = logging.getLogger(__name__)

SEEN_SPLITS = ("train", "val")  # what a model learnt from or was selected on; its test split is unseen


@dataclass(frozen=True)
class TrainingOverlap:
    """How many readable images of a folder a model has seen (identical files or near-duplicates)."""

    model: str
    checked: int  # readable images compared
    identical: int  # byte-identical to a training / validation file
    near_duplicates: int  # not identical, but in a near-duplicate group with one
    training_folder: str

    @property
    def overlapping(self) -> int:
        return self.identical + self.near_duplicates

    def message(self) -> str:
        """One clear sentence for the CLI and the pages ("" when there is no overlap)."""
        if not self.overlapping:
            return ""
        return (f"{self.overlapping} of {self.checked} images overlap {self.model}'s training data "
                f"({self.identical} identical files, {self.near_duplicates} near-duplicates of its train/val "
                f"split in {self.training_folder}): these numbers are not unseen data.")

    def to_json(self) -> dict:
        return {"model": self.model, "checked": self.checked, "identical": self.identical,
                "near_duplicates": self.near_duplicates, "training_folder": self.training_folder}


def training_folder(metadata: dict) -> Path:
    """Where a model's training data is: its recorded path, or (relative paths such as the shipped models'
    ``../shared/datasets/NAME``) the folder of that name under the data-set root."""
    raw = str((metadata.get("dataset") or {}).get("path", ""))
    recorded = recorded_path(raw)
    if recorded.is_absolute() and (recorded.is_dir() or raw.startswith(CACHE_PLACEHOLDER)):
        return recorded  # a crop set is named by where it belongs in this cache folder, here or not
    return data_root() / recorded.name


def content_hashes(root: Path, records: list[FileRecord]) -> list[str]:
    """SHA-256 of each record's file bytes."""
    return [sha256_file(root / record.relpath) for record in records]


def training_overlap(model_folder: str | Path | ModelFolder, folder: str | Path, relpaths: list[str] | None = None,
                     catalog: Catalog | None = None) -> TrainingOverlap | None:
    """What of ``folder`` (only ``relpaths`` of it, when given) the model in ``model_folder`` has seen.

    None when the model carries no hashes of its train / val files and has no saved split or its training
    folder is not here (nothing to compare with).
    """
    opened = model_folder if isinstance(model_folder, ModelFolder) else ModelFolder.at(Path(model_folder))
    seen = opened.seen() or _seen_from_training_folder(opened)
    if seen is None:
        return None
    name, train_root = opened.metadata.get("name", opened.name), str(training_folder(opened.metadata))
    catalog = catalog or load_catalog(folder)
    wanted = None if relpaths is None else set(relpaths)
    checked = [r for r in catalog.readable if wanted is None or r.relpath in wanted]
    if not seen.files or not checked:
        return TrainingOverlap(name, len(checked), 0, 0, train_root)
    seen_hashes = seen.sha256s()
    identical = np.array([h in seen_hashes for h in content_hashes(catalog.root, checked)], dtype=bool)
    groups = near_duplicate_groups(np.concatenate([seen.hashes(), catalog.hashes(checked)]),
                                   np.concatenate([seen.thumbs(), catalog.thumbs(checked)]))
    near = np.isin(groups[len(seen.files):], groups[: len(seen.files)]) & ~identical
    return TrainingOverlap(name, len(checked), int(identical.sum()), int(near.sum()), train_root)


def _seen_from_training_folder(opened: ModelFolder) -> SeenFiles | None:
    """The train / val hashes of a model folder from before ``seen.json``, read from its training folder when
    that is here (None otherwise, or without a saved split)."""
    split = opened.split()
    if not split:
        return None
    try:
        train_catalog = load_catalog(training_folder(opened.metadata))
    except DatasetError as exc:
        logger.info("cannot check %s against its training data: %s", opened.name, exc)
        return None
    return seen_files(train_catalog, [path for part in SEEN_SPLITS for path in split.get(part, [])])


def trained_on(metadata: dict) -> set[str]:
    """Names of the data-set folders a model learnt from or chose settings on (its training folder, the sources
    of a crops folder, the data its operating threshold was chosen on): a quick screen before
    :func:`training_overlap` compares contents."""
    dataset = metadata.get("dataset") or {}
    paths = [dataset.get("path"), *((source or {}).get("path") for source in dataset.get("sources") or [])]
    names = {Path(str(path)).name for path in paths if path}
    chosen_on = metadata.get("operating_threshold_chosen_on")
    if chosen_on:
        names.add(str(chosen_on).split(" ")[0])  # "scenes-dev (unseen data)" -> scenes-dev
    return names
