"""Synthetic training faces (issue 24), on real faces: CenterFace's landmarks are found; a mask worn low is pasted
only below the nose tip (the nose stays bare, nothing above changes); sunglasses cover the eyes and nothing at the
mouth; a crop set built with either keeps its validation and test files as they were, adds synthetic faces to
train only, the same seed giving the same images."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from datasets_helpers import real_jpegs
from PIL import Image

from maskdet.data.augment import add_eyewear, lower_mask, proper_mask
from maskdet.data.datasets import DATASET_MANIFEST, DatasetError
from maskdet.data.images import load_rgb
from maskdet.inference.detector import get_detector
from maskdet.training.synthetic import (
    EyewearSettings,
    SynthesisSettings,
    build_eyewear_crop_set,
    build_synthetic_crop_set,
    face_landmarks,
)


@pytest.fixture(scope="module")
def detector():
    return get_detector("centerface")


def _faces_with_landmarks(datasets_root, detector, class_name: str, count: int) -> list[tuple[Image.Image, np.ndarray]]:
    found = []
    for path in real_jpegs(datasets_root, class_name, 12):
        image = load_rgb(path)
        points = face_landmarks(detector, image, min_face_share=0.45)
        if points is not None:
            found.append((image, points))
        if len(found) == count:
            return found
    pytest.fail(f"CenterFace found landmarks on fewer than {count} real {class_name} faces")


@pytest.fixture(scope="module")
def bare_and_masked(datasets_root, detector):
    return (_faces_with_landmarks(datasets_root, detector, "without_mask", 2),
            _faces_with_landmarks(datasets_root, detector, "with_mask", 2))


def test_landmarks_lie_where_a_face_has_them(bare_and_masked):
    for image, points in [*bare_and_masked[0], *bare_and_masked[1]]:
        left_eye, right_eye, nose, left_mouth, right_mouth = points
        assert points.shape == (5, 2)
        assert max(left_eye[1], right_eye[1]) < nose[1] < min(left_mouth[1], right_mouth[1])  # eyes > nose > mouth
        assert left_eye[0] < right_eye[0] and left_mouth[0] < right_mouth[0]
        assert 0 <= points[:, 0].min() and points[:, 0].max() <= image.width


@pytest.mark.parametrize("drop", [0.2, 0.5, 1.1])
def test_the_mask_goes_below_the_nose_tip_and_nothing_above_changes(bare_and_masked, drop):
    (bare, bare_points), (masked, masked_points) = bare_and_masked[0][0], bare_and_masked[1][0]
    out = lower_mask(bare, bare_points, masked, masked_points, drop=drop)
    assert out.size == bare.size and out.mode == "RGB"
    changed = np.abs(np.asarray(out, int) - np.asarray(bare, int)).sum(axis=2) > 0
    rows = np.nonzero(changed.any(axis=1))[0]
    nose_y = bare_points[2, 1]
    assert rows.size and rows.min() > nose_y  # the nose tip and everything above it untouched
    # ... and the mask is really there: the band it covers changed across the mouth's width.
    mouth = bare_points[3:]
    band_y = round(nose_y + (drop + 0.3) * (mouth[:, 1].mean() - nose_y))
    x0, x1 = round(mouth[:, 0].min()), round(mouth[:, 0].max())
    if band_y < bare.height:
        assert changed[band_y, x0:x1].mean() > 0.9


def test_the_proper_twin_covers_the_nose_tip_and_the_low_one_leaves_it_bare(bare_and_masked):
    """The pair a model learns the mask's position from: the same donor mask on the same bare face, once over
    the nose (with_mask) and once below it (incorrect_mask); the nose tip is what tells them apart."""
    (bare, bare_points), (masked, masked_points) = bare_and_masked[0][1], bare_and_masked[1][1]
    pixels = np.asarray(bare, int)
    proper = np.abs(np.asarray(proper_mask(bare, bare_points, masked, masked_points), int) - pixels).sum(axis=2)
    low = np.abs(np.asarray(lower_mask(bare, bare_points, masked, masked_points, drop=0.3), int) - pixels).sum(axis=2)
    nose_x, nose_y = np.round(bare_points[2]).astype(int)
    tip = (slice(nose_y - 2, nose_y + 3), slice(nose_x - 2, nose_x + 3))
    assert (proper[tip] > 0).all() and (low[tip] == 0).all()
    eye_y = bare_points[:2, 1].mean()
    assert (proper[: int(eye_y)] == 0).all()  # the eyes stay visible
    mouth = bare_points[3:]
    mouth_y, x0, x1 = round(mouth[:, 1].mean()), round(mouth[:, 0].min()), round(mouth[:, 0].max())
    assert (proper[mouth_y, x0:x1] > 0).mean() > 0.9  # the mouth is covered too


def test_degenerate_landmarks_are_refused_in_one_line(bare_and_masked):
    (bare, bare_points), (masked, masked_points) = bare_and_masked[0][0], bare_and_masked[1][0]
    upside_down = bare_points.copy()
    upside_down[3:, 1] = bare_points[2, 1] - 5  # mouth above the nose
    with pytest.raises(ValueError, match="mouth below the nose"):
        lower_mask(bare, upside_down, masked, masked_points)


@pytest.fixture(scope="module")
def small_crop_set(tmp_path_factory, datasets_root):
    """A crop set of real face-mask-4k files (4 bare + 4 masked per split, plus 2 incorrect), its split declared."""
    root = tmp_path_factory.mktemp("crops") / "tiny-3class"
    split = {}
    for class_name in ("without_mask", "with_mask"):
        files = real_jpegs(datasets_root, class_name, 12)
        for index, path in enumerate(files):
            relpath = f"{class_name}/face-mask-4k/{path.name}"
            (root / relpath).parent.mkdir(parents=True, exist_ok=True)
            (root / relpath).symlink_to(path)
            split[relpath] = ("train", "val", "test")[index % 3]
    for index, path in enumerate(real_jpegs(datasets_root, "with_mask", 14)[-2:]):
        relpath = f"incorrect_mask/kaggle-scenes/{index}.jpg"
        (root / relpath).parent.mkdir(parents=True, exist_ok=True)
        (root / relpath).symlink_to(path)
        split[relpath] = "train"
    (root / DATASET_MANIFEST).write_text(json.dumps({"format": "maskdet-crop-set", "version": 1, "split": split}))
    return root


def test_a_synthetic_crop_set_adds_train_faces_only_and_is_reproducible(small_crop_set, detector, tmp_path):
    settings = SynthesisSettings(count=3, seed=7, min_side=48)
    first = build_synthetic_crop_set(small_crop_set, tmp_path / "a", settings, detector=detector)
    second = build_synthetic_crop_set(small_crop_set, tmp_path / "b", settings, detector=detector)
    assert first["made"] == second["made"] == 3 and first["settings"]["seed"] == 7
    source_split = json.loads((small_crop_set / DATASET_MANIFEST).read_text())["split"]
    split = json.loads((tmp_path / "a" / DATASET_MANIFEST).read_text())["split"]
    added = {r: s for r, s in split.items() if r not in source_split}
    assert len(added) == 3 and set(added.values()) == {"train"}
    assert all(r.startswith("incorrect_mask/synthetic/") for r in added)
    assert {r: s for r, s in split.items() if r in source_split} == source_split  # val / test unchanged
    for relpath in source_split:  # every source file linked in, same bytes
        assert (tmp_path / "a" / relpath).read_bytes() == (small_crop_set / relpath).read_bytes()
    for relpath in added:  # the same seed gives the same images
        assert (tmp_path / "a" / relpath).read_bytes() == (tmp_path / "b" / relpath).read_bytes()
    # Only train-split faces were used: every synthetic name is <index>__<bare stem>__<masked stem>.
    train_stems = {r.rsplit("/", 1)[-1].rsplit(".", 1)[0] for r, s in source_split.items() if s == "train"}
    for relpath in added:
        _, bare, masked = relpath.rsplit("/", 1)[-1].removesuffix(".png").split("__")
        assert bare in train_stems and masked in train_stems


def test_a_paired_crop_set_gives_every_low_face_a_proper_twin(small_crop_set, detector, tmp_path):
    settings = SynthesisSettings(count=3, seed=7, min_side=48)
    single = build_synthetic_crop_set(small_crop_set, tmp_path / "single", settings, detector=detector)
    paired = build_synthetic_crop_set(small_crop_set, tmp_path / "paired",
                                      SynthesisSettings(count=3, seed=7, min_side=48, paired=True), detector=detector)
    assert paired["made"] == 2 * single["made"] == 6 and paired["settings"]["paired"]
    source_split = json.loads((small_crop_set / DATASET_MANIFEST).read_text())["split"]
    split = json.loads((tmp_path / "paired" / DATASET_MANIFEST).read_text())["split"]
    added = {r: s for r, s in split.items() if r not in source_split}
    assert set(added.values()) == {"train"}
    low = sorted(r.removeprefix("incorrect_mask/synthetic/") for r in added if r.startswith("incorrect_mask/"))
    proper = sorted(r.removeprefix("with_mask/synthetic/") for r in added if r.startswith("with_mask/"))
    assert len(low) == 3 and low == proper  # same bare face, same donor
    for name in low:  # the low faces are those of an unpaired set with the same seed; the twin differs
        low_bytes = (tmp_path / "paired" / "incorrect_mask" / "synthetic" / name).read_bytes()
        assert low_bytes == (tmp_path / "single" / "incorrect_mask" / "synthetic" / name).read_bytes()
        assert low_bytes != (tmp_path / "paired" / "with_mask" / "synthetic" / name).read_bytes()


def test_several_heights_per_face_only_add_low_faces_to_a_one_height_build(small_crop_set, detector, tmp_path):
    one = build_synthetic_crop_set(small_crop_set, tmp_path / "one",
                                   SynthesisSettings(count=3, seed=7, min_side=48, paired=True), detector=detector)
    three = build_synthetic_crop_set(small_crop_set, tmp_path / "three", SynthesisSettings(
        count=3, seed=7, min_side=48, paired=True, heights_per_face=3), detector=detector)
    assert one["made"] == 6 and three["made"] == 12  # per face: three low faces and one twin
    source_split = json.loads((small_crop_set / DATASET_MANIFEST).read_text())["split"]
    split = json.loads((tmp_path / "three" / DATASET_MANIFEST).read_text())["split"]
    added = {r for r in split if r not in source_split}
    assert {split[r] for r in added} == {"train"}
    one_added = {r for r in json.loads((tmp_path / "one" / DATASET_MANIFEST).read_text())["split"]
                 if r not in source_split}
    assert one_added < added  # the one-height build's faces and twins, the very same bytes
    for relpath in one_added:
        assert (tmp_path / "three" / relpath).read_bytes() == (tmp_path / "one" / relpath).read_bytes()
    for relpath in sorted(one_added):  # each bare face: three low faces, each mask at its own height
        if relpath.startswith("incorrect_mask/"):
            stem = relpath.removesuffix(".png")
            lows = [np.asarray(Image.open(tmp_path / "three" / f"{stem}{suffix}.png"), float)
                    for suffix in ("", "__1", "__2")]
            assert lows[0].shape == lows[1].shape == lows[2].shape
            assert all(np.abs(a - b).mean() > 0.5 for a, b in ((lows[0], lows[1]), (lows[0], lows[2]), (lows[1], lows[2])))


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_sunglasses_cover_the_eyes_and_leave_the_mouth_alone(bare_and_masked, seed):
    """The label stays the face's own only if the mouth and whatever covers it are untouched."""
    for image, points in (bare_and_masked[0][seed % 2], bare_and_masked[1][seed % 2]):
        out = add_eyewear(image, points, np.random.default_rng(seed))
        assert out.size == image.size and out.mode == "RGB"
        assert out.tobytes() == add_eyewear(image, points, np.random.default_rng(seed)).tobytes()  # seeded
        difference = np.abs(np.asarray(out, int) - np.asarray(image, int)).sum(axis=2)
        nose_y, mouth_y = points[2, 1], points[3:, 1].mean()
        assert not (difference[int(np.ceil((nose_y + mouth_y) / 2)):] > 24).any()  # nothing from mid nose-mouth down
        for eye_x, eye_y in np.round(points[:2]).astype(int):  # both eyes behind a lens (a dark pupil may stay dark)
            assert (difference[eye_y - 2 : eye_y + 3, eye_x - 2 : eye_x + 3] > 0).mean() >= 0.8


