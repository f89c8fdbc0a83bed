"""Annotated photos stay readable: labels no larger than their boxes, measured on the drawn image."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from maskdet.data.annotations import parse_voc
from maskdet.data.images import load_rgb
from maskdet.inference.drawing import draw_predictions
from maskdet.inference.faces import FacePrediction

CROWD = "maksssksksss240"  # 400x245, 61 boxed faces of 6-20 px: the crowd photo of issue 27


def crowd(datasets_root: Path) -> tuple[np.ndarray, list[FacePrediction]]:
    scenes = datasets_root / "kaggle-scenes"
    _, objects = parse_voc((scenes / "annotations" / f"{CROWD}.xml").read_bytes())
    faces = [FacePrediction(box=tuple(int(round(v)) for v in box), label="without_mask" if i % 2 else "with_mask",
                            confidence=0.61, face_score=0.9, probabilities={"with_mask": 0.39 if i % 2 else 0.61})
             for i, (_, box) in enumerate(objects)]
    return np.asarray(load_rgb(scenes / "images" / f"{CROWD}.jpg")), faces


def drawn_extent(image: np.ndarray, face: FacePrediction) -> tuple[int, int]:
    """Width and height of every pixel that drawing ``face`` alone changes (its box and its label)."""
    changed = np.argwhere((draw_predictions(image, [face]) != image).any(axis=2))
    (top, left), (bottom, right) = changed.min(axis=0), changed.max(axis=0)
    return right - left + 1, bottom - top + 1


def test_labels_on_a_crowd_photo_are_no_larger_than_their_boxes(datasets_root: Path) -> None:
    image, faces = crowd(datasets_root)
    assert len(faces) > 50
    for face in faces:
        x0, y0, x1, y1 = face.box
        width, height = drawn_extent(image, face)
        box_w, box_h = x1 - x0 + 1, y1 - y0 + 1
        assert width <= box_w + 2, (face.box, width)  # a label never sticks out sideways
        assert height <= box_h * 1.5 + 2, (face.box, height)  # nor is taller than half its box
    covered = (draw_predictions(image, faces) != image).any(axis=2).mean()
    assert covered < 0.25  # the photo is still visible (labels at the old fixed size covered most of it)


def test_a_large_face_keeps_a_readable_label(datasets_root: Path) -> None:
    image = np.full((480, 640, 3), 200, dtype=np.uint8)
    face = FacePrediction(box=(200, 150, 400, 400), label="with_mask", confidence=0.97, face_score=0.9,
                          probabilities={"with_mask": 0.97})
    width, height = drawn_extent(image, face)
    assert height > 250 + 12  # box plus a label above it
