"""Score a batch of inputs: the same records as ``predict --json``, in input order.

An image gives one record, a video clip one record per processed frame (held until the clip
ends), an unreadable entry one ``{"path", "error"}`` record.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from PIL import Image

from maskdet.batch.sources import Item
from maskdet.data.files import Skipped
from maskdet.data.images import ImageDecodeError, open_image
from maskdet.inference.pipeline import FacePipeline, error_record, image_record

logger = logging.getLogger(__name__)


WORKER_DIED_KEY = "worker_died"
"""Marks the error record of a file lost with a worker process that died: not the file's own verdict, so
``--resume`` scores it again (:func:`maskdet.batch.sinks.resume_jsonl`)."""


def worker_death_record(path: str | Path, reason: str) -> dict:
    """The error record of a file whose worker died while scoring it (``reason`` says how)."""
    return {**error_record(path, reason), WORKER_DIED_KEY: True}


def skipped_record(item: Skipped) -> dict:
    """The error record of an entry that was never opened (a pipe, a device, a link loop, ...)."""
    return error_record(item.path, f"skipped: {item.reason}")


def score_paths(pipeline: FacePipeline, items: Sequence[Item], every: int = 1,
                annotate: str | None = None) -> list[dict]:
    """The records of ``items``: faces found and labelled, or why a file could not be scored.

    Images are decoded and detected one by one and all their face crops classified in one batch;
    clips are decoded frame by frame (``every`` N-th frame; ``annotate`` writes the annotated clip).
    An unreadable file is a record, never an exception: a large run must not stop for one.
    """
    from maskdet.video import is_video_path, predict_video

    decoded: list[tuple[int, Image.Image]] = []
    results: list[list[dict]] = [[] for _ in items]
    for index, item in enumerate(items):
        if isinstance(item, Skipped):
            results[index] = [skipped_record(item)]
        elif is_video_path(item):
            results[index] = list(predict_video(pipeline, item, every=every, annotate=annotate))
        else:
            try:
                image, _info = open_image(item)
            except ImageDecodeError as exc:
                results[index] = [error_record(item, exc.reason)]
            else:
                decoded.append((index, image))
    if decoded:
        faces = pipeline.predict_many([image for _index, image in decoded])
        for (index, image), image_faces in zip(decoded, faces, strict=True):
            results[index] = [image_record(items[index], image, image_faces)]
    return [record for records in results for record in records]
