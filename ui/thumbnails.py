"""Small JPEG thumbnails of image files for grids (Dataset page samples, Compare page error gallery)."""

from __future__ import annotations

import io

import streamlit as st

from maskdet.data.images import ImageDecodeError, load_rgb

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
    image.thumbnail((THUMB_PX, THUMB_PX))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()
