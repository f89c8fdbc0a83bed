"""Video clips through ``predict``, the ``analyse-video`` job and the Video page: per-frame labels, --every,
--annotate, the job's outputs, progress and cancel, broken clips.

Clips are made here from two real face-mask-4k photos of the shipped model's held-out test split (one
masked, one not) pasted on a plain 640x480 canvas: the first half of the frames shows the masked face,
the second half the unmasked one. The real CLI and the real job run in subprocesses with the real
CenterFace detector and the shipped MobileNetV2; the page runs under AppTest with the same model and
submits the same job.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import av
import numpy as np
import pytest
import streamlit as st
import torch
from dashboard import page_test
from markdown_text import texts
from PIL import Image
from streamlit.testing.v1 import AppTest

from maskdet.zoo.folders import set_default_model
from maskdet.data.images import load_rgb
from maskdet.jobs import JobRunner, JobState, JobStatus
from maskdet.video import VideoDecodeError, VideoReader
from maskdet.video.results import ANNOTATED, MANIFEST, THUMBNAIL_WIDTH, read_results

REPO = Path(__file__).resolve().parent.parent
SHIPPED = REPO / "models" / "mobilenet_v2"
PAGE = "pages/video.py"
FPS = 10
HALF = 8  # frames per face
SIZE = (640, 480)
PLACE = (220, 140, 200)  # x, y, side of the pasted face
FRAME_KEYS = {"path", "frame", "time", "width", "height", "faces"}
TIMEOUT = 300
CANCEL_WITHIN_S = 10.0  # the job checks its flag after every frame; a busy shared machine is slow


def expected_label(frame: int) -> str:
    return "with_mask" if frame < HALF else "without_mask"


@pytest.fixture(scope="module")
def frames(datasets_root) -> list[np.ndarray]:
    """2 * HALF RGB frames: the first held-out masked photo of the shipped model's split, then the first unmasked."""
    from maskdet.training.crops import locate_split_file

    split = json.loads((SHIPPED / "split.json").read_text())
    dataset = json.loads((SHIPPED / "metadata.json").read_text())["dataset"]
    canvases = []
    for cls in ("with_mask", "without_mask"):  # face-mask-4k photos (the default's split also holds cut crops)
        path = next(p for r in split["test"] if r.startswith(f"{cls}/face-mask-4k/")
                    and (p := locate_split_file(dataset, r)))
        canvas = Image.new("RGB", SIZE, (96, 120, 140))
        x, y, side = PLACE
        canvas.paste(load_rgb(path).resize((side, side), Image.Resampling.LANCZOS), (x, y))
        canvases.append(np.asarray(canvas))
    return [canvases[i // HALF] for i in range(2 * HALF)]


def write_clip(path: Path, frames: list[np.ndarray], codec: str = "libx264", options: dict | None = None) -> Path:
    """Encode ``frames`` at FPS with PyAV (the container from the file name)."""
    with av.open(str(path), "w", options=options or {}) as container:
        stream = container.add_stream(codec, rate=FPS)
        stream.width, stream.height, stream.pix_fmt = SIZE[0], SIZE[1], "yuv420p"
        for array in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(array, format="rgb24")))
        container.mux(stream.encode(None))
    return path


