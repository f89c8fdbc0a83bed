"""One clip analysed into a folder, and read back: what the Video page shows, written by the ``analyse-video`` job.

:func:`analyse_to_folder` runs :func:`maskdet.video.analyse_video` over a clip and leaves in its
output folder the annotated clip (``annotated.mp4``, H.264), small annotated JPEG thumbnails of
moments with unmasked faces (``thumbnails/``) and, written last, ``frames.json``: the faces per
class of every processed frame, the thumbnails' frames and times, and the reason a truncated clip
ended early. A folder without ``frames.json`` holds no result: the analysis is running, was
cancelled or died, and :func:`read_results` says None. ``frames.json`` also holds ``people``: the faces
tracked into people (:mod:`maskdet.watch`), one verdict each, counted per class with the compliance ratio,
and the events (a person appears, is decided, leaves). Every file is written atomically, so a
reader sees a whole file or none.

The folder of a clip is :func:`analysis_folder`: ``<root>/<key>`` (the dashboard gives each session a root
of its own), where the key (:func:`analysis_key`) comes from the clip's bytes and every setting that changes
the result; the same clip analysed with the same settings is found again. :func:`stage_clip` keeps the
:data:`KEPT_FOLDERS` most recently used folders beside it, but never one in use (a running analysis holds a
lease on its folder: :data:`maskdet.workspace.LEASES`).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from maskdet.inference.drawing import encode_jpeg
from maskdet.inference.pipeline import FacePipeline
from maskdet.settings import CLASSES, cache_dir
from maskdet.store import artifact_key, atomic_write, write_json
from maskdet.workspace import prune
from maskdet.video.analyse import FrameResult, analyse_video
from maskdet.video.decode import VideoDecodeError, VideoInfo, VideoReader
from maskdet.video.encode import DEFAULT_FPS, AnnotatedVideoWriter
from maskdet.watch import Privacy, WatchConfig, WatchSession

logger = logging.getLogger(__name__)

RESULTS_VERSION = 2  # part of the folder key: a change to what is written gives new folders
MANIFEST = "frames.json"
ANNOTATED = "annotated.mp4"
THUMBNAILS = "thumbnails"
UNMASKED = ("without_mask", "incorrect_mask")  # frames with such a face get a thumbnail
MAX_THUMBNAILS = 24
THUMBNAIL_WIDTH = 400  # readable at a third of the page's width
THUMBNAIL_SPACING_S = 1.0  # at most one thumbnail per second of clip, so the strip shows distinct moments
KEPT_FOLDERS = 8  # uploaded clips and their results of the most recent analyses on this machine

Progress = Callable[[int, int], None]
"""``progress(frames_read, frames_expected)`` after each processed frame (expected: the count the container
declares, 0 when unknown), and once more when decoding has ended (both: the frames decoded), before anything
is written; raising from it (e.g. :class:`maskdet.jobs.JobCancelled`) stops the analysis and keeps no result."""


@dataclass(frozen=True)
class FrameCounts:
    """Faces per class in one processed frame."""

    frame: int
    time: float
    counts: dict[str, int]


@dataclass(frozen=True)
class Thumbnail:
    """A small annotated frame that shows at least one face without a mask (a JPEG file)."""

    frame: int
    time: float
    path: Path


@dataclass(frozen=True)
class VideoResults:
    """A finished analysis as :func:`read_results` finds it in its folder."""

    folder: Path
    info: VideoInfo
    every: int
    frames: tuple[FrameCounts, ...]
    thumbnails: tuple[Thumbnail, ...]
    seconds: float  # the analysis itself (decode, detect, classify, draw, encode), without the job's start
    error: str | None = None  # why a truncated clip ended early; its readable frames are analysed
    people: dict | None = None  # WatchSession.summary(): people per class, undecided, compliance, alerts
    events: tuple[dict, ...] = ()  # the people's events (Event.to_json()), in order

    @property
    def annotated(self) -> Path:
        return self.folder / ANNOTATED


def analysis_key(clip_sha256: str, weights_sha256: str, threshold: float, every: int, detector: str) -> str:
    """The folder name of a clip's analysis: its content, the model's weights and every setting that matters."""
    return artifact_key("video-analysis", RESULTS_VERSION, clip=clip_sha256, weights=weights_sha256,
                        threshold=threshold, every=every, detector=detector)


def analysis_folder(key: str, root: Path | None = None) -> Path:
    """``root/key`` (default root: ``cache_dir()/videos``); not created."""
    return (root or cache_dir() / "videos") / key


def _last_used(folder: Path) -> float:
    try:
        return folder.stat().st_mtime
    except OSError:  # removed meanwhile
        return 0.0


def stage_clip(data: bytes, suffix: str, folder: Path) -> Path:
    """Save an uploaded clip as ``folder/clip<suffix>`` for a job to read; of the other folders next to
    ``folder`` only the :data:`KEPT_FOLDERS` - 1 most recently used are kept, and every one in use (leased)."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    others = [p for p in folder.parent.iterdir() if p.is_dir() and p.name != folder.name]
    prune(sorted(others, key=_last_used, reverse=True), keep=KEPT_FOLDERS - 1)
    return atomic_write(folder / f"clip{suffix.lower()}", data)  # also marks the folder as recently used


