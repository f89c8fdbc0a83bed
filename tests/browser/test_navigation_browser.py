"""Every page opened by its URL (a deep link, a fresh session) shows the app's navigation and its own page.

Streamlit runs a deep link straight from the file in ``pages/``, without the entry script, and its
own file-based navigation would list file names (the entry page as "streamlit app"); the app's
navigation must look the same wherever one lands.
"""

from __future__ import annotations

import time

import pytest
from harness import NAVIGATION_LINKS, page_text, retrying, sidebar_link
from selenium.webdriver.common.by import By

from ui.navigation import PAGES

pytestmark = pytest.mark.browser
LOAD_TIMEOUT_S = 120  # a cold page imports torch and the model zoo on a busy machine
EXPECTED = [("🏠", "Home", ""), ("🗂️", "Dataset", "dataset"), ("🏋️", "Train", "train"), ("📊", "Compare", "compare"),
            ("🖼️", "Photo", "photo"), ("🎥", "Webcam", "webcam"), ("🎞️", "Video", "video")]
HEADINGS = {"": "maskdet", "dataset": "Dataset", "train": "Train", "compare": "Compare models", "photo": "Photo",
            "webcam": "Watch a place", "video": "Video"}


def navigation(driver) -> list[tuple[str, str, str]]:  # noqa: ANN001
    """(icon, label, href) of the sidebar's navigation links, once the page has drawn them."""
    deadline = time.monotonic() + LOAD_TIMEOUT_S
    while time.monotonic() < deadline:
        links = retrying(lambda: [(*a.text.split("\n", 1), a.get_dom_attribute("href"))
                                  for a in driver.find_elements(By.CSS_SELECTOR, NAVIGATION_LINKS)])
        if len(links) >= len(PAGES):
            return links
        time.sleep(0.5)
    pytest.fail(f"no navigation after {LOAD_TIMEOUT_S} s; page text:\n{page_text(driver)}")


def heading(driver) -> str:  # noqa: ANN001
    deadline = time.monotonic() + LOAD_TIMEOUT_S
    while time.monotonic() < deadline:
        titles = retrying(lambda: [h.text for h in driver.find_elements(By.CSS_SELECTOR, "h1")])
        if titles:
            return titles[0]
        time.sleep(0.5)
    pytest.fail(f"no page title after {LOAD_TIMEOUT_S} s; page text:\n{page_text(driver)}")


def test_every_url_shows_the_same_navigation_with_the_apps_names(dashboard, open_browser) -> None:
    driver = open_browser()
    for _, label, url in EXPECTED:
        driver.get(f"{dashboard.url}/{url}")
        links = navigation(driver)
        assert links[: len(EXPECTED)] == EXPECTED, f"/{url}: {links}"
        assert [label for _, label, _ in links[: len(PAGES)]] == [page.title for page in PAGES]  # and pages added since
        assert HEADINGS[url] in heading(driver), f"/{url} did not show the {label} page"
        assert driver.title == "maskdet", f"/{url}: page config not applied (tab title {driver.title!r})"
        assert not driver.find_elements(By.CSS_SELECTOR, "[data-testid='stSidebarNav']"), \
            f"/{url}: Streamlit's file-based navigation is showing"
        assert "streamlit app" not in page_text(driver).lower(), f"/{url}"


def test_the_navigation_links_lead_to_their_pages_in_the_same_session(dashboard, open_browser) -> None:
    driver = open_browser()
    driver.get(dashboard.url)
    navigation(driver)
    for _, label, url in [*EXPECTED[1:], EXPECTED[0]]:
        sidebar_link(driver, url)
        deadline = time.monotonic() + LOAD_TIMEOUT_S
        while HEADINGS[url] not in heading(driver):
            assert time.monotonic() < deadline, f"the {label} link did not lead to its page"
            time.sleep(0.5)
        assert driver.current_url.rstrip("/") == f"{dashboard.url}/{url}".rstrip("/")
