"""One clip analysed on a worker thread, observable from a page through immutable snapshots.

A clip takes seconds to minutes, far longer than a Streamlit script run may take, so the page starts
a :class:`VideoJob` and polls :meth:`VideoJob.snapshot` from a timed fragment. The worker writes the
job's state only under ``_lock`` and never calls back into a page; readers get frozen copies.
Besides progress the job keeps what a page shows: the faces per class of each processed frame, small
annotated thumbnails of frames with unmasked faces, and the annotated clip (H.264 mp4).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path

import numpy as np
from PIL import Image

from maskdet.pipeline import FacePipeline
from maskdet.settings import CLASSES
from maskdet.video.analyse import FrameResult, analyse_video
from maskdet.video.decode import VideoDecodeError, VideoInfo, VideoReader
from maskdet.video.encode import AnnotatedVideoWriter

logger = logging.getLogger(__name__)

UNMASKED = "without_mask"
MAX_THUMBNAILS = 24
THUMBNAIL_WIDTH = 192
THUMBNAIL_SPACING_S = 1.0  # at most one thumbnail per second of clip, so the strip shows distinct moments


class VideoJobState(StrEnum):
    RUNNING = "running"
    CANCELLED = "cancelled"
    FINISHED = "finished"  # possibly with an error: a truncated clip is analysed as far as it could be read
    FAILED = "failed"  # nothing could be decoded


@dataclass(frozen=True)
class FrameCounts:
    """Faces per class in one processed frame."""

    frame: int
    time: float
    counts: dict[str, int]


@dataclass(frozen=True)
class Thumbnail:
    """A small annotated frame that shows at least one face without a mask."""

    frame: int
    time: float
    image: np.ndarray


@dataclass(frozen=True)
class VideoJobStatus:
    """An immutable copy of a job's state, safe to keep after the lock is released."""

    state: VideoJobState = VideoJobState.RUNNING
    info: VideoInfo | None = None
    frames_read: int = 0  # decoded (processed or skipped)
    timeline: tuple[FrameCounts, ...] = ()
    thumbnails: tuple[Thumbnail, ...] = ()
    annotated: Path | None = None  # the finished annotated clip
    error: str | None = None
    started: float = 0.0
    finished: float | None = None

    @property
    def active(self) -> bool:
        return self.state == VideoJobState.RUNNING

    @property
    def fraction(self) -> float:
        """Progress 0..1 from the frames the container declares (1 once the job ended)."""
        if not self.active:
            return 1.0
        expected = self.info.expected_frames if self.info else 0
        return min(self.frames_read / expected, 0.99) if expected else 0.0

    @property
    def seconds(self) -> float:
        return (self.finished or time.time()) - self.started


class VideoJob:
    """Analyse ``source`` with ``pipeline`` on a worker thread; write the annotated clip to ``annotated``."""

    def __init__(self, source: str | Path, pipeline: FacePipeline, annotated: str | Path, every: int = 1) -> None:
        if every < 1:
            raise ValueError(f"every must be at least 1, got {every}")
        self.source, self.pipeline, self.every = Path(source), pipeline, every
        self.annotated = Path(annotated)
        self._lock = threading.Lock()
        self._cancel = threading.Event()
        self._status = VideoJobStatus(started=time.time())
        self._thread = threading.Thread(target=self._run, name=f"maskdet-video-{self.source.name}", daemon=True)

    def start(self) -> VideoJob:
        self._thread.start()
        return self

    def snapshot(self) -> VideoJobStatus:
        with self._lock:
            return self._status

    def cancel(self) -> None:
        """Ask the worker to stop after the current frame (the annotated clip is then dropped)."""
        self._cancel.set()

    def wait(self, timeout: float | None = None) -> VideoJobStatus:
        self._thread.join(timeout)
        return self.snapshot()

    def _update(self, **changes: object) -> None:
        with self._lock:
            self._status = replace(self._status, **changes)

    def _run(self) -> None:
        try:
            with VideoReader(self.source) as reader:
                self._update(info=reader.info)
                self._analyse(reader)
        except VideoDecodeError as exc:
            self._update(state=VideoJobState.FAILED, error=exc.reason, finished=time.time())
        except Exception as exc:  # noqa: BLE001 - any failure is shown on the page; the server keeps running
            logger.exception("video job on %s failed", self.source)
            self._update(state=VideoJobState.FAILED, error=str(exc) or type(exc).__name__, finished=time.time())

    def _analyse(self, reader: VideoReader) -> None:
        writer = AnnotatedVideoWriter(self.annotated, reader.info.width, reader.info.height, reader.info.fps)
        error = None
        try:
            for result in analyse_video(reader, self.pipeline, every=self.every, writer=writer):
                self._record(result)
                if self._cancel.is_set():
                    break
        except VideoDecodeError as exc:
            if not exc.frames_read:
                writer.abort()
                raise
            error = exc.reason
        except BaseException:
            writer.abort()
            raise
        if self._cancel.is_set():
            writer.abort()
            self._update(state=VideoJobState.CANCELLED, finished=time.time())
            return
        self._update(state=VideoJobState.FINISHED, annotated=writer.close(), error=error, finished=time.time())

    def _record(self, result: FrameResult) -> None:
        counts = {cls: sum(face.label == cls for face in result.faces) for cls in CLASSES}
        status = self.snapshot()  # only this thread writes, so nothing changes in between
        thumbnails = status.thumbnails
        spaced = not thumbnails or result.time - thumbnails[-1].time >= THUMBNAIL_SPACING_S
        if counts[UNMASKED] and spaced and len(thumbnails) < MAX_THUMBNAILS and result.annotated is not None:
            thumbnails += (Thumbnail(result.index, result.time, thumbnail(result.annotated)),)
        self._update(frames_read=result.index + 1, thumbnails=thumbnails,
                     timeline=status.timeline + (FrameCounts(result.index, result.time, counts),))


def thumbnail(image: np.ndarray, width: int = THUMBNAIL_WIDTH) -> np.ndarray:
    """``image`` scaled to ``width`` pixels wide."""
    height = max(1, round(image.shape[0] * width / image.shape[1]))
    return np.asarray(Image.fromarray(image).resize((width, height), Image.Resampling.BILINEAR))


KEPT_JOB_FOLDERS = 8  # uploaded clips and their annotated copies of the most recent jobs on this machine


def job_folder(name: str, root: Path | None = None) -> Path:
    """A fresh folder ``root/name`` (default: the cache's ``videos/``) for one job's clip and annotated copy;
    only the :data:`KEPT_JOB_FOLDERS` most recently created job folders are kept."""
    import shutil

    from maskdet.settings import cache_dir

    root = root or cache_dir() / "videos"
    root.mkdir(parents=True, exist_ok=True)
    folders = sorted((p for p in root.iterdir() if p.is_dir() and p.name != name), key=lambda p: p.stat().st_mtime)
    for old in folders[: max(0, len(folders) - KEPT_JOB_FOLDERS + 1)]:
        shutil.rmtree(old, ignore_errors=True)
    folder = root / name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    return folder
