"""Live video: annotate camera frames as they arrive and keep the figures a live readout shows.

:class:`LiveProcessor` turns one RGB frame into an annotated frame (detect faces, classify
them, draw box + label + confidence) and records what it saw in a :class:`LiveStats`:
frames processed, processed frames per second over a sliding window, faces per class in the
current frame, and the running average confidence per class since the last reset (the
figures the original notebooks reported for their webcam test). :meth:`LiveStats.snapshot`
returns them as a :class:`LiveSnapshot` for any other thread to display.

Threshold: a face whose classifier confidence is below ``threshold`` is still boxed, in grey
and labelled "Unsure", and is counted as *uncertain*; it does not enter the per-class counts
nor the per-class average confidence. ``threshold=0.5`` (the lowest possible confidence of a
two-class prediction) therefore reports every face.

Mirror: the frame is flipped left-right *before* detection, so boxes match the mirrored
picture and labels stay readable (a selfie view).

Errors: an exception while processing a frame is caught, logged (once per distinct message)
and recorded; the frame is returned without annotations and the next frame is processed as
usual, so a live stream never dies of one bad frame.

NOTE (threading): ``process_frame`` runs on the video worker thread while a UI thread calls
``snapshot()`` and ``configure()``. Counters live behind one lock; settings are an immutable
:class:`LiveSettings` swapped in one assignment, so a frame always sees one consistent set.
Memory is bounded: the FPS window and the timing history are fixed-size deques.

NOTE (CPU): every stream's inference (detect + classify) runs in the process's one long-lived
inference thread (:func:`maskdet.runtime.inference_worker`), one frame at a time, at the torch
thread count that thread was started with (the process's); CenterFace runs single-threaded
(:data:`LIVE_DETECTOR_OPTIONS`). Nothing here calls ``torch.set_num_threads``: it is process-wide
in effect, and changing it around each frame gave any thread whose first torch call fell inside a
frame one thread for life (pages, explanations, the compile thread; issue 18). The dashboard's
classifier (``backend="auto"``) is onnxruntime at the process's thread count for an fp32 model; a
bf16 model's compiled graph is guarded on the thread count it was compiled for, which is the
process's count too, so frames use it and never recompile (1.5-2 s, ``benchmarks/bench_stalls.py``,
and streamlit-webrtc ends a stream whose callback takes over 30 s).

:func:`rtc_configuration` builds the WebRTC ICE configuration from ``MASKDET_ICE_SERVERS``.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from maskdet.inference.drawing import draw_predictions
from maskdet.inference.faces import FacePrediction
from maskdet.inference.pipeline import FacePipeline
from maskdet.runtime import inference_worker
from maskdet.settings import KNOWN_CLASSES, current_settings, env_variable

if TYPE_CHECKING:
    import av

logger = logging.getLogger(__name__)

UNCERTAIN = "uncertain"
FPS_WINDOW_S = 2.0  # processed frames per second are measured over the last this many seconds
HISTORY_FRAMES = 240  # bound on remembered frame timestamps / durations (a few seconds at camera rates)
ICE_SERVERS_ENV = env_variable("ice_servers")
LIVE_DETECTOR_OPTIONS = {"threads": 1}
"""How live video runs CenterFace: single-threaded (see the NOTE on CPU). Only how it runs, never what it
finds: :class:`LiveProcessor` runs the video frame setting (``DETECTORS["centerface-frames"]``, the Photo page's
without its 1120 px pass); watched streams and the Webcam page run :data:`maskdet.watch.session.WATCH_DETECTOR`."""


@dataclass(frozen=True)
class LiveSettings:
    """How frames are processed; replaced as a whole (see the module NOTE on threading)."""

    threshold: float = 0.5
    mirror: bool = False

    def __post_init__(self) -> None:
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], got {self.threshold}")


@dataclass(frozen=True)
class LiveSnapshot:
    """What the live readout shows, copied out under the lock.

    ``faces_now`` counts the faces of the latest processed frame per class plus ``"uncertain"``;
    ``faces_total`` and ``average_confidence`` cover every frame since the last reset
    (``average_confidence[c]`` is None until a face of class ``c`` was seen).
    """

    frames: int
    fps: float
    faces_now: dict[str, int]
    faces_total: dict[str, int]
    average_confidence: dict[str, float | None]
    median_ms: float | None
    errors: int
    last_error: str | None
    seconds_since_frame: float | None

    @property
    def face_in_view(self) -> bool:
        return sum(self.faces_now.values()) > 0


def _zero_counts() -> dict[str, int]:
    return {name: 0 for name in (*KNOWN_CLASSES, UNCERTAIN)}


@dataclass
class _Counters:
    frames: int = 0
    errors: int = 0
    last_error: str | None = None
    faces_now: dict[str, int] = field(default_factory=_zero_counts)
    faces_total: dict[str, int] = field(default_factory=_zero_counts)
    confidence_sum: dict[str, float] = field(default_factory=lambda: dict.fromkeys(KNOWN_CLASSES, 0.0))
    stamps: deque[float] = field(default_factory=lambda: deque(maxlen=HISTORY_FRAMES))
    durations: deque[float] = field(default_factory=lambda: deque(maxlen=HISTORY_FRAMES))


class LiveStats:
    """Thread-safe running figures of a live stream; see :class:`LiveSnapshot`."""

    def __init__(self, fps_window_s: float = FPS_WINDOW_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.fps_window_s = fps_window_s
        self._clock = clock
        self._lock = threading.Lock()
        self._counters = _Counters()

    def reset(self) -> None:
        """Start counting afresh (on START, or when the model changes)."""
        with self._lock:
            self._counters = _Counters()

    def record_frame(self, faces: Sequence[FacePrediction], threshold: float, seconds: float) -> None:
        """One processed frame with its faces (split by ``threshold``) and processing time."""
        now_counts = _zero_counts()
        confidences: list[tuple[str, float]] = []
        for face in faces:
            if face.confidence < threshold:
                now_counts[UNCERTAIN] += 1
            else:
                now_counts[face.label] += 1
                confidences.append((face.label, face.confidence))
        with self._lock:
            c = self._counters
            c.frames += 1
            c.stamps.append(self._clock())
            c.durations.append(seconds)
            c.faces_now = now_counts
            for name, count in now_counts.items():
                c.faces_total[name] += count
            for label, confidence in confidences:
                c.confidence_sum[label] += confidence

    def record_error(self, error: BaseException) -> None:
        """A frame that could not be processed: counted as a frame (it was returned) and as an error."""
        message = f"{type(error).__name__}: {error}"
        with self._lock:
            c = self._counters
            c.frames += 1
            c.stamps.append(self._clock())
            c.errors += 1
            c.last_error = message
            c.faces_now = _zero_counts()

    def snapshot(self) -> LiveSnapshot:
        now = self._clock()
        with self._lock:
            c = self._counters
            recent = [t for t in c.stamps if now - t <= self.fps_window_s]
            span = recent[-1] - recent[0] if len(recent) >= 2 else 0.0
            durations = sorted(c.durations)
            snapshot = LiveSnapshot(
                frames=c.frames,
                fps=(len(recent) - 1) / span if span > 0 else 0.0,
                faces_now=dict(c.faces_now),
                faces_total=dict(c.faces_total),
                average_confidence={
                    name: c.confidence_sum[name] / c.faces_total[name] if c.faces_total[name] else None
                    for name in KNOWN_CLASSES
                },
                median_ms=durations[len(durations) // 2] * 1000 if durations else None,
                errors=c.errors,
                last_error=c.last_error,
                seconds_since_frame=now - c.stamps[-1] if c.stamps else None,
            )
        return snapshot


class LiveProcessor:
    """Annotates frames with a :class:`FacePipeline` and feeds a :class:`LiveStats`.

    One processor per viewer (its figures are that viewer's); the pipeline (models) can be
    shared. ``configure`` may be called from another thread while frames are processed.
    """

    def __init__(self, pipeline: FacePipeline, threshold: float = 0.5, mirror: bool = False,
                 stats: LiveStats | None = None) -> None:
        self.pipeline = pipeline
        self.settings = LiveSettings(threshold=threshold, mirror=mirror)
        self.stats = stats or LiveStats()
        self._logged_errors: set[str] = set()

    def configure(self, *, pipeline: FacePipeline | None = None, threshold: float | None = None,
                  mirror: bool | None = None) -> None:
        """Change settings between frames; a pipeline with another classifier or detector resets the figures."""
        changes: dict[str, Any] = {}
        if threshold is not None:
            changes["threshold"] = threshold
        if mirror is not None:
            changes["mirror"] = mirror
        if changes:
            self.settings = replace(self.settings, **changes)
        if pipeline is not None:
            old = self.pipeline
            changed = pipeline.classifier is not old.classifier or pipeline.detector is not old.detector
            self.pipeline = pipeline
            if changed:
                self.stats.reset()

    def process_frame(self, rgb: np.ndarray) -> np.ndarray:
        """The annotated frame (RGB uint8 HxWx3); on error the (mirrored) frame without annotations."""
        settings, pipeline = self.settings, self.pipeline  # one consistent view for this frame
        frame = rgb
        started = time.perf_counter()
        try:
            if settings.mirror:
                frame = np.ascontiguousarray(rgb[:, ::-1])
            faces = inference_worker().submit(pipeline.predict, frame).result()  # see the module NOTE (CPU)
            annotated = draw_predictions(frame, faces, uncertain_below=settings.threshold)
        except Exception as exc:  # noqa: BLE001 -- one bad frame must not end the stream; recorded and shown
            self._log_once(exc)
            self.stats.record_error(exc)
            return frame
        self.stats.record_frame(faces, settings.threshold, time.perf_counter() - started)
        return annotated

    def video_frame_callback(self, frame: av.VideoFrame) -> av.VideoFrame:
        """``process_frame`` for PyAV frames (the streamlit-webrtc ``video_frame_callback`` signature)."""
        import av

        annotated = self.process_frame(frame.to_ndarray(format="rgb24"))
        return av.VideoFrame.from_ndarray(annotated, format="rgb24")

    def snapshot(self) -> LiveSnapshot:
        return self.stats.snapshot()

    def reset(self) -> None:
        self.stats.reset()

    def _log_once(self, exc: Exception) -> None:
        message = f"{type(exc).__name__}: {exc}"
        if message not in self._logged_errors and len(self._logged_errors) < 100:
            self._logged_errors.add(message)
            logger.exception("live frame processing failed (the stream goes on): %s", message)


def parse_ice_servers(value: str | Sequence[Any] | None) -> list[dict[str, Any]]:
    """Validated ICE servers from JSON text or a list of ``{"urls": ..., "username"?, "credential"?}``.

    Raises ``ValueError`` with a readable reason for malformed settings; None or "" gives [].
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        return []
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise ValueError(f"ICE servers are not valid JSON: {exc}") from None
    if not isinstance(value, Sequence) or isinstance(value, str | bytes):
        raise ValueError("ICE servers must be a list of {\"urls\": ...} entries")
    servers = []
    for index, entry in enumerate(value):
        if not hasattr(entry, "get") or "urls" not in entry:
            raise ValueError(f"ICE server #{index + 1} needs a \"urls\" field, got {entry!r}")
        urls = entry["urls"]
        url_list = [urls] if isinstance(urls, str) else list(urls) if isinstance(urls, Sequence) else None
        if not url_list or not all(isinstance(u, str) and u.split(":", 1)[0] in ("stun", "stuns", "turn", "turns")
                                   for u in url_list):
            raise ValueError(f"ICE server #{index + 1}: urls must be stun:/turn: URLs, got {urls!r}")
        server: dict[str, Any] = {"urls": urls if isinstance(urls, str) else url_list}
        for key in ("username", "credential"):
            if entry.get(key) is not None:
                server[key] = str(entry[key])
        servers.append(server)
    return servers


def rtc_configuration(fallback: str | Sequence[Any] | None = None) -> dict[str, list[dict[str, Any]]]:
    """``{"iceServers": [...]}`` from ``MASKDET_ICE_SERVERS`` (JSON), else ``fallback``, else none.

    No ICE servers is right for a browser on the same machine or LAN as the server, and works
    offline; a remote deployment needs STUN and usually TURN (see docs/watching.md).
    """
    configured = current_settings().ice_servers
    return {"iceServers": parse_ice_servers(configured if configured and configured.strip() else fallback)}
