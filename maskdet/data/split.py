"""Duplicate-aware, stratified, seeded train / val / test splits.

Public face-mask sets contain many copies of the same photo (re-encoded, resized,
slightly cropped). A random split puts copies of test images into training and
inflates accuracy, so images are first grouped by perceptual-hash distance and whole
groups are assigned to one split. Groups whose members carry both labels (label
conflicts) are left out of every split: no honest label exists for them.

A data set built by maskdet's own tools may declare each file's split in its manifest
(:data:`maskdet.data.datasets.DATASET_MANIFEST`), for example so that every crop of one photo lands in the
same split as the photo; declared files keep their split and only the others are grouped and split.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import numpy as np

from maskdet.data.datasets import Catalog, DatasetError, FileRecord, read_manifest
from maskdet.settings import classes_of_labels

NEAR_DUPLICATE_BITS = 8  # dHash Hamming distance (of 64) at or below which two images may be one photo
# ... and their 4x4 colour thumbnails must agree too: dHash alone joins unrelated images with
# repetitive structure (product grids, stripes) and a face with / without a drawn-on mask.
THUMB_MEAN_DIFF = 16
THUMB_MAX_DIFF = 48
SPLIT_NAMES = ("train", "val", "test")
DEFAULT_FRACTIONS = (0.7, 0.15, 0.15)


CHUNK_RADIUS = 2
ROW_BLOCK = 4096
MAX_CHUNK_BITS = 22  # a chunk's lookup table has 2**bits entries (16 MB at 22)
"""Multi-index hashing: each hash is cut into chunks so that two hashes within ``max_distance`` bits agree
within this many bits on at least one chunk (pigeonhole), and candidates are looked up per chunk."""


def close_pairs(hashes: np.ndarray, max_distance: int = NEAR_DUPLICATE_BITS) -> np.ndarray:
    """Index pairs (i, j), i < j, of 64-bit ``hashes`` within ``max_distance`` bits of each other, shape (P, 2).

    Sub-quadratic (multi-index hashing): the 64 bits are cut into ``ceil((max_distance + 1) / (r + 1))``
    chunks (at least three), r = min(CHUNK_RADIUS, max_distance); two hashes that close agree within r bits on some chunk, so
    each hash looks up, per chunk, every value within r bits of its own in a table of the chunk's values.
    Only those candidates are compared on all 64 bits: grouping grows about linearly with the catalogue
    (``benchmarks/bench_groups.py``: 100k images in 4.5 s on a 2-core machine at load 20, where comparing
    every pair took over 295 s).
    """
    hashes = np.asarray(hashes, dtype=np.uint64)
    count = len(hashes)
    radius = min(CHUNK_RADIUS, max_distance)
    chunks = max(-(-(max_distance + 1) // (radius + 1)), -(-64 // MAX_CHUNK_BITS))  # more chunks stay correct
    found: list[np.ndarray] = [np.zeros((0, 2), dtype=np.int64)]
    for start, stop in _chunk_bounds(64, chunks):
        width = stop - start
        values = ((hashes >> np.uint64(start)) & np.uint64((1 << width) - 1)).astype(np.int64)
        order = np.argsort(values, kind="stable")
        distinct, first, runs = np.unique(values[order], return_index=True, return_counts=True)
        table = np.full(1 << width, -1, dtype=np.int32)  # chunk value -> index into ``distinct``
        table[distinct] = np.arange(len(distinct), dtype=np.int32)
        flips = np.array(_masks(width, radius), dtype=np.int64)
        for block in range(0, count, ROW_BLOCK):  # all masks at once, a block of rows at a time (bounded memory)
            rows = np.arange(block, min(block + ROW_BLOCK, count))
            slot = table[values[rows, None] ^ flips[None, :]]
            hit_rows, hit_masks = np.nonzero(slot >= 0)
            buckets = slot[hit_rows, hit_masks]
            sizes = runs[buckets]
            left = np.repeat(rows[hit_rows], sizes)
            offsets = np.arange(sizes.sum()) - np.repeat(np.cumsum(sizes) - sizes, sizes)
            right = order[np.repeat(first[buckets], sizes) + offsets]
            keep = (left < right) & (np.bitwise_count(hashes[left] ^ hashes[right]) <= max_distance)
            found.append(np.stack([left[keep], right[keep]], axis=1))
    return np.unique(np.concatenate(found), axis=0)  # a pair close on several chunks is found on each


def _chunk_bounds(bits: int, chunks: int) -> list[tuple[int, int]]:
    edges = [round(bits * k / chunks) for k in range(chunks + 1)]
    return list(zip(edges[:-1], edges[1:], strict=True))


def _masks(width: int, radius: int) -> list[int]:
    """Every ``width``-bit mask with at most ``radius`` bits set."""
    from itertools import combinations

    return [sum(1 << bit for bit in bits) for r in range(radius + 1) for bits in combinations(range(width), r)]


def near_duplicate_groups(
    hashes: np.ndarray, thumbs: np.ndarray | None = None, max_distance: int = NEAR_DUPLICATE_BITS
) -> np.ndarray:
    """Group ids (0..k-1, by first appearance) joining every pair within ``max_distance`` bits
    whose colour thumbnails (when given) also agree.

    Transitive: if a~b and b~c, all three share a group (connected components of the graph of close pairs).
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    count = len(hashes)
    if count == 0:
        return np.zeros(0, dtype=np.int64)
    pairs = close_pairs(hashes, max_distance)
    if thumbs is not None and len(pairs):
        pairs = pairs[thumbs_agree(thumbs[pairs[:, 0]], thumbs[pairs[:, 1]])]
    graph = coo_matrix((np.ones(len(pairs), dtype=np.int8), (pairs[:, 0], pairs[:, 1])), shape=(count, count))
    _, components = connected_components(graph, directed=False)
    # Renumber by first appearance so ids are stable and readable.
    _, first = np.unique(components, return_index=True)  # components are numbered 0..k-1
    rank = np.empty(len(first), dtype=np.int64)
    rank[np.argsort(first)] = np.arange(len(first))
    return rank[components]


