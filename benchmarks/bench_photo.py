"""Photo page speed: detect + classify a 640x480 photo, and one explanation per method at default settings.

Usage: python benchmarks/bench_photo.py [--model NAME_OR_PATH] [--runs 30] [--explain-runs 5]
       (MASKDET_THREADS=1 measures one torch thread: on a machine shared with other busy processes,
       two threads waiting on each other at every operator can be several times slower than one)

The photo is composed from real face crops of synthetic-masks-2k (two masked, one not, 140-150 px)
pasted on smooth colour noise, so detection and classification do real work. Without --model the
default model is used; when there is no trained model at all, a throwaway MobileNetV2 at its
default 224 px is trained for a minute in a temporary folder (speed does not depend on how well
it is trained). Targets: detect + classify <= 60 ms; one Integrated Gradients explanation <= 2 s.
Other processes distort the numbers: the load average and CPU seconds are printed alongside.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from maskdet.zoo.folders import default_model_name  # noqa: E402
from maskdet.inference.explain import METHODS, explain  # noqa: E402
from maskdet.data.images import load_rgb  # noqa: E402
from maskdet.inference.photo import analyse_photo
from maskdet.inference.pipeline import build_pipeline
from maskdet.settings import data_root  # noqa: E402

PHOTO_SIZE = (640, 480)
FACES = [("with_mask", 0, (60, 140, 150)), ("with_mask", 3, (250, 60, 140)), ("without_mask", 0, (440, 200, 150))]


def compose_photo() -> np.ndarray:
    """640x480 RGB: three real face crops (x, y, side) on smooth colour noise."""
    rng = np.random.default_rng(0)
    coarse = rng.integers(40, 220, (PHOTO_SIZE[1] // 16, PHOTO_SIZE[0] // 16, 3), dtype=np.uint8)
    canvas = Image.fromarray(coarse).resize(PHOTO_SIZE, Image.Resampling.BILINEAR)
    root = data_root() / "synthetic-masks-2k"
    for cls, index, (x, y, side) in FACES:
        path = sorted((root / cls).iterdir())[index]
        canvas.paste(load_rgb(path).resize((side, side), Image.Resampling.LANCZOS), (x, y))
    return np.asarray(canvas)


def timed(action: Callable[[], object], runs: int, warmup: int) -> tuple[float, float]:
    """(median wall seconds, mean CPU seconds) per call after ``warmup`` calls."""
    for _ in range(warmup):
        action()
    walls = []
    cpu_start = time.process_time()
    for _ in range(runs):
        start = time.perf_counter()
        action()
        walls.append(time.perf_counter() - start)
    return statistics.median(walls), (time.process_time() - cpu_start) / runs


def throwaway_model(folder: Path) -> str:
    from maskdet.training.loop import TrainConfig, fit

    os.environ["MASKDET_MODELS_DIR"] = str(folder)
    print("no trained model found: training a throwaway MobileNetV2 (224 px) for the benchmark...", flush=True)
    result = fit(TrainConfig(arch="mobilenet_v2", data=data_root() / "face-mask-4k", epochs=1, feature_views=1,
                             limit_per_class=60, name="bench-mobilenet"))
    return str(result.path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model name or folder (default: the default model)")
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--explain-runs", type=int, default=5)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch:
        model = args.model or default_model_name() or throwaway_model(Path(scratch))
        pipeline = build_pipeline(model)
        classifier = pipeline.classifier
        photo = compose_photo()
        buffer = io.BytesIO()
        Image.fromarray(photo).save(buffer, format="JPEG", quality=90)
        jpeg = buffer.getvalue()
        analysis = analyse_photo(jpeg, pipeline)
        faces, crops = analysis.faces, analysis.crops  # margin crops, as the page explains them

        load = " ".join(f"{v:.1f}" for v in os.getloadavg())
        print(f"model {classifier.name} ({classifier.loaded.arch}, {classifier.input.size} px, {classifier.precision}); "
              f"{torch.get_num_threads()} torch threads on {os.cpu_count()} CPUs, load average {load}")
        print(f"photo 640x480 with {len(FACES)} pasted faces; found {len(faces)}: "
              + ", ".join(f"{f.label} {f.confidence:.0%}" for f in faces))
        rows = [
            ("detect", *timed(lambda: pipeline.detector.detect(photo), args.runs, 3)),
            ("classify all faces (1 batch)", *timed(lambda: classifier.predict_proba(crops), args.runs, 3)),
            ("detect + classify (target <= 60 ms)", *timed(lambda: pipeline.predict(photo), args.runs, 3)),
            ("decode JPEG + detect + classify + draw", *timed(lambda: analyse_photo(jpeg, pipeline), args.runs, 3)),
        ]
        for name, wall, cpu in rows:
            print(f"  {name:<42} {wall * 1000:8.1f} ms   (CPU {cpu * 1000:.1f} ms)")

        crop = crops[0] if crops else Image.fromarray(photo)
        for method, spec in METHODS.items():
            if method == "gradcam" and classifier.loaded.arch == "mlp":
                continue
            runs = args.explain_runs if method == "integrated_gradients" else max(1, args.explain_runs // 2)
            wall, cpu = timed(lambda m=method: explain(classifier, crop, method=m), runs, 1)
            result = explain(classifier, crop, method=method)
            detail = "" if result.relative_delta is None else f", |delta| {result.relative_delta:.1%} of the gap"
            target = " (target <= 2 s)" if method == "integrated_gradients" else ""
            print(f"  {spec.title + ' ' + str(result.settings) + target:<58} {wall:6.2f} s   (CPU {cpu:.2f} s{detail})")


if __name__ == "__main__":
    main()
