"""Live frame processing: real faces pasted on 640x480 frames, run through LiveProcessor with real models.

Faces come from the held-out test split of a real tiny MobileNetV2 (``tiny_mobilenet``), so the
classifier never saw them; detection is the real CenterFace with the Webcam page's options.
"""

from __future__ import annotations

import json
import os
import threading
import tracemalloc
from pathlib import Path

import av
import numpy as np
import pytest

from maskdet.zoo.assets import AssetUnavailableError
from maskdet.inference.detector import get_detector
from maskdet.inference.live import (
    HISTORY_FRAMES,
    ICE_SERVERS_ENV,
    LIVE_DETECTOR_OPTIONS,
    UNCERTAIN,
    LiveProcessor,
    LiveStats,
    parse_ice_servers,
    rtc_configuration,
)
from maskdet.inference.predictor import load_classifier
from maskdet.inference.drawing import UNCERTAIN_COLOUR_RGB
from maskdet.inference.faces import FacePrediction
from maskdet.inference.pipeline import FacePipeline

FACE = 180
LEFT, RIGHT = (60, 150, FACE), (400, 150, FACE)


@pytest.fixture(scope="module")
def pipeline(tiny_mobilenet) -> FacePipeline:
    try:
        detector = get_detector("centerface-frames", **LIVE_DETECTOR_OPTIONS)
    except AssetUnavailableError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"CenterFace model unavailable: {exc}")
        pytest.skip(f"CenterFace model unavailable: {exc}")
    return FacePipeline(load_classifier(str(tiny_mobilenet)), detector)


def test_live_video_finds_faces_with_the_frame_detector_settings(pipeline) -> None:
    """Live video builds CenterFace with LIVE_DETECTOR_OPTIONS, the Video page with none: same faces found (watched
    streams run WATCH_DETECTOR: tests/test_detect.py::test_the_live_setting_runs_further_passes_...)."""
    video_page = get_detector("centerface-frames")
    assert pipeline.detector.settings() == video_page.settings()
    assert set(LIVE_DETECTOR_OPTIONS) <= {"threads", "allow_spinning"}  # how it runs, not what it finds


def face(label: str, confidence: float) -> FacePrediction:
    return FacePrediction(box=(10, 10, 60, 60), label=label, confidence=confidence, face_score=0.9,
                          probabilities={label: confidence, "with_mask" if label != "with_mask" else "without_mask": 1 - confidence})


def test_counts_faces_per_class_on_real_frames(pipeline, held_out_faces, frame_composer) -> None:
    processor = LiveProcessor(pipeline, threshold=0.5)
    masked, unmasked = held_out_faces["with_mask"][:10], held_out_faces["without_mask"][:10]
    right_now = {"with_mask": 0, "without_mask": 0, "both": 0}
    for with_mask, without_mask in zip(masked, unmasked, strict=True):
        for cls, path in (("with_mask", with_mask), ("without_mask", without_mask)):
            out = processor.process_frame(frame_composer([path], [LEFT]))
            now = processor.snapshot().faces_now
            right_now[cls] += now == {**dict.fromkeys(now, 0), cls: 1}
            assert out.shape == (480, 640, 3) and out.dtype == np.uint8
        processor.process_frame(frame_composer([with_mask, without_mask], [LEFT, RIGHT]))
        now = processor.snapshot().faces_now
        right_now["both"] += now["with_mask"] == 1 and now["without_mask"] == 1
    snapshot = processor.snapshot()
    print(right_now, snapshot)
    assert snapshot.frames == 30 and snapshot.errors == 0
    assert right_now["with_mask"] >= 8 and right_now["without_mask"] >= 8 and right_now["both"] >= 7
    assert snapshot.fps > 0 and snapshot.median_ms and snapshot.median_ms > 0
    for cls in ("with_mask", "without_mask"):
        assert snapshot.faces_total[cls] >= 16
        assert 0.5 <= snapshot.average_confidence[cls] <= 1.0


def test_no_face_in_view(pipeline, frame_composer) -> None:
    processor = LiveProcessor(pipeline)
    frame = frame_composer([], [])
    out = processor.process_frame(frame)
    snapshot = processor.snapshot()
    assert snapshot.frames == 1 and not snapshot.face_in_view
    assert snapshot.average_confidence == {"without_mask": None, "with_mask": None, "incorrect_mask": None}
    assert np.array_equal(out, frame)  # nothing drawn


