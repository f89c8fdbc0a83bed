"""Non-maximum suppression for CenterFace: OpenCV's ``NMSBoxes`` (what maskdet uses) against ``torchvision.ops.nms``.

Usage: python benchmarks/bench_nms.py [--repeats 20]

The candidates are the real ones: CenterFace's heatmap peaks on every scenes-dev photo, at the
detector's default settings and at a low threshold on the photos' own size. Prints microseconds per
photo (median over repeats, each repeat running every photo once, the two timed alternately) and
whether both keep the same boxes.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torchvision

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from maskdet.inference.detector import CenterFaceDetector, nms  # noqa: E402
from maskdet.data.images import load_rgb  # noqa: E402
from maskdet.settings import data_root  # noqa: E402

SETTINGS = {"default": {}, "native, threshold 0.2": {"threshold": 0.2, "input_long_side": None}}


def candidates(detector: CenterFaceDetector) -> list[tuple[np.ndarray, np.ndarray]]:
    """(boxes, scores) before NMS for every scenes-dev photo with at least one peak."""
    found = []
    for path in sorted((data_root() / "scenes-dev" / "images").iterdir()):
        boxes, scores, _ = detector.candidates(np.asarray(load_rgb(path)))
        if len(scores):
            found.append((boxes, scores))
    return found


def with_torchvision(boxes: np.ndarray, scores: np.ndarray, iou: float) -> np.ndarray:
    return torchvision.ops.nms(torch.from_numpy(boxes), torch.from_numpy(scores.astype(boxes.dtype)), iou).numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(2)
    print(f"load average before: {os.getloadavg()[0]:.2f} (on {os.cpu_count()} CPUs)")
    for label, kwargs in SETTINGS.items():
        detector = CenterFaceDetector(**kwargs)
        sets = candidates(detector)
        sizes = [len(scores) for _, scores in sets]
        same = all(np.array_equal(nms(b, s, detector.nms_iou), with_torchvision(b, s, detector.nms_iou)) for b, s in sets)
        timings: dict[str, list[float]] = {"cv2.dnn.NMSBoxes": [], "torchvision.ops.nms": []}
        for _ in range(args.repeats):
            for name, method in (("cv2.dnn.NMSBoxes", nms), ("torchvision.ops.nms", with_torchvision)):
                start = time.perf_counter()
                for boxes, scores in sets:
                    method(boxes, scores, detector.nms_iou)
                timings[name].append((time.perf_counter() - start) * 1e6 / len(sets))
        print(f"{label}: {len(sets)} photos, {statistics.median(sizes):.0f} candidates (median, max {max(sizes)}); "
              f"same boxes kept: {same}")
        for name, values in timings.items():
            print(f"  {name}: {statistics.median(values):.1f} us per photo")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
