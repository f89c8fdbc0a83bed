"""The face pipeline over a clip: per-frame face records, optionally an annotated copy of the clip.

:func:`analyse_video` runs :class:`maskdet.inference.pipeline.FacePipeline` on every ``every``-th frame; with a
writer, every frame is drawn (frames between two processed ones keep the last processed faces, as a
live view would) so the annotated clip keeps the source's frame rate. :func:`predict_video` turns a
clip into the ``predict --json`` lines: one record per processed frame, and an error record when the
clip cannot be decoded at all or ends early (after the frames that could be read).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from maskdet.inference.drawing import draw_predictions
from maskdet.inference.faces import FacePrediction
from maskdet.inference.pipeline import FacePipeline
from maskdet.video.decode import VideoDecodeError, VideoReader
from maskdet.video.encode import AnnotatedVideoWriter

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FrameResult:
    """One processed frame: where it is in the clip, its faces, and its pixels (``annotated`` when drawn)."""

    index: int
    time: float
    image: np.ndarray
    faces: list[FacePrediction]
    annotated: np.ndarray | None = None

    @property
    def width(self) -> int:
        return int(self.image.shape[1])

    @property
    def height(self) -> int:
        return int(self.image.shape[0])

    def to_json(self, path: str | Path) -> dict:
        """The ``predict --json`` record: ``{"path", "frame", "time", "width", "height", "faces"}``."""
        return {"path": str(path), "frame": self.index, "time": round(self.time, 3), "width": self.width,
                "height": self.height, "faces": [face.to_json() for face in self.faces]}


def analyse_video(reader: VideoReader, pipeline: FacePipeline, every: int = 1,
                  writer: AnnotatedVideoWriter | None = None) -> Iterator[FrameResult]:
    """A :class:`FrameResult` per ``every``-th frame (0, every, 2 * every, ...); every frame drawn into ``writer``.

    Frames are detected with the pipeline's frame setting (:attr:`FacePipeline.frame_pipeline`: never the photo
    setting's 1120 px pass, ~5-7x a frame's detection), whichever setting the caller built the pipeline with.
    Raises :class:`maskdet.video.VideoDecodeError` after the last readable frame of a truncated clip.
    """
    if every < 1:
        raise ValueError(f"every must be at least 1, got {every}")
    frame_pipeline = pipeline.frame_pipeline
    faces: list[FacePrediction] = []
    for frame in reader.frames():
        processed = frame.index % every == 0
        if processed:
            faces = frame_pipeline.predict(frame.image)
        annotated = None
        if writer is not None:
            annotated = draw_predictions(frame.image, faces)
            writer.write(annotated)
        if processed:
            yield FrameResult(index=frame.index, time=frame.time, image=frame.image, faces=faces, annotated=annotated)


def predict_video(pipeline: FacePipeline, path: str | Path, every: int = 1,
                  annotate: str | Path | None = None) -> Iterator[dict]:
    """The ``predict --json`` records of one clip: a frame record per processed frame, then an
    ``{"path", "error"}`` record if the clip is undecodable (the only record) or truncated.

    ``annotate`` writes the annotated clip there (H.264 mp4; for a truncated clip, the frames read).
    """
    try:
        reader = VideoReader(path)
    except VideoDecodeError as exc:
        yield {"path": str(path), "error": exc.reason}
        return
    with reader:
        writer = None
        if annotate is not None:
            writer = AnnotatedVideoWriter(annotate, reader.info.width, reader.info.height, reader.info.fps)
        try:
            for result in analyse_video(reader, pipeline, every=every, writer=writer):
                yield result.to_json(path)
        except VideoDecodeError as exc:
            yield {"path": str(path), "error": exc.reason}
        finally:
            if writer is not None:
                if writer.frames:
                    writer.close()
                else:
                    writer.abort()