def thumbnail_jpeg(image: np.ndarray, width: int = THUMBNAIL_WIDTH) -> bytes:
    """``image`` scaled to ``width`` pixels wide, as JPEG bytes."""
    return encode_jpeg(image, max_side=max(width, round(width * image.shape[0] / image.shape[1])))


def count_faces(result: FrameResult, classes: tuple[str, ...] = CLASSES) -> FrameCounts:
    """Faces per class (``classes``: the model's) in one frame."""
    return FrameCounts(result.index, result.time, {cls: sum(face.label == cls for face in result.faces)
                                                   for cls in classes})


def _analyse_frames(reader: VideoReader, pipeline: FacePipeline, writer: AnnotatedVideoWriter, every: int,
                    progress: Progress | None, people: WatchSession
                    ) -> tuple[list[FrameCounts], list[tuple[FrameCounts, bytes]], str | None]:
    """Faces per processed frame (also tracked into ``people``), thumbnails (JPEG bytes: <= 24 small ones, kept
    until the clip is whole) and why a truncated clip ended early; re-raises :class:`VideoDecodeError` when no
    frame could be decoded."""
    frames: list[FrameCounts] = []
    pictures: list[tuple[FrameCounts, bytes]] = []
    try:
        for result in analyse_video(reader, pipeline, every=every, writer=writer):
            people.observe(result.faces, result.time)
            counts = count_faces(result, pipeline.classifier.classes)
            frames.append(counts)
            spaced = not pictures or result.time - pictures[-1][0].time >= THUMBNAIL_SPACING_S
            if any(counts.counts.get(label) for label in UNMASKED) and spaced and len(pictures) < MAX_THUMBNAILS:
                pictures.append((counts, thumbnail_jpeg(result.annotated)))
            if progress:
                progress(result.index + 1, reader.info.expected_frames)
    except VideoDecodeError as exc:
        if not exc.frames_read:
            raise
        return frames, pictures, exc.reason
    return frames, pictures, None


def analyse_to_folder(source: str | Path, pipeline: FacePipeline, folder: str | Path, every: int = 1,
                      progress: Progress | None = None) -> VideoResults:
    """Analyse ``source`` every ``every``-th frame and write the results into ``folder`` (see the module).

    A truncated clip is analysed as far as it decodes and the reason kept in :attr:`VideoResults.error`.
    Raises :class:`maskdet.video.VideoDecodeError` when no frame can be decoded; on that, or on any
    exception (from ``progress`` too), the annotated clip is dropped and nothing is written.
    """
    folder = Path(folder)
    started = time.perf_counter()
    with VideoReader(source) as reader:
        info = reader.info
        writer = AnnotatedVideoWriter(folder / ANNOTATED, info.width, info.height, info.fps)
        people = WatchSession(pipeline, WatchConfig(frame_rate=info.fps or DEFAULT_FPS, detect_every=every,
                                                   privacy=Privacy.NO_PICTURES))
        try:
            frames, pictures, error = _analyse_frames(reader, pipeline, writer, every, progress, people)
            if progress:
                progress(reader.frames_read, reader.frames_read)
        except BaseException:
            writer.abort()
            raise
        writer.close()
    thumbnails = tuple(Thumbnail(counts.frame, counts.time, atomic_write(
        folder / THUMBNAILS / f"frame-{counts.frame:06d}.jpg", picture)) for counts, picture in pictures)
    people.finish()
    events = tuple(event.to_json() for event in people.snapshot().events)
    results = VideoResults(folder=folder, info=info, every=every, frames=tuple(frames), thumbnails=thumbnails,
                           seconds=time.perf_counter() - started, error=error, people=people.summary(),
                           events=events)
    write_json(folder / MANIFEST, {
        "version": RESULTS_VERSION, "source": Path(source).name, "info": asdict(info), "every": every,
        "seconds": round(results.seconds, 3), "error": error, "frames": [asdict(row) for row in frames],
        "thumbnails": [{"frame": t.frame, "time": t.time, "file": t.path.relative_to(folder).as_posix()}
                       for t in thumbnails],
        "people": results.people, "events": list(events),
    })
    logger.info("analysed %d frames of %s in %.1f s", len(frames), Path(source).name, results.seconds)
    return results


def read_results(folder: str | Path) -> VideoResults | None:
    """The finished analysis in ``folder``; None while there is none (running, cancelled, failed or deleted)."""
    folder = Path(folder)
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:  # written atomically by us: only a damaged disk gets here
        logger.warning("ignoring the unreadable analysis in %s: %s", folder, exc)
        return None
    if manifest.get("version") != RESULTS_VERSION or not (folder / ANNOTATED).is_file():
        return None
    return VideoResults(
        folder=folder, info=VideoInfo(**manifest["info"]), every=manifest["every"], seconds=manifest["seconds"],
        error=manifest["error"], frames=tuple(FrameCounts(**row) for row in manifest["frames"]),
        thumbnails=tuple(Thumbnail(t["frame"], t["time"], folder / t["file"]) for t in manifest["thumbnails"]),
        people=manifest["people"], events=tuple(manifest["events"]),
    )
