"""Annotated images: a coloured box and "label confidence" per face."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from maskdet.inference.faces import FacePrediction

LABEL_COLOURS_RGB = {"with_mask": (0, 114, 178), "without_mask": (213, 94, 0), "incorrect_mask": (204, 121, 167)}
"""Okabe-Ito colours (blue, vermillion, reddish purple): told apart with every common colour-vision deficiency."""
LABEL_TEXT = {"with_mask": "😷 with mask", "without_mask": "🙂 without mask", "incorrect_mask": "😶 mask worn incorrectly"}
"""How pages name each class."""
BOX_TEXT = {"with_mask": "Mask", "without_mask": "No mask", "incorrect_mask": "Mask worn wrong"}
"""The words drawn above a face's box."""


def hex_colour(label: str) -> str:
    """The class colour as ``#rrggbb`` (charts)."""
    return "#{:02x}{:02x}{:02x}".format(*LABEL_COLOURS_RGB[label])
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
        text = f"{'Unsure: ' if uncertain else ''}{BOX_TEXT[face.label]} {face.confidence:.0%}"
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
