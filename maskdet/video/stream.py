"""Watched streams: sources (a clip played as live, an RTSP / HTTP camera URL, a local camera device), the
loop that runs a :class:`maskdet.watch.WatchSession` over one, recordings, and what is kept for how long.

- :class:`Source` opens a source with PyAV: a file path (optionally paced at its frame rate, as a
  live camera would deliver it), ``rtsp://``, ``rtsps://``, ``http://`` or ``https://`` URLs (PyAV / FFmpeg
  open them the same way; RTSP over TCP), or a camera device (``/dev/video0``, or its number ``0``).
- :func:`watch_source` runs a session over a source and yields its events; optionally records the
  annotated stream (:class:`Recorder`, H.264 mp4).
- :class:`StreamRunner` does that on a thread of its own for a page: :meth:`StreamRunner.start` and
  :meth:`StreamRunner.stop` are the one place a stream begins and ends (where a server-wide stream cap
  is taken and given back).
- Recordings, snapshots and event logs live under :func:`watch_folder`; :func:`prune_watch_folder` deletes
  what is older than the retention limit (``Settings.watch_retention_days``).
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from maskdet.settings import cache_dir, current_settings
from maskdet.video.decode import VideoDecodeError
from maskdet.video.encode import DEFAULT_FPS, AnnotatedVideoWriter
from maskdet.watch import Event, WatchSession

logger = logging.getLogger(__name__)

URL_SCHEMES = ("rtsp://", "rtsps://", "http://", "https://")
OPEN_TIMEOUT_US = "10000000"  # a camera that does not answer in 10 s is reported, not waited on


def is_url(source: str) -> bool:
    return source.lower().startswith(URL_SCHEMES)


def is_device(source: str) -> bool:
    return source.isdigit() or source.startswith("/dev/video")


def _open(source: str):
    import av

    options: dict[str, str] = {}
    container_format = None
    if is_url(source):
        options = {"rw_timeout": OPEN_TIMEOUT_US}
        if source.lower().startswith(("rtsp://", "rtsps://")):
            options = {"rtsp_transport": "tcp", "timeout": OPEN_TIMEOUT_US}
    elif is_device(source):
        source, container_format = (f"/dev/video{source}" if source.isdigit() else source), "v4l2"
    elif not Path(source).is_file():
        raise VideoDecodeError(f"no such file, URL or camera device: {source}")
    try:
        container = av.open(source, mode="r", format=container_format, options=options, timeout=10.0)
    except (av.FFmpegError, OSError) as exc:
        raise VideoDecodeError(f"cannot open {source}: {str(exc).split('] ', 1)[-1]}") from exc
    if not container.streams.video:
        container.close()
        raise VideoDecodeError(f"{source} holds no video stream")
    return container


class Source:
    """An opened source (see the module for what it may be); :meth:`frames` reads it once, then closes it.

    Raises :class:`maskdet.video.VideoDecodeError` with one readable line when it cannot be opened.
    """

    def __init__(self, source: str) -> None:
        self.name = source
        self._container = _open(source)
        self._stream = self._container.streams.video[0]
        self._stream.thread_type = "AUTO"
        rate = self._stream.average_rate or self._stream.guessed_rate
        self.fps = float(rate) if rate else DEFAULT_FPS

    def frames(self, realtime: bool = False,
               stop: threading.Event | None = None) -> Iterator[tuple[float, np.ndarray]]:
        """(seconds since the first frame, RGB uint8 frame); ``realtime`` paces a file at its frame rate (a clip
        "played as a live stream"; live sources are paced by the camera). Raises
        :class:`maskdet.video.VideoDecodeError` when the source breaks off."""
        import av

        began = time.monotonic()
        first: float | None = None
        count = 0
        try:
            for frame in self._container.decode(self._stream):
                if stop is not None and stop.is_set():
                    return
                stamp = float(frame.time) if frame.time is not None else count / self.fps
                first = stamp if first is None else first
                t = stamp - first
                if realtime and (ahead := t - (time.monotonic() - began)) > 0:
                    time.sleep(ahead)
                count += 1
                yield t, frame.to_ndarray(format="rgb24")
        except (av.FFmpegError, OSError) as exc:
            raise VideoDecodeError(f"{self.name} broke off after {count} frames ({exc})", count) from exc
        finally:
            self._container.close()


class Recorder:
    """Annotated frames into an H.264 mp4, opened on the first frame (its size); :meth:`close` finishes it.

    Each frame is stamped with the stream time it is given (a camera's frames come as fast as they are
    processed, not at a fixed rate); ``fps`` is only the file's nominal rate."""

    def __init__(self, path: str | Path, fps: float = DEFAULT_FPS) -> None:
        self.path = Path(path)
        self.fps = fps
        self._writer: AnnotatedVideoWriter | None = None
        self._lock = threading.Lock()

    def __call__(self, frame: np.ndarray, t: float) -> None:
        with self._lock:
            if self._writer is None:
                self._writer = AnnotatedVideoWriter(self.path, frame.shape[1], frame.shape[0], self.fps)
            self._writer.write(frame, t)

    @property
    def frames(self) -> int:
        return self._writer.frames if self._writer else 0

    def close(self) -> Path | None:
        """The finished recording, or None when no frame was written."""
        with self._lock:
            writer, self._writer = self._writer, None
        if writer is None:
            return None
        return writer.close()


