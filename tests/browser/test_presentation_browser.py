"""Pages read at a glance in headless Chromium (issue 27): a crowd photo stays a photo, not a wall of labels."""

from __future__ import annotations

import pytest
from harness import screenshot, wait_for, wait_for_text

pytestmark = pytest.mark.browser

CROWD = ("kaggle-scenes", "images", "maksssksksss240.jpg")  # 400x245, about 60 faces of 6-20 px
ANALYSIS_TIMEOUT_S = 240
PAGE_HEIGHT_MAX_PX = 3000  # the summary, the photo and one collapsed list of faces (was about 11,000 px)
PAGE_HEIGHT = "return Math.max(...Array.from(document.querySelectorAll('section, div')).map(e => e.scrollHeight))"


def test_a_crowd_photo_shows_its_summary_and_photo_first_with_the_faces_collapsed(dashboard, open_browser,
                                                                                    datasets_root) -> None:
    driver = open_browser()
    driver.get(f"{dashboard.url}/photo")
    wait_for(driver, "input[type=file]").send_keys(str(datasets_root.joinpath(*CROWD)))
    text = wait_for_text(driver, lambda t: "too small for a readable label" in t and "Every face (" in t,
                         ANALYSIS_TIMEOUT_S, "the crowd photo's summary and its collapsed faces")
    assert "without mask" in text or "with mask" in text
    assert "Face 1:" not in text  # each face's details wait in the collapsed list
    height = driver.execute_script(PAGE_HEIGHT)
    assert height < PAGE_HEIGHT_MAX_PX, height
    screenshot(driver, "photo-crowd.png")
