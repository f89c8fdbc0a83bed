"""CPU latency per face of a model, as the product serves it: median of N single-face runs.

:func:`cpu_latency_ms` times the product's :class:`~maskdet.inference.predictor.Predictor` on one
face (batch 1, median of N runs), cached in memory per weights and serving path; :func:`with_latency`
puts the figure into a :class:`~maskdet.evaluation.summary.ModelSummary` for the comparison table.
"""

from __future__ import annotations

import logging
import statistics
import threading
import time
from dataclasses import replace

import numpy as np
import torch
from PIL import Image

from maskdet.evaluation.summary import ModelSummary
from maskdet.inference.predictor import Predictor
from maskdet.zoo.folders import load_model

logger = logging.getLogger(__name__)

LATENCY_RUNS = 30
LATENCY_WARMUP = 3
COMPILE_WAIT_S = 120.0  # compiling takes 5-11 s on 2 quiet cores (runtime.compile_network); far more under load
PROBE_FACE_PX = 160  # a typical face crop; the Predictor resizes it, as it does in the product


_latency_ms: dict[str, float] = {}
# NOTE: one lock for all measurements. Several Streamlit sessions may ask at once; timing two
# models concurrently on a shared CPU would make both numbers wrong, so measurements queue up.
_latency_lock = threading.Lock()


def probe_face(size: int = PROBE_FACE_PX) -> Image.Image:
    """A smooth, face-crop-sized RGB image (fixed seed): latency does not depend on the pixels."""
    generator = torch.Generator().manual_seed(0)
    coarse = torch.rand(1, 3, 8, 8, generator=generator)
    pixels = torch.nn.functional.interpolate(coarse, size=(size, size), mode="bilinear")[0]
    return Image.fromarray((pixels.permute(1, 2, 0).numpy() * 255).astype(np.uint8), "RGB")


def measure_latency_ms(classifier: Predictor, runs: int = LATENCY_RUNS, warmup: int = LATENCY_WARMUP) -> float:
    """Median wall time, in ms, of ``classifier.predict_proba`` on one face crop (resize + normalise + forward)."""
    if runs < 1:
        raise ValueError("runs must be at least 1")
    face = probe_face()
    for _ in range(warmup):
        classifier.predict_proba([face])
    timings = []
    for _ in range(runs):
        start = time.perf_counter()
        classifier.predict_proba([face])
        timings.append(time.perf_counter() - start)
    return statistics.median(timings) * 1000


def cpu_latency_ms(summary: ModelSummary, runs: int = LATENCY_RUNS, classifier: Predictor | None = None) -> float:
    """CPU latency per face of ``summary``'s model, measured once per weights and serving path per process.

    ``classifier``: the instance the product serves the model with (the dashboard's cached, compiled one),
    so the figure is what a user gets; its compilation is waited for (up to ``COMPILE_WAIT_S``). Without
    it a fresh eager classifier is timed. Raises :class:`maskdet.zoo.folders.CheckpointError` when the
    model cannot be loaded.
    """
    with _latency_lock:
        key = f"{summary.cache_key}-fresh"
        if classifier is not None:
            classifier.wait_for_compilation(timeout=COMPILE_WAIT_S)
            key = f"{summary.cache_key}-{classifier.backend.name}-{classifier.precision}-{classifier.compiled}"
        cached = _latency_ms.get(key)
        if cached is None:
            cached = measure_latency_ms(classifier or Predictor(load_model(summary.path, device="cpu")), runs=runs)
            _latency_ms[key] = cached
            logger.info("CPU latency of %s (%s): %.2f ms per face (median of %d)", summary.name, key, cached, runs)
        return cached


def with_latency(summary: ModelSummary, runs: int = LATENCY_RUNS, classifier: Predictor | None = None) -> ModelSummary:
    """A copy of ``summary`` with ``latency_ms`` measured (or taken from the in-memory cache)."""
    return replace(summary, latency_ms=cpu_latency_ms(summary, runs=runs, classifier=classifier))
