"""Batch scoring (``predict --output/--resume/--workers/--engine`` and the ``score-batch`` job kind): same
records in every engine, resumable after a real SIGKILL or a cancelled job with no torn or duplicate line, a
dead worker restarted, flat memory.

The real CLI runs in subprocesses with the real CenterFace detector and a real tiny MobileNetV2, on
photos composed from real held-out face crops.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
from PIL import Image

from maskdet.batch.engines import WORKER_DIED
from maskdet.batch.sinks import JsonLinesFileSink, resume_jsonl
from maskdet.jobs import JobRunner, JobState, JobStatus

REPO = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "PYTHONPATH": str(REPO)}


def predict(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "maskdet", "predict", *args], cwd=REPO, env=ENV,
                          capture_output=True, text=True, timeout=timeout)


def _sigint_as_in_a_terminal() -> None:
    """A command started from a terminal has SIGINT's default action; a suite run as a background job of a
    non-interactive shell inherits SIGINT ignored, and Python then never raises KeyboardInterrupt."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start_predict(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "maskdet", "predict", *args], cwd=REPO, env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_sigint_as_in_a_terminal)


def read_records(path: Path) -> list[dict]:
    text = path.read_text()
    assert text == "" or text.endswith("\n"), "the output ends in a torn line"
    return [json.loads(line) for line in text.splitlines()]


def by_path(records: list[dict]) -> dict[str, dict]:
    paths = [r["path"] for r in records]
    assert len(paths) == len(set(paths)), "a path was written twice"
    return {r["path"]: r for r in records}


