"""One watched stream: frames in, annotated frames out, people counted and alerted on (thread-safe readout).

:class:`WatchSession` runs track-aware inference over a :class:`maskdet.inference.pipeline.FacePipeline`:

- the detector runs on every ``detect_every``-th frame; between two, the faces of the last detected frame
  are drawn where the tracker expects them (:meth:`TrackBook.carried_boxes`: its Kalman box moved on by its
  velocity), with their labels; a face not yet tracked stays where it was found;
- a detected face is classified only when its track needs a label (:meth:`TrackBook.needs_label`: new,
  undecided, every ``classify_every`` frames, or when its box moved a lot); otherwise its track's last
  label is reused. All faces that need a label on a frame are classified in one batch;
- the face record carries its ``track_id`` and is drawn with its person's verdict and ``#id``.

Pictures follow the privacy mode (:mod:`maskdet.watch.privacy`): in ``blur`` mode the annotated frame itself
has its faces blurred, so the live view, snapshots and recordings are all blurred; in ``no-pictures`` mode
no snapshot is kept and :meth:`WatchSession.record_to` refuses.

NOTE (threading): :meth:`process` runs on one worker thread per stream (the WebRTC callback, a source's
reader thread, the CLI's loop); the page's fragment calls :meth:`snapshot` from another. Both hold the
session's lock for the book-keeping only; inference runs outside it. Inference itself goes to ``run``
(default: the process's one inference thread, :func:`maskdet.runtime.inference_worker`, as live video does).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from maskdet.inference.drawing import draw_predictions, encode_jpeg
from maskdet.inference.faces import FacePrediction
from maskdet.inference.pipeline import FacePipeline, label_probabilities
from maskdet.settings import CLASSES
from maskdet.watch.privacy import Privacy, blur_faces
from maskdet.watch.tracks import Event, TrackBook, WatchConfig, compliance_ratio

logger = logging.getLogger(__name__)

FPS_WINDOW = 60  # processed frames per second over the last this many frames
ID_COLOUR_RGB = (255, 255, 255)

FrameSink = Callable[[np.ndarray, float], None]  # (annotated frame, its stream time in seconds)
WATCH_DETECTOR = "centerface-live"
"""The detector setting watched streams run (:data:`maskdet.inference.detector.DETECTORS`): the product's, with
its 160 px pass only on frames where the main pass finds no face (``benchmarks/bench_streams.py``)."""


def _clip(box: tuple[int, int, int, int], width: int, height: int) -> tuple[int, int, int, int]:
    x0, y0, x1, y1 = box
    return max(0, x0), max(0, y0), min(width, x1), min(height, y1)


def model_classes(pipeline: FacePipeline) -> tuple[str, ...]:
    """The classes of the pipeline's model (two or three), in the order of its probabilities."""
    return tuple(getattr(pipeline.classifier, "classes", None) or CLASSES)


@dataclass(frozen=True)
class WatchSnapshot:
    """What a readout shows, copied out under the lock."""

    frames: int
    fps: float
    median_ms: float | None
    in_view: dict[str, int]
    seen: dict[str, int]
    compliance_now: float | None
    compliance_seen: float | None
    compliance: tuple[tuple[float, float | None], ...]
    events: tuple[Event, ...]
    active_alerts: tuple[int, ...]
    last_frame_jpeg: bytes | None
    errors: int
    last_error: str | None
    seconds_since_frame: float | None