def test_mirror_flips_before_detection(pipeline, held_out_faces, frame_composer) -> None:
    frame = frame_composer([held_out_faces["without_mask"][0]], [LEFT])
    plain = LiveProcessor(pipeline, mirror=False)
    mirrored = LiveProcessor(pipeline, mirror=True)
    plain_box = plain.pipeline.predict(frame)[0].box
    out = mirrored.process_frame(frame)
    assert sum(mirrored.snapshot().faces_now.values()) == 1
    # the face sits on the left of the camera frame, so on the right of the mirrored output ...
    changed = np.argwhere((out != frame[:, ::-1]).any(axis=2))
    assert changed[:, 1].min() > 640 - plain_box[2] - 40
    # ... and everything outside the drawn box and label is the mirrored camera frame
    assert changed[:, 1].max() < 640 - plain_box[0] + 40


def test_exception_is_recorded_and_the_stream_goes_on(pipeline, held_out_faces, frame_composer) -> None:
    processor = LiveProcessor(pipeline)
    bad = np.zeros((480, 640, 3), dtype=np.float32)  # not uint8: the detector refuses it
    assert processor.process_frame(bad) is bad
    snapshot = processor.snapshot()
    assert snapshot.errors == 1 and "uint8" in snapshot.last_error and snapshot.frames == 1
    good = processor.process_frame(frame_composer([held_out_faces["with_mask"][0]], [LEFT]))
    snapshot = processor.snapshot()
    assert snapshot.frames == 2 and snapshot.face_in_view and good.shape == (480, 640, 3)
    assert snapshot.errors == 1  # the error stays visible until a reset
    processor.reset()
    assert processor.snapshot().errors == 0 and processor.snapshot().last_error is None


def test_av_frame_callback_round_trip(pipeline, held_out_faces, frame_composer) -> None:
    processor = LiveProcessor(pipeline)
    frame = av.VideoFrame.from_ndarray(frame_composer([held_out_faces["with_mask"][1]], [RIGHT]), format="rgb24")
    out = processor.video_frame_callback(frame.reformat(format="yuv420p"))  # what a browser camera delivers
    assert isinstance(out, av.VideoFrame) and (out.width, out.height) == (640, 480)
    assert processor.snapshot().face_in_view


def test_threshold_marks_unsure_faces_grey_and_keeps_them_out_of_class_figures(pipeline) -> None:
    stats = LiveStats()
    stats.record_frame([face("with_mask", 0.9), face("without_mask", 0.55), face("without_mask", 0.8)], 0.6, 0.01)
    stats.record_frame([face("with_mask", 0.7)], 0.6, 0.01)
    snapshot = stats.snapshot()
    assert snapshot.faces_now == {"without_mask": 0, "with_mask": 1, "incorrect_mask": 0, UNCERTAIN: 0}
    assert snapshot.faces_total == {"without_mask": 1, "with_mask": 2, "incorrect_mask": 0, UNCERTAIN: 1}
    assert snapshot.average_confidence["with_mask"] == pytest.approx(0.8)
    assert snapshot.average_confidence["without_mask"] == pytest.approx(0.8)

    from maskdet.inference.drawing import draw_predictions

    canvas = draw_predictions(np.zeros((100, 100, 3), np.uint8), [face("with_mask", 0.55)], uncertain_below=0.6)
    assert tuple(canvas[35, 10]) == UNCERTAIN_COLOUR_RGB  # left edge of the box


def test_fps_is_measured_over_a_sliding_window() -> None:
    now = [100.0]
    stats = LiveStats(fps_window_s=2.0, clock=lambda: now[0])
    for _ in range(90):  # 3 s of a 30 fps camera
        now[0] += 1 / 30
        stats.record_frame([], 0.5, 0.01)
    assert stats.snapshot().fps == pytest.approx(30, rel=0.02)
    now[0] += 5  # the stream stopped
    snapshot = stats.snapshot()
    assert snapshot.fps == 0.0 and snapshot.frames == 90 and snapshot.seconds_since_frame == pytest.approx(5)


