"""The Compare page in headless Chromium: evaluate the model on the unseen tiny data set, see its error gallery
(the thumbnails of exactly the files it gets wrong), explain one error with Integrated Gradients, and save a
screenshot of the gallery."""

from __future__ import annotations

import pytest
from harness import choose_option, retrying, screenshot, selectbox_options, wait_for_text
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from maskdet.inference.predictor import load_classifier
from maskdet.evaluation.folder import evaluate_folder

pytestmark = pytest.mark.browser

MODEL = "tiny-mobilenet"  # conftest.DEFAULT_MODEL, the dashboard's default model
DATASET = "tiny-faces"  # conftest.DATASET_NAME, the one data set under the dashboard's data root
PAGE_TIMEOUT_S = 180  # the first visit measures each model's latency
EVALUATE_TIMEOUT_S = 120
EXPLAIN_TIMEOUT_S = 120
GALLERY_FIRST = 24  # thumbnails the page shows before its "Thumbnails shown" slider


def click(driver, xpath: str, timeout: float = 30) -> None:
    retrying(lambda: WebDriverWait(driver, timeout).until(lambda d: d.find_element(By.XPATH, xpath)).click())


def shown_images(driver) -> list:
    """The images on screen (other tabs' images are in the page but hidden)."""
    return [image for image in driver.find_elements(By.CSS_SELECTOR, "[data-testid=stImage] img") if image.is_displayed()]


def test_error_gallery_of_an_unseen_evaluation(dashboard, open_browser) -> None:
    expected = evaluate_folder(load_classifier(str(dashboard.models_dir / MODEL)), dashboard.data_root / DATASET)
    wrong = [p for p, y, s in zip(expected.relpaths, expected.labels, expected.scores, strict=True)
             if int(s >= 0.5) != y]
    assert wrong, "the model gets every unseen file right: nothing for the gallery to show"

    driver = open_browser()
    driver.get(f"{dashboard.url}/compare")
    text = wait_for_text(driver, lambda t: "Error gallery" in t and "Unseen data" in t, PAGE_TIMEOUT_S,
                         "the Compare page with its error gallery")
    source = f"{DATASET} (unseen data)"
    evaluate = f"model(s) on {DATASET}"
    if evaluate not in text and source not in text:
        text = wait_for_text(driver, lambda t: evaluate in t or source in t, 60, "the unseen-data choice")
    if evaluate in text:  # not cached from an earlier visit
        click(driver, f"//button[starts-with(normalize-space(.), 'Evaluate ') and contains(., {evaluate!r})]")
    wait_for_text(driver, lambda t: source in t, EVALUATE_TIMEOUT_S, "the unseen evaluation")
    click(driver, f"//div[@data-testid='stRadio']//label[normalize-space(.)={source!r}]")
    wait_for_text(driver, lambda t: f"Misclassified files ({source})" in t, 60, "the gallery of the unseen data")
    click(driver, f"//*[@data-testid='stTab'][starts-with(normalize-space(.), '{MODEL} (')]")  # its gallery tab
    text = wait_for_text(driver, lambda t: f"{len(wrong)} of {len(wrong)} errors." in t, 60, "the model's gallery")

    thumbnails = min(len(wrong), GALLERY_FIRST)
    images = WebDriverWait(driver, 60).until(
        lambda d: (found := shown_images(d)) and len(found) >= thumbnails
        and d.execute_script("return arguments[0].every(i => i.complete && i.naturalWidth > 0)", found) and found,
        "the gallery thumbnails never loaded")
    assert len(images) == thumbnails
    for relpath in wrong[:GALLERY_FIRST]:
        assert relpath.rsplit("/", 1)[-1] in text, relpath  # each thumbnail is captioned with its file name

    options = selectbox_options(driver, "Explain an error")
    assert sorted(option.split(" (")[0] for option in options) == sorted(wrong)
    choose_option(driver, "Explain an error", options[0])
    wait_for_text(driver, lambda t: "Integrated Gradients heatmap" in t and "convergence error" in t,
                  EXPLAIN_TIMEOUT_S, "the Integrated Gradients explanation of the hardest error")
    assert len(shown_images(driver)) == thumbnails + 3  # original, heatmap and overlay below the gallery

    header = driver.find_element(By.XPATH, "//h3[contains(normalize-space(.), 'Error gallery')]")
    driver.execute_script("arguments[0].scrollIntoView({block: 'start'})", header)
    screenshot(driver, "compare-gallery.png")
    why = driver.find_element(By.XPATH, f"//p[starts-with(normalize-space(.), 'Why {MODEL} said')]")
    driver.execute_script("arguments[0].scrollIntoView({block: 'start'})", why)
    screenshot(driver, "compare-explanation.png")
