"""Comparable by construction: every model scored on one held-out set, and "best" only within a set.

Each model's own test split is honest for that model, yet two models' test splits are different data
(the default model's 1,344 crops against face-mask-4k's 613 images), so their numbers side by side
mislead. :func:`common_held_out` finds the files that **every** given model held out (in its test split,
never trained or selected on), identified by content (SHA-256 of the bytes) so that a file linked into a
crops folder and the same file in its source data set meet, and rescores each model on exactly those
files from the scores its metadata already holds (no inference).

:func:`evaluation_table` is :func:`maskdet.evaluation.compare.comparison_table` with the set each row
was measured on (:data:`COL_SET`) and its image count; :func:`best_by_set` marks a best value only
among rows measured on the same set (cost columns, which do not depend on data, across all rows).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath

import pandas as pd

from maskdet.evaluation.compare import (
    BEST_DIRECTION,
    COL_LATENCY,
    COL_MODEL,
    COL_N,
    COL_PARAMS,
    COL_SIZE,
    COL_TRAIN_S,
    best_mask,
    comparison_table,
)
from maskdet.evaluation.errors import TEST_SPLIT, ScoredFiles
from maskdet.evaluation.summary import ModelSummary
from maskdet.evaluation.metrics import compute_metrics
from maskdet.settings import data_root
from maskdet.store import sha256_file

logger = logging.getLogger(__name__)

COL_SET = "evaluated on"
COST_COLUMNS = (COL_PARAMS, COL_SIZE, COL_TRAIN_S, COL_LATENCY)  # the same whatever data a model is scored on

Hasher = Callable[[ScoredFiles], dict[str, str]]
"""Relative path -> content SHA-256 of the files of a :class:`ScoredFiles` that exist here."""


def file_path(files: ScoredFiles, relpath: str) -> Path | None:
    """Where a scored file is on this machine: under its folder, or, for a crops folder that is gone (layout
    ``<class>/<source folder>/<path inside the source>``), in that source folder under the data-set root."""
    if files.root is not None and (files.root / relpath).is_file():
        return files.root / relpath
    parts = PurePosixPath(relpath).parts
    if len(parts) >= 3:
        candidate = data_root() / parts[1] / Path(*parts[2:])
        if candidate.is_file():
            return candidate
    return None


def content_keys(files: ScoredFiles) -> dict[str, str]:
    """Relative path -> SHA-256 of the file's bytes, for every scored file found here."""
    keys = {}
    for relpath in files.relpaths:
        path = file_path(files, relpath)
        if path is not None:
            keys[relpath] = sha256_file(path)
    return keys


@dataclass(frozen=True)
class HeldOutSet:
    """Files every model held out, and each model's scores on them."""

    label: str  # e.g. "face-mask-4k test files held out by all 3 models"
    size: int
    summaries: dict[str, ModelSummary]  # model name -> its summary rescored on the set


def _folder_name(paths: Sequence[Path]) -> str:
    """The data-set folder the files are in (the deepest folder holding them all, below its class folders).

    Links are followed first: a crop set links its image-folder sources in, so the same 613 face-mask-4k files
    are named after face-mask-4k whichever model's copy of the crop set (or none) is on this machine."""
    common = Path(os.path.commonpath([str(p.resolve()) for p in paths]))
    try:
        return common.relative_to(data_root().resolve()).parts[0]
    except (ValueError, IndexError):
        return common.name


def common_held_out(summaries: Sequence[ModelSummary], files: Mapping[str, ScoredFiles],
                    hasher: Hasher = content_keys) -> HeldOutSet | None:
    """The files that every model of ``summaries`` held out (``files``: model name -> its test split's scored
    files), each model rescored on them; None when a model kept no test files or they share none."""
    if not summaries or any(s.name not in files for s in summaries):
        return None
    keyed = {s.name: hasher(files[s.name]) for s in summaries}
    common = set.intersection(*(set(keys.values()) for keys in keyed.values()))
    if not common:
        return None
    rescored: dict[str, ModelSummary] = {}
    where: list[Path] = []
    for s in summaries:
        scored, by_path = files[s.name], keyed[s.name]
        taken: set[str] = set()
        labels, scores = [], []
        for relpath, label, score in zip(scored.relpaths, scored.labels, scored.scores, strict=True):
            key = by_path.get(relpath)
            if key in common and key not in taken:  # a file listed twice counts once
                taken.add(key)
                labels.append(label)
                scores.append(score)
                if s is summaries[0]:
                    where.append(file_path(scored, relpath))
        rescored[s.name] = replace(s, test=compute_metrics(labels, scores), labels=labels, scores=scores)
    label = f"{_folder_name(where)} test files held out by all {len(summaries)}" if len(summaries) > 1 else \
        f"{_folder_name(where)} {TEST_SPLIT}"
    return HeldOutSet(label=label, size=len(common), summaries=rescored)


def own_split_label(summary: ModelSummary) -> str:
    """What a model's own test split is called in a table: its training folder's name and "test split"."""
    folder = PurePosixPath(str(summary.training_data or "")).name
    return f"{folder} {TEST_SPLIT}" if folder else f"own {TEST_SPLIT}"


def evaluation_table(rows: Sequence[tuple[ModelSummary, str]]) -> pd.DataFrame:
    """The comparison table of (summary, name of the set it is scored on) rows, with :data:`COL_SET` after the
    model's name and :data:`~maskdet.evaluation.compare.COL_N`, the images of that set, beside it."""
    frame = comparison_table([summary for summary, _ in rows])
    frame.insert(frame.columns.get_loc(COL_MODEL) + 1, COL_SET, [label for _, label in rows])
    frame.insert(frame.columns.get_loc(COL_SET) + 1, COL_N, frame.pop(COL_N))  # the set's size beside its name
    return frame


def best_by_set(frame: pd.DataFrame) -> pd.DataFrame:
    """:func:`~maskdet.evaluation.compare.best_mask`, with quality columns compared only among rows scored on the
    same set (same :data:`COL_SET` and image count); cost columns are compared across every row."""
    quality = {column: direction for column, direction in BEST_DIRECTION.items() if column not in COST_COLUMNS}
    mask = best_mask(frame, {c: d for c, d in BEST_DIRECTION.items() if c in COST_COLUMNS})
    for _, group in frame.groupby([COL_SET, COL_N], dropna=False, sort=False):
        mask.loc[group.index] |= best_mask(group, quality)
    return mask