def wait_for_lines(path: Path, count: int, process: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_bytes().count(b"\n") >= count:
            return
        assert process.poll() is None, f"predict ended early: {process.stderr.read()}"
        time.sleep(0.05)
    pytest.fail(f"{path} did not reach {count} lines in {timeout} s")


@pytest.fixture(scope="module")
def archive(tmp_path_factory, held_out_faces, frame_composer) -> Path:
    """40 photos (one or two real faces each, in sub-folders) plus two broken files."""
    root = tmp_path_factory.mktemp("archive")
    masked, bare = held_out_faces["with_mask"], held_out_faces["without_mask"]
    for index in range(40):
        folder = root / f"day-{index % 3}"
        folder.mkdir(exist_ok=True)
        faces = [masked[index % len(masked)], bare[index % len(bare)]][: 1 + index % 2]
        places = [(60 + 7 * index, 120, 180), (400, 140, 170)][: len(faces)]
        Image.fromarray(frame_composer(faces, places)).save(folder / f"photo-{index:03d}.jpg", quality=92)
    (root / "day-0" / "notes.jpg").write_text("not a photo")
    (root / "day-1" / "cut.jpg").write_bytes((root / "day-1" / "photo-001.jpg").read_bytes()[:3000])
    return root


@pytest.fixture(scope="module")
def reference(archive, tiny_mobilenet, tmp_path_factory) -> dict[str, dict]:
    """The in-process engine's records of the archive (the reference every engine must match)."""
    out = tmp_path_factory.mktemp("reference") / "records.jsonl"
    done = predict(str(archive), "--model", str(tiny_mobilenet), "--output", str(out))
    assert done.returncode == 2, done.stderr  # the two broken files
    records = by_path(read_records(out))
    assert len(records) == 42
    assert sum("error" in r for r in records.values()) == 2
    assert sum(len(r.get("faces", [])) for r in records.values()) >= 54  # of 60 faces: real detection work
    return records


def assert_same_records(found: dict[str, dict], expected: dict[str, dict]) -> None:
    assert found.keys() == expected.keys()
    for path, record in expected.items():
        other = found[path]
        assert set(other) == set(record), path
        if "error" in record:
            assert other["error"] == record["error"]
            continue
        assert [f["box"] for f in other["faces"]] == [f["box"] for f in record["faces"]], path
        assert [f["label"] for f in other["faces"]] == [f["label"] for f in record["faces"]], path
        for mine, theirs in zip(other["faces"], record["faces"], strict=True):
            assert mine["confidence"] == pytest.approx(theirs["confidence"], abs=1e-3)


def test_two_worker_processes_give_the_same_records(archive, tiny_mobilenet, reference, tmp_path) -> None:
    out = tmp_path / "workers.jsonl"
    done = predict(str(archive), "--model", str(tiny_mobilenet), "--workers", "2", "--output", str(out))
    assert done.returncode == 2, done.stderr
    assert_same_records(by_path(read_records(out)), reference)


def test_json_lines_on_stdout_stream_in_input_order(archive, tiny_mobilenet, reference) -> None:
    done = predict(str(archive), "--model", str(tiny_mobilenet), "--json", "--batch-size", "5")
    records = [json.loads(line) for line in done.stdout.splitlines()]
    assert [r["path"] for r in records] == sorted(reference)  # folders walked in sorted order
    assert_same_records(by_path(records), reference)


@pytest.mark.slow
def test_ray_engine_on_a_real_local_ray_gives_the_same_records(archive, tiny_mobilenet, reference, tmp_path) -> None:
    out = tmp_path / "ray.jsonl"
    parquet = tmp_path / "ray.parquet"
    done = predict(str(archive), "--model", str(tiny_mobilenet), "--engine", "ray", "--output", str(out))
    assert done.returncode == 2, done.stderr
    assert_same_records(by_path(read_records(out)), reference)

    done = predict(str(archive), "--model", str(tiny_mobilenet), "--engine", "ray", "--output", str(parquet))
    assert done.returncode == 2, done.stderr
    import pyarrow.parquet as pq

    rows = pq.read_table(parquet).to_pylist()
    records = [{k: v for k, v in row.items() if v is not None} for row in rows]
    for record in records:
        if "faces" in record:
            record["faces"] = json.loads(record["faces"])
    assert_same_records(by_path(records), reference)


def test_resume_after_sigkill_finishes_the_rest_without_duplicates(archive, tiny_mobilenet, reference,
                                                                   tmp_path) -> None:
    out = tmp_path / "killed.jsonl"
    process = start_predict(str(archive), "--model", str(tiny_mobilenet), "--output", str(out), "--batch-size", "1")
    wait_for_lines(out, 8, process)
    process.send_signal(signal.SIGKILL)
    process.wait(30)
    partial = read_records(out)
    assert 8 <= len(partial) < len(reference)

    done = predict(str(archive), "--model", str(tiny_mobilenet), "--output", str(out), "--resume")
    assert done.returncode == 2, done.stderr
    assert f"{len(partial)} already done" in done.stderr
    assert_same_records(by_path(read_records(out)), reference)


def test_a_worker_killed_mid_run_is_replaced_and_no_file_is_lost(archive, tiny_mobilenet, reference,
                                                                 tmp_path) -> None:
    out = tmp_path / "worker-killed.jsonl"
    process = start_predict(str(archive), "--model", str(tiny_mobilenet), "--workers", "2", "--output", str(out),
                            "--batch-size", "2")
    wait_for_lines(out, 4, process)
    workers = [child for child in psutil.Process(process.pid).children(recursive=True)
               if "resource_tracker" not in " ".join(child.cmdline())]
    assert workers, "no worker process found"
    workers[0].send_signal(signal.SIGKILL)
    assert process.wait(600) == 2  # the two broken files; the killed worker's files were retried
    assert_same_records(by_path(read_records(out)), reference)


def write_clip(path: Path, frames: int = 48, size: tuple[int, int] = (320, 240)) -> Path:
    """A plain H.264 clip: a worker holds it open while it decodes and scores every frame."""
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=12)
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        for index in range(frames):
            pixels = np.full((size[1], size[0], 3), (40 + 4 * index) % 256, dtype=np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")))
        container.mux(stream.encode(None))
    return path


def holding(root: psutil.Process, path: str) -> list[psutil.Process]:
    """``root`` and those of its descendants that have ``path`` open now."""
    try:
        processes = [root, *root.children(recursive=True)]
    except psutil.Error:  # the run is over
        return []
    found = []
    for process in processes:
        with contextlib.suppress(psutil.Error):  # one that ended meanwhile
            if any(f.path == path for f in process.open_files()):
                found.append(process)
    return found


class FileThatKillsItsWorker(threading.Thread):
    """SIGKILLs every worker process of ``parent`` that opens ``poison`` (what a file crashing the decoder or
    exhausting memory does), until stopped; counts the kills."""

    def __init__(self, parent: subprocess.Popen, poison: Path) -> None:
        super().__init__(daemon=True)
        self.parent, self.poison, self.kills = psutil.Process(parent.pid), str(poison), 0
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            for worker in holding(self.parent, self.poison):
                if worker.pid != self.parent.pid:
                    with contextlib.suppress(psutil.Error):
                        worker.send_signal(signal.SIGKILL)
                        self.kills += 1
            time.sleep(0.005)


def test_only_the_file_that_kills_its_worker_again_is_blamed_and_resume_scores_it_again(
        archive, tiny_mobilenet, reference, tmp_path) -> None:
    folder = tmp_path / "photos"
    photos = sorted((archive / "day-0").glob("photo-*.jpg"))[:8]
    folder.mkdir()
    for photo in photos:
        shutil.copy(photo, folder / photo.name)
    poison = write_clip(folder / "a-poison.mp4")  # first in the walk: its chunk and the chunks behind it are retried
    out = tmp_path / "blame.jsonl"
    process = start_predict(str(folder), "--model", str(tiny_mobilenet), "--workers", "2", "--output", str(out),
                            "--batch-size", "2")
    killer = FileThatKillsItsWorker(process, poison)
    killer.start()
    try:
        assert process.wait(600) == 2, process.stderr.read()
    finally:
        killer.stopped.set()
        killer.join()
    assert killer.kills >= 2  # its first chunk, then its retry alone
    records = by_path(read_records(out))
    innocent = {path: records[path] for path in map(str, (folder / p.name for p in photos))}
    assert not [path for path, record in innocent.items() if "error" in record]  # 14 of 15 were blamed before
    assert records[str(poison)] == {"path": str(poison), "error": WORKER_DIED, "worker_died": True}
    expected = {str(folder / Path(path).name): record for path, record in reference.items()
                if Path(path).parent.name == "day-0" and Path(path).name in {p.name for p in photos}}
    assert_same_records({path: {**record, "path": path} for path, record in innocent.items()},
                        {path: {**record, "path": path} for path, record in expected.items()})

    done = predict(str(folder), "--model", str(tiny_mobilenet), "--output", str(out), "--resume")  # no killer now
    assert done.returncode == 0, done.stderr
    assert f"{len(photos)} already done" in done.stderr
    again = read_records(out)
    assert not [r for r in again if "error" in r]  # the worker-death record was replaced by the clip's frames
    assert {r["path"] for r in again} == {str(poison), *innocent}
    assert len([r for r in again if r["path"] == str(poison)]) == 48


CTRL_C_CLIP_FRAMES = 960


def test_ctrl_c_during_a_parquet_run_leaves_no_file_says_so_and_a_rerun_works(archive, tiny_mobilenet,
                                                                               tmp_path) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    for photo in sorted((archive / "day-0").glob("photo-*.jpg"))[:4]:
        shutil.copy(photo, folder / photo.name)
    # Last in the walk (the photos' records are in by then), and long enough that the run is still reading it when
    # Ctrl-C arrives: with 96 frames a quiet machine finished it between the open-file check and the signal.
    clip = write_clip(folder / "z-clip.mp4", frames=CTRL_C_CLIP_FRAMES)
    out = tmp_path / "records.parquet"
    process = start_predict(str(folder), "--model", str(tiny_mobilenet), "--output", str(out), "--batch-size", "1")
    deadline = time.monotonic() + 300
    while not holding(psutil.Process(process.pid), str(clip)):
        assert process.poll() is None and time.monotonic() < deadline, process.stderr.read()
        time.sleep(0.005)
    process.send_signal(signal.SIGINT)  # Ctrl-C (sent from Python: a background shell job ignores SIGINT)
    assert process.wait(60) == 130
    err = process.stderr.read()
    assert "interrupted; nothing was saved" in err and "written only when the run completes" in err, err
    assert list(tmp_path.glob("*.parquet*")) == [] and list(tmp_path.glob(".records.parquet*")) == []

    done = predict(str(folder), "--model", str(tiny_mobilenet), "--output", str(out), "--every", "8")
    assert done.returncode == 0, done.stderr
    import pyarrow.parquet as pq

    paths = [row["path"] for row in pq.read_table(out).to_pylist()]
    assert sorted(set(paths)) == sorted(str(p) for p in folder.iterdir()) and len(paths) == 4 + CTRL_C_CLIP_FRAMES // 8


def test_existing_output_is_refused_without_resume(archive, tiny_mobilenet, tmp_path) -> None:
    out = tmp_path / "exists.jsonl"
    out.write_text('{"path": "x"}\n')
    done = predict(str(archive), "--model", str(tiny_mobilenet), "--output", str(out))
    assert done.returncode == 1 and "--resume" in done.stderr
    assert out.read_text() == '{"path": "x"}\n'
    done = predict(str(archive), "--resume")
    assert done.returncode == 1 and "--output" in done.stderr


def test_resume_trims_a_torn_last_line(tmp_path) -> None:
    out = tmp_path / "torn.jsonl"
    sink = JsonLinesFileSink(out)
    sink.write({"path": "a.jpg", "faces": []})
    sink.write({"path": "b\nc.jpg", "faces": []})  # a newline inside a value stays escaped
    sink.close()
    with out.open("ab") as handle:
        handle.write(b'{"path": "d.jpg", "fa')
    assert resume_jsonl(out) == {"a.jpg", "b\nc.jpg"}
    assert out.read_bytes().endswith(b"\n") and out.read_bytes().count(b"\n") == 2


@pytest.mark.slow
def test_ten_thousand_images_stream_with_flat_memory(tmp_path, tiny_mobilenet) -> None:
    folder = tmp_path / "many"
    rng = np.random.default_rng(0)
    for shard in range(10):
        (folder / f"{shard}").mkdir(parents=True)
        for index in range(1000):
            pixels = rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(folder / f"{shard}" / f"{index:04d}.png")
    out = tmp_path / "many.jsonl"
    process = start_predict(str(folder), "--model", str(tiny_mobilenet), "--whole-image", "--output", str(out),
                            "--batch-size", "32")
    samples: list[tuple[int, int]] = []  # (records written, RSS bytes), every 0.2 s
    while process.poll() is None:
        try:
            rss = psutil.Process(process.pid).memory_info().rss
        except psutil.NoSuchProcess:
            break
        samples.append((out.read_bytes().count(b"\n") if out.exists() else 0, rss))
        time.sleep(0.2)
    assert process.returncode == 0, process.stderr.read()
    assert len(by_path(read_records(out))) == 10_000
    early = [rss for written, rss in samples if 1_000 <= written <= 3_000]
    late = [rss for written, rss in samples if written >= 8_000]
    assert early and late, "the run was too quick to sample"
    before, after = float(np.median(early)) / 2**20, float(np.median(late)) / 2**20
    print(f"RSS (median) after 1,000-3,000 images {before:.0f} MB, after 8,000-10,000 images {after:.0f} MB")
    assert after - before < 40, f"memory grew by {after - before:.0f} MB while streaming"


def score_batch(archive: Path, model: Path, output: Path, **extra) -> dict:
    return {"inputs": [str(archive)], "output": str(output), "model": str(model), **extra}


def test_score_batch_job_writes_the_same_records_and_resumes(archive, tiny_mobilenet, reference, tmp_path) -> None:
    """The ``score-batch`` kind through the default (subprocess) executor: progress per batch, the CLI's records,
    a refusal before start for an output that would be lost, and a resumed run with nothing left to do."""
    out = tmp_path / "job.jsonl"
    runner = JobRunner()
    runner.submit("score-batch", score_batch(archive, tiny_mobilenet, out, batch_size=8))
    seen = []
    while (status := runner.snapshot()).active:
        if status.progress:
            seen.append(status.progress)
        time.sleep(0.05)
    status = runner.wait(600)
    assert status.state == JobState.FINISHED, status.error
    assert (status.result["images"], status.result["errors"], status.result["skipped"]) == (42, 2, 0)
    assert status.worker_pid is None and status.result["output"] == str(out)
    assert_same_records(by_path(read_records(out)), reference)
    assert {p.phase for p in seen} == {"score"} and [p.fraction for p in seen] == sorted(p.fraction for p in seen)
    assert status.progress.fraction == 1.0 and status.progress.message == "Scored 42 / 42 images"

    with pytest.raises(ValueError, match="already exists"):
        runner.submit("score-batch", score_batch(archive, tiny_mobilenet, out))
    with pytest.raises(ValueError, match="JSON-lines"):
        runner.submit("score-batch", score_batch(archive, tiny_mobilenet, tmp_path / "x.parquet", resume=True))
    with pytest.raises(ValueError, match="unknown engine"):
        runner.submit("score-batch", score_batch(archive, tiny_mobilenet, tmp_path / "y.jsonl", engine="gpu"))

    runner.submit("score-batch", score_batch(archive, tiny_mobilenet, out, resume=True))
    status = runner.wait(600)
    assert status.state == JobState.FINISHED, status.error
    assert (status.result["images"], status.result["skipped"]) == (0, 42)
    assert len(read_records(out)) == 42


COOPERATIVE_CANCEL_S = 120.0  # a batch can take seconds on a busy machine: no termination before the job stops


def cancel_once_scoring(params: dict) -> tuple[JobRunner, JobStatus]:
    """Submit a score-batch job, cancel it once it has scored a batch: the runner and the job's final status
    (the job stops itself between batches; the runner's grace is long enough that it is never terminated)."""
    runner = JobRunner(cancel_grace_s=COOPERATIVE_CANCEL_S)
    runner.submit("score-batch", params)
    deadline = time.monotonic() + 600
    while not ((status := runner.snapshot()).progress and status.progress.fraction > 0):
        assert status.active and time.monotonic() < deadline, status
        time.sleep(0.02)
    assert runner.cancel()
    status = runner.wait(COOPERATIVE_CANCEL_S + 30)
    assert status.state == JobState.CANCELLED, status
    return runner, status


def test_a_cancelled_score_batch_job_stops_between_batches_and_resumes(archive, tiny_mobilenet, reference,
                                                                         tmp_path) -> None:
    out = tmp_path / "cancelled.jsonl"
    runner, status = cancel_once_scoring(score_batch(archive, tiny_mobilenet, out, batch_size=2))
    written = read_records(out)  # whole lines only
    assert 2 <= len(written) < 42 and len(written) % 2 == 0  # stopped at a batch boundary
    assert f"Cancelled: {len(written)} records saved in {out}" in status.log[-1]  # not "nothing was saved"

    runner.submit("score-batch", score_batch(archive, tiny_mobilenet, out, batch_size=8, resume=True))
    status = runner.wait(600)
    assert status.state == JobState.FINISHED, status.error
    assert status.result["skipped"] == len(written) and status.result["images"] == 42 - len(written)
    assert_same_records(by_path(read_records(out)), reference)


def test_a_cancelled_parquet_job_leaves_no_file_says_so_and_a_rerun_works(archive, tiny_mobilenet, tmp_path) -> None:
    out = tmp_path / "cancelled.parquet"
    runner, status = cancel_once_scoring(score_batch(archive, tiny_mobilenet, out, batch_size=2))
    assert "Cancelled: nothing was saved" in status.log[-1] and "written only when the run completes" in status.log[-1]
    assert list(tmp_path.iterdir()) == []  # neither a partial file that looks whole nor a hidden temporary

    runner.submit("score-batch", score_batch(archive, tiny_mobilenet, out, batch_size=8))
    status = runner.wait(600)
    assert status.state == JobState.FINISHED, status.error
    import pyarrow.parquet as pq

    assert pq.read_table(out).num_rows == 42


def test_a_terminated_score_batch_job_says_what_it_saved(archive, tiny_mobilenet, tmp_path) -> None:
    """A job that ignores its cancel flag (here: stopped with SIGSTOP, so it cannot answer) is terminated after the
    runner's grace; its final note says how many whole records its JSON-lines file keeps, not "nothing"."""
    out = tmp_path / "terminated.jsonl"
    runner = JobRunner(cancel_grace_s=1.0)
    runner.submit("score-batch", score_batch(archive, tiny_mobilenet, out, batch_size=2))
    deadline = time.monotonic() + 600
    while not ((status := runner.snapshot()).progress and status.progress.fraction > 0):
        assert status.active and time.monotonic() < deadline, status
        time.sleep(0.02)
    os.kill(status.worker_pid, signal.SIGSTOP)  # it will never see its cancel flag
    assert runner.cancel()
    status = runner.wait(120)
    assert status.state == JobState.CANCELLED, status
    written = read_records(out)  # whole lines only
    assert written, "the job had written records before it was stopped"
    assert status.log[-1].endswith(f"Cancelled (terminated): {len(written)} records saved in {out} (its whole "
                                   "lines); resume the run to score the rest"), status.log[-1]


def test_a_killed_parquet_writers_temporary_is_cleaned_up_and_a_live_ones_kept(tmp_path) -> None:
    """After the runner terminated a Parquet run, the hidden temporary of the dead writer is deleted (nothing was
    saved); a temporary another live run is writing stays."""
    from maskdet.batch.sinks import after_killed_writer, parquet_temporary

    out = tmp_path / "scores.parquet"
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True)
    dead, live = parquet_temporary(out, int(gone.stdout)), parquet_temporary(out, os.getpid())
    dead.write_bytes(b"PAR1 rows of a killed run")
    live.write_bytes(b"PAR1 rows of a running run")
    assert "nothing was saved" in after_killed_writer(out)
    assert not dead.exists() and live.exists() and not out.exists()
