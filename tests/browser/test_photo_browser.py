"""The Photo page in headless Chromium: upload a real photo, see the annotated image and an IG explanation."""

from __future__ import annotations

import io
import re
import urllib.request

import numpy as np
import pytest
from harness import screenshot, wait_for, wait_for_text
from PIL import Image
from selenium.webdriver.common.by import By

from maskdet.predict import LABEL_COLOURS_RGB

pytestmark = pytest.mark.browser

PHOTO = ("face-mask-4k", "with_mask", "with_mask026.jpg")  # one masked person, found by CenterFace
ANALYSIS_TIMEOUT_S = 120
BOX_PIXELS_MIN = 500  # a 2 px outline of the ~200x270 px face box alone has ~1900


def box_pixels(src: str) -> int:
    """Pixels of the image at ``src`` close to a label colour (the boxes drawn by draw_predictions)."""
    with urllib.request.urlopen(src, timeout=30) as response:
        image = np.asarray(Image.open(io.BytesIO(response.read())).convert("RGB"), dtype=np.int16)
    return sum(int((np.abs(image - colour).max(axis=2) <= 24).sum()) for colour in LABEL_COLOURS_RGB.values())


def test_upload_a_photo_and_see_boxes_and_integrated_gradients(dashboard, open_browser, datasets_root) -> None:
    photo = datasets_root.joinpath(*PHOTO)
    driver = open_browser()
    driver.get(f"{dashboard.url}/photo")
    wait_for(driver, "input[type=file]").send_keys(str(photo))

    text = wait_for_text(driver, lambda t: "Face 1" in t and "Integrated Gradients heatmap" in t, ANALYSIS_TIMEOUT_S,
                         "the face verdict and its Integrated Gradients explanation")
    assert photo.name in text, text
    assert re.search(r"Face 1: \S+ with(out)? mask, [\d.]+% confident", text), text  # a verdict per box
    images = driver.find_elements(By.CSS_SELECTOR, "[data-testid=stImage] img")
    assert len(images) >= 4  # the annotated photo + original / heatmap / overlay of the face
    assert all(driver.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", image)
               for image in images)
    assert box_pixels(images[0].get_attribute("src")) > BOX_PIXELS_MIN, "no coloured face box in the shown photo"
    screenshot(driver, "photo.png")
