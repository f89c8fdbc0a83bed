"""RayExecutor on a real local Ray (one session for the module): a real evaluate-folder job reports progress and
gives the subprocess executor's result; cancel reaches a real training job through the shared flag."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import pytest

from maskdet.training.loop import TrainConfig
from maskdet.jobs import JobRunner, JobState, JobStatus, get_executor
from maskdet.jobs.base import JobContext, JobProgress
from maskdet.jobs.ray_executor import RayExecutor
from maskdet.jobs.registry import job_kind

JOB_TIMEOUT_S = 300  # Ray starts a fresh worker per job; the shared machine can be very busy
CANCEL_WITHIN_S = 15.0


@pytest.fixture(scope="module")
def ray_session():
    """One local Ray for every test here (starting one takes seconds on 2 cores)."""
    import ray

    from maskdet.batch.engines import connect_ray

    started = connect_ray()
    yield
    if started:
        ray.shutdown()


@job_kind("test-runs-until-killed")
def runs_until_killed(params: dict, job: JobContext) -> dict:
    """Appends its pid to ``params["starts"]`` then works until killed; a second start returns at once (a rerun)."""
    starts = Path(params["starts"])
    with starts.open("a") as handle:
        handle.write(f"{os.getpid()}\n")
    if len(starts.read_text().split()) > 1:
        return {"ran": "again"}
    for step in range(600):
        job.report(JobProgress(phase="working", message=f"step {step}", fraction=step / 600))
        time.sleep(0.1)
    return {"ran": "to the end"}


def _ship_by_value() -> None:
    """Ray workers cannot import this test module: send its functions (the job above) by value."""
    import ray

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])


def run(executor: str, kind: str, params: dict) -> tuple[JobStatus, list[JobStatus]]:
    """Run one job on a new runner with ``executor``: (final status, the snapshots seen while it ran)."""
    runner = JobRunner(executor=executor)
    runner.submit(kind, params)
    seen = []
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while (status := runner.snapshot()).active:
        assert time.monotonic() < deadline, status
        seen.append(status)
        time.sleep(0.05)
    return runner.wait(), seen


def test_the_executor_is_chosen_by_name_or_environment(monkeypatch) -> None:
    monkeypatch.setenv("MASKDET_JOB_EXECUTOR", "ray")
    assert isinstance(get_executor(), RayExecutor)
    monkeypatch.setenv("MASKDET_JOB_EXECUTOR", "gpu-farm")
    with pytest.raises(ValueError, match="unknown job executor 'gpu-farm'"):
        JobRunner()


@pytest.mark.slow  # ~25 s with the module's Ray start on 2 busy cores
def test_an_evaluation_on_ray_reports_progress_and_matches_the_subprocess_job(
        ray_session, tiny_dataset: Path, tiny_models_dir: Path, tmp_path: Path, monkeypatch) -> None:
    params = {"model": str(tiny_models_dir / "tiny-mlp"), "data": str(tiny_dataset)}
    monkeypatch.setenv("MASKDET_CACHE_DIR", str(tmp_path / "ray-cache"))  # reaches the Ray worker
    on_ray, seen = run("ray", "evaluate-folder", params)
    assert on_ray.state == JobState.FINISHED, on_ray.error
    assert on_ray.worker_pid is None  # a Ray worker is not this server's process
    # Progress reached the server while the job ran, and its last report is complete. Which phases a 50 ms poll
    # sees depends on the machine (on a quiet one, classifying 24 crops takes less than a poll), so the classifying
    # phase is checked in the job's log, which keeps every report.
    assert [s.progress.phase for s in seen if s.progress] and on_ray.progress.fraction == 1.0
    assert any("Classifying 24/24" in line for line in on_ray.log)
    assert len(list((tmp_path / "ray-cache" / "evaluations").glob("*.json"))) == 1

    monkeypatch.setenv("MASKDET_CACHE_DIR", str(tmp_path / "subprocess-cache"))  # no cache hit: a real evaluation
    in_process, _ = run("subprocess", "evaluate-folder", params)
    assert in_process.state == JobState.FINISHED, in_process.error
    expected, found = in_process.result, on_ray.result
    assert found.keys() == expected.keys() and found["metrics"] == expected["metrics"]
    assert (found["relpaths"], found["labels"]) == (expected["relpaths"], expected["labels"])
    assert found["scores"] == pytest.approx(expected["scores"], abs=1e-5)  # another torch thread count
    assert found["summary"] == expected["summary"]


@pytest.mark.slow  # ~14 s: a fresh Ray worker imports torch and starts training
def test_cancel_reaches_a_training_job_on_ray(ray_session, tiny_dataset: Path, isolated_models_dir: Path) -> None:
    runner = JobRunner(executor=RayExecutor())
    runner.submit("train", TrainConfig(arch="mlp", data=tiny_dataset, name="endless-ray", epochs=100_000,
                                       patience=100_000, img_size=24).to_json())
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while not ((status := runner.snapshot()).progress and status.progress.phase == "train"):
        assert status.active and time.monotonic() < deadline, status
        time.sleep(0.05)
    asked = time.monotonic()
    assert runner.cancel()
    status = runner.wait(CANCEL_WITHIN_S)
    assert status.state == JobState.CANCELLED, status
    assert time.monotonic() - asked < CANCEL_WITHIN_S
    assert "Cancelled: nothing was saved" in status.log[-1]
    assert list(isolated_models_dir.iterdir()) == []


@pytest.mark.slow  # ~10 s: a fresh Ray worker per job
def test_a_job_killed_midway_on_ray_fails_and_is_never_run_again(ray_session, tmp_path: Path) -> None:
    """Ray retries a task whose worker died (3 times by default): the job must run once, and say it died."""
    _ship_by_value()
    starts = tmp_path / "starts.txt"
    runner = JobRunner(executor=RayExecutor())
    runner.submit("test-runs-until-killed", {"starts": str(starts)})
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while not ((status := runner.snapshot()).progress and status.progress.phase == "working"):
        assert status.active and time.monotonic() < deadline, status
        time.sleep(0.05)
    os.kill(int(starts.read_text().split()[0]), signal.SIGKILL)  # what the out-of-memory killer does, mid-way
    status = runner.wait(JOB_TIMEOUT_S)
    assert status.state == JobState.FAILED, (status.state, status.result)
    assert "died" in status.error
    time.sleep(2)  # a retry would have started by now
    assert len(starts.read_text().split()) == 1
