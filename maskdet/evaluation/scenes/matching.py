"""Which detection found which annotated face: IoU and greedy one-to-one matching by score."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


def iou_matrix(a: Sequence[Sequence[float]], b: Sequence[Sequence[float]]) -> np.ndarray:
    """Intersection over union of every box of ``a`` with every box of ``b`` (x0, y0, x1, y1): shape (len a, len b)."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    iw = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    ih = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = iw * ih
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


@dataclass(frozen=True)
class Matching:
    """The outcome for one photo.

    ``face_of[d]`` is the index of the face detection ``d`` found, or None; ``ignored[d]`` is True
    for an unmatched detection lying on an ignored face (a class the user did not map): it is
    neither a hit nor a false positive. ``best_iou[f]`` is face ``f``'s best overlap with any detection.
    """

    face_of: tuple[int | None, ...]
    ignored: tuple[bool, ...]
    best_iou: tuple[float, ...]

    @property
    def found(self) -> set[int]:
        return {f for f in self.face_of if f is not None}

    @property
    def false_positives(self) -> list[int]:
        return [d for d, (f, skip) in enumerate(zip(self.face_of, self.ignored, strict=True)) if f is None and not skip]


def match_detections(
    detections: Sequence[Sequence[float]],
    scores: Sequence[float],
    faces: Sequence[Sequence[float]],
    iou: float = 0.5,
    ignored_faces: Sequence[Sequence[float]] = (),
) -> Matching:
    """Match detections to faces: best score first, each takes the free face it overlaps most, if IoU >= ``iou``.

    Each detection finds at most one face and each face is found at most once, so a duplicate
    detection of a face already found is a false positive (as in Pascal VOC and COCO).
    """
    if not 0.0 < iou <= 1.0:
        raise ValueError(f"iou must be in (0, 1], got {iou}")
    overlaps = iou_matrix(detections, faces)
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    face_of: list[int | None] = [None] * len(overlaps)
    taken = np.zeros(overlaps.shape[1], dtype=bool)
    for d in order:
        candidates = np.where(taken, -1.0, overlaps[d])
        if candidates.size and candidates.max() >= iou:
            best = int(candidates.argmax())
            face_of[int(d)] = best
            taken[best] = True
    on_ignored = iou_matrix(detections, ignored_faces)
    ignored = tuple(
        bool(face_of[d] is None and on_ignored.shape[1] and on_ignored[d].max() >= iou) for d in range(len(face_of))
    )
    best_iou = tuple(float(v) for v in (overlaps.max(axis=0) if len(overlaps) else np.zeros(overlaps.shape[1])))
    return Matching(face_of=tuple(face_of), ignored=ignored, best_iou=best_iou)
