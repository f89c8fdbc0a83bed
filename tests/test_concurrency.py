"""Several sessions share one cached classifier while a training job runs: predictions stay correct,
the shared model is never mutated, and a second training request is refused."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from maskdet.checkpoint import load_model
from maskdet.engine import TrainConfig, fit
from maskdet.images import load_rgb
from maskdet.jobs import JobAlreadyRunning, JobState, TrainingJobRunner
from maskdet.predict import Classifier


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
    return Classifier(load_model(result.path))


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
