"""The Photo page in headless Chromium: upload a real photo, see the annotated image and an IG explanation;
upload the whole bad-input zoo at once (plus a file over the size limit and one of a wrong type) through the
real upload path and see every file's own outcome."""

from __future__ import annotations

import io
import re
import shutil
import urllib.request

import numpy as np
import pytest
from harness import choose_option, screenshot, wait_for, wait_for_text, wait_idle
from hostile_inputs import ZOO_INVALID, ZOO_VALID, write_zoo, zoo_face
from PIL import Image
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from maskdet.data.images import MAX_FILE_BYTES
from maskdet.inference.drawing import LABEL_COLOURS_RGB

pytestmark = pytest.mark.browser

PHOTO = ("face-mask-4k", "with_mask", "with_mask026.jpg")  # one masked person, found by CenterFace
ANALYSIS_TIMEOUT_S = 120
BOX_PIXELS_MIN = 500  # a 2 px outline of the ~200x270 px face box alone has ~1900
ZOO_TIMEOUT_S = 150
UPLOAD_LIMIT_MB = MAX_FILE_BYTES // 2**20  # the Photo page's per-file limit
STATUS = "[data-testid='stStatusWidget']"  # shown while a script run is in progress
# File names full of markdown (bold, emphasis, a link, LaTeX, a colour directive, code): shown literally
MARKUP_PHOTO = "**bold** _it_ [link](x.html) $1+1$ :red[r] `tick` #.jpg"
MARKUP_BROKEN = "``two ticks`` *star* \\ back.jpg"


def wait_loaded(driver, images, timeout: float = 30) -> None:  # noqa: ANN001 - Selenium objects
    """Wait until every image has loaded and decoded (the page text can appear before its images arrive)."""
    script = "return arguments[0].every(image => image.complete && image.naturalWidth > 0)"
    WebDriverWait(driver, timeout).until(lambda d: d.execute_script(script, images), "images never finished loading")


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
    wait_loaded(driver, images)
    assert box_pixels(images[0].get_attribute("src")) > BOX_PIXELS_MIN, "no coloured face box in the shown photo"
    screenshot(driver, "photo.png")


def refused_chips(driver) -> dict[str, str]:  # noqa: ANN001 - a Selenium WebDriver
    """File name -> the message of each file the uploader itself refused (shown on hover of its chip)."""
    refused = {}
    for chip in driver.find_elements(By.CSS_SELECTOR, "[data-testid=stFileChip][aria-invalid=true]"):
        tooltip = driver.find_element(By.ID, chip.get_attribute("aria-describedby"))
        refused[chip.get_attribute("aria-label").rsplit(", ", 1)[0]] = tooltip.get_attribute("textContent")
    return refused


def test_upload_the_whole_bad_input_zoo_at_once(dashboard, open_browser, datasets_root, tmp_path) -> None:
    face = zoo_face(datasets_root)
    zoo = write_zoo(tmp_path / "zoo", face)
    oversize = tmp_path / "oversize.jpg"  # over the page's per-photo limit: refused by the browser, never sent
    with open(oversize, "wb") as handle:
        handle.truncate(UPLOAD_LIMIT_MB * 2**20 + 1)
    (tmp_path / "notes.txt").write_text("not a photo type")
    shutil.copy(zoo / "rotated.jpg", zoo / MARKUP_PHOTO)
    (zoo / MARKUP_BROKEN).write_text("not an image either")
    names = [MARKUP_PHOTO, MARKUP_BROKEN, *ZOO_VALID, *ZOO_INVALID]
    driver = open_browser()
    driver.get(f"{dashboard.url}/photo")
    paths = [oversize, tmp_path / "notes.txt", *(zoo / name for name in names)]
    wait_for(driver, "input[type=file]").send_keys("\n".join(str(path) for path in paths))

    def done(text: str) -> bool:  # bomb.png is analysed last
        return "bomb.png: image is" in text and not driver.find_elements(By.CSS_SELECTOR, STATUS)

    text = wait_for_text(driver, done, ZOO_TIMEOUT_S, "the outcome of every zoo file")
    assert [h.text for h in driver.find_elements(By.CSS_SELECTOR, "h3")] == names  # one section per file sent
    assert refused_chips(driver) == {"oversize.jpg": f"Error: File must be {UPLOAD_LIMIT_MB:.1f}MB or smaller.",
                                     "notes.txt": "Error: text/plain files are not allowed."}
    for name in (MARKUP_BROKEN, *ZOO_INVALID):
        assert f"Cannot read {name}: " in text, name
    upright = f"{face.width}x{face.height} JPEG (RGB)"  # rotated.jpg, turned back by its EXIF orientation
    for shown in (upright, "4000x4000 JPEG", "8x8 PNG", "PNG (I;16)", "JPEG (CMYK)", "GIF (P, 2 frames"):
        assert shown in text, shown
    buttons = driver.find_elements(By.XPATH, "//button[normalize-space(.)='Download the annotated image']")
    assert len(buttons) == len(ZOO_VALID) + 1
    images = driver.find_elements(By.CSS_SELECTOR, "[data-testid=stImage] img")
    assert len(images) >= len(ZOO_VALID)
    wait_loaded(driver, images)
    screenshot(driver, "photo-zoo.png")


def test_a_three_class_model_boxes_a_face_worn_incorrectly_in_its_own_colour(dashboard, open_browser,
                                                                             three_class_mobilenet,
                                                                             three_class_dataset) -> None:
    model = dashboard.models_dir / "three-class"
    shutil.copytree(three_class_mobilenet, model)
    try:
        crop = sorted((three_class_dataset / "mask_weared_incorrect").iterdir())[0]
        driver = open_browser()
        driver.get(f"{dashboard.url}/photo")
        choose_option(driver, "Model", "three-class")
        wait_for_text(driver, lambda t: "Each photo is one face" in t, 60, "the detector choice")
        driver.find_element(By.XPATH, "//label[contains(., 'Each photo is one face')]").click()
        wait_idle(driver)
        wait_for(driver, "input[type=file]").send_keys(str(crop))
        text = wait_for_text(driver, lambda t: "Face 1" in t and "heatmap" in t, ANALYSIS_TIMEOUT_S,
                             "the face verdict and its explanation")
        assert "Face 1: 😶 mask worn incorrectly" in text, text
        assert "Class to explain" in text
        annotated = driver.find_elements(By.CSS_SELECTOR, "[data-testid=stImage] img")[0]
        wait_loaded(driver, [annotated])
        with urllib.request.urlopen(annotated.get_attribute("src"), timeout=30) as response:
            image = np.asarray(Image.open(io.BytesIO(response.read())).convert("RGB"), dtype=np.int16)
        purple = np.abs(image - LABEL_COLOURS_RGB["incorrect_mask"]).max(axis=2) <= 24
        assert purple.sum() > BOX_PIXELS_MIN // 5, purple.sum()  # the box in the third class's colour
        screenshot(driver, "photo-three-classes.png")
    finally:
        shutil.rmtree(model, ignore_errors=True)
