"""maskdet.data.audit on real images: counts, balance, sizes, formats, unreadable files, duplicates, conflicts, split."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from maskdet.data.audit import (
    EXCLUDED,
    IMBALANCE_WARNING_RATIO,
    DatasetAudit,
    audit_dataset,
    find_split_leaks,
    imbalance_ratio,
    sample_files,
)
from maskdet.data.datasets import load_catalog
from maskdet.data.split import SPLIT_NAMES, make_split
from datasets_helpers import build, real_jpegs


@pytest.fixture(autouse=True)
def fresh_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MASKDET_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))


def upright_size(path: Path) -> tuple[int, int]:
    with Image.open(path) as image:
        return ImageOps.exif_transpose(image).size


def test_counts_totals_and_balance(datasets_root: Path, tmp_path: Path) -> None:
    masked = real_jpegs(datasets_root, "with_mask", 6)
    unmasked = real_jpegs(datasets_root, "without_mask", 2)
    root = build(tmp_path / "ds", {"WithMask": masked, "no_mask": unmasked})

    audit = audit_dataset(root)

    assert audit.counts == {"without_mask": 2, "with_mask": 6}
    assert audit.files_per_class == audit.counts
    assert (audit.total_files, audit.total_readable) == (8, 8)
    assert audit.class_folders == {"without_mask": ["no_mask"], "with_mask": ["WithMask"]}
    assert audit.imbalance_ratio == pytest.approx(3.0)
    assert audit.imbalanced and not audit.missing_classes
    assert audit.unreadable == []


def test_balanced_and_one_class(datasets_root: Path, tmp_path: Path) -> None:
    balanced = audit_dataset(
        build(
            tmp_path / "balanced",
            {
                "with_mask": real_jpegs(datasets_root, "with_mask", 4),
                "without_mask": real_jpegs(datasets_root, "without_mask", 4),
            },
        )
    )
    assert balanced.imbalance_ratio == 1.0 and not balanced.imbalanced

    one_class = audit_dataset(build(tmp_path / "one", {"mask": real_jpegs(datasets_root, "with_mask", 3)}))
    assert one_class.counts == {"without_mask": 0, "with_mask": 3}
    assert one_class.missing_classes == ["without_mask"]
    assert math.isinf(one_class.imbalance_ratio) and one_class.imbalanced
    assert one_class.split_counts["train"]["without_mask"] == 0
    assert one_class.split_leaks == []


def test_imbalance_ratio_edges() -> None:
    assert imbalance_ratio({"a": 0, "b": 0}) == 1.0
    assert imbalance_ratio({"a": 10, "b": 0}) == math.inf
    assert imbalance_ratio({"a": 3, "b": 2}) == pytest.approx(1.5)
    assert not (imbalance_ratio({"a": 3, "b": 2}) > IMBALANCE_WARNING_RATIO)


def test_size_statistics_formats_and_modes(datasets_root: Path, tmp_path: Path) -> None:
    masked = real_jpegs(datasets_root, "with_mask", 5)
    unmasked = real_jpegs(datasets_root, "without_mask", 5)
    root = build(tmp_path / "ds", {"with_mask": masked, "without_mask": unmasked})
    # Re-encode three files in other formats / modes, keeping their size.
    for source, target, mode in [
        (masked[0], "with_mask/rgba.png", "RGBA"),
        (masked[1], "with_mask/photo.webp", "RGB"),
        (unmasked[0], "without_mask/gray.png", "L"),
    ]:
        with Image.open(source) as image:
            image.convert(mode).save(root / target)
        (root / target).with_name(source.name).unlink()

    audit = audit_dataset(root)

    sizes = np.array([upright_size(p) for p in sorted(root.rglob("*.*"))], dtype=float)
    widths, heights = sizes[:, 0], sizes[:, 1]
    assert audit.width is not None and audit.height is not None and audit.aspect is not None
    assert audit.width.count == audit.height.count == 10
    assert (audit.width.minimum, audit.width.maximum) == (widths.min(), widths.max())
    assert audit.width.median == pytest.approx(np.median(widths))
    assert audit.height.mean == pytest.approx(heights.mean())
    assert audit.aspect.median == pytest.approx(np.median(widths / heights))
    assert audit.width.p5 <= audit.width.median <= audit.width.p95
    assert audit.formats == {"JPEG": 7, "PNG": 2, "WEBP": 1}
    assert audit.modes == {"RGB": 8, "RGBA": 1, "L": 1}


def test_unreadable_files_are_listed_with_a_reason(datasets_root: Path, tmp_path: Path) -> None:
    masked = real_jpegs(datasets_root, "with_mask", 3)
    root = build(tmp_path / "ds", {"with_mask": masked, "without_mask": real_jpegs(datasets_root, "without_mask", 3)})
    data = masked[0].read_bytes()
    (root / "with_mask" / "truncated.jpg").write_bytes(data[: len(data) // 3])
    (root / "without_mask" / "notes.jpg").write_text("not an image")

    audit = audit_dataset(root)

    reasons = {r.relpath: r.error for r in audit.unreadable}
    assert set(reasons) == {"with_mask/truncated.jpg", "without_mask/notes.jpg"}
    assert "truncated" in reasons["with_mask/truncated.jpg"]
    assert "not an image" in reasons["without_mask/notes.jpg"]
    assert audit.counts == {"without_mask": 3, "with_mask": 3}
    assert audit.files_per_class == {"without_mask": 4, "with_mask": 4}
    assert audit.width is not None and audit.width.count == 6
    assert not any(r.relpath in reasons for records in sample_files(audit, 10, 0).values() for r in records)


def test_all_unreadable(datasets_root: Path, tmp_path: Path) -> None:
    (tmp_path / "ds" / "with_mask").mkdir(parents=True)
    data = real_jpegs(datasets_root, "with_mask", 1)[0].read_bytes()
    (tmp_path / "ds" / "with_mask" / "a.jpg").write_bytes(data[: len(data) // 2])
    (tmp_path / "ds" / "with_mask" / "b.png").write_bytes(b"")

    audit = audit_dataset(tmp_path / "ds")

    assert audit.total_readable == 0 and len(audit.unreadable) == 2
    assert audit.width is None and audit.aspect is None
    assert audit.duplicates.groups == [] and audit.split_leaks == []
    assert all(not records for records in sample_files(audit, 4, 0).values())


def test_duplicates_conflicts_and_split(datasets_root: Path, tmp_path: Path) -> None:
    masked = real_jpegs(datasets_root, "with_mask", 12)
    unmasked = real_jpegs(datasets_root, "without_mask", 12)
    root = build(tmp_path / "ds", {"with_mask": masked, "without_mask": unmasked})
    # A within-class group of three: exact copy and a downscaled PNG re-encode of masked[0].
    shutil.copy(masked[0], root / "with_mask" / "copy.jpg")
    with Image.open(masked[0]) as image:
        ImageOps.exif_transpose(image).resize((image.width * 3 // 4, image.height * 3 // 4)).save(
            root / "with_mask" / "smaller.png"
        )
    # A label conflict: the same photo filed under both classes.
    shutil.copy(unmasked[1], root / "with_mask" / "conflict.jpg")

    audit = audit_dataset(root)

    groups = sorted(sorted(r.relpath for r in g) for g in audit.duplicates.groups)
    assert groups == [
        sorted([f"with_mask/{masked[0].name}", "with_mask/copy.jpg", "with_mask/smaller.png"]),
        sorted([f"without_mask/{unmasked[1].name}", "with_mask/conflict.jpg"]),
    ]
    assert [sorted(r.relpath for r in g) for g in audit.duplicates.conflicts] == [groups[1]]
    assert audit.duplicates.duplicate_images == 3
    # The split is the one training computes, conflicts are left out, and no group crosses splits.
    catalog = load_catalog(root)
    assert audit.split.to_json() == make_split(catalog, seed=0).to_json()
    assert audit.split.excluded_conflicts == groups[1]
    assert audit.split_leaks == []
    placement = {p: name for name in SPLIT_NAMES for p in getattr(audit.split, name)}
    assert len({placement[p] for p in groups[0]}) == 1
    assert sum(sum(c.values()) for c in audit.split_counts.values()) == audit.total_readable - 2


def test_find_split_leaks_reports_a_group_across_splits(datasets_root: Path, tmp_path: Path) -> None:
    masked = real_jpegs(datasets_root, "with_mask", 8)
    root = build(tmp_path / "ds", {"with_mask": masked, "without_mask": real_jpegs(datasets_root, "without_mask", 8)})
    shutil.copy(masked[0], root / "with_mask" / "copy.jpg")
    audit = audit_dataset(root)
    split = audit.split
    moved = "with_mask/copy.jpg"
    home = next(name for name in SPLIT_NAMES if moved in getattr(split, name))
    other = next(name for name in SPLIT_NAMES if name != home)
    getattr(split, home).remove(moved)
    getattr(split, other).append(moved)

    leaks = find_split_leaks(audit.duplicates, split)

    assert len(leaks) == 1
    assert leaks[0].placements[moved] == other
    assert leaks[0].splits == sorted({home, other})
    split.excluded_conflicts.append(moved)
    getattr(split, other).remove(moved)
    assert find_split_leaks(audit.duplicates, split)[0].placements[moved] == EXCLUDED


def test_sample_files_is_reproducible_and_per_class(datasets_root: Path, tmp_path: Path) -> None:
    root = build(
        tmp_path / "ds",
        {
            "with_mask": real_jpegs(datasets_root, "with_mask", 10),
            "without_mask": real_jpegs(datasets_root, "without_mask", 3),
        },
    )
    audit: DatasetAudit = audit_dataset(root)

    first = sample_files(audit, 4, seed=1)
    assert {name: len(records) for name, records in first.items()} == {"without_mask": 3, "with_mask": 4}
    assert all(r.relpath.startswith(f"{name}/") for name, records in first.items() for r in records)
    assert sample_files(audit, 4, seed=1) == first
    draws = {tuple(r.relpath for r in sample_files(audit, 4, seed)["with_mask"]) for seed in range(5)}
    assert len(draws) > 1


def test_face_mask_4k(datasets_root: Path) -> None:
    """The real set: README counts, formats found, duplicates found, and a split without leaks."""
    progress: list[tuple[int, int]] = []
    audit = audit_dataset(datasets_root / "face-mask-4k", progress=lambda done, total: progress.append((done, total)))

    assert progress[-1] == (4094, 4094)
    assert audit.files_per_class == {"without_mask": 1930, "with_mask": 2164}
    assert audit.total_files == 4094
    assert audit.total_readable + len(audit.unreadable) == 4094
    assert not audit.imbalanced
    assert {"JPEG", "PNG", "WEBP"} <= set(audit.formats)
    assert audit.width is not None and audit.width.maximum <= 512
    assert len(audit.duplicates.groups) > 50
    assert audit.split_leaks == []
    counts = audit.split_counts
    for class_name in ("with_mask", "without_mask"):
        total = sum(counts[name][class_name] for name in SPLIT_NAMES)
        assert counts["train"][class_name] / total == pytest.approx(0.7, abs=0.02)


def test_file_with_a_cut_header_is_listed_as_unreadable(datasets_root: Path, tmp_path: Path) -> None:
    root = build(tmp_path / "ds", {"with_mask": real_jpegs(datasets_root, "with_mask", 2)})
    (root / "with_mask" / "header.jpg").write_bytes(b"\xff\xd8\xff\xe0 cut")

    audit = audit_dataset(root)

    assert [r.relpath for r in audit.unreadable] == ["with_mask/header.jpg"]
