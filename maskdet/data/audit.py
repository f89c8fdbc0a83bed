"""Everything a person should know about a data set before training on it, in one typed record.

:func:`audit_catalog` turns a :class:`~maskdet.data.datasets.Catalog` (one decoding pass, cached on
disk) into a :class:`DatasetAudit`: class counts and balance, image size / aspect-ratio
statistics, formats and colour modes, unreadable files, near-duplicate groups and label
conflicts, and the exact train / val / test split training will use (same
:func:`~maskdet.data.split.make_split`, same default seed) together with the check that no
near-duplicate group crosses splits. The Dataset page, the benchmarks and the tests all
read this record, so what the page shows is what training gets.
"""

from __future__ import annotations

import logging
import math
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from maskdet.data.datasets import Catalog, DatasetScan, FileRecord, ProgressFn, build_catalog, scan_dataset
from maskdet.settings import KNOWN_CLASSES
from maskdet.data.split import SPLIT_NAMES, DuplicateReport, Split, catalog_groups, find_duplicates, make_split

logger = logging.getLogger(__name__)

IMBALANCE_WARNING_RATIO = 1.5
"""Largest / smallest class size above which the audit flags the data set as unbalanced:
beyond this plain accuracy starts to flatter a model that favours the big class."""
DEFAULT_SPLIT_SEED = 0
"""Seed of the split shown by the audit; training uses the same default."""
EXCLUDED = "excluded"
"""Placement of files left out of every split (members of label-conflict groups)."""
SHORTCUT_WARNING = 0.65
"""Cross-validated balanced accuracy from which one file property alone predicting the class is flagged: a model
can learn that property (a crop's shape, a format) instead of the mask, and fail where it does not hold."""
SHORTCUT_FOLDS = 5
SHORTCUT_MIN_PER_CLASS = 10  # fewer images of a class and the cross-validated figure means little
NUMERIC_PROPERTIES: dict[str, Callable[[FileRecord], float]] = {
    "aspect ratio (width / height)": lambda r: r.width / r.height,
    "image size (pixels)": lambda r: float(r.width * r.height),
    "file size (bytes)": lambda r: float(r.bytes),
}
CATEGORICAL_PROPERTIES: dict[str, Callable[[FileRecord], str]] = {
    "format": lambda r: r.format,
    "colour mode": lambda r: r.mode,
}


@dataclass(frozen=True)
class Shortcut:
    """How well one simple file property alone predicts the class: the balanced accuracy, cross-validated, of a
    depth-1 decision tree (one threshold, or one format / mode against the rest) on that property."""

    name: str
    balanced_accuracy: float  # 0.5 = no better than chance
    typical: dict[str, str]  # class -> its median (numbers) or most common value (categories)
    rule: str  # the split the tree found on all the data, e.g. "aspect ratio (width / height) <= 0.86"

    @property
    def warns(self) -> bool:
        return self.balanced_accuracy >= SHORTCUT_WARNING


@dataclass(frozen=True)
class NumericStats:
    """Summary of one per-image quantity (width, height or aspect ratio) over readable images."""

    count: int
    minimum: float
    p5: float
    median: float
    mean: float
    p95: float
    maximum: float

    @classmethod
    def of(cls, values: list[float]) -> NumericStats | None:
        """Statistics of ``values``, or None when there are none (no readable image)."""
        if not values:
            return None
        array = np.asarray(values, dtype=np.float64)
        p5, median, p95 = np.percentile(array, [5, 50, 95])
        return cls(
            count=len(values),
            minimum=float(array.min()),
            p5=float(p5),
            median=float(median),
            mean=float(array.mean()),
            p95=float(p95),
            maximum=float(array.max()),
        )


@dataclass(frozen=True)
class SplitLeak:
    """A near-duplicate group whose members were placed in more than one split."""

    files: tuple[str, ...]
    placements: dict[str, str]  # relpath -> "train" / "val" / "test" / EXCLUDED

    @property
    def splits(self) -> list[str]:
        return sorted(set(self.placements.values()))


