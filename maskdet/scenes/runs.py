"""Scene evaluations of several (model, detector) pipelines in a background thread, cached on disk.

The Compare page starts a :class:`SceneRun` and polls :meth:`SceneRun.snapshot` from a timed
fragment: the thread never touches Streamlit, the page never waits for the thread. Finished
evaluations are cached per (classifier weights, detector settings, folder fingerprint, IoU,
class map), so reruns, other sessions and the CLI's users on the same machine reuse them.

NOTE (threading): :class:`SceneRun` holds its mutable state behind one lock; ``snapshot()``
returns a copy. Cancelling is cooperative: the run stops after the photo being evaluated.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from maskdet.pipeline import FacePipeline
from maskdet.scenes.annotations import SceneSet
from maskdet.scenes.evaluate import DEFAULT_IOU, describe_detector, evaluate_scenes
from maskdet.settings import cache_dir
from maskdet.store import write_json

logger = logging.getLogger(__name__)

CACHE_SUBDIR = "scene-evaluations"
CACHE_VERSION = 1


class RunCancelled(Exception):
    """Raised inside the worker when the user cancelled the run."""


@dataclass(frozen=True)
class Candidate:
    """One column of the comparison: a pipeline, its display name and the key of its classifier's weights."""

    label: str
    pipeline: FacePipeline
    weights_sha256: str


def cache_key(weights_sha256: str, detector: Mapping[str, Any], fingerprint: str, iou: float,
              class_map: Mapping[str, str]) -> str:
    """A file-name-safe key over everything that changes a scene evaluation's result."""
    described = {"version": CACHE_VERSION, "weights": weights_sha256, "detector": dict(detector),
                 "fingerprint": fingerprint, "iou": iou, "class_map": dict(sorted(class_map.items()))}
    return hashlib.sha256(json.dumps(described, sort_keys=True, default=str).encode()).hexdigest()[:32]


def _cache_path(key: str) -> Path:
    return cache_dir() / CACHE_SUBDIR / f"{key}.json"


def candidate_key(candidate: Candidate, scenes: SceneSet, iou: float, class_map: Mapping[str, str]) -> str:
    return cache_key(candidate.weights_sha256, describe_detector(candidate.pipeline.detector), scenes.fingerprint,
                     iou, class_map)


def cached_metrics(key: str) -> dict[str, Any] | None:
    """The cached ``evaluate-scenes`` object under ``key``, or None (a damaged cache file counts as none)."""
    try:
        return json.loads(_cache_path(key).read_text())
    except (OSError, ValueError):
        return None


@dataclass
class RunSnapshot:
    """A copy of a run's state: progress over all candidates, results and failures by label."""

    total: int
    done: int = 0
    current: str = ""
    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)
    finished: bool = False
    cancelled: bool = False
    started: float = field(default_factory=time.monotonic)

    @property
    def fraction(self) -> float:
        return min(self.done / self.total, 1.0) if self.total else 1.0


class SceneRun:
    """Evaluate ``candidates`` on ``scenes`` one after the other in a daemon thread (cached ones instantly)."""

    def __init__(self, candidates: Sequence[Candidate], scenes: SceneSet, iou: float = DEFAULT_IOU,
                 class_map: Mapping[str, str] | None = None) -> None:
        self.candidates = list(candidates)
        self.scenes = scenes
        self.iou = iou
        self.class_map = dict(class_map or {})
        self._lock = threading.Lock()
        self._state = RunSnapshot(total=len(self.candidates) * max(len(scenes.images), 1))
        self._cancel = threading.Event()
        self._thread = threading.Thread(target=self._run, name="scene-evaluation", daemon=True)
        self._thread.start()

    def snapshot(self) -> RunSnapshot:
        with self._lock:
            state = self._state
            return RunSnapshot(total=state.total, done=state.done, current=state.current, results=dict(state.results),
                               failures=dict(state.failures), finished=state.finished, cancelled=state.cancelled,
                               started=state.started)

    def cancel(self) -> None:
        self._cancel.set()

    def wait(self, timeout: float | None = None) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self) -> None:
        per_candidate = max(len(self.scenes.images), 1)
        try:
            for index, candidate in enumerate(self.candidates):
                with self._lock:
                    self._state.current = candidate.label
                    self._state.done = index * per_candidate
                try:
                    metrics = self._evaluate(candidate, index * per_candidate)
                except RunCancelled:
                    with self._lock:
                        self._state.cancelled = True
                    return
                except Exception as exc:  # one candidate failing must not lose the others' results
                    logger.exception("scene evaluation of %s failed", candidate.label)
                    with self._lock:
                        self._state.failures[candidate.label] = str(exc) or type(exc).__name__
                    continue
                with self._lock:
                    self._state.results[candidate.label] = metrics
        finally:
            with self._lock:
                self._state.finished = True
                self._state.done = self._state.total if not self._state.cancelled else self._state.done

    def _evaluate(self, candidate: Candidate, offset: int) -> dict[str, Any]:
        key = candidate_key(candidate, self.scenes, self.iou, self.class_map)
        cached = cached_metrics(key)
        if cached is not None:
            return cached

        def progress(done: int, total: int) -> None:
            if self._cancel.is_set():
                raise RunCancelled
            with self._lock:
                self._state.done = offset + done

        metrics = evaluate_scenes(candidate.pipeline, self.scenes, iou=self.iou, progress=progress).to_json()
        write_json(_cache_path(key), metrics)
        return metrics
