"""A fresh machine in headless Chromium: no data sets, no models. Home lists the built-in sample, the Train
page trains a small model on it to the end, and the Compare page shows that model."""

from __future__ import annotations

import pytest
from harness import ARTIFACTS, choose_option, click_button, fill_inputs, running_dashboard, screenshot, sidebar_link
from harness import wait_for_text, wait_for_value

from maskdet.data.local import SAMPLE_ROOT
from maskdet.zoo.architectures import get_spec

pytestmark = pytest.mark.browser

MODEL_NAME = "sample-mlp"
TRAIN_TIMEOUT_S = 240


@pytest.fixture()
def fresh_dashboard(tmp_path, chromium):
    """The dashboard with an empty data root, an empty models folder and no user data folder."""
    folders = {name: tmp_path / name for name in ("data", "models", "xdg")}
    for folder in folders.values():
        folder.mkdir()
    environment = {"MASKDET_DATA_ROOT": str(folders["data"]), "MASKDET_MODELS_DIR": str(folders["models"]),
                   "XDG_DATA_HOME": str(folders["xdg"])}
    with running_dashboard(environment, ARTIFACTS / "server-fresh.log") as url:
        yield url, folders["models"]


def test_a_fresh_machine_trains_on_the_sample_and_compares(fresh_dashboard, open_browser) -> None:
    url, models = fresh_dashboard
    driver = open_browser()
    driver.get(url)
    wait_for_text(driver, lambda t: "sample built into maskdet" in t, 90, "the Home page's data sets")

    sidebar_link(driver, "train")
    wait_for_text(driver, lambda t: "Start training" in t, 60, "the training form")
    choose_option(driver, "Architecture", get_spec("mlp").title)
    wait_for_value(driver, "Epochs", str(get_spec("mlp").defaults.epochs))
    fill_inputs(driver, {"Model name": MODEL_NAME, "Epochs": "2"})
    click_button(driver, "Start training")
    text = wait_for_text(driver, lambda t: "Finished:" in t or "Training failed" in t, TRAIN_TIMEOUT_S,
                         "the training job to end")
    assert "Training failed" not in text, text
    assert f"Finished: {MODEL_NAME}" in text and f"mlp on {SAMPLE_ROOT / 'sample-faces'}" in text, text
    assert (models / MODEL_NAME / "metadata.json").is_file()
    screenshot(driver, "first-run-train.png")

    sidebar_link(driver, "compare")
    wait_for_text(driver, lambda t: MODEL_NAME in t and "Unseen data" in t, 180, "the Compare page with the model")
