"""The Train page in headless Chromium: train a tiny MLP through the form and see it finish and get listed."""

from __future__ import annotations

import pytest
from harness import (
    choose_option,
    click_button,
    fill_inputs,
    screenshot,
    selectbox_options,
    sidebar_link,
    wait_for_text,
    wait_for_value,
)

from maskdet.zoo.architectures import get_spec

pytestmark = pytest.mark.browser

MODEL_NAME = "browser-mlp"
EPOCHS = "2"
TRAIN_TIMEOUT_S = 180


def test_train_a_tiny_model_to_completion(dashboard, open_browser) -> None:
    driver = open_browser()
    driver.get(f"{dashboard.url}/train")
    wait_for_text(driver, lambda t: "Start training" in t, 60, "the training form")
    choose_option(driver, "Architecture", get_spec("mlp").title)
    wait_for_value(driver, "Epochs", str(get_spec("mlp").defaults.epochs))  # the MLP form replaced the default one
    fill_inputs(driver, {"Model name": MODEL_NAME, "Epochs": EPOCHS})
    click_button(driver, "Start training")

    text = wait_for_text(driver, lambda t: "Finished:" in t or "Training failed" in t, TRAIN_TIMEOUT_S,
                         "the training job to end")
    assert "Training failed" not in text, text
    assert f"Progress: 100% · Finished: {MODEL_NAME}" in text, text
    assert f"mlp on {dashboard.data_root}" in text and f"{EPOCHS} epochs" in text
    assert (dashboard.models_dir / MODEL_NAME / "metadata.json").is_file()
    screenshot(driver, "train.png")

    sidebar_link(driver, "webcam")  # another page lists the new model at once
    wait_for_text(driver, lambda t: "Live readout" in t, 60, "the Webcam page")
    assert MODEL_NAME in selectbox_options(driver, "Model")
