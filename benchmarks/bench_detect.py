"""Face detector speed: milliseconds per 640x480 RGB frame (median after warm-up).

Usage: python benchmarks/bench_detect.py [--runs 50] [--detector centerface] [--input-long-side 480 ...]

The frame is a real face photo from the data set when one is available (detection time depends
a little on how many heatmap peaks pass the threshold), otherwise smooth colour noise. Other
processes on the machine distort the numbers: the load average is printed alongside.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from maskdet.inference.detector import FaceDetector, get_detector
from maskdet.data.images import load_rgb
from maskdet.settings import data_root


def test_frame() -> np.ndarray:
    photo = data_root() / "face-mask-4k" / "with_mask" / "with_mask157.jpeg"
    if photo.is_file():
        return np.asarray(load_rgb(photo).resize((640, 480)))
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)


def median_ms(detector: FaceDetector, image: np.ndarray, runs: int, warmup: int = 3) -> float:
    """Median milliseconds of ``detector.detect(image)`` over ``runs`` timed calls after ``warmup`` untimed ones."""
    for _ in range(warmup):
        detector.detect(image)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        detector.detect(image)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def bench(detector_name: str, runs: int, warmup: int, **kwargs: object) -> tuple[float, float, int]:
    detector = get_detector(detector_name, **kwargs)
    frame = test_frame()
    for _ in range(warmup):
        faces = detector.detect(frame)
    times = []
    cpu_start = time.process_time()
    for _ in range(runs):
        start = time.perf_counter()
        faces = detector.detect(frame)
        times.append(time.perf_counter() - start)
    cpu_ms = (time.process_time() - cpu_start) / runs * 1000
    return statistics.median(times) * 1000, cpu_ms, len(faces)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--detector", default="centerface")
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument(
        "--input-long-side",
        type=int,
        nargs="*",
        default=None,
        help="CenterFace input sizes to compare (0 = the frame's own size); default: the detector default",
    )
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.2f} (on {os.cpu_count()} CPUs)")
    sizes = args.input_long_side if args.input_long_side is not None else [None]
    for size in sizes:
        kwargs = {} if size is None else {"input_long_side": size or None}
        label = "default" if size is None else (size or "native")
        median_ms, cpu_ms, count = bench(args.detector, args.runs, args.warmup, **kwargs)
        print(
            f"{args.detector} input_long_side={label}: {median_ms:.1f} ms per 640x480 frame "
            f"(median of {args.runs}; {cpu_ms:.1f} ms CPU per frame; {count} face(s) found)"
        )
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