def test_sunglasses_refuse_degenerate_landmarks_in_one_line(bare_and_masked):
    image, points = bare_and_masked[0][0]
    squashed = points.copy()
    squashed[1] = squashed[0]  # both eyes on one point
    with pytest.raises(ValueError, match="eyes apart"):
        add_eyewear(image, squashed, np.random.default_rng(0))


def test_an_eyewear_crop_set_adds_both_classes_to_train_only_with_their_labels(small_crop_set, detector, tmp_path):
    settings = EyewearSettings(share=0.5, seed=3, min_side=48)
    first = build_eyewear_crop_set(small_crop_set, tmp_path / "a", settings, detector=detector)
    second = build_eyewear_crop_set(small_crop_set, tmp_path / "b", settings, detector=detector)
    assert first["made"] == second["made"] > 0 and first["settings"]["share"] == 0.5
    assert first["per_class"]["without_mask"] > 0 and first["per_class"]["with_mask"] > 0  # bare and masked alike
    source_split = json.loads((small_crop_set / DATASET_MANIFEST).read_text())["split"]
    manifest = json.loads((tmp_path / "a" / DATASET_MANIFEST).read_text())
    added = {r: s for r, s in manifest["split"].items() if r not in source_split}
    assert len(added) == first["made"] and set(added.values()) == {"train"}
    assert {r: s for r, s in manifest["split"].items() if r in source_split} == source_split  # val / test unchanged
    assert manifest["synthetic"] == first
    train_stems = {r: r.rsplit("/", 1)[-1].rsplit(".", 1)[0] for r, s in source_split.items() if s == "train"}
    for relpath in added:
        label, folder, name = relpath.split("/")
        assert folder == "eyewear"
        stem = name.removesuffix(".png").split("__", 1)[1]
        # each copy is of a train face of its own class
        assert any(source.startswith(f"{label}/") and train_stem == stem for source, train_stem in train_stems.items())
        assert (tmp_path / "a" / relpath).read_bytes() == (tmp_path / "b" / relpath).read_bytes()
    assert first["per_class"] == {label: sum(r.startswith(f"{label}/") for r in added) for label in first["per_class"]}


