"""Duplicate-aware, stratified, seeded train / val / test splits.

Public face-mask sets contain many copies of the same photo (re-encoded, resized,
slightly cropped). A random split puts copies of test images into training and
inflates accuracy, so images are first grouped by perceptual-hash distance and whole
groups are assigned to one split. Groups whose members carry both labels (label
conflicts) are left out of every split: no honest label exists for them.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import numpy as np

from maskdet.data import Catalog, FileRecord
from maskdet.settings import CLASSES

NEAR_DUPLICATE_BITS = 8  # dHash Hamming distance (of 64) at or below which two images may be one photo
# ... and their 4x4 colour thumbnails must agree too: dHash alone joins unrelated images with
# repetitive structure (product grids, stripes) and a face with / without a drawn-on mask.
THUMB_MEAN_DIFF = 16
THUMB_MAX_DIFF = 48
SPLIT_NAMES = ("train", "val", "test")
DEFAULT_FRACTIONS = (0.7, 0.15, 0.15)


def near_duplicate_groups(
    hashes: np.ndarray, thumbs: np.ndarray | None = None, max_distance: int = NEAR_DUPLICATE_BITS
) -> np.ndarray:
    """Group ids (0..k-1, by first appearance) joining every pair within ``max_distance`` bits
    whose colour thumbnails (when given) also agree.

    Transitive: if a~b and b~c, all three share a group (union-find over all close pairs).
    """
    count = len(hashes)
    parent = np.arange(count)

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return int(i)

    hashes = np.asarray(hashes, dtype=np.uint64)
    block = 1024
    for start in range(0, count, block):
        chunk = hashes[start : start + block]
        distances = np.bitwise_count(chunk[:, None] ^ hashes[None, :])
        rows, cols = np.nonzero(distances <= max_distance)
        for row, col in zip(rows + start, cols, strict=True):
            if col > row and (thumbs is None or _thumbs_agree(thumbs[row], thumbs[col])):
                root_a, root_b = find(row), find(col)
                if root_a != root_b:
                    parent[max(root_a, root_b)] = min(root_a, root_b)
    roots = np.array([find(i) for i in range(count)])
    _, group_ids = np.unique(roots, return_inverse=True)
    # Renumber by first appearance so ids are stable and readable.
    order: dict[int, int] = {}
    return np.array([order.setdefault(int(g), len(order)) for g in group_ids], dtype=np.int64)


def _thumbs_agree(a: np.ndarray, b: np.ndarray) -> bool:
    diff = np.abs(a.astype(np.int16) - b.astype(np.int16))
    return bool(diff.mean() <= THUMB_MEAN_DIFF and diff.max() <= THUMB_MAX_DIFF)


def catalog_groups(catalog: Catalog, max_distance: int = NEAR_DUPLICATE_BITS) -> dict[int, list[FileRecord]]:
    """Near-duplicate groups (including singletons) of a catalogue's readable files."""
    readable = catalog.readable
    if not readable:
        return {}
    ids = near_duplicate_groups(catalog.hashes(readable), catalog.thumbs(readable), max_distance)
    groups: dict[int, list[FileRecord]] = {}
    for record, group in zip(readable, ids, strict=True):
        groups.setdefault(int(group), []).append(record)
    return groups


@dataclass
class DuplicateReport:
    """Near-duplicate structure of a catalogue's readable files."""

    groups: list[list[FileRecord]]  # only groups with two or more members
    conflicts: list[list[FileRecord]]  # groups whose members carry both labels

    @property
    def duplicate_images(self) -> int:
        """Images that are a copy of another one (group size minus one, summed)."""
        return sum(len(g) - 1 for g in self.groups)


def find_duplicates(catalog: Catalog, max_distance: int = NEAR_DUPLICATE_BITS) -> DuplicateReport:
    groups = [g for g in catalog_groups(catalog, max_distance).values() if len(g) > 1]
    conflicts = [g for g in groups if len({r.label for r in g}) > 1]
    return DuplicateReport(groups=groups, conflicts=conflicts)


@dataclass
class Split:
    """Relative paths per split plus what was left out and why."""

    train: list[str]
    val: list[str]
    test: list[str]
    seed: int
    fractions: tuple[float, float, float]
    excluded_conflicts: list[str] = field(default_factory=list)
    labels: dict[str, int] = field(default_factory=dict)  # relpath -> label

    def items(self, name: str) -> list[tuple[str, int]]:
        return [(path, self.labels[path]) for path in getattr(self, name)]

    def counts(self) -> dict[str, dict[str, int]]:
        return {
            name: {cls: sum(1 for p in getattr(self, name) if self.labels[p] == i) for i, cls in enumerate(CLASSES)}
            for name in SPLIT_NAMES
        }

    def to_json(self) -> dict:
        return {
            "seed": self.seed,
            "fractions": list(self.fractions),
            "train": self.train,
            "val": self.val,
            "test": self.test,
            "excluded_conflicts": self.excluded_conflicts,
            "labels": self.labels,
        }

    @classmethod
    def from_json(cls, payload: dict) -> Split:
        return cls(
            train=list(payload["train"]),
            val=list(payload["val"]),
            test=list(payload["test"]),
            seed=int(payload["seed"]),
            fractions=tuple(payload["fractions"]),  # type: ignore[arg-type]
            excluded_conflicts=list(payload.get("excluded_conflicts", [])),
            labels={k: int(v) for k, v in payload["labels"].items()},
        )


def make_split(
    catalog: Catalog,
    seed: int = 0,
    fractions: tuple[float, float, float] = DEFAULT_FRACTIONS,
    max_distance: int = NEAR_DUPLICATE_BITS,
) -> Split:
    """Assign whole near-duplicate groups to train / val / test, per class, as close to ``fractions`` as possible."""
    if abs(sum(fractions) - 1.0) > 1e-6 or min(fractions) < 0:
        raise ValueError(f"split fractions must be non-negative and sum to 1, got {fractions}")
    readable = catalog.readable
    groups = catalog_groups(catalog, max_distance)
    rng = random.Random(seed)
    assigned: dict[str, list[str]] = {name: [] for name in SPLIT_NAMES}
    excluded: list[str] = []
    for label in range(len(CLASSES)):
        class_groups = [g for g in groups.values() if {r.label for r in g} == {label}]
        rng.shuffle(class_groups)
        # Largest groups first, each to the split furthest below its target: exact fractions, no bias.
        class_groups.sort(key=len, reverse=True)
        total = sum(len(g) for g in class_groups)
        filled = dict.fromkeys(SPLIT_NAMES, 0)
        for group in class_groups:
            deficits = {n: fractions[i] * total - filled[n] for i, n in enumerate(SPLIT_NAMES)}
            target = max(SPLIT_NAMES, key=lambda n: deficits[n])
            assigned[target].extend(r.relpath for r in group)
            filled[target] += len(group)
    for group in groups.values():
        if len({r.label for r in group}) > 1:
            excluded.extend(r.relpath for r in group)
    excluded_set = set(excluded)
    labels = {r.relpath: r.label for r in readable if r.relpath not in excluded_set}
    return Split(
        train=sorted(assigned["train"]),
        val=sorted(assigned["val"]),
        test=sorted(assigned["test"]),
        seed=seed,
        fractions=fractions,
        excluded_conflicts=sorted(excluded),
        labels=labels,
    )