def watch_source(source: str | Source, session: WatchSession, record: str | Path | None = None, realtime: bool = False,
                 stop: threading.Event | None = None) -> Iterator[Event]:
    """Run ``session`` over every frame of ``source`` and yield its events as they happen, then the leaves
    of whoever is still in view; ``record`` writes the annotated stream there (H.264 mp4)."""
    opened = source if isinstance(source, Source) else Source(source)
    recorder = Recorder(record, opened.fps) if record is not None else None
    session.record_to(recorder)
    try:
        for t, frame in opened.frames(realtime=realtime, stop=stop):
            _annotated, events = session.process(frame, t)
            yield from events
        yield from session.finish()
    finally:
        session.record_to(None)
        if recorder is not None:
            recorder.close()


class StreamRunner:
    """A source watched on a thread of its own (for a page); read it with ``session.snapshot()``.

    :meth:`start` and :meth:`stop` are the one place a stream begins and ends: ``acquire`` (e.g. the job
    service's ``try_acquire_stream``, a server-wide cap) is asked at every start, which is refused when it says
    no, and ``release`` gives the slot back once the stream has ended, however it ended (stopped, the clip
    played out, the camera broke off), so a finished source never holds a slot. ``error`` holds the one line
    that ended it early (a URL that does not answer, a camera that broke off).
    """

    def __init__(self, source: str, session: WatchSession, realtime: bool = True,
                 acquire: Callable[[], bool] | None = None, release: Callable[[], None] | None = None) -> None:
        self.source = source
        self.session = session
        self.realtime = realtime
        self.error: str | None = None
        self._acquire, self._release = acquire, release
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> bool:
        """Start watching (figures afresh); False, and nothing started, when ``acquire`` refuses a slot."""
        if self.running:
            return True
        if self._acquire is not None and not self._acquire():
            return False
        self._stop.clear()
        self.error = None
        self.session.reset()
        self._thread = threading.Thread(target=self._loop, name=f"watch-{self.source[:40]}", daemon=True)
        self._thread.start()
        return True

    def stop(self, wait_s: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(wait_s)

    def _loop(self) -> None:
        try:
            for _event in watch_source(self.source, self.session, realtime=self.realtime, stop=self._stop):
                pass
        except VideoDecodeError as exc:
            self.error = exc.reason
        except Exception as exc:  # noqa: BLE001 -- the page shows why the stream ended
            logger.exception("watch stream %s ended", self.source)
            self.error = f"{type(exc).__name__}: {exc}"
        finally:
            if self._release is not None:
                self._release()


def watch_folder() -> Path:
    """Where recordings, snapshots and event logs of watched streams are kept (``cache_dir()/watch``)."""
    return cache_dir() / "watch"


def prune_watch_folder(folder: Path | None = None, days: float | None = None, now: float | None = None) -> list[Path]:
    """Delete the files under ``folder`` older than ``days`` (default: ``Settings.watch_retention_days``);
    returns what was deleted. ``days=0`` deletes everything."""
    folder = folder or watch_folder()
    days = current_settings().watch_retention_days if days is None else days
    cutoff = (now or time.time()) - days * 86400
    removed = []
    if not folder.is_dir():
        return removed
    for path in sorted(folder.iterdir()):
        if path.stat().st_mtime <= cutoff:
            shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
            removed.append(path)
    if removed:
        logger.info("deleted %d watch files older than %s days", len(removed), days)
    return removed
