"""The dashboard's pages, in one registry: the sidebar navigation and the Home page's links read it.

Streamlit serves every script in the top-level ``pages/`` folder at ``/<file name>`` and the entry
script (``streamlit_app.py``, the Home page) at ``/``. Its own sidebar navigation is switched off
(``client.showSidebarNavigation = false`` in ``.streamlit/config.toml``): it would name pages after
their files and the Home page "streamlit app". Every page instead draws :func:`draw_navigation`
through :func:`ui.shell.setup_page`, so a deep link shows the same navigation as the Home page.

A new page is one line in :data:`PAGES` (and its file in ``pages/``, calling ``setup_page`` first).
"""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st


@dataclass(frozen=True)
class PageInfo:
    """One page: its name and icon in the navigation, its script, and what it is for (the Home page says it)."""

    title: str
    icon: str
    file: str  # relative to the entry script, as st.page_link wants it; pages/<url path>.py
    description: str
    sidebar_job_status: bool = True  # the Train page draws the training job in full instead


PAGES: tuple[PageInfo, ...] = (
    PageInfo("Home", "🏠", "streamlit_app.py", "what maskdet finds: data sets and trained models"),
    PageInfo("Dataset", "🗂️", "pages/dataset.py", "audit a data set: balance, duplicates, label conflicts, the split"),
    PageInfo("Train", "🏋️", "pages/train.py", "train a classifier from the model zoo", sidebar_job_status=False),
    PageInfo("Compare", "📊", "pages/compare.py", "compare trained models on held-out and unseen data"),
    PageInfo("Photo", "🖼️", "pages/photo.py", "find faces in a photo and check their masks"),
    PageInfo("Webcam", "🎥", "pages/webcam.py", "live mask detection from a webcam"),
    PageInfo("Video", "🎞️", "pages/video.py", "find masks in a video file, frame by frame"),
)
"""Every page in navigation order; the first is the entry script."""


def page_named(title: str) -> PageInfo:
    """The registered page called ``title``; ``KeyError`` names the known ones."""
    for page in PAGES:
        if page.title == title:
            return page
    raise KeyError(f"no page {title!r}; known: {', '.join(page.title for page in PAGES)}")


def draw_navigation() -> None:
    """One link per page, in the sidebar (Streamlit highlights the current one)."""
    with st.sidebar:
        for page in PAGES:
            st.page_link(page.file, label=page.title, icon=page.icon)