@pytest.fixture(scope="module")
def clips(tmp_path_factory, frames) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("clips")
    faststart = write_clip(root / "faststart.mp4", frames, options={"movflags": "+faststart"})
    mkv = write_clip(root / "clip.mkv", frames)
    cut_mp4, cut_mkv = root / "cut.mp4", root / "cut.mkv"
    cut_mp4.write_bytes(faststart.read_bytes()[: faststart.stat().st_size * 6 // 10])
    cut_mkv.write_bytes(mkv.read_bytes()[: mkv.stat().st_size * 6 // 10])
    corrupt = root / "corrupt.mp4"
    corrupt.write_bytes(faststart.read_bytes()[:32] + bytes(np.random.default_rng(0).integers(0, 256, 4000,
                                                                                              dtype=np.uint8)))
    return {"mp4": write_clip(root / "clip.mp4", frames), "webm": write_clip(root / "clip.webm", frames, "libvpx-vp9"),
            "mkv": mkv, "cut_mp4": cut_mp4, "cut_mkv": cut_mkv, "corrupt": corrupt}


def run_predict(*args: str) -> tuple[int, list[dict], str]:
    done = subprocess.run([sys.executable, "-m", "maskdet", "predict", *args, "--model", str(SHIPPED), "--json"],
                          cwd=REPO, capture_output=True, text=True, timeout=TIMEOUT,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    return done.returncode, [json.loads(line) for line in done.stdout.splitlines()], done.stderr


def assert_labels(records: list[dict], path: Path, frames: list[int]) -> None:
    assert [r["frame"] for r in records] == frames
    for record in records:
        assert set(record) == FRAME_KEYS and record["path"] == str(path)
        assert (record["width"], record["height"]) == SIZE
        assert record["time"] == pytest.approx(record["frame"] / FPS, abs=1e-3)
        assert [f["label"] for f in record["faces"]] == [expected_label(record["frame"])], record


def test_a_clip_gives_one_record_per_frame_with_the_right_labels(clips) -> None:
    status, records, stderr = run_predict(str(clips["mp4"]))
    assert status == 0, stderr
    assert_labels(records, clips["mp4"], list(range(2 * HALF)))
    x, y, side = PLACE
    for record in records[:HALF]:  # the masked photo is a tight face crop: the box lies inside the pasted square
        x0, y0, x1, y1 = record["faces"][0]["box"]
        assert x <= x0 < x1 <= x + side and y <= y0 < y1 <= y + side


def test_every_nth_frame_of_a_webm_and_the_annotated_clip(clips, tmp_path) -> None:
    out = tmp_path / "annotated.mp4"
    status, records, stderr = run_predict(str(clips["webm"]), "--every", "3", "--annotate", str(out))
    assert status == 0, stderr
    assert_labels(records, clips["webm"], list(range(0, 2 * HALF, 3)))
    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        decoded = [frame.to_ndarray(format="rgb24") for frame in container.decode(stream)]
    assert len(decoded) == 2 * HALF and decoded[0].shape == (SIZE[1], SIZE[0], 3)
    # Every frame is drawn: a skipped frame carries the last processed frame's box (green, then red).
    for skipped, shown in ((1, records[0]), (2 * HALF - 2, records[-2])):
        x0, y0, _x1, y1 = shown["faces"][0]["box"]
        red, green, _blue = decoded[skipped][(y0 + y1) // 2, x0 + 1].astype(int)
        assert (green - red > 60) if expected_label(shown["frame"]) == "with_mask" else (red - green > 60), (red, green)


def test_corrupt_and_truncated_clips_give_error_records_and_no_traceback(clips, tmp_path) -> None:
    status, records, stderr = run_predict(str(clips["corrupt"]), str(clips["cut_mp4"]), str(clips["cut_mkv"]),
                                          str(clips["mkv"]))
    assert status == 2 and "Traceback" not in stderr, stderr
    by_path: dict[str, list[dict]] = {}
    for record in records:
        by_path.setdefault(record["path"], []).append(record)
    [corrupt] = by_path[str(clips["corrupt"])]
    assert set(corrupt) == {"path", "error"} and "not a readable video" in corrupt["error"], corrupt
    for name in ("cut_mp4", "cut_mkv"):
        *read, last = by_path[str(clips[name])]
        assert set(last) == {"path", "error"} and "truncated" in last["error"], last
        assert 0 < len(read) < 2 * HALF
        assert_labels(read, clips[name], list(range(len(read))))
    assert_labels(by_path[str(clips["mkv"])], clips["mkv"], list(range(2 * HALF)))


def test_reader_refuses_files_that_are_not_video(tmp_path) -> None:
    empty = tmp_path / "empty.webm"
    empty.write_bytes(b"")
    with pytest.raises(VideoDecodeError, match="not a readable video"):
        VideoReader(empty)
    text = tmp_path / "notes.avi"
    text.write_text("not a video at all\n" * 50)
    with pytest.raises(VideoDecodeError, match="not a readable video"):
        VideoReader(text)


# --- the analyse-video job ------------------------------------------------------------------------

def submit(clip: Path, output: Path, **settings: object) -> JobRunner:
    runner = JobRunner()
    runner.submit("analyse-video", {"clip": str(clip), "model": str(SHIPPED), "output": str(output), **settings})
    return runner


def follow(runner: JobRunner, until=lambda status: not status.active) -> tuple[JobStatus, list[JobStatus]]:  # noqa: ANN001
    """Poll ``runner`` until ``until(status)``; the last status and every one seen before."""
    seen: list[JobStatus] = []
    deadline = time.monotonic() + TIMEOUT
    while not until(status := runner.snapshot()):
        assert time.monotonic() < deadline, f"condition not reached in {TIMEOUT} s; last status {status}"
        seen.append(status)
        time.sleep(0.02)
    return status, seen


def decoded_frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(stream)]


def test_video_job_reports_progress_and_writes_clip_thumbnails_and_counts(clips, tmp_path) -> None:
    output = tmp_path / "out"
    status, seen = follow(submit(clips["mp4"], output))
    assert status.state == JobState.FINISHED, status.error
    assert status.kind == "analyse-video" and status.result["output"] == str(output)
    assert {s.worker_pid for s in seen if s.progress} - {None} and os.getpid() not in {s.worker_pid for s in seen}
    # Progress: frames done of the declared total, monotonic, up to 100 % once every frame is decoded.
    fractions = [s.progress.fraction for s in seen if s.progress]
    assert fractions == sorted(fractions) and len(set(fractions)) > 2
    assert status.progress.fraction == 1.0 and status.fraction == 1.0
    assert status.progress.message == f"Frame {2 * HALF} of {2 * HALF}"
    assert status.log[-1].endswith(f"Finished: {2 * HALF} frames of clip.mp4 analysed")

    results = read_results(output)
    assert results is not None and results.error is None and results.every == 1
    assert (results.info.width, results.info.height, results.info.frames) == (*SIZE, 2 * HALF)
    assert [row.frame for row in results.frames] == list(range(2 * HALF))
    for row in results.frames:
        masked = expected_label(row.frame) == "with_mask"
        assert row.counts == ({"with_mask": 1, "without_mask": 0} if masked else {"with_mask": 0, "without_mask": 1})
        assert row.time == pytest.approx(row.frame / FPS, abs=1e-3)
    assert len(decoded_frames(results.annotated)) == 2 * HALF
    # Thumbnails: small annotated JPEGs of unmasked moments only, at most one per second of clip.
    assert results.thumbnails and all(t.frame >= HALF for t in results.thumbnails)
    assert len(results.thumbnails) <= 1 + (HALF - 1) // FPS
    for thumb in results.thumbnails:
        with Image.open(thumb.path) as picture:
            assert picture.format == "JPEG" and picture.width == THUMBNAIL_WIDTH
            red, green, _blue = np.asarray(picture.convert("RGB"), dtype=int).reshape(-1, 3).T
            assert ((red - green > 100) & (red > 150)).sum() > 20  # the red box of an unmasked face is drawn
    assert json.loads((output / MANIFEST).read_text())["frames"][HALF]["counts"]["without_mask"] == 1


def test_cancelling_a_video_job_mid_run_keeps_no_result(frames, tmp_path) -> None:
    clip = write_clip(tmp_path / "long.mp4", frames * 6)
    output = tmp_path / "out"
    runner = submit(clip, output)
    status, _ = follow(runner, lambda s: s.progress is not None and s.progress.phase == "analyse")
    assert status.progress.fraction < 0.5, "the job got too far before the test could cancel it"
    asked = time.monotonic()
    assert runner.cancel()
    status = runner.wait(CANCEL_WITHIN_S)
    assert status.state == JobState.CANCELLED and time.monotonic() - asked < CANCEL_WITHIN_S, status
    assert status.result is None and status.log[-1].endswith("Cancelled: nothing was saved")
    assert read_results(output) is None
    assert sorted(output.rglob("*")) == []  # no annotated clip, partial file, thumbnail or manifest


def test_an_undecodable_clip_fails_the_job_with_the_reason(clips, tmp_path) -> None:
    output = tmp_path / "out"
    status, _ = follow(submit(clips["corrupt"], output))
    assert status.state == JobState.FAILED and status.result is None
    assert status.error.startswith("not a readable video"), status.error
    assert status.log[-1].endswith(f"Failed: {status.error}")
    assert read_results(output) is None and not (output / ANNOTATED).exists()


def test_new_uploads_never_delete_a_running_analysis(frames, tmp_path, monkeypatch) -> None:
    """Defect 4: staging a new clip pruned the oldest folders beyond 8 by modification time, the folder of
    another session's running analysis among them (the job failed: "No such file or directory"). A running
    job now holds a lease on its folder, and pruning skips folders in use."""
    from maskdet.jobs import JobService
    from maskdet.video.results import KEPT_FOLDERS, analysis_folder, stage_clip

    monkeypatch.setenv("MASKDET_CACHE_DIR", str(tmp_path / "cache"))
    root = tmp_path / "videos"
    running = analysis_folder("running", root)
    clip = stage_clip(write_clip(tmp_path / "clip.mp4", frames * 2).read_bytes(), ".mp4", running)
    old = time.time() - 3600
    os.utime(running, (old, old))  # the oldest folder of all
    service = JobService()
    job = service.submit("analyse-video", {"clip": str(clip), "model": str(SHIPPED), "output": str(running)},
                         "visitor-a", holds=[running])
    for number in range(KEPT_FOLDERS + 2):  # another visitor uploads clip after clip meanwhile
        stage_clip(b"another clip", ".mp4", analysis_folder(f"other-{number}", root))
    assert running.is_dir()
    status = service.wait(job, TIMEOUT)
    assert status.state == JobState.FINISHED, status.error
    assert read_results(running) is not None
    for number in range(KEPT_FOLDERS):  # ended: no longer in use, it goes when it is the oldest
        stage_clip(b"one more", ".mp4", analysis_folder(f"later-{number}", root))
    assert not running.exists()
    assert len(list(root.iterdir())) == KEPT_FOLDERS


def test_bad_video_job_settings_are_refused_before_a_process_starts(clips, tmp_path) -> None:
    runner = JobRunner()
    good = {"clip": str(clips["mp4"]), "model": str(SHIPPED), "output": str(tmp_path / "out")}
    refused = [({"clip": str(tmp_path / "gone.mp4")}, "does not exist"), ({"every": 0}, "at least 1"),
               ({"every": 1.5}, "whole number"), ({"threshold": 1.0}, "threshold"),
               ({"detector": "yolo"}, "unknown face detector"), ({"model": str(tmp_path / "no-model")}, "does not exist")]
    for change, message in refused:
        with pytest.raises(ValueError, match=message):
            runner.submit("analyse-video", {**good, **change})
    with pytest.raises(ValueError, match="needs output"):
        runner.submit("analyse-video", {"clip": str(clips["mp4"])})
    assert runner.snapshot() == JobStatus() and not (tmp_path / "out").exists()


# --- the Video page ------------------------------------------------------------------------------

RUNNER_KEY = "video_runner"


@pytest.fixture
def page_models(isolated_models_dir: Path) -> Path:
    shutil.copytree(SHIPPED, isolated_models_dir / "mobilenet_v2")
    set_default_model("mobilenet_v2")
    return isolated_models_dir


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("MASKDET_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def new_page(page_models, cache):
    """A factory of fresh Video page sessions (not yet run); their jobs are cancelled afterwards."""
    apps: list[AppTest] = []

    def new() -> AppTest:
        st.cache_data.clear()
        apps.append(page_test(PAGE, TIMEOUT))
        return apps[-1]

    yield new
    for app in apps:
        runner = app.session_state[RUNNER_KEY] if RUNNER_KEY in app.session_state else None
        if runner is not None:
            runner.cancel()
            runner.wait(TIMEOUT)


def upload(at: AppTest, name: str, data: bytes, mime: str = "video/mp4") -> AppTest:
    return at.file_uploader(key="video_upload").set_value([(name, data, mime)]).run()


def wait_for_job(at: AppTest) -> AppTest:
    """Rerun until the progress bar is gone (the job has ended)."""
    deadline = time.monotonic() + TIMEOUT
    while at.get("progress") and time.monotonic() < deadline:
        time.sleep(0.5)
        at.run()
    assert not at.get("progress"), "the analysis did not finish"
    return at


def new_thread_torch_threads() -> int:
    """The torch thread count a thread started now gets (the last count set by any thread of the process)."""
    counts: list[int] = []
    thread = threading.Thread(target=lambda: counts.append(torch.get_num_threads()))
    thread.start()
    thread.join()
    return counts[0]


def server_state() -> tuple:
    """What a request must never change in the server process: torch's thread counts and the random generators."""
    return (torch.get_num_threads(), new_thread_torch_threads(), torch.get_rng_state(),
            np.random.get_state()[1].tobytes(), random.getstate())


def test_page_shows_labels_per_frame_chart_clip_and_unmasked_strip(new_page, clips, cache) -> None:
    threads = torch.get_num_threads()
    torch.set_num_threads((os.cpu_count() or 1) + 1)  # not what a classifier loaded here would set
    try:
        at = new_page().run()  # the first page view imports what the page needs (a library may draw a random
        before = server_state()  # number at import, as rich does for sklearn): measured from the upload on
        at = wait_for_job(upload(at, "clip.mp4", clips["mp4"].read_bytes()))
        after = server_state()
    finally:
        torch.set_num_threads(threads)
    assert before[:2] == after[:2] == (before[0], before[0])
    assert all(torch.equal(a, b) if isinstance(a, torch.Tensor) else a == b for a, b in zip(before, after, strict=True))
    assert not at.exception and not at.error, texts(at.exception) + texts(at.error)
    assert at.session_state[RUNNER_KEY].snapshot().worker_pid is None  # the job ran in a process that is gone
    table = at.dataframe[0].value
    assert list(table["frame"]) == list(range(2 * HALF))
    for _, row in table.iterrows():
        masked = expected_label(int(row["frame"])) == "with_mask"
        assert (row["with_mask"], row["without_mask"]) == ((1, 0) if masked else (0, 1)), row
    assert len(at.get("plotly_chart")) == 1
    assert len(at.get("video")) == 1
    assert at.get("download_button")
    strip = [caption for image in at.image for caption in image.captions]  # "1.0 s (frame 8)"
    assert strip and all(int(c.split("frame ")[1].rstrip(")")) >= HALF for c in strip), strip

    # The same clip in another session: the results in the cache are shown at once, without a job.
    again = upload(new_page().run(), "same-clip.mp4", clips["mp4"].read_bytes())
    assert not again.get("progress") and RUNNER_KEY not in again.session_state
    assert list(again.dataframe[0].value["frame"]) == list(range(2 * HALF))


def test_page_stop_keeps_nothing_and_the_clip_can_be_analysed_again(new_page, frames, tmp_path, cache) -> None:
    clip = write_clip(tmp_path / "long.mp4", frames * 6)
    at = upload(new_page().run(), "long.mp4", clip.read_bytes())
    runner = at.session_state[RUNNER_KEY]
    follow(runner, lambda s: s.progress is not None and s.progress.phase == "analyse")
    at.run()
    at.button(key="video_cancel").click().run()
    at = wait_for_job(at)
    assert not at.exception and runner.snapshot().state == JobState.CANCELLED
    assert any("Stopped: nothing was kept" in w.value for w in at.warning), texts(at.warning)
    assert not at.dataframe and not at.get("video") and not at.image
    [folder] = (cache / "sessions" / "owner" / "videos").iterdir()
    assert [p.name for p in folder.rglob("*")] == ["clip.mp4"]  # the upload only: no result, no partial file
    at.button(key="video_restart").click().run()
    again = at.session_state[RUNNER_KEY]
    assert at.get("progress") and again is not runner and again.snapshot().active  # a new job on the same clip
    at.file_uploader(key="video_upload").set_value([]).run()  # the clip removed from the page: its job stops
    assert again.wait(CANCEL_WITHIN_S).state == JobState.CANCELLED


def test_page_reports_a_corrupt_clip_and_a_truncated_one(new_page, clips) -> None:
    at = wait_for_job(upload(new_page().run(), "broken.mp4", clips["corrupt"].read_bytes()))
    assert not at.exception
    assert any("Cannot analyse" in e.value and "not a readable video" in e.value for e in at.error), texts(at.error)
    assert at.button(key="video_restart") and not at.dataframe and not at.get("video")
    at = wait_for_job(upload(at, "cut.mkv", clips["cut_mkv"].read_bytes(), mime="video/x-matroska"))
    assert not at.exception
    assert any("truncated" in w.value for w in at.warning), texts(at.warning)
    frames_read = list(at.dataframe[0].value["frame"])
    assert 0 < len(frames_read) < 2 * HALF


class CountingDetector:
    """A real detector that counts the images it is given."""

    def __init__(self, detector) -> None:
        self.detector, self.images = detector, 0

    def detect(self, image):
        self.images += 1
        return self.detector.detect(image)


def test_clips_get_the_frame_setting_and_photos_the_photo_setting(clips, frames, tmp_path) -> None:
    """A clip given to ``predict`` or a batch job is detected with the frame setting (no 1120 px pass per frame),
    a photo beside it with the photo setting; both labelled by the one classifier."""
    from maskdet.batch.records import score_paths
    from maskdet.inference.detector import DETECTORS, get_detector
    from maskdet.inference.pipeline import FacePipeline, build_pipeline

    built = build_pipeline(str(SHIPPED))
    assert DETECTORS["centerface"].frames == "centerface-frames"
    assert built.frame_pipeline.detector.settings() == get_detector("centerface-frames").settings()
    assert built.detector.settings() != built.frame_pipeline.detector.settings()
    assert built.frame_pipeline.classifier is built.classifier
    assert build_pipeline(str(SHIPPED), detector="centerface-frames").frame_pipeline.detector.settings() == \
        built.frame_pipeline.detector.settings()

    photo_detector = CountingDetector(built.detector)
    frame_detector = CountingDetector(built.frame_pipeline.detector)
    pipeline = FacePipeline(built.classifier, photo_detector, frame_detector=lambda: frame_detector)
    photo = tmp_path / "photo.png"
    Image.fromarray(frames[0]).save(photo)
    records = score_paths(pipeline, [clips["mp4"], photo])
    assert (frame_detector.images, photo_detector.images) == (2 * HALF, 1)
    assert_labels(records[:-1], clips["mp4"], list(range(2 * HALF)))
    assert [f["label"] for f in records[-1]["faces"]] == ["with_mask"]
