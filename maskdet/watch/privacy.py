"""Privacy modes: what pictures a watched stream may keep (recordings, snapshots, event faces).

- ``off``: pictures are kept as seen (annotated frames, sharp event faces);
- ``blur``: every kept picture has its faces blurred (supervision's :class:`~supervision.BlurAnnotator`), and
  so does the live view, so what is shown is what could be stored;
- ``no-pictures``: nothing but figures and the event log's text is kept: no recording, no snapshot, no face.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum

import numpy as np

BLUR_FRACTION = 0.6  # box-blur kernel as a fraction of the largest face's side: no feature survives it
MIN_KERNEL = 15


class Privacy(StrEnum):
    """What a stream may keep; see the module."""

    OFF = "off"
    BLUR = "blur"
    NO_PICTURES = "no-pictures"

    @property
    def keeps_pictures(self) -> bool:
        return self is not Privacy.NO_PICTURES


def blur_faces(image: np.ndarray, boxes: Sequence[Sequence[int]]) -> np.ndarray:
    """A copy of an RGB uint8 image with every box blurred beyond recognition (a strong box blur per face)."""
    import supervision as sv

    canvas = np.ascontiguousarray(image).copy()
    if not len(boxes):
        return canvas
    xyxy = np.asarray(boxes, dtype=float).reshape(-1, 4)
    side = float(np.max(np.maximum(xyxy[:, 2] - xyxy[:, 0], xyxy[:, 3] - xyxy[:, 1])))
    kernel = max(MIN_KERNEL, int(side * BLUR_FRACTION))
    blurred = sv.BlurAnnotator(kernel_size=kernel).annotate(canvas, sv.Detections(xyxy=xyxy))
    return sv.BlurAnnotator(kernel_size=kernel).annotate(blurred, sv.Detections(xyxy=xyxy))  # twice: ~Gaussian


def blur_whole(image: np.ndarray) -> np.ndarray:
    """An RGB face crop blurred all over (an event's face in ``blur`` mode)."""
    height, width = image.shape[:2]
    return blur_faces(image, [(0, 0, width, height)])