def test_an_eyewear_crop_set_is_refused_over_an_existing_folder_or_a_folder_without_a_split(small_crop_set, detector,
                                                                                          tmp_path):
    (tmp_path / "taken").mkdir()
    with pytest.raises(DatasetError, match="exists already"):
        build_eyewear_crop_set(small_crop_set, tmp_path / "taken", detector=detector)
    (tmp_path / "plain" / "with_mask").mkdir(parents=True)
    with pytest.raises(DatasetError):
        build_eyewear_crop_set(tmp_path / "plain", tmp_path / "out", detector=detector)
    assert not (tmp_path / "out").exists() and list((tmp_path / "taken").iterdir()) == []



@pytest.fixture(scope="module")
def included_crop_set(tmp_path_factory, datasets_root):
    """A crop set laid out as ``cut-crops --include face-mask-4k`` lays one out (``<class>/face-mask-4k/<path inside
    face-mask-4k>``): 6 real files per class, split train / val / test in turn."""
    root = tmp_path_factory.mktemp("included") / "with-face-mask-4k"
    split = {}
    for class_name in ("without_mask", "with_mask"):
        for index, path in enumerate(real_jpegs(datasets_root, class_name, 6)):
            relpath = f"{class_name}/face-mask-4k/{class_name}/{path.name}"
            (root / relpath).parent.mkdir(parents=True, exist_ok=True)
            (root / relpath).symlink_to(path)
            split[relpath] = ("train", "val", "test")[index % 3]
    (root / DATASET_MANIFEST).write_text(json.dumps({"format": "maskdet-crop-set", "version": 1, "split": split}))
    return root