def thumbs_agree(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per row: do the 4x4 colour thumbnails ``a[i]`` and ``b[i]`` ((P, 48) uint8) show one picture?"""
    diff = np.abs(a.astype(np.int16) - b.astype(np.int16))
    return (diff.mean(axis=1) <= THUMB_MEAN_DIFF) & (diff.max(axis=1) <= THUMB_MAX_DIFF)


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


def find_duplicates(catalog: Catalog, max_distance: int = NEAR_DUPLICATE_BITS,
                    groups: dict[int, list[FileRecord]] | None = None) -> DuplicateReport:
    """The near-duplicate report of ``catalog``; ``groups``: its :func:`catalog_groups`, when already computed."""
    groups = [g for g in (groups or catalog_groups(catalog, max_distance)).values() if len(g) > 1]
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

    @property
    def classes(self) -> tuple[str, ...]:
        """The class list its labels cover (two classes, or three with ``incorrect_mask`` files)."""
        return classes_of_labels(self.labels.values())

    def counts(self) -> dict[str, dict[str, int]]:
        return {
            name: {cls: sum(1 for p in getattr(self, name) if self.labels[p] == i) for i, cls in enumerate(self.classes)}
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


def declared_splits(catalog: Catalog) -> dict[str, str]:
    """relpath -> split name for the files whose split the data set's manifest fixes."""
    declared = read_manifest(catalog.root).get("split", {})
    if not isinstance(declared, dict) or not set(declared.values()) <= set(SPLIT_NAMES):
        raise DatasetError(f"{catalog.root}: the manifest's split must map file paths to {', '.join(SPLIT_NAMES)}")
    return declared


def assign_groups(
    group_counts: list[np.ndarray], fractions: tuple[float, float, float], rng: random.Random
) -> list[str]:
    """A split name per group of items with several labels (``group_counts[i][label]`` items each),
    keeping every label's share of each split close to ``fractions``: largest groups first, each to
    the split furthest below its targets, weighted by the group's labels."""
    counts = np.asarray(group_counts, dtype=np.float64).reshape(len(group_counts), -1)
    totals = np.maximum(counts.sum(axis=0), 1.0)
    order = list(range(len(counts)))
    rng.shuffle(order)
    order.sort(key=lambda i: counts[i].sum(), reverse=True)
    filled = np.zeros((len(SPLIT_NAMES), counts.shape[1]))
    assigned = [""] * len(counts)
    for index in order:
        deficits = ((np.asarray(fractions)[:, None] * totals - filled) / totals) @ counts[index]
        target = int(np.argmax(deficits))
        assigned[index] = SPLIT_NAMES[target]
        filled[target] += counts[index]
    return assigned


def make_split(
    catalog: Catalog,
    seed: int = 0,
    fractions: tuple[float, float, float] = DEFAULT_FRACTIONS,
    max_distance: int = NEAR_DUPLICATE_BITS,
    groups: dict[int, list[FileRecord]] | None = None,
) -> Split:
    """Assign whole near-duplicate groups to train / val / test, per class, as close to ``fractions`` as possible.


    ``groups``: the catalogue's :func:`catalog_groups`, when the caller has them already (the audit).
    Files whose split the data set declares (:func:`declared_splits`) keep it.
    """
    declared = declared_splits(catalog)
    if not declared:
        return _split_by_groups(catalog, seed, fractions, max_distance, groups)
    free = Catalog(root=catalog.root, fingerprint=catalog.fingerprint,
                   records=[r for r in catalog.records if r.relpath not in declared])
    if groups is not None:
        groups = {k: kept for k, g in groups.items() if (kept := [r for r in g if r.relpath not in declared])}
    split = _split_by_groups(free, seed, fractions, max_distance, groups)
    for record in catalog.readable:
        if record.relpath in declared:
            getattr(split, declared[record.relpath]).append(record.relpath)
            split.labels[record.relpath] = record.label
    for name in SPLIT_NAMES:
        getattr(split, name).sort()
    return split


def _split_by_groups(
    catalog: Catalog, seed: int, fractions: tuple[float, float, float], max_distance: int,
    groups: dict[int, list[FileRecord]] | None,
) -> Split:
    if abs(sum(fractions) - 1.0) > 1e-6 or min(fractions) < 0:
        raise ValueError(f"split fractions must be non-negative and sum to 1, got {fractions}")
    readable = catalog.readable
    groups = groups or catalog_groups(catalog, max_distance)
    rng = random.Random(seed)
    assigned: dict[str, list[str]] = {name: [] for name in SPLIT_NAMES}
    excluded: list[str] = []
    for label in range(len(catalog.classes)):
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
