"""``python -m maskdet bench``: the speed figures the product promises, measured in one run.

- ``classify_ms``: one face through the default model, as the product runs it;
- ``reference_ms``: a plain torchvision MobileNetV2, fp32, batch 1, 224 px (the yardstick);
- ``detect_ms``: face detection on a 640x480 frame, with the webcam's detector settings;
- ``pipeline_fps``: 640x480 frames with one face through the webcam's own frame path
  (:meth:`maskdet.inference.live.LiveProcessor.process_frame`: its detector settings, its inference thread,
  detect + classify + draw);
- ``ig_seconds``: one Integrated Gradients explanation at default settings;
- ``extract_img_per_s``: backbone feature extraction throughput as training runs it.

Frames are composed from a real face image of the data-set root, so detection does real work.
"""

from __future__ import annotations

import logging
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch
from PIL import Image

from maskdet.data.datasets import DatasetError, list_datasets, scan_dataset
from maskdet.data.images import load_rgb
from maskdet.runtime import autocast, configure_threads
from maskdet.settings import data_root

logger = logging.getLogger(__name__)

FRAME_SIZE = (640, 480)


def median_ms(action: Callable[[], object], repeats: int, warmup: int = 3) -> float:
    """The median wall time of ``action`` in ms over ``repeats`` runs, after ``warmup`` untimed ones."""
    for _ in range(warmup):
        action()
    timings = []
    for _ in range(repeats):
        start = time.perf_counter()
        action()
        timings.append((time.perf_counter() - start) * 1000)
    return statistics.median(timings)


def _paired_median_ms(first: Callable[[], object], second: Callable[[], object], repeats: int,
                      warmup: int = 3) -> tuple[float, float]:
    """Median ms of two actions timed alternately, so a load change on a shared machine hits both alike."""
    for _ in range(warmup):
        first()
        second()
    timings: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeats):
        for action, bucket in ((first, timings[0]), (second, timings[1])):
            start = time.perf_counter()
            action()
            bucket.append((time.perf_counter() - start) * 1000)
    return statistics.median(timings[0]), statistics.median(timings[1])


def sample_face() -> Image.Image:
    """A real masked face crop from the first data set under the data-set root."""
    for root in list_datasets(data_root()):
        try:
            scan = scan_dataset(root)
        except DatasetError:
            continue
        for sample in scan.samples:
            if sample.class_name == "with_mask":
                try:
                    return load_rgb(scan.path(sample))
                except ValueError:
                    continue
    raise DatasetError(f"no face images found under {data_root()} (set MASKDET_DATA_ROOT)")


def compose_frame(face: Image.Image, face_height: int = 200) -> np.ndarray:
    """A 640x480 RGB frame: a textured background with ``face`` pasted in the middle."""
    rng = np.random.default_rng(0)
    background = rng.integers(90, 160, size=(FRAME_SIZE[1] // 8, FRAME_SIZE[0] // 8, 3), dtype=np.uint8)
    frame = Image.fromarray(background).resize(FRAME_SIZE, Image.Resampling.BILINEAR)
    scale = face_height / face.height
    face = face.resize((max(1, round(face.width * scale)), face_height))
    frame.paste(face, ((FRAME_SIZE[0] - face.width) // 2, (FRAME_SIZE[1] - face.height) // 2))
    return np.asarray(frame)


def run_benchmarks(model: str | None = None, quick: bool = False) -> dict:
    """Measure every figure listed in the module docstring; returns a JSON-ready dict."""
    from torchvision.models import mobilenet_v2

    from maskdet.inference.predictor import AUTO_BACKEND, load_classifier
    from maskdet.inference.detector import crop_faces, get_detector
    from maskdet.inference.explain import explain
    from maskdet.inference.live import LIVE_DETECTOR_OPTIONS, LiveProcessor
    from maskdet.inference.pipeline import FacePipeline

    repeats = 10 if quick else 50
    threads = configure_threads()
    classifier = load_classifier(model, backend=AUTO_BACKEND)  # as the dashboard runs it
    detector = get_detector("centerface-frames", **LIVE_DETECTOR_OPTIONS)  # video frames, single-threaded as live video runs them
    webcam = LiveProcessor(FacePipeline(classifier, detector))
    frame = compose_frame(sample_face())
    faces = detector.detect(frame)
    if not faces:
        raise RuntimeError("the detector found no face in the benchmark frame")
    crop = crop_faces(frame, faces[:1])[0]

    classifier.wait_for_compilation()
    results: dict = {"model": classifier.name, "backend": classifier.backend.name, "precision": classifier.precision,
                     "compiled": classifier.compiled, "input_size": classifier.input.size, "threads": threads,
                     "detector": dict(LIVE_DETECTOR_OPTIONS)}
    reference = mobilenet_v2(weights=None).eval()
    reference_input = torch.randn(1, 3, 224, 224)

    def run_reference() -> None:
        with torch.inference_mode():
            reference(reference_input)

    results["classify_ms"], results["reference_ms"] = _paired_median_ms(
        lambda: classifier.predict_proba([crop]), run_reference, repeats * 2)
    results["classify_vs_reference"] = results["classify_ms"] / results["reference_ms"]

    results["detect_ms"] = median_ms(lambda: detector.detect(frame), repeats)
    pipeline_ms = median_ms(lambda: webcam.process_frame(frame), repeats)
    if webcam.snapshot().errors:
        raise RuntimeError(f"the webcam path failed on the benchmark frame: {webcam.snapshot().last_error}")
    results["pipeline_ms"] = pipeline_ms
    results["pipeline_fps"] = 1000.0 / pipeline_ms

    ig_runs = 2 if quick else 5
    results["ig_seconds"] = median_ms(lambda: explain(classifier, crop, method="integrated_gradients"), ig_runs, warmup=1) / 1000

    backbone = classifier.model.backbone
    batch = classifier.input.to_tensor([crop] * 32).contiguous(memory_format=torch.channels_last)

    def extract() -> None:
        with torch.inference_mode(), autocast(torch.device("cpu")):
            backbone(batch)

    results["extract_img_per_s"] = 32 / (median_ms(extract, 3 if quick else 8, warmup=1) / 1000)
    return {key: round(value, 3) if isinstance(value, float) else value for key, value in results.items()}


def format_table(results: dict) -> str:
    rows = [
        ("model", results["model"], f"{results['backend']}, {results['precision']}, "
                                    f"{results['input_size']} px, {results['threads']} threads"),
        ("classify_ms", f"{results['classify_ms']:.2f}", "ms per face, default model as the product runs it"),
        ("reference_ms", f"{results['reference_ms']:.2f}", "ms, torchvision MobileNetV2 fp32 batch 1 224 px"),
        ("classify_vs_reference", f"{results['classify_vs_reference']:.2f}", "classify_ms / reference_ms (target <= 0.5)"),
        ("detect_ms", f"{results['detect_ms']:.2f}", "ms per 640x480 frame, webcam detector settings"),
        ("pipeline_fps", f"{results['pipeline_fps']:.1f}", "webcam frame path: detect + classify + draw, 640x480, one face"),
        ("ig_seconds", f"{results['ig_seconds']:.3f}", "Integrated Gradients, default settings"),
        ("extract_img_per_s", f"{results['extract_img_per_s']:.1f}", "backbone feature extraction"),
    ]
    width = max(len(r[1]) for r in rows)
    return "\n".join(f"{name:<21} {value:>{width}}  {note}" for name, value, note in rows)
