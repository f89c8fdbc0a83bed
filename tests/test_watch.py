"""Watching a place: people tracked across frames, counted exactly, one verdict each, alerts on time,
recordings PyAV decodes, an HTTP camera on loopback, privacy modes that keep no sharp face, retention.

Clips are built here from real face-mask-4k photos of the shipped model's held-out test split, pasted
on a plain 640x480 canvas where people enter and leave at known frames; the real CenterFace detector,
the shipped MobileNetV2, ByteTrack and PyAV run on them.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from PIL import Image

from maskdet.data.images import load_rgb
from maskdet.inference.live import LIVE_DETECTOR_OPTIONS
from maskdet.inference.pipeline import build_pipeline
from maskdet.video.encode import AnnotatedVideoWriter
from maskdet.jobs import JobService, Limits
from maskdet.video.stream import Recorder, StreamRunner, prune_watch_folder, watch_source
from maskdet.watch import WATCH_DETECTOR, Privacy, TrackBook, WatchConfig, WatchSession

REPO = Path(__file__).resolve().parent.parent
SHIPPED = REPO / "models" / "mobilenet_v2"
FPS = 10
SIZE = (640, 480)
SIDE = 170
ALERT_AFTER = 2.0
# (class, photo index, first frame, last frame, x): three people, one of them bare, entering and leaving
PEOPLE = [("with_mask", 0, 0, 24, 30), ("without_mask", 0, 8, 40, 420), ("with_mask", 1, 32, 50, 240)]
FRAMES = 64  # the last person leaves at frame 50; 1.3 s of empty scene after
DETECT = WatchConfig().detect_every


@pytest.fixture(scope="module")
def photos(datasets_root) -> dict[str, list[Image.Image]]:
    """Two held-out face-mask-4k photos per class (never trained on by the shipped model)."""
    split = json.loads((SHIPPED / "split.json").read_text())
    chosen: dict[str, list[Image.Image]] = {}
    for cls in ("with_mask", "without_mask"):
        paths = [datasets_root / entry.split("/", 1)[1] for entry in split["test"]
                 if entry.startswith(f"{cls}/face-mask-4k/")][:2]
        chosen[cls] = [load_rgb(path).resize((SIDE, SIDE), Image.Resampling.LANCZOS) for path in paths]
    return chosen


def canvas(people: list[tuple[Image.Image, int]]) -> np.ndarray:
    picture = Image.new("RGB", SIZE, (96, 120, 140))
    for photo, x in people:
        picture.paste(photo, (x, 150))
    return np.asarray(picture)


def scene(photos, index: int) -> np.ndarray:
    """Frame ``index`` of the scene: whoever of PEOPLE is in view, drifting slowly to the right."""
    return canvas([(photos[cls][k], x + 2 * (index - first)) for cls, k, first, last, x in PEOPLE
                   if first <= index <= last])


def write_clip(path: Path, frames: list[np.ndarray]) -> Path:
    writer = AnnotatedVideoWriter(path, SIZE[0], SIZE[1], FPS)  # H.264 mp4, index first: streams over HTTP
    for array in frames:
        writer.write(array)
    return writer.close()


@pytest.fixture(scope="module")
def clip(photos, tmp_path_factory) -> Path:
    return write_clip(tmp_path_factory.mktemp("watch") / "people.mp4", [scene(photos, i) for i in range(FRAMES)])


@pytest.fixture(scope="module")
def pipeline():
    return build_pipeline(str(SHIPPED), detector=WATCH_DETECTOR, detector_options=LIVE_DETECTOR_OPTIONS)


def check_people(events: list[dict], summary: dict) -> None:
    """Exactly PEOPLE: three appear, three leave, verdicts as pasted, one alert for the bare face ALERT_AFTER
    seconds after it appeared."""
    kinds = [e["event"] for e in events]
    assert kinds.count("appears") == 3 and kinds.count("leaves") == 3, kinds
    decided = {e["track"]: e["label"] for e in events if e["event"] == "decided"}
    assert sorted(decided.values()) == ["with_mask", "with_mask", "without_mask"], events
    assert summary["people"] == {"without_mask": 1, "with_mask": 2} and summary["undecided"] == 0
    assert summary["compliance"] == pytest.approx(2 / 3)
    alerts = [e for e in events if e["event"] == "alert"]
    assert len(alerts) == 1 and alerts[0]["label"] == "without_mask"
    appeared = next(e["time"] for e in events if e["event"] == "appears" and e["track"] == alerts[0]["track"])
    # observed on detected frames (every DETECT-th): the alert comes on the first one past ALERT_AFTER
    assert ALERT_AFTER <= alerts[0]["time"] - appeared <= ALERT_AFTER + DETECT / FPS + 1e-6
    bare_first_frame = PEOPLE[1][2]
    assert appeared <= (bare_first_frame + 2 * DETECT) / FPS  # confirmed on its second detected frame
    left = next(e["time"] for e in events if e["event"] == "leaves" and e["track"] == alerts[0]["track"])
    assert (PEOPLE[1][3] + 1) / FPS <= left <= (PEOPLE[1][3] + 1) / FPS + 1.0 + 3 / FPS


def test_people_counted_once_each_with_one_alert_and_a_recording(clip, pipeline, tmp_path):
    session = WatchSession(pipeline, WatchConfig(alert_after_s=ALERT_AFTER, frame_rate=FPS))
    recording = tmp_path / "recording.mp4"
    events = [event.to_json() for event in watch_source(str(clip), session, record=recording)]
    check_people(events, session.summary())
    with av.open(str(recording)) as container:
        times = [frame.time for frame in container.decode(video=0)]
    assert times == pytest.approx([index / FPS for index in range(FRAMES)], abs=1e-3)  # the source's own times
    alert = next(e for e in session.snapshot().events if e.kind == "alert")
    face = cv2.imdecode(np.frombuffer(alert.face_jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert face is not None and min(face.shape[:2]) >= 32  # the track's clearest face, kept sharp (privacy off)


def test_a_camera_recording_keeps_the_frames_real_times(tmp_path):
    """A camera's frames come as fast as they are processed, unevenly: the recording plays them at their times."""
    times = [0.0, 0.1, 0.3, 0.35, 0.5, 0.8, 0.9, 1.0]
    recorder = Recorder(tmp_path / "camera.mp4")
    for t in times:
        recorder(np.full((SIZE[1], SIZE[0], 3), int(200 * t), np.uint8), 5.0 + t)  # stream time: 5 s after START
    with av.open(str(recorder.close())) as container:
        assert [frame.time for frame in container.decode(video=0)] == pytest.approx(times, abs=1e-3)


