"""Near-duplicate grouping: sub-quadratic, the same groups as before, computed once per audit (issue 18, defect 11)."""

from __future__ import annotations

import json

import numpy as np

import maskdet.data.split
from maskdet.data.audit import audit_catalog
from maskdet.data.datasets import load_catalog
from maskdet.settings import REPO_ROOT
from maskdet.data.split import close_pairs, make_split, near_duplicate_groups


def _planted(size: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    hashes = rng.integers(0, 2**63, size=size, dtype=np.uint64)
    copies, sources = rng.choice(size, size // 4, replace=False), rng.choice(size, size // 4)
    flips = np.zeros(size // 4, dtype=np.uint64)
    for _ in range(int(rng.integers(1, 12))):
        flips ^= np.uint64(1) << rng.integers(0, 64, size // 4).astype(np.uint64)
    hashes[copies] = hashes[sources] ^ flips
    return hashes


def test_close_pairs_are_exactly_the_pairs_within_the_distance() -> None:
    """Multi-index hashing finds every pair a full comparison finds, and no other (distances 0..12 planted)."""
    for seed, distance in ((0, 8), (1, 8), (2, 3), (3, 0), (4, 12)):
        hashes = _planted(1500, seed)
        full = np.bitwise_count(hashes[:, None] ^ hashes[None, :]) <= distance
        expected = np.argwhere(np.triu(full, k=1))
        np.testing.assert_array_equal(close_pairs(hashes, distance), expected)


def test_groups_join_transitively_and_are_numbered_by_first_appearance() -> None:
    hashes = np.array([0b0, 0b1, 0b11, 0xFFFF0000, 0b111, 0xFFFF0001], dtype=np.uint64)
    assert near_duplicate_groups(hashes, max_distance=1).tolist() == [0, 0, 0, 1, 0, 1]
    assert near_duplicate_groups(np.zeros(0, dtype=np.uint64)).tolist() == []


def test_face_mask_4k_splits_exactly_as_the_shipped_models_were_split(datasets_root) -> None:
    """The shipped models' split.json was made with the old quadratic union-find: same groups, same split."""
    # simple_cnn and mlp trained on face-mask-4k itself (the default now trains on a crop set with its own split).
    shipped = json.loads((REPO_ROOT / "models" / "simple_cnn" / "split.json").read_text())
    split = make_split(load_catalog(datasets_root / "face-mask-4k"), seed=shipped["seed"]).to_json()
    for part in ("train", "val", "test", "excluded_conflicts"):
        differ = set(split[part]) ^ set(shipped[part])
        assert split[part] == shipped[part], f"{part}: {len(differ)} files differ, e.g. {sorted(differ)[:5]}"


def test_an_audit_groups_near_duplicates_once(datasets_root, monkeypatch) -> None:
    calls = []
    real = maskdet.data.split.near_duplicate_groups
    monkeypatch.setattr(maskdet.data.split, "near_duplicate_groups", lambda *a, **k: calls.append(1) or real(*a, **k))
    audit = audit_catalog(load_catalog(datasets_root / "synthetic-masks-2k"))
    assert len(calls) == 1, f"near-duplicate groups computed {len(calls)} times in one audit"
    assert audit.split_leaks == []
