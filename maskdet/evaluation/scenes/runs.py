"""Scene evaluations of (model, detector) pipelines, cached on disk.

An evaluation is cached per (classifier weights and operating threshold, detector settings, folder
fingerprint, IoU, class map): the ``evaluate-scenes`` job (:mod:`maskdet.jobs.kinds`) writes it with
:func:`evaluate_cached`, and the Compare page reads it back with :func:`cached_metrics` under the
key :func:`pipeline_key` gives for the same pipeline, so reruns, other sessions and later jobs on
the same machine reuse it.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from maskdet.inference.pipeline import FacePipeline
from maskdet.data.annotations import SceneSet
from maskdet.evaluation.scenes.evaluate import DEFAULT_IOU, ProgressFn, describe_detector, evaluate_scenes
from maskdet.settings import cache_dir
from maskdet.store import write_json

logger = logging.getLogger(__name__)

CACHE_SUBDIR = "scene-evaluations"
CACHE_VERSION = 2
"""2: AP over every class of every detected face (issue 24), and the operating threshold in the key."""


def cache_key(weights_sha256: str, threshold: float, detector: Mapping[str, Any], fingerprint: str, iou: float,
              class_map: Mapping[str, str]) -> str:
    """A file-name-safe key over everything that changes a scene evaluation's result (the threshold changes the
    labels: a model whose threshold was chosen again is evaluated again)."""
    described = {"version": CACHE_VERSION, "weights": weights_sha256, "threshold": threshold, "detector": dict(detector),
                 "fingerprint": fingerprint, "iou": iou, "class_map": dict(sorted(class_map.items()))}
    return hashlib.sha256(json.dumps(described, sort_keys=True, default=str).encode()).hexdigest()[:32]


def pipeline_key(pipeline: FacePipeline, fingerprint: str, iou: float, class_map: Mapping[str, str]) -> str:
    """:func:`cache_key` of ``pipeline`` (its classifier's weights and threshold, its detector's settings) on a
    folder version."""
    weights = str(pipeline.classifier.loaded.metadata["weights"]["sha256"])
    return cache_key(weights, float(pipeline.classifier.threshold), describe_detector(pipeline.detector), fingerprint,
                     float(iou), class_map)


def _cache_path(key: str) -> Path:
    return cache_dir() / CACHE_SUBDIR / f"{key}.json"


def cached_metrics(key: str) -> dict[str, Any] | None:
    """The cached ``evaluate-scenes`` object under ``key``, or None (a damaged cache file counts as none)."""
    try:
        return json.loads(_cache_path(key).read_text())
    except (OSError, ValueError):
        return None


def evaluate_cached(pipeline: FacePipeline, scenes: SceneSet, iou: float = DEFAULT_IOU,
                    class_map: Mapping[str, str] | None = None,
                    progress: ProgressFn | None = None) -> tuple[str, dict[str, Any]]:
    """(key, metrics) of ``pipeline`` on ``scenes`` (loaded with ``class_map``): from the cache, else evaluated
    with :func:`~maskdet.evaluation.scenes.evaluate_scenes` and cached."""
    key = pipeline_key(pipeline, scenes.fingerprint, iou, class_map or {})
    cached = cached_metrics(key)
    if cached is not None:
        logger.info("scene evaluation %s: cache hit", key)
        return key, cached
    metrics = evaluate_scenes(pipeline, scenes, iou=iou, progress=progress).to_json()
    write_json(_cache_path(key), metrics)
    return key, metrics
