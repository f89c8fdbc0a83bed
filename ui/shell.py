"""What every page shows around its own content: page config, navigation, sidebar lines.

Each page script (``streamlit_app.py`` and everything in ``pages/``) calls :func:`setup_page`
with its registered title as its first Streamlit call. Streamlit runs a deep link such as
``/photo`` straight from ``pages/photo.py``, without the entry script, so this is the one place
for what all pages share.

A new sidebar line is one entry in :data:`SIDEBAR_LINES`: a function of the current page that
draws into the sidebar.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import streamlit as st

from ui.access import sign_in_controls, who_line
from ui.exposure import exposure_notice
from ui.jobs import note_session
from ui.models import recover_models_once
from ui.navigation import PageInfo, draw_navigation, page_named
from ui.training import sidebar_status

APP_NAME = "maskdet"
APP_ICON = "😷"
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def network_notice(page: PageInfo) -> None:
    """Private to this machine, or reachable from the network (``ui.exposure``)."""
    exposure_notice()


def who_you_are(page: PageInfo) -> None:
    """Owner or visitor, what you may do, and the owner's sign-in when the dashboard is shared (``ui.access``)."""
    st.sidebar.caption(who_line())
    sign_in_controls()


def job_status(page: PageInfo) -> None:
    """The server's training job (all sessions share it; it slows everyone's analyses while it runs)."""
    if page.sidebar_job_status:
        sidebar_status()


SIDEBAR_LINES: list[Callable[[PageInfo], None]] = [
    who_you_are,
    network_notice,
    job_status,
]
"""Drawn in order under the navigation on every page."""


def setup_page(title: str) -> PageInfo:
    """Page config, the navigation and the sidebar lines for the page registered as ``title``."""
    page = page_named(title)
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)  # once per process; later calls do nothing
    st.set_page_config(page_title=APP_NAME, page_icon=APP_ICON, layout="wide")
    note_session()  # ended and closed once it has been gone for the grace (ui.jobs)
    recover_models_once()  # a save interrupted by a crash is undone once per server, under the models lock
    draw_navigation()
    for line in SIDEBAR_LINES:
        line(page)
    return page