def test_flickering_labels_give_one_verdict(photos, pipeline):
    """One place, one person: every 4th frame shows the bare photo, so the per-frame labels flicker."""
    session = WatchSession(pipeline, WatchConfig(alert_after_s=0.5, frame_rate=FPS, detect_every=1,
                                                 classify_every=1))
    masked, bare = photos["with_mask"][0], photos["without_mask"][0]
    per_frame, events = [], []
    for index in range(16):
        frame = canvas([(bare if index % 4 == 3 else masked, 200)])
        per_frame += [face.label for face in pipeline.predict(frame)]
        events += session.process(frame, index / FPS)[1]
    assert {"with_mask", "without_mask"} <= set(per_frame)  # the per-frame labels do flicker
    assert [(e.kind, e.label) for e in events] == [("appears", None), ("decided", "with_mask")]
    assert session.summary()["people"] == {"without_mask": 0, "with_mask": 1}


def test_a_person_verdict_is_drawn_with_its_votes_not_a_dissenting_frames_probabilities(photos, pipeline):
    """A tracked face is drawn with its person's verdict and share of votes. A frame that voted otherwise keeps
    no probabilities: drawn with them, a masked person's bare frame would read 'Mask (...)' of a bare frame's
    probabilities, or as a face the threshold held back."""
    from dataclasses import replace

    from maskdet.inference.drawing import label_text

    book = TrackBook(("without_mask", "with_mask"), WatchConfig(frame_rate=FPS, detect_every=1, classify_every=1))
    masked, bare = photos["with_mask"][0], photos["without_mask"][0]
    decided = []  # (the frame's face, as drawn) once the person has a verdict
    for index in range(12):
        (face,) = pipeline.predict(canvas([(bare if index % 4 == 3 else masked, 200)]))
        (track,) = book.assign([face.box], [face.face_score])
        (drawn,), _events = book.observe([replace(face, track_id=track)], [True], index / FPS)
        if track in book.tracks and book.tracks[track].verdict is not None:  # a confirmed track, decided
            decided.append((face, drawn))
    dissent = [(face, drawn) for face, drawn in decided if face.label == "without_mask"]
    assert dissent and len(dissent) < len(decided)  # the bare frames after the verdict, and agreeing ones
    for face, drawn in decided:
        assert drawn.label == "with_mask" and drawn.track_id is not None
        assert drawn.probabilities == ({} if face.label == "without_mask" else face.probabilities)
        assert label_text(drawn) == f"Mask {drawn.confidence:.0%}" and drawn.confidence < 1