class WatchSession:
    """Tracks, counts and alerts of one stream over a shared pipeline (models); see the module."""

    def __init__(self, pipeline: FacePipeline, config: WatchConfig | None = None,
                 run: Callable[..., object] | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.pipeline = pipeline
        self.config = config or WatchConfig()
        self.classes = model_classes(pipeline)
        self._run = run
        self._clock = clock
        self._lock = threading.Lock()
        self._sink: FrameSink | None = None
        self.reset()

    def reset(self) -> None:
        """Start afresh: no track, no event, no figure (on START, or when the model changes)."""
        with getattr(self, "_lock", threading.Lock()):
            self.book = TrackBook(self.classes, self.config)
            self._started = self._clock()
            self._frames = 0
            self._detected: list[FacePrediction] = []  # the faces of the last detected frame
            self._durations: deque[float] = deque(maxlen=FPS_WINDOW)
            self._stamps: deque[float] = deque(maxlen=FPS_WINDOW)
            self._last_frame: np.ndarray | None = None
            self._errors, self._last_error = 0, None

    def configure(self, pipeline: FacePipeline | None = None, config: WatchConfig | None = None) -> None:
        """Change settings between frames (from another thread); another model starts the figures afresh."""
        if config is not None:
            with self._lock:
                self.config = config
                self.book.config = config
        if pipeline is not None and (pipeline.classifier is not self.pipeline.classifier
                                     or pipeline.detector is not self.pipeline.detector):
            self.pipeline = pipeline
            self.classes = model_classes(pipeline)
            self.reset()

    # --- frames ---------------------------------------------------------------------------------------

    def process(self, rgb: np.ndarray, t: float | None = None) -> tuple[np.ndarray, list[Event]]:
        """The annotated frame (RGB uint8) and this frame's events; ``t``: stream seconds (default: since start).

        An error while processing is logged, counted and shown in the readout; the frame is returned as it
        came (blurred all over in ``blur`` mode, since its faces are unknown) so a stream never dies of it.
        """
        started = time.perf_counter()
        t = self._clock() - self._started if t is None else t
        step = self._frames % self.config.detect_every
        try:
            faces, events = self._carried(step / self.config.detect_every, rgb.shape) if step else self._track(rgb, t)
            annotated = self._draw(rgb, faces)
        except Exception as exc:  # noqa: BLE001 -- one bad frame must not end the stream; counted and shown
            logger.exception("watch: frame processing failed (the stream goes on)")
            with self._lock:
                self._errors, self._last_error = self._errors + 1, f"{type(exc).__name__}: {exc}"
            faces, events = [], []
            height, width = rgb.shape[:2]
            annotated = blur_faces(rgb, [(0, 0, width, height)]) if self.config.privacy is Privacy.BLUR else rgb
        with self._lock:
            if not step:
                self._detected = faces
            self._frames += 1
            self._durations.append(time.perf_counter() - started)
            self._stamps.append(self._clock())
            if self.config.privacy.keeps_pictures:
                self._last_frame = annotated
            sink = self._sink
        if sink is not None:
            sink(annotated, t)
        return annotated, events

    def _infer(self, rgb: np.ndarray) -> tuple[list[FacePrediction], list[bool]]:
        """Detect, assign tracks, classify the faces that need it (one batch); runs on the inference thread."""
        from maskdet.inference.detector import crop_faces

        detected = self.pipeline.detector.detect(rgb)
        with self._lock:
            ids = self.book.assign([face.box for face in detected], [face.score for face in detected])
            due = [self.book.needs_label(track_id, face.box) for track_id, face in zip(ids, detected, strict=True)]
            reused = {i: self.book.last_face(ids[i]) for i, need in enumerate(due) if not need}
        todo = [face for face, need in zip(detected, due, strict=True) if need]
        labels: list[tuple[str, float]] = []
        probabilities = np.zeros((0, len(self.classes)))
        if todo:
            probabilities = self.pipeline.classifier.predict_proba(crop_faces(rgb, todo, margin=self.pipeline.margin))
            labels = label_probabilities(probabilities, self.pipeline.classifier.threshold,
                                         self.pipeline.classifier.classes)
        faces, fresh, k = [], [], 0
        for i, (face, track_id) in enumerate(zip(detected, ids, strict=True)):
            box = tuple(int(v) for v in face.box)
            if i in reused:
                faces.append(replace(reused[i], box=box, face_score=float(face.score), track_id=track_id))
                fresh.append(False)
                continue
            label, confidence = labels[k]
            faces.append(FacePrediction(box=box, label=label, confidence=confidence, face_score=float(face.score),
                                        probabilities={name: float(p) for name, p in
                                                       zip(self.pipeline.classifier.classes, probabilities[k],
                                                           strict=True)},
                                        track_id=track_id))
            fresh.append(True)
            k += 1
        return faces, fresh

    def _carried(self, fraction: float, shape: tuple[int, ...]) -> tuple[list[FacePrediction], list[Event]]:
        """The last detected frame's faces moved to where the tracker expects them now (no events)."""
        height, width = shape[:2]
        with self._lock:
            carried = self.book.carried_boxes(fraction)
            faces = [replace(face, box=_clip(carried[face.track_id], width, height)) if face.track_id in carried
                     else face for face in self._detected]
        return faces, []

    def _track(self, rgb: np.ndarray, t: float) -> tuple[list[FacePrediction], list[Event]]:
        faces, fresh = self._run(self._infer, rgb).result() if self._run else self._infer(rgb)
        with self._lock:
            return self.book.observe(faces, fresh, t, image=rgb)

    def observe(self, faces: list[FacePrediction], t: float, image: np.ndarray | None = None) -> list[Event]:
        """Record faces classified elsewhere (a clip's analysis classifies every processed frame): tracks,
        votes and events, as :meth:`process` would."""
        with self._lock:
            ids = self.book.assign([face.box for face in faces], [face.face_score for face in faces])
            tracked = [replace(face, track_id=track_id) for face, track_id in zip(faces, ids, strict=True)]
            _shown, events = self.book.observe(tracked, [True] * len(faces), t, image=image)
            self._frames += 1
        return events

    def _draw(self, rgb: np.ndarray, faces: list[FacePrediction]) -> np.ndarray:
        import cv2

        frame = blur_faces(rgb, [face.box for face in faces]) if self.config.privacy is Privacy.BLUR else rgb
        canvas = draw_predictions(frame, faces)
        scale = max(0.5, max(canvas.shape[:2]) / 1000)
        for face in faces:
            if face.track_id is not None:
                x0, _y0, _x1, y1 = face.box
                cv2.putText(canvas, f"#{face.track_id}", (x0 + 3, min(canvas.shape[0] - 4, y1 + int(24 * scale))),
                            cv2.FONT_HERSHEY_SIMPLEX, scale, ID_COLOUR_RGB, max(1, round(2 * scale)), cv2.LINE_AA)
        return canvas

    # --- outputs --------------------------------------------------------------------------------------

    def record_to(self, sink: FrameSink | None) -> None:
        """Send every annotated frame and its stream time to ``sink`` (a recorder) from now on; None stops.
        Refused in no-pictures mode."""
        if sink is not None and not self.config.privacy.keeps_pictures:
            raise ValueError("no-pictures privacy mode: nothing is recorded")
        with self._lock:
            self._sink = sink

    def face_of(self, track_id: int) -> np.ndarray | None:
        """The clearest face seen of a person, sharp, from memory (to explain an alert live; never stored, so in
        ``blur`` mode too); None when not kept (``no-pictures`` mode) or the session was reset."""
        with self._lock:
            track = self.book.tracks.get(track_id)
            return None if track is None else track.face

    def finish(self) -> list[Event]:
        """End of stream: every person still in view leaves."""
        with self._lock:
            return self.book.finish()

    def summary(self) -> dict:
        with self._lock:
            return self.book.summary()

    def snapshot(self) -> WatchSnapshot:
        now = self._clock()
        with self._lock:
            book = self.book
            in_view, seen = book.counts_in_view(), book.counts_seen()
            stamps, durations = list(self._stamps), sorted(self._durations)
            last = self._last_frame
            snapshot = WatchSnapshot(
                frames=self._frames,
                fps=(len(stamps) - 1) / (stamps[-1] - stamps[0]) if len(stamps) > 1 and stamps[-1] > stamps[0] else 0.0,
                median_ms=durations[len(durations) // 2] * 1000 if durations else None,
                in_view=in_view, seen=seen, compliance_now=compliance_ratio(in_view),
                compliance_seen=compliance_ratio(seen), compliance=tuple(book.compliance),
                events=tuple(book.events), active_alerts=tuple(book.active_alerts()), last_frame_jpeg=None,
                errors=self._errors, last_error=self._last_error,
                seconds_since_frame=now - stamps[-1] if stamps else None,
            )
        if last is not None:
            snapshot = replace(snapshot, last_frame_jpeg=encode_jpeg(last))
        return snapshot
