"""Live webcam speed: processed frames per second of ``LiveProcessor.process_frame`` on 640x480 frames.

Usage: python benchmarks/bench_live.py [--model NAME_OR_PATH] [--frames 100] [--input-long-side 320 480]
                                       [--threads 1 2]

Each frame is a real face crop from synthetic-masks-2k (one face per frame, masked and unmasked
alternately) pasted at a different place on a 640x480 background, then detected, classified and
annotated exactly as the Webcam page does (CenterFace with ``LIVE_DETECTOR_OPTIONS``, the chosen
classifier, threshold 0.5, inference in the process's one inference thread at the process's torch
thread count); ``--threads`` / ``--input-long-side`` compare other CenterFace (onnxruntime) settings.
Prints the median milliseconds per frame and the FPS that implies, per configuration. The target is >= 15 FPS on a 2-core CPU. In
the browser, frames arriving while one is processed are dropped (streamlit-webrtc
``async_processing``), so the shown rate is at most min(camera rate, this), less the CPU the
video codecs take.
Other processes on the machine distort the numbers: the load average is printed alongside.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from maskdet.inference.predictor import AUTO_BACKEND, Predictor, load_classifier  # noqa: E402
from maskdet.inference.detector import DEFAULT_INPUT_LONG_SIDE, get_detector  # noqa: E402
from maskdet.data.images import load_rgb  # noqa: E402
from maskdet.inference.live import LIVE_DETECTOR_OPTIONS, LiveProcessor  # noqa: E402
from maskdet.inference.pipeline import FacePipeline  # noqa: E402
from maskdet.settings import CLASSES, data_root  # noqa: E402

WIDTH, HEIGHT = 640, 480
FACE_PX = 180


def frames(count: int) -> list[np.ndarray]:
    """``count`` 640x480 frames with one real face each, at varying places, both classes alternating."""
    root = data_root() / "synthetic-masks-2k"
    rng = np.random.default_rng(0)
    faces = {cls: sorted((root / cls).iterdir())[:8] for cls in CLASSES}
    out = []
    for i in range(count):
        face = load_rgb(faces[CLASSES[i % 2]][(i // 2) % 8]).resize((FACE_PX, FACE_PX), Image.Resampling.LANCZOS)
        canvas = Image.new("RGB", (WIDTH, HEIGHT), (96, 120, 140))
        canvas.paste(face, (int(rng.integers(0, WIDTH - FACE_PX)), int(rng.integers(0, HEIGHT - FACE_PX))))
        out.append(np.asarray(canvas))
    return out


def bench(classifier: Predictor, long_side: int, threads: int, images: list[np.ndarray],
          warmup: int) -> tuple[float, float, int]:
    """(median ms per frame, CPU ms per frame, frames with exactly one face found)."""
    detector = get_detector("centerface-frames", **{**LIVE_DETECTOR_OPTIONS, "input_long_side": long_side, "threads": threads})
    processor = LiveProcessor(FacePipeline(classifier, detector))
    for image in images[:warmup]:
        processor.process_frame(image)
    processor.reset()
    times = []
    one_face = 0
    cpu_start = time.process_time()
    for image in images:
        start = time.perf_counter()
        processor.process_frame(image)
        times.append(time.perf_counter() - start)
        snapshot = processor.snapshot()
        one_face += sum(snapshot.faces_now.values()) == 1
    cpu_ms = (time.process_time() - cpu_start) / len(images) * 1000
    assert processor.snapshot().errors == 0, processor.snapshot().last_error
    return statistics.median(times) * 1000, cpu_ms, one_face


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="model name or folder (default: the default model)")
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--input-long-side", type=int, nargs="+", default=[DEFAULT_INPUT_LONG_SIDE],
                        help="CenterFace input sizes to compare (default: the Webcam page's)")
    parser.add_argument("--threads", type=int, nargs="+", default=[LIVE_DETECTOR_OPTIONS["threads"]],
                        help="CenterFace (onnxruntime) intra-op threads to compare (default: the Webcam page's)")
    args = parser.parse_args()
    try:
        classifier = load_classifier(args.model, backend=AUTO_BACKEND)  # as the Webcam page runs it
        classifier.wait_for_compilation()
    except Exception as exc:  # noqa: BLE001 -- a benchmark without a model explains how to get one
        sys.exit(f"cannot load a model ({exc}); train one first, e.g. python -m maskdet train --arch mobilenet_v2 "
                 "--data <data set> --img-size 112 --epochs 3 --limit-per-class 150")
    images = frames(args.frames)
    print(f"model {classifier.name} ({classifier.loaded.arch}, {classifier.input.size}px, {classifier.precision}); "
          f"{len(images)} frames {WIDTH}x{HEIGHT}, one {FACE_PX}px face each")
    print(f"load average before: {os.getloadavg()[0]:.2f} (on {os.cpu_count()} CPUs)")
    for long_side in args.input_long_side:
        for threads in args.threads:
            median_ms, cpu_ms, one_face = bench(classifier, long_side, threads, images, args.warmup)
            print(f"detector input {long_side}px, {threads} thread(s): {median_ms:.1f} ms per frame (median) "
                  f"= {1000 / median_ms:.1f} FPS; {cpu_ms:.1f} ms CPU per frame; one face found in "
                  f"{one_face}/{len(images)} frames")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
