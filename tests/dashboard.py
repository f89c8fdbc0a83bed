"""AppTest of one dashboard page as a browser reaches it: the app of ``streamlit_app.py``, at that page's URL.

A page cannot run as an app of its own: its navigation links (``ui.shell.setup_page``) point at the
app's other pages, which Streamlit finds from the entry script (``pages/`` next to it).
"""

from __future__ import annotations

from streamlit.runtime.pages_manager import PagesManager
from streamlit.testing.v1 import AppTest

from maskdet.settings import REPO_ROOT

ENTRY = "streamlit_app.py"


def page_test(page_file: str, timeout: float) -> AppTest:
    """An AppTest (not yet run) of ``page_file`` (e.g. ``"pages/photo.py"``, or the entry script for Home).

    Streamlit decides once per process whether the app has a ``pages/`` folder (a class attribute, set by the
    first app run and cleared by any ``st.navigation``); forgetting the answer makes it look at this app.
    """
    PagesManager.uses_pages_directory = None
    app = AppTest.from_file(str(REPO_ROOT / ENTRY), default_timeout=timeout)
    if page_file != ENTRY:
        app.switch_page(page_file)
    return app


def sidebar_links(app: AppTest) -> list[tuple[str, str, str]]:
    """(label, icon, URL path) of every page link in the sidebar, top to bottom."""
    return [(link.label, link.icon, link.proto.page) for link in app.sidebar.get("page_link")]
