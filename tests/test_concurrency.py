"""Several sessions share one cached classifier while a training job runs: predictions stay correct,
the shared model is never mutated, and a second training request is refused."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import streamlit as st
import torch
from dashboard import ENTRY, page_test
from streamlit.testing.v1 import AppTest

from maskdet.zoo.folders import load_model
from maskdet.training.loop import TrainConfig, fit
from maskdet.data.images import load_rgb
from maskdet.jobs import JobAlreadyRunning, JobState, TrainingJobRunner
from maskdet.inference.predictor import Predictor
from ui.navigation import PAGES
from ui.training import TRAIN_PAGE, training_runner


@pytest.fixture(scope="module")
def trained_classifier(tmp_path_factory, tiny_dataset):
    import os

    folder = tmp_path_factory.mktemp("concurrency-models")
    previous = os.environ.get("MASKDET_MODELS_DIR")
    os.environ["MASKDET_MODELS_DIR"] = str(folder)
    try:
        result = fit(TrainConfig(arch="mobilenet_v2", data=tiny_dataset, epochs=1, img_size=96, feature_views=1,
                                 name="shared"))
    finally:
        if previous is None:
            del os.environ["MASKDET_MODELS_DIR"]
        else:
            os.environ["MASKDET_MODELS_DIR"] = previous
    return Predictor(load_model(result.path))


def test_parallel_sessions_during_training(trained_classifier, tiny_dataset):
    images = [load_rgb(p) for p in sorted((tiny_dataset / "with_mask").iterdir())[:4]]
    images += [load_rgb(p) for p in sorted((tiny_dataset / "without_mask").iterdir())[:4]]
    expected = trained_classifier.predict_proba(images)
    before = {k: v.clone() for k, v in trained_classifier.model.state_dict().items()}

    runner = TrainingJobRunner()
    runner.start(TrainConfig(arch="mlp", data=tiny_dataset, epochs=3, name="background-job"))
    with pytest.raises(JobAlreadyRunning):
        runner.start(TrainConfig(arch="mlp", data=tiny_dataset, epochs=1, name="second-job"))

    errors: list[BaseException] = []
    results: list[np.ndarray] = []
    lock = threading.Lock()

    def session() -> None:
        try:
            for _ in range(5):
                output = trained_classifier.predict_proba(images)
                with lock:
                    results.append(output)
                assert runner.snapshot().state in (JobState.RUNNING, JobState.CANCELLING, JobState.FINISHED)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=session) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    status = runner.wait(timeout=300)

    assert not errors, errors
    assert len(results) == 15
    for output in results:
        np.testing.assert_allclose(output, expected, atol=1e-5)
    for key, value in trained_classifier.model.state_dict().items():
        assert torch.equal(value, before[key]), f"shared model mutated: {key}"
    assert status.state == JobState.FINISHED, status.error


def test_sidebar_shows_the_servers_job_on_every_page_but_train(tiny_dataset):
    """The job started by one session shows, advancing, in another session's sidebar on any page (the Train page
    draws it in full instead); once cancelled the sidebar says so and links no more to the Train page."""
    def sidebar(app: AppTest) -> str:
        assert not app.exception, app.exception
        navigation = {page.title for page in PAGES}  # the sidebar's other lines: the app's links, who can reach it
        captions = [str(e.value) for e in app.sidebar.caption]
        return "\n".join(c for c in captions if not c.startswith(("🔒 Private", "🌐 Reachable", "👤"))) + "".join(
            f"\nlink: {e.label}" for e in app.sidebar.get("page_link") if e.label not in navigation)

    st.cache_resource.clear()  # a fresh server-wide runner
    app = page_test(ENTRY, 60).run()
    assert sidebar(app) == ""  # no job has run on this server
    runner = training_runner()  # the same cached runner the pages use
    runner.start(TrainConfig(arch="simple_cnn", data=tiny_dataset, epochs=50, patience=50, batch_size=1, img_size=64,
                             name="sidebar-job"))
    try:
        deadline = time.monotonic() + 90
        while not (runner.snapshot().progress and runner.snapshot().progress.phase == "train"):
            assert time.monotonic() < deadline, runner.snapshot()
            time.sleep(0.2)
        first = sidebar(app.run())
        assert "Progress:" in first and "· Running · Epoch" in first and "link: Follow or cancel" in first, first
        for page in ("pages/photo.py", "pages/webcam.py"):
            shown = sidebar(app.switch_page(page).run())
            assert "· Running · Epoch" in shown, shown
        while shown == first:  # the figures move on as the job trains (as the fragment's timer reruns it)
            assert time.monotonic() < deadline, shown
            time.sleep(0.3)
            shown = sidebar(app.run())
        assert "Running" not in sidebar(app.switch_page(TRAIN_PAGE).run())
    finally:
        runner.cancel()
        status = runner.wait(timeout=60)
    assert status.state == JobState.CANCELLED
    shown = sidebar(app.switch_page(ENTRY).run())
    assert shown.startswith("Last training job `sidebar-job`: Progress: ") and shown.endswith("· Cancelled"), shown
    assert "link:" not in shown
    st.cache_resource.clear()
