"""Small JPEG thumbnails of image files for grids (Dataset page samples, Compare page error gallery)."""

from __future__ import annotations

import io

import streamlit as st

from PIL import Image

from maskdet.data.images import ImageDecodeError, load_rgb
from maskdet.evaluation.errors import Misclassified, error_image

THUMB_PX = 128
THUMB_CACHE_ENTRIES = 4096


@st.cache_data(show_spinner=False, max_entries=THUMB_CACHE_ENTRIES)
def thumbnail(path: str, version: str) -> bytes | None:
    """A JPEG of the image at ``path`` fitted in THUMB_PX, or None when it is not readable.

    ``version`` (a folder fingerprint, a file's modification time) invalidates it when the file changes.
    """
    try:
        image = load_rgb(path, draft_size=THUMB_PX * 2)
    except ImageDecodeError:
        return None
    return _jpeg(image)


@st.cache_data(show_spinner=False, max_entries=THUMB_CACHE_ENTRIES)
def error_thumbnail(key: str, version: str, _error: Misclassified) -> bytes | None:
    """A JPEG of a misclassified picture (:func:`maskdet.evaluation.errors.error_image`: the file, or the crop cut
    again from its photo), None when neither is here; keyed by the error's file key and ``version``."""
    try:
        return _jpeg(error_image(_error))
    except ImageDecodeError:
        return None


def _jpeg(image: Image.Image) -> bytes:
    image.thumbnail((THUMB_PX, THUMB_PX))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()