def test_relabelling_moves_the_listed_faces_each_in_its_own_split(included_crop_set, tmp_path):
    """face-mask-4k's masks below the nose, moved to incorrect_mask: the same files, the same split (a listed test
    face stays a test face), every other face as it was, and the manifest says what moved where."""
    from maskdet.training.derived import relabel_crop_set

    source_split = json.loads((included_crop_set / DATASET_MANIFEST).read_text())["split"]
    masked = sorted(r for r in source_split if r.startswith("with_mask/face-mask-4k/"))[:3]
    listed = [r.split("/", 2)[2] for r in masked]  # paths inside face-mask-4k, as the list names them
    list_file = tmp_path / "below-nose.txt"
    list_file.write_text("\n".join(listed) + "\n")
    record = relabel_crop_set(included_crop_set, tmp_path / "out", "face-mask-4k", listed, "incorrect_mask", list_file,
                              command="a test")
    split = json.loads((tmp_path / "out" / DATASET_MANIFEST).read_text())["split"]
    moved = {r: f"incorrect_mask/face-mask-4k/{path}" for r, path in zip(masked, listed)}
    assert split == {moved.get(r, r): placed for r, placed in source_split.items()}
    for relpath in source_split:
        assert (tmp_path / "out" / moved.get(relpath, relpath)).read_bytes() == (included_crop_set / relpath).read_bytes()
    placed = [source_split[r] for r in masked]
    assert record["moved"] == {name: placed.count(name) for name in ("train", "val", "test")}
    manifest = json.loads((tmp_path / "out" / DATASET_MANIFEST).read_text())
    assert manifest["relabelled"] == record and record["to"] == "incorrect_mask" and record["command"] == "a test"
    assert sum(manifest["counts"][name].get("incorrect_mask", 0) for name in manifest["counts"]) == 3


