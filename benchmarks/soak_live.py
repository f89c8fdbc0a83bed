"""Soak the webcam frame callback: N synthetic 640x480 frames, memory before and after, no exception.

Usage: python benchmarks/soak_live.py [--frames 2000] [--model NAME_OR_PATH] [--max-growth-mb 8]

The frames go through ``LiveProcessor.video_frame_callback`` exactly as the Webcam page wires it
(a fresh ``av.VideoFrame`` in, an annotated ``av.VideoFrame`` out; CenterFace with
``LIVE_DETECTOR_OPTIONS``, the dashboard's compiled classifier).
They cycle through 64 compositions of real synthetic-masks-2k faces (masked and unmasked, one
or two faces at varying places) and empty frames. Resident memory (RSS) is read after loading,
after a 200-frame warm-up (allocator pools, compiled graphs and caches fill up) and at the end;
the script exits 1 if it grew by more than ``--max-growth-mb`` after warm-up or any frame failed.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import av
import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from maskdet.inference.detector import get_detector  # noqa: E402
from maskdet.data.images import load_rgb  # noqa: E402
from maskdet.inference.live import LIVE_DETECTOR_OPTIONS, LiveProcessor  # noqa: E402
from maskdet.inference.predictor import AUTO_BACKEND, load_classifier
from maskdet.inference.pipeline import FacePipeline  # noqa: E402
from maskdet.settings import CLASSES, data_root  # noqa: E402

WIDTH, HEIGHT = 640, 480
POOL = 64
WARMUP = 200


def rss_mb() -> float:
    """Resident set size of this process in MB (Linux /proc)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("VmRSS not found in /proc/self/status")


def frame_pool() -> list[np.ndarray]:
    """64 RGB frames: every 8th empty, the others with one or two real faces of 120-220 px."""
    root = data_root() / "synthetic-masks-2k"
    faces = {cls: sorted((root / cls).iterdir())[:16] for cls in CLASSES}
    rng = np.random.default_rng(0)
    pool = []
    for i in range(POOL):
        canvas = Image.new("RGB", (WIDTH, HEIGHT), tuple(int(v) for v in rng.integers(60, 180, 3)))
        if i % 8:
            for k in range(1 + (i % 3 == 0)):
                side = int(rng.integers(120, 220))
                face = load_rgb(faces[CLASSES[(i + k) % 2]][i % 16]).resize((side, side))
                x = int(rng.integers(0, WIDTH // 2 - side // 2)) + k * WIDTH // 2
                canvas.paste(face, (min(x, WIDTH - side), int(rng.integers(0, HEIGHT - side))))
        pool.append(np.asarray(canvas))
    return pool


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=2000)
    parser.add_argument("--model", default=None, help="model name or folder (default: the default model)")
    parser.add_argument("--max-growth-mb", type=float, default=8.0)
    args = parser.parse_args()

    classifier = load_classifier(args.model, backend=AUTO_BACKEND)  # as ui.resources.get_classifier does
    classifier.wait_for_compilation()
    processor = LiveProcessor(FacePipeline(classifier, get_detector("centerface-frames", **LIVE_DETECTOR_OPTIONS)))
    pool = frame_pool()
    loaded = rss_mb()

    def push(index: int) -> None:
        frame = av.VideoFrame.from_ndarray(pool[index % POOL], format="rgb24")
        out = processor.video_frame_callback(frame)
        assert out.width == WIDTH and out.height == HEIGHT

    for i in range(WARMUP):
        push(i)
    warm = rss_mb()
    processor.reset()
    started = time.perf_counter()
    samples = []
    for i in range(args.frames):
        push(i)
        if i % 250 == 0:
            samples.append(round(rss_mb(), 1))
    seconds = time.perf_counter() - started
    end = rss_mb()
    snapshot = processor.snapshot()
    growth = end - warm
    print(f"model {classifier.name} ({classifier.precision}{', compiled' if classifier.compiled else ''}); "
          f"{args.frames} frames {WIDTH}x{HEIGHT} through LiveProcessor.video_frame_callback")
    print(f"RSS after loading {loaded:.1f} MB, after {WARMUP}-frame warm-up {warm:.1f} MB, after the run {end:.1f} MB")
    print(f"RSS every 250 frames: {samples}")
    print(f"growth after warm-up {growth:+.1f} MB (limit {args.max_growth_mb} MB); {args.frames / seconds:.1f} frames/s; "
          f"faces seen {sum(snapshot.faces_total.values())}; exceptions {snapshot.errors}"
          + (f" (last: {snapshot.last_error})" if snapshot.errors else ""))
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    return 0 if growth <= args.max_growth_mb and snapshot.errors == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
