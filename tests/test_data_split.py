"""Data set scanning, class-name normalisation and the duplicate-aware split, on real files."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from maskdet.data.datasets import DatasetError, load_catalog, normalize_class_name, scan_dataset
from maskdet.data.split import find_duplicates, make_split, near_duplicate_groups


@pytest.mark.parametrize("name", ["with_mask", "WithMask", "mask", "masked", "With-Mask"])
def test_with_mask_aliases(name):
    assert normalize_class_name(name) == "with_mask"


@pytest.mark.parametrize("name", ["without_mask", "WithoutMask", "no_mask", "nomask", "unmasked"])
def test_without_mask_aliases(name):
    assert normalize_class_name(name) == "without_mask"


def test_unknown_class_folder_is_named(tmp_path):
    (tmp_path / "cats").mkdir()
    with pytest.raises(DatasetError, match="'cats'"):
        scan_dataset(tmp_path)


def test_empty_and_missing_folders(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        scan_dataset(tmp_path / "missing")
    with pytest.raises(DatasetError, match="no class folders"):
        scan_dataset(tmp_path)
    (tmp_path / "WithMask").mkdir()
    with pytest.raises(DatasetError, match="no files"):
        scan_dataset(tmp_path)


def test_catalog_reports_unreadable_files_and_reads_the_rest(tmp_path, datasets_root):
    source = datasets_root / "face-mask-4k"
    (tmp_path / "WithMask").mkdir()
    (tmp_path / "no_mask").mkdir()
    for path in sorted((source / "with_mask").iterdir())[:5]:
        shutil.copy(path, tmp_path / "WithMask" / path.name)
    for path in sorted((source / "without_mask").iterdir())[:5]:
        shutil.copy(path, tmp_path / "no_mask" / path.name)
    good = sorted((source / "without_mask").iterdir())[0].read_bytes()
    (tmp_path / "no_mask" / "truncated.jpg").write_bytes(good[: len(good) // 3])
    (tmp_path / "no_mask" / "notes.jpg").write_text("not an image")
    (tmp_path / "no_mask" / ".DS_Store").write_bytes(b"\0\0")
    catalog = load_catalog(tmp_path)
    assert len(catalog.records) == 12  # .DS_Store ignored
    bad = {r.relpath: r.error for r in catalog.unreadable}
    assert set(bad) == {"no_mask/truncated.jpg", "no_mask/notes.jpg"}
    assert "not an image" in bad["no_mask/notes.jpg"]
    assert all(r.width > 0 and r.dhash for r in catalog.readable)
    assert {r.label for r in catalog.readable} == {0, 1}


def test_near_duplicate_groups_are_transitive():
    hashes = np.array([0b0, 0b1, 0b11, 0xFFFF_FFFF_0000_0000], dtype=np.uint64)
    ids = near_duplicate_groups(hashes, max_distance=1)
    assert ids[0] == ids[1] == ids[2] != ids[3]


def test_face_mask_4k_split_keeps_duplicates_together(datasets_root):
    catalog = load_catalog(datasets_root / "face-mask-4k")
    report = find_duplicates(catalog)
    # The set is known to hold ~190 exact copies and more near-copies (re-encoded, resized).
    assert report.duplicate_images >= 180
    split = make_split(catalog, seed=0)
    where = {p: name for name in ("train", "val", "test") for p in getattr(split, name)}
    for group in report.groups:
        assert len({where.get(r.relpath) for r in group}) == 1, [r.relpath for r in group]
    total = len(split.train) + len(split.val) + len(split.test)
    assert total + len(split.excluded_conflicts) == len(catalog.readable)
    counts = split.counts()
    for cls in ("with_mask", "without_mask"):
        share = counts["test"][cls] / sum(counts[name][cls] for name in counts)
        assert 0.13 <= share <= 0.17
    assert make_split(catalog, seed=0).test == split.test
    assert make_split(catalog, seed=1).test != split.test


def test_mixed_label_groups_spread_each_label_by_the_fractions():
    """Photos holding several faces (groups with both labels) go whole to one split; each label's
    share per split still lands near 70/15/15."""
    import random

    import numpy as np

    from maskdet.data.split import assign_groups

    rng = np.random.default_rng(0)
    counts = [np.array([rng.integers(0, 3), rng.integers(1, 6)]) for _ in range(400)]
    assigned = assign_groups(counts, (0.7, 0.15, 0.15), random.Random(0))
    totals = np.sum(counts, axis=0)
    for name, fraction in zip(("train", "val", "test"), (0.7, 0.15, 0.15), strict=True):
        share = np.sum([c for c, s in zip(counts, assigned, strict=True) if s == name], axis=0) / totals
        assert np.allclose(share, fraction, atol=0.02), (name, share)
