"""Annotated images: a coloured box and "label confidence" per face."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from maskdet.inference.faces import FacePrediction

LABEL_COLOURS_RGB = {"with_mask": (40, 167, 69), "without_mask": (220, 53, 69)}
UNCERTAIN_COLOUR_RGB = (128, 128, 128)


def draw_predictions(
    image: np.ndarray, faces: list[FacePrediction], uncertain_below: float = 0.0
) -> np.ndarray:
    """A copy of an RGB uint8 image with a coloured box and 'label confidence' per face.

    Faces whose confidence is below ``uncertain_below`` are drawn in grey as 'Unsure: label confidence'.
    """
    import cv2

    canvas = np.ascontiguousarray(image).copy()
    thickness = max(2, round(max(canvas.shape[:2]) / 320))
    scale = max(0.5, max(canvas.shape[:2]) / 1000)
    for face in faces:
        x0, y0, x1, y1 = face.box
        uncertain = face.confidence < uncertain_below
        colour = UNCERTAIN_COLOUR_RGB if uncertain else LABEL_COLOURS_RGB[face.label]
        cv2.rectangle(canvas, (x0, y0), (x1, y1), colour, thickness)
        text = f"{'Unsure: ' if uncertain else ''}{'Mask' if face.label == 'with_mask' else 'No mask'} {face.confidence:.0%}"
        (width, height), baseline = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, max(1, thickness // 2))
        top = max(0, y0 - height - baseline - 4)
        cv2.rectangle(canvas, (x0, top), (x0 + width + 6, top + height + baseline + 4), colour, -1)
        cv2.putText(canvas, text, (x0 + 3, top + height + 2), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255),
                    max(1, thickness // 2), cv2.LINE_AA)
    return canvas


def encode_jpeg(image: np.ndarray, max_side: int | None = None, quality: int = 90) -> bytes:
    """An RGB uint8 image as JPEG bytes, shrunk (aspect kept) so its longer side is at most ``max_side``.

    What a page keeps of an annotated photo: a 24 MP annotation is 72 MB as an array, ~1-4 MB as a
    full-size JPEG, ~0.2-0.4 MB at screen size.
    """
    import io

    from PIL import Image

    picture = Image.fromarray(image)
    if max_side and max(picture.size) > max_side:
        picture.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    picture.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()
