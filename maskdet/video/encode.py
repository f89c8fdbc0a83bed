"""Writing annotated clips: H.264 in mp4 (yuv420p, moov atom first), which every browser plays.

The file is written under a temporary name next to the destination and renamed into place by
:meth:`AnnotatedVideoWriter.close`, so a reader never sees half a clip; :meth:`abort` drops it.
"""

from __future__ import annotations

import logging
import os
import uuid
from fractions import Fraction
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

CODEC = "libx264"
ENCODER_OPTIONS = {"preset": "veryfast", "crf": "23"}  # fast enough to keep up with the pipeline on 2 cores
DEFAULT_FPS = 25.0
TIME_BASE = Fraction(1, 1000)  # frames are stamped in milliseconds (a live camera's real times, or 1/fps apart)


class AnnotatedVideoWriter:
    """An H.264 mp4 being written frame by frame (RGB uint8 arrays of one size; odd sizes lose a row/column)."""

    def __init__(self, path: str | Path, width: int, height: int, fps: float = DEFAULT_FPS) -> None:
        import av

        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._partial = self.path.with_name(f".{self.path.name}.{uuid.uuid4().hex[:8]}.partial.mp4")
        self.width, self.height = width - width % 2, height - height % 2  # yuv420p needs even sizes
        self._container = av.open(str(self._partial), mode="w", format="mp4", options={"movflags": "+faststart"})
        rate = Fraction(fps).limit_denominator(1001) if fps and fps > 0 else Fraction(DEFAULT_FPS)
        self._stream = self._container.add_stream(CODEC, rate=rate, options=ENCODER_OPTIONS)
        self._stream.width, self._stream.height, self._stream.pix_fmt = self.width, self.height, "yuv420p"
        self._stream.codec_context.time_base = TIME_BASE
        self._rate = rate
        self._first: float | None = None
        self._pts = -1
        self.frames = 0

    def write(self, image: np.ndarray, t: float | None = None) -> None:
        """Append one RGB uint8 frame, shown ``t`` seconds into the stream (from the first frame's ``t``: a live
        camera's real times, however irregular), or by default 1/fps after the previous one."""
        import av

        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image[: self.height, : self.width]), format="rgb24")
        if t is None:
            seconds = self.frames / self._rate
        else:
            self._first = t if self._first is None else self._first
            seconds = t - self._first
        self._pts = max(self._pts + 1, round(seconds / TIME_BASE))  # strictly increasing, as the muxer needs
        frame.pts, frame.time_base = self._pts, TIME_BASE
        self._container.mux(self._stream.encode(frame))
        self.frames += 1

    def close(self) -> Path:
        """Flush the encoder and move the finished clip to :attr:`path`."""
        try:
            self._container.mux(self._stream.encode(None))
        finally:
            self._container.close()
        os.replace(self._partial, self.path)
        logger.info("wrote %d annotated frames to %s", self.frames, self.path)
        return self.path

    def abort(self) -> None:
        """Stop writing and delete the partial file."""
        try:
            self._container.close()
        finally:
            self._partial.unlink(missing_ok=True)
