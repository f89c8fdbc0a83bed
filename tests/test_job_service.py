"""The server's one job service (issue 23): per-group limits with a queue, quotas, owning sessions, stream slots,
and nothing leaked however a job ends. Real jobs in real processes (tiny trainings on real images)."""

from __future__ import annotations

import os
import shutil
import signal
import time
from pathlib import Path

import pytest

from maskdet.jobs import JobRefused, JobRunner, JobService, JobState, Limits
from maskdet.training.loop import TrainConfig

TIMEOUT = 240


def endless(data: Path, name: str) -> dict:
    """A tiny MLP training that would go on for a very long time unless cancelled."""
    return TrainConfig(arch="mlp", data=data, name=name, epochs=100_000, patience=100_000, img_size=24).to_json()


def until(read, condition, timeout: float = TIMEOUT):  # noqa: ANN001, ANN201
    deadline = time.monotonic() + timeout
    while not condition(status := read()):
        assert time.monotonic() < deadline, f"condition not reached in {timeout} s; last {status}"
        time.sleep(0.05)
    return status


@pytest.fixture
def service():
    service = JobService(Limits(running={"training": 1, "analysis": 2, "evaluation": 2}, queued=4, per_session=2,
                                streams=2))
    yield service
    for entry in service.jobs():
        service.cancel(entry.job_id)
    for entry in service.jobs():
        service.wait(entry.job_id, TIMEOUT)


def test_one_training_at_a_time_the_next_waits_with_its_position(service, tiny_dataset, isolated_models_dir):
    """Defect 3: nothing limited concurrent jobs (three owners, no admission control)."""
    first = service.submit("train", endless(tiny_dataset, "first"), "owner", owner=True)
    second = service.submit("train", endless(tiny_dataset, "second"), "owner", owner=True)
    until(lambda: service.status(first), lambda s: s.state == JobState.RUNNING)
    waiting = service.status(second)
    assert waiting.state == JobState.QUEUED and waiting.position == 1 and waiting.active
    assert service.latest("train").job_id == second
    service.cancel(first)
    assert service.wait(first, TIMEOUT).state == JobState.CANCELLED
    until(lambda: service.status(second), lambda s: s.state == JobState.RUNNING)  # started when room was made
    service.cancel(second)
    assert service.wait(second, TIMEOUT).state == JobState.CANCELLED


def test_visitor_quotas_under_a_server_cap_and_a_cancelled_waiting_job(service, tiny_dataset, isolated_models_dir):
    jobs = [service.submit("train", endless(tiny_dataset, f"v{n}"), "visitor-a") for n in range(2)]
    with pytest.raises(JobRefused, match="most one visitor may have"):
        service.submit("train", endless(tiny_dataset, "v2"), "visitor-a")  # a third of one session
    jobs.append(service.submit("train", endless(tiny_dataset, "b0"), "visitor-b"))
    jobs.append(service.submit("train", endless(tiny_dataset, "owner"), "owner", owner=True))
    with pytest.raises(JobRefused, match="its limit"):  # 4 waiting or running: the server's cap, new tab or not
        service.submit("train", endless(tiny_dataset, "c0"), "visitor-c")
    assert [service.status(j).position for j in jobs[1:]] == [1, 2, 3]
    assert service.cancel(jobs[2])  # a waiting job leaves the queue at once
    assert service.status(jobs[2]).state == JobState.CANCELLED
    assert service.status(jobs[3]).position == 2


def test_a_visitors_jobs_are_cancelled_when_the_session_ends(service, tiny_dataset, isolated_models_dir):
    running = service.submit("train", endless(tiny_dataset, "a"), "visitor-a")
    waiting = service.submit("train", endless(tiny_dataset, "b"), "visitor-a")
    other = service.submit("train", endless(tiny_dataset, "c"), "visitor-b")
    owners = service.submit("train", endless(tiny_dataset, "o"), "visitor-a", owner=True)  # signed in on that tab
    until(lambda: service.status(running), lambda s: s.state == JobState.RUNNING)
    assert service.try_acquire_stream("visitor-a")
    assert service.end_session("visitor-a") == 2
    assert service.wait(running, TIMEOUT).state == JobState.CANCELLED
    assert service.status(waiting).state == JobState.CANCELLED
    assert service.streams() == {}
    with pytest.raises(JobRefused, match="ended"):  # e.g. the next job of the ended session's list
        service.submit("train", endless(tiny_dataset, "d"), "visitor-a")
    until(lambda: service.status(other), lambda s: s.state == JobState.RUNNING)  # another session's job goes on
    assert service.status(owners).active  # the owner's training outlives the tab that started it


def test_live_streams_count_against_the_owners_cap(service):
    assert service.try_acquire_stream("a") and service.try_acquire_stream("b")
    assert not service.try_acquire_stream("c")  # every slot taken, whatever the session
    service.release_stream("a")
    assert service.try_acquire_stream("c")
    service.set_limits(Limits(streams=3))
    assert service.try_acquire_stream("d") and not service.try_acquire_stream("e")
    assert service.streams() == {"b": 1, "c": 1, "d": 1}


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_killed_jobs_leak_no_descriptor_and_are_not_retried(tiny_dataset, isolated_models_dir):
    """Defect 11: a crashed job left its pipe open in the server (6 -> 12 descriptors after 5 killed jobs)."""
    runner = JobRunner()
    before = None
    for number in range(5):
        runner.submit("train", endless(tiny_dataset, f"killed{number}"))
        status = until(runner.snapshot, lambda s: s.worker_pid is not None)
        if before is None:
            before = _open_fds() - 2  # the running job's two pipe ends on this side
        os.kill(status.worker_pid, signal.SIGKILL)
        ended = runner.wait(TIMEOUT)
        assert ended.state == JobState.FAILED and "SIGKILL" in ended.error
        time.sleep(0.2)
        assert runner.snapshot().state == JobState.FAILED  # ran once: no automatic retry
    time.sleep(0.5)
    assert _open_fds() <= before, (before, _open_fds())


def test_a_visitors_upload_read_by_a_queued_evaluation_list_is_never_pruned(
        service, tiny_dataset, isolated_models_dir, tmp_path, monkeypatch):
    """The Compare page's evaluation lists (``QueuedJob.holds``) lease the visitor's uploaded data set from the
    list's submission to its end: neither the session's pruning of extractions nor the end of the session
    deletes it while a job reads it, or waits for the job before it."""
    from maskdet.data.archive import prune_extractions
    from maskdet.jobs import JobQueue, QueuedJob, SessionRunner
    from maskdet.workspace import LEASES, end_session, session_folder

    monkeypatch.setenv("MASKDET_CACHE_DIR", str(tmp_path / "cache"))
    uploads = session_folder("visitor-a") / "uploads"
    data = uploads / "upload-reading"
    shutil.copytree(tiny_dataset, data)
    queue = JobQueue(SessionRunner(service, "visitor-a"))
    queue.submit([QueuedJob(f"job {n}", "train", endless(data, f"q{n}"), holds=(str(data),)) for n in range(2)])
    until(queue.snapshot, lambda s: s.current is not None and s.current[2].state == JobState.RUNNING)

    prune_extractions(uploads, keep=0, max_bytes=0)  # a newer upload would prune every older extraction
    assert not end_session("visitor-a")  # the session's files are kept while the list runs
    assert data.is_dir() and LEASES.in_use(data)

    queue.cancel()
    assert not queue.wait(TIMEOUT).active
    assert not LEASES.in_use(data)
    assert end_session("visitor-a") and not data.exists()
