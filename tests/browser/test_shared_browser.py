"""A shared dashboard in headless Chromium (issue 23): the server listens on every interface, so every browser
is a visitor until signed in. A visitor uploads a photo and a clip and gets the demo, but cannot train, type a
server path or reach another visitor's upload; the owner signs in with the server's secret and trains."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from conftest import OWNER_SECRET
from harness import (
    choose_option,
    click_button,
    expand,
    fill_inputs,
    page_text,
    set_input,
    sidebar_link,
    wait_for,
    wait_for_text,
)
from selenium.webdriver.common.by import By

from maskdet.zoo.architectures import get_spec

pytestmark = pytest.mark.browser

TIMEOUT_S = 180
MODEL_NAME = "owner-mlp"


@pytest.fixture(scope="module")
def clip(webcam_video: Path, tmp_path_factory) -> Path:  # noqa: ANN001
    """Two seconds of the webcam test clip (real held-out faces) as an H.264 MP4."""
    path = tmp_path_factory.mktemp("clip") / "faces.mp4"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-i", str(webcam_video), "-t", "2", "-c:v", "libx264",
                    "-pix_fmt", "yuv420p", str(path)], check=True)
    return path


def radio_options(driver) -> list[str]:  # noqa: ANN001
    return [label.text for label in driver.find_elements(By.CSS_SELECTOR, "[data-testid='stRadio'] label")]


def test_visitors_get_the_demo_and_the_owner_signs_in_and_trains(shared_dashboard, open_browser, held_out_faces,
                                                                 clip) -> None:
    url = shared_dashboard.url
    visitor = open_browser()
    visitor.get(f"{url}/photo")
    text = wait_for_text(visitor, lambda t: "Visitor" in t and "Photos" in t, 60, "the Photo page for a visitor")
    assert "Reachable from the network" in text
    wait_for(visitor, "input[type=file]").send_keys(str(held_out_faces["with_mask"][0]))
    wait_for_text(visitor, lambda t: "Face 1" in t, TIMEOUT_S, "the photo's verdict")

    sidebar_link(visitor, "video")
    wait_for_text(visitor, lambda t: "Clip" in t, 60, "the Video page")
    wait_for(visitor, "input[type=file]").send_keys(str(clip))
    text = wait_for_text(visitor, lambda t: "frames analysed" in t or "Cannot analyse" in t, TIMEOUT_S,
                         "the clip's analysis")
    assert "frames analysed" in text, text

    sidebar_link(visitor, "train")
    text = wait_for_text(visitor, lambda t: "only the owner may train" in t, 60, "the Train page's refusal")
    assert "Start training" not in text

    sidebar_link(visitor, "dataset")
    wait_for_text(visitor, lambda t: "Upload a .zip" in t or "Zip archive" in t, 60, "the Dataset page")
    assert "Folder path" not in radio_options(visitor) and "Folder on the server" not in page_text(visitor)
    assert shared_dashboard.data_root.name not in page_text(visitor)  # not even the server's folders are listed

    other = open_browser()  # a second visitor: nothing of the first one's files is offered or named
    other.get(f"{url}/video")
    text = wait_for_text(other, lambda t: "Visitor" in t and "Clip" in t, 60, "the Video page for another visitor")
    assert "faces.mp4" not in text and "frames analysed" not in text
    other.get(f"{url}/dataset")
    wait_for_text(other, lambda t: "Zip archive" in t, 60, "the Dataset page for another visitor")
    assert "Folder path" not in radio_options(other)

    owner = open_browser()
    owner.get(f"{url}/train")
    wait_for_text(owner, lambda t: "only the owner may train" in t, 60, "the Train page before signing in")
    expand(owner, "Owner sign-in")
    set_input(owner, "Owner secret", "not the secret")
    click_button(owner, "Sign in")
    wait_for_text(owner, lambda t: "That is not the owner's secret." in t, 60, "the refusal of a wrong secret")
    expand(owner, "Owner sign-in")
    set_input(owner, "Owner secret", OWNER_SECRET)
    click_button(owner, "Sign in")
    wait_for_text(owner, lambda t: "Owner (signed in)" in t and "Start training" in t, 60, "the owner's form")
    choose_option(owner, "Architecture", get_spec("mlp").title)
    fill_inputs(owner, {"Model name": MODEL_NAME, "Epochs": "2"})
    click_button(owner, "Start training")
    text = wait_for_text(owner, lambda t: "Finished:" in t or "Training failed" in t, TIMEOUT_S, "the training")
    assert f"Finished: {MODEL_NAME}" in text, text
    assert (shared_dashboard.models_dir / MODEL_NAME / "metadata.json").is_file()

    visitor.get(f"{url}/train")  # still a visitor: sees the owner's job, not the form
    text = wait_for_text(visitor, lambda t: "only the owner may train" in t, 60, "the visitor's Train page")
    assert "Start training" not in text