@dataclass
class DatasetAudit:
    """The audit of one data set folder; built by :func:`audit_catalog`."""

    root: Path
    fingerprint: str
    catalog: Catalog
    class_folders: dict[str, list[str]]  # canonical class -> folder names found for it
    files_per_class: dict[str, int]  # every candidate file, readable or not
    counts: dict[str, int]  # readable images per class: what training can use
    imbalance_ratio: float  # largest / smallest class count; inf when a class has no image
    width: NumericStats | None
    height: NumericStats | None
    aspect: NumericStats | None  # width / height
    formats: dict[str, int]  # decoded format (not the extension) -> readable images
    modes: dict[str, int]  # PIL colour mode as stored in the file -> readable images
    animated: int  # readable files with more than one frame (only the first is used)
    duplicates: DuplicateReport
    split: Split
    split_leaks: list[SplitLeak]
    shortcuts: list[Shortcut] = field(default_factory=list)  # strongest first; see file_shortcuts

    @property
    def warned_shortcuts(self) -> list[Shortcut]:
        """Properties that alone predict the class at least SHORTCUT_WARNING (balanced accuracy)."""
        return [s for s in self.shortcuts if s.warns]

    @property
    def total_files(self) -> int:
        return len(self.catalog.records)

    @property
    def total_readable(self) -> int:
        return sum(self.counts.values())

    @property
    def unreadable(self) -> list[FileRecord]:
        """Files that could not be decoded; ``record.error`` says why."""
        return self.catalog.unreadable

    @property
    def missing_classes(self) -> list[str]:
        """Classes without a single readable image: training is impossible until they have some."""
        return [name for name in self.classes if self.counts[name] == 0]

    @property
    def classes(self) -> tuple[str, ...]:
        """The set's class list (two classes, or three with an ``incorrect_mask`` folder)."""
        return self.catalog.classes

    @property
    def imbalanced(self) -> bool:
        """True when the class sizes differ by more than :data:`IMBALANCE_WARNING_RATIO`."""
        return self.imbalance_ratio > IMBALANCE_WARNING_RATIO

    @property
    def split_counts(self) -> dict[str, dict[str, int]]:
        """Images per split and class (label-conflict groups are in no split)."""
        return self.split.counts()

    def path(self, record: FileRecord) -> Path:
        return self.root / record.relpath


def imbalance_ratio(counts: dict[str, int]) -> float:
    """Largest over smallest class count; ``inf`` if some class is empty, 1.0 if all are."""
    values = list(counts.values())
    if not values or max(values) == 0:
        return 1.0
    if min(values) == 0:
        return math.inf
    return max(values) / min(values)


def find_split_leaks(duplicates: DuplicateReport, split: Split) -> list[SplitLeak]:
    """Near-duplicate groups whose members sit in different splits (or partly outside all).

    A leak means copies of a test image are trained on, so test accuracy is inflated;
    for a split made by :func:`~maskdet.data.split.make_split` this list must be empty.
    """
    placement = {path: name for name in SPLIT_NAMES for path in getattr(split, name)}
    placement.update(dict.fromkeys(split.excluded_conflicts, EXCLUDED))
    leaks = []
    for group in duplicates.groups:
        placements = {r.relpath: placement.get(r.relpath, EXCLUDED) for r in group}
        if len(set(placements.values())) > 1:
            leaks.append(SplitLeak(files=tuple(r.relpath for r in group), placements=placements))
    return leaks


def audit_catalog(catalog: Catalog, scan: DatasetScan | None = None, seed: int = DEFAULT_SPLIT_SEED) -> DatasetAudit:
    """Analyse a catalogue; ``scan`` (when given) adds the class folder names found on disk."""
    readable = catalog.readable
    files_per_class = dict.fromkeys(catalog.classes, 0)
    counts = dict.fromkeys(catalog.classes, 0)
    for record in catalog.records:
        files_per_class[KNOWN_CLASSES[record.label]] += 1
        if record.ok:
            counts[KNOWN_CLASSES[record.label]] += 1
    groups = catalog_groups(catalog)  # once: the report and the split share them
    duplicates = find_duplicates(catalog, groups=groups)
    split = make_split(catalog, seed=seed, groups=groups)
    leaks = find_split_leaks(duplicates, split)
    if leaks:
        logger.error("%d near-duplicate groups cross splits in %s", len(leaks), catalog.root)
    return DatasetAudit(
        root=catalog.root,
        fingerprint=catalog.fingerprint,
        catalog=catalog,
        class_folders=scan.class_folders if scan else {name: [] for name in catalog.classes},
        files_per_class=files_per_class,
        counts=counts,
        imbalance_ratio=imbalance_ratio(counts),
        width=NumericStats.of([r.width for r in readable]),
        height=NumericStats.of([r.height for r in readable]),
        aspect=NumericStats.of([r.width / r.height for r in readable]),
        formats=dict(Counter(r.format for r in readable).most_common()),
        modes=dict(Counter(r.mode for r in readable).most_common()),
        animated=sum(1 for r in readable if r.frames > 1),
        duplicates=duplicates,
        split=split,
        split_leaks=leaks,
        shortcuts=file_shortcuts(readable, catalog.classes),
    )