def rss_mb() -> float:
    """Resident memory of this process in MB (Linux /proc; the tests run on Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def test_frame_callback_holds_on_to_nothing(pipeline, held_out_faces, frame_composer) -> None:
    """The webcam callback as the page runs it (yuv420p av frame in, annotated av frame out): after a warm-up,
    160 frames leave resident memory flat and 80 more leave Python allocations (numpy buffers included) flat.

    One leaked 640x480 frame per call would add ~150 MB; ``benchmarks/soak_live.py`` runs 2,000 frames.
    """
    processor = LiveProcessor(pipeline)
    scenes = [[held_out_faces[cls][i]] for i in range(3) for cls in ("with_mask", "without_mask")] + [[]]
    frames = [av.VideoFrame.from_ndarray(frame_composer(faces, [LEFT] * len(faces)), format="rgb24")
              .reformat(format="yuv420p") for faces in scenes]
    for index in range(40):
        processor.video_frame_callback(frames[index % len(frames)])
    rss_before = rss_mb()
    for index in range(160):
        out = processor.video_frame_callback(frames[index % len(frames)])
    rss_growth = rss_mb() - rss_before  # measured apart: tracemalloc's own bookkeeping takes memory
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    for index in range(80):
        processor.video_frame_callback(frames[index % len(frames)])
    grown = sum(s.size_diff for s in tracemalloc.take_snapshot().compare_to(before, "filename"))
    tracemalloc.stop()
    print(f"callback: RSS {rss_growth:+.1f} MB over 160 frames, Python allocations {grown / 1e3:+.0f} kB over 80")
    assert (out.width, out.height) == (640, 480) and processor.snapshot().errors == 0
    assert rss_growth < 16, rss_growth
    assert grown < 500_000, grown


def test_stats_memory_stays_flat_over_thousands_of_frames() -> None:
    stats = LiveStats()
    faces = [face("with_mask", 0.9), face("without_mask", 0.8)]
    for _ in range(1000):
        stats.record_frame(faces, 0.5, 0.01)
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    for _ in range(10_000):
        stats.record_frame(faces, 0.5, 0.01)
        stats.snapshot()
    grown = sum(s.size_diff for s in tracemalloc.take_snapshot().compare_to(before, "filename"))
    tracemalloc.stop()
    assert grown < 50_000, grown
    assert len(stats._counters.stamps) == HISTORY_FRAMES
    assert stats.snapshot().frames == 11_000


def test_snapshots_from_another_thread_while_frames_are_processed(pipeline, held_out_faces, frame_composer) -> None:
    processor = LiveProcessor(pipeline)
    frames = [frame_composer([held_out_faces[cls][0]], [LEFT]) for cls in ("with_mask", "without_mask")] * 10
    seen: list[int] = []
    done = threading.Event()

    def reader() -> None:
        while not done.is_set():
            snapshot = processor.snapshot()
            assert sum(snapshot.faces_total.values()) >= snapshot.frames - 1 - snapshot.errors  # never torn
            seen.append(snapshot.frames)
            done.wait(0.0005)  # a fast reader that still lets the frame thread have the GIL (a UI polls far slower)

    thread = threading.Thread(target=reader)
    thread.start()
    for index, frame in enumerate(frames):
        processor.configure(threshold=0.5 + (index % 2) * 0.01, mirror=bool(index % 3))  # the page moves sliders
        processor.process_frame(frame)
    done.set()
    thread.join()
    assert seen == sorted(seen) and processor.snapshot().frames == len(frames) and processor.snapshot().errors == 0


def test_changing_the_model_resets_the_figures(pipeline, tiny_mobilenet, held_out_faces, frame_composer) -> None:
    processor = LiveProcessor(pipeline)
    processor.process_frame(frame_composer([held_out_faces["with_mask"][0]], [LEFT]))
    processor.configure(pipeline=FacePipeline(pipeline.classifier, pipeline.detector))  # same models: a page rerun
    assert processor.snapshot().frames == 1
    processor.configure(pipeline=FacePipeline(load_classifier(str(tiny_mobilenet)), pipeline.detector))
    assert processor.snapshot().frames == 0


def test_ice_servers_default_to_none_and_come_from_the_environment(monkeypatch) -> None:
    monkeypatch.delenv(ICE_SERVERS_ENV, raising=False)
    assert rtc_configuration() == {"iceServers": []}
    servers = [{"urls": "stun:stun.example.org:3478"},
               {"urls": ["turn:turn.example.org:3478?transport=udp"], "username": "u", "credential": "p"}]
    assert rtc_configuration(fallback=servers) == {"iceServers": servers}  # e.g. from secrets.toml
    monkeypatch.setenv(ICE_SERVERS_ENV, json.dumps(servers[:1]))
    assert rtc_configuration(fallback=servers) == {"iceServers": servers[:1]}  # the environment wins


@pytest.mark.parametrize("value, reason", [
    ("[{urls: 1}", "not valid JSON"),
    ('{"urls": "stun:x"}', "must be a list"),
    ('[{"url": "stun:x"}]', "needs a \"urls\" field"),
    ('[{"urls": "http://x"}]', "stun:/turn: URLs"),
])
def test_bad_ice_servers_are_refused_with_a_reason(value: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_ice_servers(value)


# The Webcam page up to the streaming component (AppTest cannot run custom components; the
# streaming itself is covered by tests/browser/test_webcam_browser.py).
PAGE = "pages/webcam.py"


def test_page_without_models_says_how_to_get_one(isolated_models_dir) -> None:
    from dashboard import page_test

    app = page_test(PAGE, 60).run()
    assert not app.exception
    assert "train one on the Train page" in app.info[0].value


def test_page_refuses_bad_ice_servers_with_a_clear_message(monkeypatch, isolated_models_dir, tiny_mobilenet) -> None:
    import shutil

    from dashboard import page_test

    shutil.copytree(tiny_mobilenet, isolated_models_dir / tiny_mobilenet.name)
    monkeypatch.setenv(ICE_SERVERS_ENV, '[{"urls": "https://turn.example.org"}]')
    app = page_test(PAGE, 60).run()
    assert not app.exception
    assert "Invalid ICE server setting" in app.error[0].value and "stun:/turn:" in app.error[0].value
    assert app.selectbox(key="webcam_model").value == tiny_mobilenet.name
    assert app.number_input(key="webcam_alert_after").value == pytest.approx(3.0)
    assert app.checkbox(key="webcam_mirror").value and app.selectbox(key="webcam_privacy").value == "off"


def test_a_compiled_classifier_is_never_recompiled_by_the_frame_callback(pipeline, tiny_mobilenet, held_out_faces,
                                                                        frame_composer, monkeypatch) -> None:
    """The dashboard serves a bf16 model through its compiled graph; TorchDynamo guards the graph on the thread count, so once compiled the
    webcam inference runs at the compiled count, not its single thread: no frame recompiles (seconds to minutes in
    the callback, and streamlit-webrtc ends a stream whose callback takes over 30 s)."""
    import torch._dynamo.utils

    monkeypatch.setenv("MASKDET_COMPILE", "1")
    classifier = load_classifier(str(tiny_mobilenet), compile=True)
    assert classifier.wait_for_compilation(timeout=600) and classifier.compiled
    processor = LiveProcessor(FacePipeline(classifier, pipeline.detector))
    frame = frame_composer([held_out_faces["with_mask"][0]], [LEFT])
    graphs = torch._dynamo.utils.counters["stats"]["unique_graphs"]
    worker = threading.Thread(target=lambda: [processor.process_frame(frame) for _ in range(3)])  # as streamlit-webrtc
    worker.start()
    worker.join()
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == graphs, "the frame callback recompiled the model"
    snapshot = processor.snapshot()
    assert snapshot.frames == 3 and snapshot.errors == 0 and snapshot.faces_now["with_mask"] == 1


class _FirstTorchCallDuringDetection:
    """The real detector, plus: while it runs (inside a frame), a brand-new thread makes its first torch call
    and records the thread count it got, as a page's script thread or the compile thread would."""

    def __init__(self, detector) -> None:
        self.detector = detector
        self.seen: list[int] = []

    def detect(self, frame):
        import torch

        newcomer = threading.Thread(target=lambda: self.seen.append(torch.get_num_threads()))
        newcomer.start()
        newcomer.join()
        return self.detector.detect(frame)