def test_relabelling_refuses_a_list_naming_absent_faces_and_a_taken_name_writing_nothing(included_crop_set, tmp_path):
    """The script's one-line refusals (the list is checked before anything is written)."""
    import subprocess
    import sys

    from maskdet.settings import REPO_ROOT

    present = min(r for r in json.loads((included_crop_set / DATASET_MANIFEST).read_text())["split"]
                  if r.startswith("with_mask/face-mask-4k/")).split("/", 2)[2]
    list_file = tmp_path / "list.txt"
    list_file.write_text(f"# checked by eye\n{present}\nwith_mask/not-a-face.jpg\n")
    (tmp_path / "crops" / "taken").mkdir(parents=True)

    def relabel(name: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, str(REPO_ROOT / "benchmarks" / "relabel_crop_set.py"), "--source",
                               str(included_crop_set), "--included", "face-mask-4k", "--list", str(list_file), "--to",
                               "incorrect_mask", "--name", name], capture_output=True, text=True, timeout=120, check=False,
                              env={**os.environ, "MASKDET_CACHE_DIR": str(tmp_path)})

    absent = relabel("new")
    assert absent.returncode == 1 and absent.stdout == ""
    assert absent.stderr.strip() == (f"Error: 1 listed faces are not in {included_crop_set}, e.g. "
                                     "with_mask/face-mask-4k/with_mask/not-a-face.jpg")
    list_file.write_text(f"{present}\n")
    taken = relabel("taken")
    assert taken.returncode == 1 and taken.stderr.strip().endswith("taken exists already: choose another name or remove it")
    assert sorted(p.name for p in (tmp_path / "crops").iterdir()) == ["taken"]  # nothing written, nothing staged
    assert list((tmp_path / "crops" / "taken").iterdir()) == []