def _readable(value: float) -> str:
    """A property value for a sentence: 0.793, 1.04, 20,900."""
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"


def _shortcut(name: str, values: np.ndarray, labels: np.ndarray, categorical: bool, folds: int,
              classes: tuple[str, ...]) -> Shortcut:
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.preprocessing import OneHotEncoder
    from sklearn.tree import DecisionTreeClassifier

    if categorical:
        encoder = OneHotEncoder(handle_unknown="ignore", sparse_output=False)
        features = encoder.fit_transform(values.reshape(-1, 1))
        feature_names = [str(c) for c in encoder.categories_[0]]
    else:
        features = values.reshape(-1, 1).astype(np.float64)
    tree = DecisionTreeClassifier(max_depth=1, class_weight="balanced", random_state=0)
    scores = cross_val_score(tree, features, labels, scoring="balanced_accuracy",
                             cv=StratifiedKFold(folds, shuffle=True, random_state=0))
    tree.fit(features, labels)
    rule = "no split"
    if tree.tree_.node_count > 1:
        feature, threshold = int(tree.tree_.feature[0]), float(tree.tree_.threshold[0])
        left, right = (classes[int(tree.classes_[np.argmax(tree.tree_.value[node])])] for node in (1, 2))  # node 0 is the root
        rule = (f"{name} {feature_names[feature]}: {right}, otherwise {left}" if categorical
                else f"{name} ≤ {_readable(threshold)}: {left}, otherwise {right}")
    typical = {}
    for index, class_name in enumerate(classes):
        mine = values[labels == index]
        if not len(mine):
            continue
        typical[class_name] = (Counter(mine.tolist()).most_common(1)[0][0] if categorical
                               else _readable(float(np.median(mine.astype(np.float64)))))
    return Shortcut(name=name, balanced_accuracy=float(np.mean(scores)), typical=typical, rule=rule)


def file_shortcuts(records: list[FileRecord], classes: tuple[str, ...]) -> list[Shortcut]:
    """For each simple file property (aspect ratio, size, file size, format, colour mode): how well it alone
    predicts the class (of ``classes``, indexed by label), strongest first; empty when a class has fewer than
    SHORTCUT_MIN_PER_CLASS images."""
    labels = np.asarray([r.label for r in records], dtype=np.int64)
    per_class = np.bincount(labels, minlength=len(classes)) if len(labels) else np.zeros(len(classes), dtype=int)
    if per_class.min() < SHORTCUT_MIN_PER_CLASS:
        return []
    folds = int(min(SHORTCUT_FOLDS, per_class.min()))
    found = [_shortcut(name, np.asarray([read(r) for r in records], dtype=np.float64), labels, False, folds, classes)
             for name, read in NUMERIC_PROPERTIES.items()]
    found += [_shortcut(name, np.asarray([read(r) for r in records], dtype=object), labels, True, folds, classes)
              for name, read in CATEGORICAL_PROPERTIES.items()]
    return sorted(found, key=lambda s: -s.balanced_accuracy)


def audit_dataset(
    root: str | Path, progress: ProgressFn | None = None, seed: int = DEFAULT_SPLIT_SEED
) -> DatasetAudit:
    """Scan, catalogue (cached by fingerprint) and audit the data set folder ``root``.

    Raises :class:`~maskdet.data.datasets.DatasetError` when the folder is not a data set.
    """
    scan = scan_dataset(root)
    return audit_catalog(build_catalog(scan, progress=progress), scan, seed=seed)


def sample_files(audit: DatasetAudit, per_class: int, seed: int) -> dict[str, list[FileRecord]]:
    """Up to ``per_class`` readable files of each class, drawn at random but reproducibly from ``seed``."""
    rng = random.Random(seed)
    by_class: dict[str, list[FileRecord]] = {name: [] for name in audit.classes}
    for record in audit.catalog.readable:
        by_class[KNOWN_CLASSES[record.label]].append(record)
    return {name: rng.sample(records, min(per_class, len(records))) for name, records in by_class.items()}
