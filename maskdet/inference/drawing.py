"""Annotated images: a coloured box and "label confidence" per face, the label sized to its box."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from maskdet.settings import POSITIVE_CLASS

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
LABEL_FONT = 0  # cv2.FONT_HERSHEY_SIMPLEX (cv2 is imported lazily)
LABEL_PAD_PX = 2
LABEL_MAX_HEIGHT = 0.5  # of the box's height
LABEL_MIN_SCALE = 0.3  # below this cv2 font scale (about 7 px high) a label is unreadable: the box goes alone


def label_text(face: FacePrediction, uncertain: bool = False) -> str:
    """What a face's label says: 'Mask 97%', 'No mask 61%', 'Unsure: Mask 55%', and for a face the operating
    threshold kept from masked, its likeliest class, 'No mask (mask 93%)': the verdict with the probability that
    was not enough, never the verdict's own small one ('No mask 5%' would read as a contradiction)."""
    prefix = "Unsure: " if uncertain else ""
    held_back = face.held_back
    if held_back is not None:
        return f"{prefix}{BOX_TEXT[face.label]} ({BOX_TEXT[POSITIVE_CLASS].lower()} {held_back:.0%})"
    return f"{prefix}{BOX_TEXT[face.label]} {face.confidence:.0%}"


def label_scale(text: str, box_width: int, box_height: int, preferred: float) -> float | None:
    """The font scale of ``text`` over a box: ``preferred`` shrunk until the label is no wider than the box and
    no taller than LABEL_MAX_HEIGHT of it; None when that is below a readable size (the box keeps its colour,
    the label is left to the page's table or hover)."""
    import cv2

    (width, height), baseline = cv2.getTextSize(text, LABEL_FONT, 1.0, 1)
    fit = min(preferred, (box_width - 2 * LABEL_PAD_PX) / width,
              (LABEL_MAX_HEIGHT * box_height - 2 * LABEL_PAD_PX) / (height + baseline))
    return fit if fit >= LABEL_MIN_SCALE else None


def draw_predictions(
    image: np.ndarray, faces: list[FacePrediction], uncertain_below: float = 0.0
) -> np.ndarray:
    """A copy of an RGB uint8 image with a coloured box and 'label confidence' per face.

    Faces whose confidence is below ``uncertain_below`` are drawn in grey as 'Unsure: label confidence'.
    A label is never wider than its box nor taller than half of it: labels shrink with their faces, and
    faces too small for a readable label (a crowd) keep the box alone, so the photo stays visible.
    """
    import cv2

    canvas = np.ascontiguousarray(image).copy()
    thickness = max(2, round(max(canvas.shape[:2]) / 320))
    preferred = max(0.5, max(canvas.shape[:2]) / 1000)
    for face in faces:
        x0, y0, x1, y1 = face.box
        uncertain = face.confidence < uncertain_below
        colour = UNCERTAIN_COLOUR_RGB if uncertain else LABEL_COLOURS_RGB[face.label]
        box_thickness = max(1, min(thickness, (min(x1 - x0, y1 - y0)) // 8))  # a crowd's small boxes stay boxes
        cv2.rectangle(canvas, (x0, y0), (x1, y1), colour, box_thickness)
        text = label_text(face, uncertain)
        scale = label_scale(text, x1 - x0, y1 - y0, preferred)
        if scale is None:
            continue
        stroke = max(1, round(scale * 1.5))
        (width, height), baseline = cv2.getTextSize(text, LABEL_FONT, scale, stroke)
        top = max(0, y0 - height - baseline - 2 * LABEL_PAD_PX)
        cv2.rectangle(canvas, (x0, top), (x0 + width + 2 * LABEL_PAD_PX, top + height + baseline + 2 * LABEL_PAD_PX),
                      colour, -1)
        cv2.putText(canvas, text, (x0 + LABEL_PAD_PX, top + height + LABEL_PAD_PX), LABEL_FONT, scale,
                    (255, 255, 255), stroke, cv2.LINE_AA)
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
