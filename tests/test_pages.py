"""Every page of the dashboard runs at its own URL and shows the app's navigation (names, icons, URLs).

Each page is run as Streamlit runs a deep link to it (the app of ``streamlit_app.py``, that page's
script), with no data sets and no trained models, the state of a fresh install.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from dashboard import page_test, sidebar_links
from markdown_text import texts

from maskdet.settings import REPO_ROOT
from ui.navigation import PAGES, PageInfo, page_named

TIMEOUT = 120  # the first import of torch and the model zoo on a busy machine
URLS = {"Home": "", "Dataset": "dataset", "Train": "train", "Compare": "compare", "Photo": "photo", "Webcam": "webcam",
        "Video": "video"}


def url_path(page: PageInfo) -> str:
    """Where Streamlit serves ``page``: ``/`` for the entry script, ``/<file name>`` for a file of pages/."""
    return "" if page == PAGES[0] else Path(page.file).stem


@pytest.fixture(autouse=True)
def fresh_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MASKDET_DATA_ROOT", str(tmp_path / "no-data"))
    monkeypatch.setenv("MASKDET_CACHE_DIR", str(tmp_path / "cache"))


def test_every_url_of_the_dashboard_is_still_served() -> None:
    served = {page.title: url_path(page) for page in PAGES}
    assert served.items() >= URLS.items()
    assert PAGES[0].title == "Home" and PAGES[0].file == "streamlit_app.py"
    assert all((REPO_ROOT / page.file).is_file() for page in PAGES)
    assert all(page.file.startswith("pages/") for page in PAGES[1:])
    assert sorted(p.name for p in (REPO_ROOT / "pages").glob("*.py")) == sorted(
        Path(page.file).name for page in PAGES[1:]), "every script in pages/ is served, so each needs an entry"


@pytest.mark.parametrize("page", PAGES, ids=[page.title for page in PAGES])
def test_page_runs_and_shows_the_navigation(page: PageInfo) -> None:
    at = page_test(page.file, TIMEOUT).run()
    assert not at.exception, texts(at.exception)
    assert at.title, "the page drew nothing"
    navigation = sidebar_links(at)[: len(PAGES)]
    assert navigation == [(p.title, p.icon, url_path(p)) for p in PAGES]
    assert "streamlit app" not in {label.lower() for label, _, _ in navigation}


def test_a_missing_page_name_is_refused_with_the_known_ones() -> None:
    with pytest.raises(KeyError, match="Photo"):
        page_named("Fotos")
