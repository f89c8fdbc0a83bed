"""The background job runner, without Streamlit: real training on real images, in a real child process."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from maskdet.zoo.folders import list_model_folders, load_model
from maskdet.inference.predictor import Predictor
from maskdet.training.loop import TrainConfig
from maskdet.data.images import load_rgb
from maskdet.jobs import (
    JobAlreadyRunning,
    JobQueue,
    JobRunner,
    JobState,
    JobStatus,
    QueuedJob,
    TrainingJobRunner,
    job_kinds,
)
from maskdet.jobs.worker import DEFAULT_JOB_NICENESS

JOB_TIMEOUT_S = 240  # a tiny job takes seconds; the shared CI machine can be very busy
CANCEL_WITHIN_S = 5.0


def endless(data: Path, name: str = "endless") -> TrainConfig:
    """A tiny MLP run that would go on for a very long time unless cancelled."""
    return TrainConfig(arch="mlp", data=data, name=name, epochs=100_000, patience=100_000, img_size=24)


def wait_until(runner: TrainingJobRunner, condition, timeout: float = JOB_TIMEOUT_S) -> JobStatus:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = runner.snapshot()
        if condition(status):
            return status
        time.sleep(0.05)
    raise AssertionError(f"condition not reached in {timeout} s; last status {runner.snapshot()}")


@pytest.fixture
def runner():
    runner = TrainingJobRunner()
    yield runner
    runner.cancel()  # never leave a worker thread training into the next test's models folder
    runner.wait(JOB_TIMEOUT_S)


def test_job_trains_reports_progress_and_saves(runner, tiny_dataset, isolated_models_dir, caplog):
    caplog.set_level(logging.INFO, logger="maskdet")
    assert runner.snapshot().state == JobState.IDLE

    job_id = runner.start(TrainConfig(arch="mlp", data=tiny_dataset, name="job-mlp", epochs=3, img_size=32))
    seen: list[JobStatus] = []
    status = runner.snapshot()
    while status.active:
        seen.append(status)
        time.sleep(0.02)
        status = runner.snapshot()
    status = runner.wait(JOB_TIMEOUT_S)

    assert status.job_id == job_id and status.state == JobState.FINISHED, status.error
    assert status.model_name == "job-mlp" and Path(status.model_path) == isolated_models_dir / "job-mlp"
    assert status.fraction == 1.0 and status.error is None
    assert 0.0 <= status.metrics["test"]["accuracy"] <= 1.0
    assert status.finished >= status.started and status.elapsed() == status.finished - status.started
    assert status.config["arch"] == "mlp" and status.config["epochs"] == 3 and status.config["batch_size"] == 64
    assert [m["name"] for m in list_model_folders()] == ["job-mlp"]
    assert json.loads((isolated_models_dir / "job-mlp" / "metadata.json").read_text())["history"]
    # Readers saw the job move forward: several phases, a monotonic overall fraction, per-epoch history.
    fractions = [s.progress.fraction for s in seen if s.progress]
    assert fractions == sorted(fractions) and len(set(fractions)) > 2
    assert {"train"} <= {s.progress.phase for s in seen if s.progress}
    assert [row["epoch"] for row in status.progress.history] == [1, 2, 3]
    # The log has the runner's lines, phase changes, each epoch's summary and the engine's own logging.
    log = "\n".join(status.log)
    assert f"Job {job_id}: training job-mlp (mlp)" in log
    assert "Epoch 3/3: val loss" in log
    assert "training job-mlp (end-to-end)" in log  # maskdet.training.loop's logger.info
    assert "saved model" in log  # maskdet.zoo.folders's logger.info
    assert log.splitlines()[-1].endswith(f"Finished: job-mlp saved in {isolated_models_dir / 'job-mlp'}")


def test_one_job_at_a_time_and_cancel(runner, tiny_dataset, isolated_models_dir):
    runner.start(endless(tiny_dataset))
    wait_until(runner, lambda s: s.progress is not None and s.progress.phase == "train")

    with pytest.raises(JobAlreadyRunning, match="already running"):
        runner.start(TrainConfig(arch="mlp", data=tiny_dataset, name="second"))
    assert runner.snapshot().config["name"] == "endless"  # the running job is untouched

    asked = time.monotonic()
    assert runner.cancel()
    assert runner.snapshot().state in (JobState.CANCELLING, JobState.CANCELLED)
    status = runner.wait(CANCEL_WITHIN_S)
    assert status.state == JobState.CANCELLED, status
    assert time.monotonic() - asked < CANCEL_WITHIN_S
    assert status.model_name is None and "Cancelled: nothing was saved" in status.log[-1]
    assert list(isolated_models_dir.iterdir()) == []  # no model, no staging folder
    assert not runner.cancel()  # nothing left to cancel

    runner.start(TrainConfig(arch="mlp", data=tiny_dataset, name="after-cancel", epochs=1, img_size=24))
    assert runner.wait(JOB_TIMEOUT_S).state == JobState.FINISHED
    assert (isolated_models_dir / "after-cancel" / "metadata.json").is_file()


def test_cancel_while_extracting_features(runner, datasets_root, isolated_models_dir, tmp_path, monkeypatch):
    """Cancelling during the longest phase of a frozen-backbone run (feature extraction) is prompt too."""
    monkeypatch.setenv("MASKDET_CACHE_DIR", str(tmp_path / "cache"))  # no cached features from earlier runs
    runner.start(TrainConfig(arch="mobilenet_v2", data=datasets_root / "synthetic-masks-2k", name="mnv2", img_size=96))
    wait_until(runner, lambda s: s.progress is not None and s.progress.phase == "extract")
    asked = time.monotonic()
    runner.cancel()
    status = runner.wait(CANCEL_WITHIN_S)
    assert status.state == JobState.CANCELLED and time.monotonic() - asked < CANCEL_WITHIN_S
    assert not (isolated_models_dir / "mnv2").exists()
    assert not list((tmp_path / "cache").rglob("features/*"))  # no half-written feature cache


def test_failures_are_reported_and_the_runner_keeps_working(
    runner, tiny_dataset, isolated_models_dir, tmp_path, monkeypatch
):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # the job's torch.hub folder: no DenseNet121 weights
    runner.start(TrainConfig(arch="densenet121", data=tiny_dataset, name="densenet", epochs=1))
    status = runner.wait(JOB_TIMEOUT_S)
    assert status.state == JobState.FAILED
    assert "densenet121" in status.error and "weights-file field" in status.error
    assert status.model_name is None and f"Failed: {status.error.splitlines()[0]}" in "\n".join(status.log)

    one_class = tmp_path / "one-class"
    shutil.copytree(tiny_dataset / "with_mask", one_class / "with_mask")
    runner.start(TrainConfig(arch="mlp", data=one_class, name="one-class", epochs=1))
    status = runner.wait(JOB_TIMEOUT_S)
    assert status.state == JobState.FAILED and "both classes" in status.error

    runner.start(TrainConfig(arch="mlp", data=tiny_dataset, name="fine", epochs=1, img_size=24))
    assert runner.wait(JOB_TIMEOUT_S).state == JobState.FINISHED
    assert [m["name"] for m in list_model_folders()] == ["fine"]


def test_bad_config_is_refused_before_a_job_starts(runner, tiny_dataset):
    with pytest.raises(ValueError, match="unknown architecture"):
        runner.start(TrainConfig(arch="resnet9000", data=tiny_dataset))
    with pytest.raises(ValueError, match="invalid model name"):
        runner.start(TrainConfig(arch="mlp", data=tiny_dataset, name="../escape"))
    assert runner.snapshot() == JobStatus()


def test_log_captures_only_the_job(runner, tiny_dataset, caplog):
    caplog.set_level(logging.INFO, logger="maskdet")
    runner.start(endless(tiny_dataset))
    wait_until(runner, lambda s: s.progress is not None and s.progress.phase == "train")
    logging.getLogger("maskdet.training.loop").info("a message from another thread")
    runner.cancel()
    status = runner.wait(JOB_TIMEOUT_S)
    assert status.state == JobState.CANCELLED
    assert not any("another thread" in line for line in status.log)
    assert not logging.getLogger("maskdet").handlers  # the job's handler is gone with the job


def test_job_runs_in_its_own_process(runner, tiny_dataset):
    assert {"train", "evaluate-folder"} <= set(job_kinds())
    runner.start(endless(tiny_dataset))
    status = wait_until(runner, lambda s: s.progress is not None and s.progress.phase == "train")
    assert status.worker_pid is not None and status.worker_pid != os.getpid()
    assert status.kind == "train"
    # at a lower CPU priority than the server: pages and webcam frames come first
    server = os.getpriority(os.PRIO_PROCESS, 0)
    assert os.getpriority(os.PRIO_PROCESS, status.worker_pid) == min(server + DEFAULT_JOB_NICENESS, 19)
    assert os.getpriority(os.PRIO_PROCESS, 0) == server
    runner.cancel()
    assert runner.wait(JOB_TIMEOUT_S).worker_pid is None


def test_a_killed_job_is_a_failure_and_the_server_keeps_working(runner, tiny_dataset, tiny_models_dir,
                                                                   isolated_models_dir):
    """A real SIGKILL of the training process (what the out-of-memory killer does): the runner says so, the
    server process and its other sessions (a classifier answering meanwhile) carry on, and the next job runs."""
    classifier = Predictor(load_model(tiny_models_dir / "tiny-cnn"))
    images = [load_rgb(p) for p in sorted((tiny_dataset / "with_mask").iterdir())[:4]]
    expected = classifier.predict_proba(images)
    answers: list = []
    stop = threading.Event()

    def other_session() -> None:
        while not stop.is_set():
            answers.append(classifier.predict_proba(images))

    session = threading.Thread(target=other_session)
    runner.start(endless(tiny_dataset, name="doomed"))
    status = wait_until(runner, lambda s: s.progress is not None and s.progress.phase == "train")
    session.start()
    try:
        os.kill(status.worker_pid, signal.SIGKILL)
        status = runner.wait(JOB_TIMEOUT_S)
    finally:
        stop.set()
        session.join(60)
    assert status.state == JobState.FAILED
    assert "killed by SIGKILL" in status.error and f"Failed: {status.error}" in status.log[-1]
    assert status.model_name is None and not (isolated_models_dir / "doomed").exists()
    assert answers and all(abs(a - expected).max() < 1e-5 for a in answers)

    runner.start(TrainConfig(arch="mlp", data=tiny_dataset, name="after-kill", epochs=1, img_size=24))
    assert runner.wait(JOB_TIMEOUT_S).state == JobState.FINISHED
    assert [m["name"] for m in list_model_folders()] == ["after-kill"]


def test_training_leaves_the_servers_random_generators_alone(runner, tiny_dataset):
    """SmoothGrad in another session draws noise from the global generator: a training job must not reseed it."""
    torch.manual_seed(1234)
    expected = torch.stack([torch.randn(1000) for _ in range(4)])
    torch.manual_seed(1234)
    drawn = [torch.randn(1000)]
    runner.start(TrainConfig(arch="mlp", data=tiny_dataset, name="rng", epochs=3, img_size=24))
    wait_until(runner, lambda s: s.progress is not None and s.progress.phase == "train")
    drawn.append(torch.randn(1000))
    assert runner.wait(JOB_TIMEOUT_S).state == JobState.FINISHED
    drawn += [torch.randn(1000), torch.randn(1000)]
    assert torch.equal(torch.stack(drawn), expected)


def test_folder_evaluation_job(tiny_dataset, tiny_models_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("MASKDET_CACHE_DIR", str(tmp_path / "cache"))
    runner = JobRunner()
    with pytest.raises(ValueError, match="does not exist"):
        runner.submit("evaluate-folder", {"model": str(tmp_path / "no-model"), "data": str(tiny_dataset)})
    with pytest.raises(ValueError, match="not a folder of boxed photos"):
        runner.submit("evaluate-scenes", {"model": "tiny-mlp", "data": str(tiny_dataset)})
    runner.submit("evaluate-folder", {"model": str(tiny_models_dir / "tiny-mlp"), "data": str(tiny_dataset)})
    status = runner.wait(JOB_TIMEOUT_S)
    assert status.state == JobState.FINISHED, status.error
    assert status.kind == "evaluate-folder" and status.fraction == 1.0
    assert status.result["metrics"]["n"] == 24 and len(status.result["scores"]) == 24
    assert status.progress.phase == "classifying" and status.progress.fraction == 1.0
    assert status.log[-1].endswith(f"Finished: tiny-mlp on {tiny_dataset}: accuracy {status.result['metrics']['accuracy']:.4f}")


def test_a_job_does_not_run_the_callers_main_script(tiny_dataset, tiny_models_dir, tmp_path, monkeypatch):
    """Under Streamlit ``sys.modules["__main__"]`` is the page script; a job process must not run it again
    (a 'spawn' child did: the whole page, with its model recovery, in every job)."""
    marker = tmp_path / "page-ran"
    page = tmp_path / "page.py"
    page.write_text(f"open({str(marker)!r}, 'w').close()\n")
    fake_main = type(sys)("__main__")
    fake_main.__file__ = str(page)
    monkeypatch.setitem(sys.modules, "__main__", fake_main)
    monkeypatch.setenv("MASKDET_CACHE_DIR", str(tmp_path / "cache"))
    runner = JobRunner()
    runner.submit("evaluate-folder", {"model": str(tiny_models_dir / "tiny-mlp"), "data": str(tiny_dataset)})
    status = runner.wait(JOB_TIMEOUT_S)
    assert status.state == JobState.FINISHED, status.error
    assert not marker.exists()


def evaluation(model: Path, data: Path) -> QueuedJob:
    return QueuedJob(label=model.name, kind="evaluate-folder", params={"model": str(model), "data": str(data)})


def test_a_queue_runs_its_jobs_in_order_and_reports_each_failure(tiny_dataset, tiny_models_dir, tmp_path,
                                                                   monkeypatch):
    monkeypatch.setenv("MASKDET_CACHE_DIR", str(tmp_path / "cache"))
    broken = tmp_path / "broken-model"
    shutil.copytree(tiny_models_dir / "tiny-mlp", broken)
    (broken / "model.safetensors").write_bytes(b"not weights")
    queue = JobQueue()
    # The broken copy first: its metadata claims tiny-mlp's weights, so after tiny-mlp it would hit that cache.
    jobs = [evaluation(broken, tiny_dataset), evaluation(tiny_models_dir / "tiny-mlp", tiny_dataset),
            evaluation(tmp_path / "no-model", tiny_dataset), evaluation(tiny_models_dir / "tiny-cnn", tiny_dataset)]
    queue.submit(jobs)
    with pytest.raises(JobAlreadyRunning):
        queue.submit(jobs[:1])
    seen = []
    while (status := queue.snapshot()).active:
        seen.append(status)
        time.sleep(0.05)
    status = queue.wait(JOB_TIMEOUT_S)

    assert [s.state for s in status.statuses] == [JobState.FAILED, JobState.FINISHED, JobState.FAILED,
                                                  JobState.FINISHED]
    assert status.fraction == 1.0 and status.current is None
    assert [s.result["metrics"]["n"] for s in status.statuses if s.result] == [24, 24]
    failures = dict((job.label, message) for job, message in status.failures())
    assert failures.keys() == {"broken-model", "no-model"}
    assert "does not exist" in failures["no-model"]  # refused before a process started
    # While running, readers saw one job at a time, in order, and overall progress never went back.
    running = [s.current[1].label for s in seen if s.current]
    assert running and running == sorted(running, key=[j.label for j in jobs].index)
    fractions = [s.fraction for s in seen]
    assert fractions == sorted(fractions)


def test_cancelling_a_queue_stops_the_running_job_and_drops_the_rest(tiny_dataset, tiny_models_dir,
                                                                       isolated_models_dir):
    queue = JobQueue()
    queue.submit([QueuedJob(label="endless", kind="train", params=endless(tiny_dataset).to_json()),
                  evaluation(tiny_models_dir / "tiny-mlp", tiny_dataset)])
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while not ((current := queue.snapshot().current) and current[2].progress and current[2].progress.phase == "train"):
        assert time.monotonic() < deadline, queue.snapshot()
        time.sleep(0.05)
    assert queue.cancel()
    status = queue.wait(CANCEL_WITHIN_S + 5)
    assert not status.active
    assert [s.state for s in status.statuses] == [JobState.CANCELLED, JobState.CANCELLED]
    assert status.statuses[1].job_id is None  # never started
    assert not queue.cancel() and list(isolated_models_dir.iterdir()) == []