def test_a_webcam_frame_leaves_every_threads_torch_thread_count_alone(pipeline, held_out_faces, frame_composer,
                                                                       monkeypatch) -> None:
    """Issue 18, defect 2: frames ran with ``torch.set_num_threads(1)`` around inference, which is process-wide in
    effect: a thread whose first torch call fell inside a frame kept one thread for life. Now inference runs in one
    long-lived worker whose count is set once; frames never touch the setting."""
    import torch

    before = torch.get_num_threads()
    if before == 1:
        pytest.skip("torch runs one thread in this process: a frame setting one thread cannot show")
    frame = frame_composer([held_out_faces["with_mask"][0]], [LEFT])
    spy = _FirstTorchCallDuringDetection(pipeline.detector)
    processor = LiveProcessor(FacePipeline(pipeline.classifier, spy))
    processor.process_frame(frame)  # starts the worker (its count is set once, here) if no test did before
    calls: list[int] = []
    real_set = torch.set_num_threads
    monkeypatch.setattr(torch, "set_num_threads", lambda n: (calls.append(n), real_set(n)))
    page_thread_counts: list[int] = []
    page = threading.Thread(target=lambda: [page_thread_counts.append(torch.get_num_threads()),
                                            processor.process_frame(frame),
                                            page_thread_counts.append(torch.get_num_threads())])
    page.start()
    page.join()
    for _ in range(3):
        processor.process_frame(frame)
    assert processor.snapshot().face_in_view and processor.snapshot().errors == 0
    assert calls == [], "a webcam frame changed torch's thread count"
    assert page_thread_counts == [before, before], "a thread's torch thread count changed across a frame"
    assert spy.seen and set(spy.seen) == {before}, f"threads started during a frame got {spy.seen}, not {before}"
    assert torch.get_num_threads() == before