def test_boxes_between_detections_follow_a_moving_face():
    """Between two detected frames the tracker carries a face's box along its velocity (not left behind)."""
    book = TrackBook(("with_mask", "without_mask"), WatchConfig(frame_rate=30, detect_every=3))
    for step in range(8):  # a face moving 15 px to the right per detected frame
        x = 100 + 15 * step
        (track,) = book.assign([(x, 100, x + 120, 220)], [0.9])
    assert track is not None
    for fraction in (1 / 3, 2 / 3):
        x0, y0, x1, y1 = book.carried_boxes(fraction)[track]
        assert abs(x0 - (x + 15 * fraction)) <= 2 and abs(x1 - (x + 120 + 15 * fraction)) <= 2 and (y0, y1) == (100, 220)
    book.assign([], [])  # missed on the next detected frame: not carried (drawn where last seen)
    assert track not in book.carried_boxes(1 / 3)


def laplacian_variance(image: np.ndarray, box: tuple[int, int, int, int]) -> float:
    x0, y0, x1, y1 = box
    return float(cv2.Laplacian(cv2.cvtColor(image[y0:y1, x0:x1], cv2.COLOR_RGB2GRAY), cv2.CV_64F).var())


def test_blur_mode_keeps_no_sharp_face(photos, pipeline, tmp_path):
    session = WatchSession(pipeline, WatchConfig(alert_after_s=0.0, frame_rate=FPS, privacy=Privacy.BLUR))
    recorder = Recorder(tmp_path / "blurred.mp4", FPS)
    session.record_to(recorder)
    frames = [canvas([(photos["without_mask"][1], 200)]) for _ in range(12)]
    events = [event for index, frame in enumerate(frames) for event in session.process(frame, index / FPS)[1]]
    recorder.close()
    x0, y0, x1, y1 = pipeline.predict(frames[0])[0].box
    inset = (x1 - x0) // 8  # inside the face, clear of the drawn box and label
    box = (x0 + inset, y0 + inset, x1 - inset, y1 - inset)
    sharp = laplacian_variance(frames[0], box)
    with av.open(str(tmp_path / "blurred.mp4")) as container:
        recorded = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    assert len(recorded) == len(frames)
    snapshot = session.snapshot()
    stored = [recorded[-1], cv2.cvtColor(cv2.imdecode(np.frombuffer(snapshot.last_frame_jpeg, np.uint8),
                                                      cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)]
    for picture in stored:
        assert laplacian_variance(picture, box) < sharp / 8, (laplacian_variance(picture, box), sharp)
    alert = next(e for e in events if e.kind == "alert")
    face = cv2.imdecode(np.frombuffer(alert.face_jpeg, np.uint8), cv2.IMREAD_GRAYSCALE)
    assert cv2.Laplacian(face, cv2.CV_64F).var() < sharp / 8


def test_no_pictures_mode_keeps_none(photos, pipeline):
    session = WatchSession(pipeline, WatchConfig(alert_after_s=0.0, frame_rate=FPS, privacy=Privacy.NO_PICTURES))
    with pytest.raises(ValueError, match="no-pictures"):
        session.record_to(lambda frame: None)
    events = [e for index in range(12) for e in session.process(canvas([(photos["without_mask"][1], 200)]),
                                                              index / FPS)[1]]
    assert any(e.kind == "alert" for e in events)
    assert all(e.face_jpeg is None for e in events) and session.snapshot().last_frame_jpeg is None


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # keep the test output clean
        pass


def test_a_source_holds_a_server_stream_slot_until_its_stream_ends(clip, pipeline):
    """The server-wide live-stream cap: a source that finds every slot taken does not start; one whose clip has
    played out, or that is stopped, gives its slot back."""
    service = JobService(Limits(streams=1))

    def runner() -> StreamRunner:
        return StreamRunner(str(clip), WatchSession(pipeline, WatchConfig(frame_rate=FPS)), realtime=False,
                            acquire=lambda: service.try_acquire_stream("me"), release=lambda: service.release_stream("me"))

    first, second = runner(), runner()
    assert first.start() and service.streams() == {"me": 1}
    assert not second.start() and not second.running and service.streams() == {"me": 1}
    deadline = time.monotonic() + 120
    while first.running:  # the clip plays out (as fast as processed)
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert service.streams() == {} and first.session.summary()["people"] == {"without_mask": 1, "with_mask": 2}
    assert second.start(), "the slot of the ended clip is free again"
    second.stop()
    assert not second.running and service.streams() == {}


def test_cli_watches_an_http_camera_on_loopback(clip):
    """``python -m maskdet watch http://...`` over a clip served on 127.0.0.1: JSON events and the summary."""
    handler = functools.partial(QuietHandler, directory=str(clip.parent))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/{clip.name}"
        result = subprocess.run(
            [sys.executable, "-m", "maskdet", "watch", url, "--json", "--alert-after", str(ALERT_AFTER),
             "--model", str(SHIPPED)],
            capture_output=True, text=True, timeout=600, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    finally:
        server.shutdown()
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    check_people(lines[:-1], lines[-1]["summary"])


def test_cli_refuses_a_source_that_is_not_there(tmp_path):
    result = subprocess.run([sys.executable, "-m", "maskdet", "watch", str(tmp_path / "missing.mp4")],
                            capture_output=True, text=True, timeout=300, cwd=REPO)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("error: no such file, URL or camera device")


def test_retention_deletes_old_recordings(tmp_path):
    old, new = tmp_path / "old.mp4", tmp_path / "new.mp4"
    old.write_bytes(b"x")
    new.write_bytes(b"y")
    week_ago = time.time() - 8 * 86400
    os.utime(old, (week_ago, week_ago))
    assert prune_watch_folder(tmp_path, days=7) == [old]
    assert new.exists() and not old.exists()
    assert prune_watch_folder(tmp_path, days=0) == [new]


def test_video_analysis_reports_people_not_face_frames(clip, pipeline, tmp_path):
    """The Video page's analysis (analyse-video job) counts the clip's three people, whatever their frames."""
    from maskdet.video.results import analyse_to_folder, read_results

    analyse_to_folder(clip, pipeline, tmp_path / "analysis", every=2)
    results = read_results(tmp_path / "analysis")
    assert results.people["people"] == {"without_mask": 1, "with_mask": 2}
    assert results.people["compliance"] == pytest.approx(2 / 3)
    assert sum(counts.counts["with_mask"] for counts in results.frames) > 2  # many more face-frames than people
    assert [e["event"] for e in results.events].count("leaves") == 3
