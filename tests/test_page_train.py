"""The Train page under AppTest: per-arch form defaults, missing weights, real background jobs seen from two tabs."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
import streamlit as st
import torch
from dashboard import page_test
from hostile_inputs import malicious_torch_file
from markdown_text import texts
from streamlit.testing.v1 import AppTest

from ui.dataset_picker import SOURCE_PATH, SOURCE_UPLOAD
from ui.models import list_trained_models
from ui.paths import PATH_ROOTS_ENV

PAGE = "pages/train.py"
TIMEOUT = 120  # one script run, including the first import of torch on a busy machine
JOB_TIMEOUT_S = 300


def assert_clean(at: AppTest) -> None:
    assert not at.exception, texts(at.exception)


def numbers(at: AppTest) -> dict[str, float]:
    return {w.label: w.value for w in at.number_input}


def start_button(at: AppTest):  # noqa: ANN201
    return next(b for b in at.button if b.label == "Start training")


def open_tab() -> AppTest:
    at = page_test(PAGE, TIMEOUT).run()
    assert_clean(at)
    return at


def fill(at: AppTest, data: Path, arch: str = "mlp", **numbers_by_key: float) -> AppTest:
    """Choose ``arch`` and the folder ``data``, then set form fields by key suffix (e.g. ``epochs=2``)."""
    at.selectbox(key="train_arch").set_value(arch).run()
    at.radio(key="train_source").set_value(SOURCE_PATH).run()
    at.text_input(key="train_path").input(str(data)).run()
    for suffix, value in numbers_by_key.items():
        widget = at.text_input if suffix == "name" else at.number_input
        widget(key=f"train_{arch}_{suffix}").set_value(value)
    return at


def poll(at: AppTest, condition, timeout: float = JOB_TIMEOUT_S) -> AppTest:  # noqa: ANN001
    """Rerun the page (as the fragment timer would) until ``condition(at)``."""
    deadline = time.monotonic() + timeout
    while True:
        at.run()
        assert_clean(at)
        if condition(at):
            return at
        if time.monotonic() > deadline:
            raise AssertionError(f"page never reached the condition; status: {texts(at.text)}")
        time.sleep(0.3)


def status_text(at: AppTest) -> str:
    return texts(at.text)


@pytest.fixture(autouse=True)
def fresh_runner():
    """Each test gets a new server-wide runner; a job still running at the end is cancelled."""
    st.cache_resource.clear()
    st.cache_data.clear()
    yield
    at = page_test(PAGE, TIMEOUT).run()
    if any(b.label == "Cancel" for b in at.button):
        at.button(key="train_cancel").click().run()
        poll(at, lambda a: not any(b.label == "Cancel" for b in a.button))
    st.cache_resource.clear()


def test_form_defaults_follow_the_architecture():
    at = open_tab()
    assert at.selectbox(key="train_arch").value == "mobilenet_v2"
    assert "MobileNetV2 features" in texts(at.markdown)
    assert numbers(at) == {
        "Epochs": 20, "Batch size": 64, "Learning rate": 0.001, "Image size (px)": 224, "Feature views": 2,
        "Fine-tune depth (blocks)": 0, "Early-stopping patience (epochs)": 4, "Seed": 0,
    }
    assert at.number_input(key="train_mobilenet_v2_finetune").max == 19
    assert "No training job has run" in texts(at.info)
    assert not start_button(at).disabled  # a data set is listed by default

    at.selectbox(key="train_arch").set_value("mlp").run()
    assert_clean(at)
    assert "2500-1024-512-64-2" in texts(at.markdown)
    assert numbers(at) == {"Epochs": 30, "Batch size": 64, "Learning rate": 0.001, "Image size (px)": 50,
                           "Early-stopping patience (epochs)": 6, "Seed": 0}

    at.selectbox(key="train_arch").set_value("simple_cnn").run()
    assert (numbers(at)["Epochs"], numbers(at)["Batch size"], numbers(at)["Image size (px)"]) == (25, 32, 128)

    at.number_input(key="train_simple_cnn_epochs").set_value(3).run()
    at.selectbox(key="train_arch").set_value("mlp").run()
    at.selectbox(key="train_arch").set_value("simple_cnn").run()
    assert numbers(at)["Epochs"] == 25  # switching architecture brings back that architecture's defaults

    at.selectbox(key="train_arch").set_value("efficientnet_lite0").run()
    assert_clean(at)
    assert "EfficientNet-Lite0 features" in texts(at.markdown)
    assert numbers(at)["Image size (px)"] == 224
    depth = at.number_input(key="train_efficientnet_lite0_finetune")
    assert (depth.value, depth.max) == (0, 17)  # its 16 blocks and the head convolution, not MobileNetV2's 19


def test_no_data_set_disables_start(tmp_path, monkeypatch):
    monkeypatch.setenv("MASKDET_DATA_ROOT", str(tmp_path))
    at = open_tab()
    at.radio(key="train_source").set_value(SOURCE_UPLOAD).run()  # an empty root lists the built-in sample
    assert "Choose a data set to train on." in texts(at.info)
    assert start_button(at).disabled


def test_densenet_without_weights_explains_how_to_provide_them(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    at = open_tab()
    at.selectbox(key="train_arch").set_value("densenet121").run()
    assert_clean(at)
    warning = texts(at.warning)
    assert "cannot start yet" in warning and "densenet121-a639ec97.pth" in warning
    assert "https://download.pytorch.org/models/densenet121-a639ec97.pth" in warning
    assert start_button(at).disabled

    at.text_input(key="train_weights_densenet121").input(str(tmp_path / "missing.pth"))
    at.button(key="train_install_densenet121").click().run()
    assert_clean(at)
    assert "missing.pth does not exist" in texts(at.error)

    wrong = tmp_path / "densenet121-a639ec97.pth"
    wrong.write_bytes(b"not the weights")
    at.text_input(key="train_weights_densenet121").input(str(wrong))
    at.button(key="train_install_densenet121").click().run()
    assert_clean(at)
    assert "SHA-256 mismatch" in texts(at.error)
    assert not (tmp_path / "hub" / "checkpoints" / wrong.name).exists()
    assert start_button(at).disabled


def test_train_from_the_page_and_see_it_in_another_tab(tiny_dataset, isolated_models_dir):
    at = fill(open_tab(), tiny_dataset, name="page-mlp", epochs=2, size=24)
    start_button(at).click().run()
    assert_clean(at)

    poll(at, lambda a: "Progress: 100%" in status_text(a))
    assert "Progress: 100% · Finished: page-mlp" in status_text(at)
    assert "Finished: page-mlp · test accuracy" in texts(at.success)
    assert not any(b.label == "Cancel" for b in at.button)
    assert len(at.get("plotly_chart")) == 1  # loss and accuracy curves
    assert "Epoch 2/2: val loss" in texts(at.code)
    assert (isolated_models_dir / "page-mlp" / "metadata.json").is_file()
    assert [m["name"] for m in list_trained_models()] == ["page-mlp"]  # the other pages' list sees it at once

    other = open_tab()  # a second tab, or coming back to the page later
    assert "Progress: 100% · Finished: page-mlp" in status_text(other)


def test_second_start_says_a_job_is_running_and_cancel_stops_it(datasets_root, isolated_models_dir):
    data = datasets_root / "synthetic-masks-2k"
    at = fill(open_tab(), data, name="long-job", epochs=500, patience=100)
    start_button(at).click().run()
    assert_clean(at)
    assert "Running" in status_text(at)
    # The one progress widget of every page (ui.jobs.show_job_progress), not a second one of the Train page's own.
    bars = at.get("progress")
    assert len(bars) == 1 and bars[0].proto.text.startswith("Training `long-job`: "), [b.proto.text for b in bars]
    assert [b.key for b in at.button if b.label == "Cancel"] == ["train_cancel"]

    other = fill(open_tab(), data, name="second-job", epochs=1)
    assert "Running" in status_text(other) and "long-job" in texts(other.caption)  # the same job in tab 2
    start_button(other).click().run()
    assert_clean(other)
    assert "A training job is already running" in texts(other.warning)

    other.button(key="train_cancel").click().run()
    poll(at, lambda a: "Cancelled" in status_text(a), timeout=30)
    assert "Cancelled: nothing was saved." in texts(at.warning)
    assert not any(b.label == "Cancel" for b in at.button)
    assert list(isolated_models_dir.iterdir()) == []


def test_failed_job_shows_its_error_and_the_page_keeps_working(tiny_dataset, tmp_path, isolated_models_dir):
    one_class = tmp_path / "one-class"
    shutil.copytree(tiny_dataset / "with_mask", one_class / "with_mask")
    at = fill(open_tab(), one_class, name="doomed", epochs=1)
    start_button(at).click().run()
    poll(at, lambda a: "Failed" in status_text(a))
    assert "Training failed" in texts(at.error) and "both classes" in texts(at.error)

    fill(at, tiny_dataset, name="doomed", epochs=1, size=24)
    start_button(at).click().run()
    poll(at, lambda a: "Finished: doomed" in status_text(a))
    assert (isolated_models_dir / "doomed").is_dir()

    fill(at, tiny_dataset, name="doomed", epochs=1)  # the name is taken now
    start_button(at).click().run()
    assert_clean(at)
    assert "A model named `doomed` already exists" in texts(at.error)


def test_weights_path_refuses_a_malicious_pickle_and_unusable_paths(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    marker = tmp_path / "pwned"
    evil = malicious_torch_file(tmp_path / "densenet121-a639ec97.pth", marker)  # the expected file name
    at = open_tab()
    at.selectbox(key="train_arch").set_value("densenet121").run()
    monkeypatch.setenv(PATH_ROOTS_ENV, str(tmp_path / "weights"))
    attempts = {
        str(evil): "is outside the folders this server allows",
        "~no-such-user-here/densenet121-a639ec97.pth": "no such user's home folder",
        "densenet121-a639ec97.pth": "not an absolute path",
    }
    for text, reason in attempts.items():
        at.text_input(key="train_weights_densenet121").input(text)
        at.button(key="train_install_densenet121").click().run()
        assert_clean(at)
        assert reason in texts(at.error), (text, texts(at.error))

    monkeypatch.delenv(PATH_ROOTS_ENV)
    at.text_input(key="train_weights_densenet121").input(str(evil))
    at.button(key="train_install_densenet121").click().run()
    assert_clean(at)
    assert "SHA-256 mismatch" in texts(at.error) and "refusing it" in texts(at.error)
    assert not (tmp_path / "hub" / "checkpoints" / evil.name).exists()
    assert start_button(at).disabled
    assert not marker.exists()


def test_a_model_name_that_is_a_path_is_refused_before_touching_anything(tiny_dataset, isolated_models_dir):
    name = f"../{isolated_models_dir.name}"  # models/../models exists: the name must not even be looked up
    at = fill(open_tab(), tiny_dataset, name=name, epochs=1)
    start_button(at).click().run()
    assert_clean(at)
    assert f"Cannot start: invalid model name {name!r}" in texts(at.error)
    assert "No training job has run" in texts(at.info)
