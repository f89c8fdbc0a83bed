"""Decoding video files with PyAV: frames as RGB arrays, or one readable error.

A file that cannot be opened, has no video stream, or whose frames are too large is refused with
:class:`VideoDecodeError` before any frame. A file that ends early (a cut download, a copy that
stopped) yields every frame that could be decoded and then raises :class:`VideoDecodeError`: a
decoder error, fewer frames than the container declares, or frames ending well before the
container's duration all mean the clip is truncated.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

logger = logging.getLogger(__name__)

VIDEO_SUFFIXES = frozenset({".mp4", ".webm", ".mov", ".avi", ".mkv"})
MAX_FRAME_PIXELS = 3840 * 2160  # 4K UHD; larger frames are refused before decoding
TRUNCATION_SLACK_FRAMES = 2  # frames short of the declared duration that still count as complete


class VideoDecodeError(ValueError):
    """A video could not be (fully) decoded; ``reason`` is short and human readable."""

    def __init__(self, reason: str, frames_read: int = 0) -> None:
        self.reason = reason
        self.frames_read = frames_read
        super().__init__(reason)


def is_video_path(path: str | Path) -> bool:
    """True for the file names ``predict`` treats as clips (by extension: mp4, webm, mov, avi, mkv)."""
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


@dataclass(frozen=True)
class VideoInfo:
    """What the container declares: ``frames`` and ``duration`` are 0 when it does not say."""

    width: int
    height: int
    fps: float
    frames: int
    duration: float  # seconds
    codec: str

    @property
    def expected_frames(self) -> int:
        """Declared frame count, else duration x fps (0 when neither is known); for progress bars."""
        return self.frames or round(self.duration * self.fps)


@dataclass(frozen=True)
class VideoFrame:
    """One decoded frame: its index in the clip, its presentation time in seconds, HxWx3 uint8 RGB pixels."""

    index: int
    time: float
    image: np.ndarray


def _reason(exc: Exception) -> str:
    text = str(exc).split(": '", 1)[0]  # PyAV appends the file name; the caller knows it
    return text.split("] ", 1)[-1] or type(exc).__name__


class VideoReader:
    """An open video file (a path or a binary file object); use as a context manager.

    Raises :class:`VideoDecodeError` when ``source`` is not a video this can decode.
    """

    def __init__(self, source: str | Path | BinaryIO) -> None:
        import av

        try:
            self._container = av.open(str(source) if isinstance(source, str | Path) else source, mode="r")
        except (av.FFmpegError, OSError, ValueError) as exc:
            raise VideoDecodeError(f"not a readable video ({_reason(exc)})") from exc
        try:
            if not self._container.streams.video:
                raise VideoDecodeError("the file holds no video stream")
            self._stream = self._container.streams.video[0]
            context = self._stream.codec_context
            if not context.width or not context.height:
                raise VideoDecodeError("the video stream declares no frame size")
            if context.width * context.height > MAX_FRAME_PIXELS:
                raise VideoDecodeError(f"frames of {context.width}x{context.height} are larger than 4K UHD")
            rate = self._stream.average_rate or self._stream.guessed_rate
            duration = (self._container.duration or 0) / 1_000_000
            if self._stream.duration and self._stream.time_base:
                duration = float(self._stream.duration * self._stream.time_base)
            self.info = VideoInfo(width=context.width, height=context.height, fps=float(rate) if rate else 0.0,
                                  frames=int(self._stream.frames or 0), duration=duration, codec=context.name)
        except BaseException:
            self._container.close()
            raise
        self._stream.thread_type = "AUTO"
        self.frames_read = 0  # decoded so far by :meth:`frames`

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._container.close()

    def frames(self) -> Iterator[VideoFrame]:
        """Every frame in order; raises :class:`VideoDecodeError` after the last readable one of a truncated file."""
        import av

        index = 0
        last_time = -1.0
        try:
            for frame in self._container.decode(self._stream):
                time = float(frame.time) if frame.time is not None else index / (self.info.fps or 1.0)
                yield VideoFrame(index=index, time=time, image=frame.to_ndarray(format="rgb24"))
                index += 1
                self.frames_read = index
                last_time = time
        except (av.FFmpegError, OSError, ValueError, MemoryError) as exc:
            raise VideoDecodeError(f"truncated or damaged after {index} frames ({_reason(exc)})", index) from exc
        if index == 0:
            raise VideoDecodeError("no frame could be decoded", 0)
        self._check_complete(index, last_time)

    def _check_complete(self, frames: int, last_time: float) -> None:
        """Raise :class:`VideoDecodeError` when fewer frames were decoded than the container declares."""
        info = self.info
        if info.frames and frames < info.frames:
            raise VideoDecodeError(f"truncated: {frames} of {info.frames} frames could be decoded", frames)
        if not info.frames and info.duration and info.fps:
            missing = info.duration - (last_time + 1 / info.fps)
            if missing > TRUNCATION_SLACK_FRAMES / info.fps:
                raise VideoDecodeError(
                    f"truncated: frames end at {last_time + 1 / info.fps:.2f} s of {info.duration:.2f} s", frames
                )
