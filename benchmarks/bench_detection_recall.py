"""Face detection alone, per CenterFace setting: recall by face size, false positives and ms per photo.

Usage: python benchmarks/bench_detection_recall.py [--data ../shared/datasets] [--only NAME ...] [--runs 10]

No classifier runs: each photo of ilc-dev (faces matched at IoU >= 0.4, as in the issue's table),
scenes-dev and the kaggle-scenes photos the default crop set held out for validation
(``kaggle-scenes-face-mask-4k:val``; IoU 0.5) goes once through every CenterFace pass any setting
needs, at the lowest threshold of all; each setting then keeps its passes' peaks above its threshold and
merges them with the detector's own NMS (:func:`maskdet.inference.detector.select_faces`), so the sweep
costs one run per distinct pass, not one per setting. Printed per setting and set: recall, recall by face
size (square root of the annotated box's area: < 24 px, 24-48, >= 48), false positives (detections matched
to no annotated face; on ilc-dev not a fair figure, as background faces there are often not boxed), and
the median ms of ``detect`` on an 800 px ilc-dev photo and on a 640x480 frame (2 onnxruntime threads, the
Photo page's). Choose on these validation sets, never on a test split. The load average is printed alongside.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_detect import median_ms, test_frame  # noqa: E402

from maskdet.data.annotations import SceneSet, load_scene_set  # noqa: E402
from maskdet.data.images import load_rgb  # noqa: E402
from maskdet.evaluation.scenes.matching import match_detections  # noqa: E402
from maskdet.inference.detector import DETECTORS, CenterFaceDetector, select_faces  # noqa: E402
from maskdet.settings import data_root  # noqa: E402
from maskdet.training.crops import held_out_photos  # noqa: E402

# The product's photo setting before issue 24, the video frames' setting (centerface-frames) since.
BEFORE = {"threshold": 0.39, "nms_iou": 0.3, "input_long_side": 480, "upscale": True, "pad": 0.0,
          "extra_long_sides": (160,), "zoom_below": 512}
SETTINGS: dict[str, dict] = {
    "before (= centerface-frames): 480 + 160, zoom <= 512": BEFORE,
    "480 + 160 + 640": {**BEFORE, "extra_long_sides": (160, 640)},
    "480 + 160 + 800": {**BEFORE, "extra_long_sides": (160, 800)},
    "480 + 160 + 960": {**BEFORE, "extra_long_sides": (160, 960)},
    "480 + 160 + 1120": {**BEFORE, "extra_long_sides": (160, 1120)},
    "480 + 160 + 1120 up to 2x": {**BEFORE, "extra_long_sides": (160, 1120), "extra_max_zoom": 2.0},
    "480 + 160 + 1120, faces <= 96 px there": {**BEFORE, "extra_long_sides": (160, 1120), "extra_max_face": 96},
    "480 + 160 + 1120, faces <= 128 px there": {**BEFORE, "extra_long_sides": (160, 1120), "extra_max_face": 128},
    "480 + 160 + 1120 up to 2x, faces <= 96 px there": {**BEFORE, "extra_long_sides": (160, 1120),
                                                        "extra_max_zoom": 2.0, "extra_max_face": 96},
    "480 + 160, zoom <= 800": {**BEFORE, "zoom_below": 800},
    "480 + 160 + 960, threshold 0.35": {**BEFORE, "extra_long_sides": (160, 960), "threshold": 0.35},
    "480 + 160 + 960, threshold 0.45": {**BEFORE, "extra_long_sides": (160, 960), "threshold": 0.45},
    "480 + 160 + 960, NMS 0.4": {**BEFORE, "extra_long_sides": (160, 960), "nms_iou": 0.4},
    "480 + 160 + 1120, threshold 0.45": {**BEFORE, "extra_long_sides": (160, 1120), "threshold": 0.45},
    "480 + 160 + 1120, zoom <= 800, threshold 0.45": {**BEFORE, "extra_long_sides": (160, 1120),
                                                      "zoom_below": 800, "threshold": 0.45},
    "480 + 160, threshold 0.3": {**BEFORE, "threshold": 0.3},
    "product (centerface)": dict(DETECTORS["centerface"].options),
}
SIZE_BUCKETS = ((0, 24), (24, 48), (48, float("inf")))


@dataclass
class BenchSet:
    """One boxed-photo set and the IoU at which a detection finds a face."""

    name: str
    scenes: SceneSet
    iou: float
    passes: dict[tuple[str, int], tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=dict)
    shapes: dict[str, tuple[int, int]] = field(default_factory=dict)


def pass_size(long_side: int | None, shape: tuple[int, int], upscale: bool) -> int:
    """The long side in network pixels a pass really runs at (own size for None; capped without upscaling)."""
    own = max(shape)
    if long_side is None:
        return own
    return long_side if upscale else min(long_side, own)


def passes_of(detector: CenterFaceDetector, shape: tuple[int, int]) -> list[int]:
    return [pass_size(side, shape, detector.upscale) for side in detector.long_sides(shape)]


def run_passes(bench: BenchSet, detectors: dict[str, CenterFaceDetector], base: CenterFaceDetector) -> None:
    """Every distinct pass any setting needs, once per photo, at ``base``'s (the lowest) threshold."""
    for scene in bench.scenes.images:
        image = np.asarray(load_rgb(bench.scenes.root / scene.relpath))
        shape = image.shape[:2]
        bench.shapes[scene.relpath] = shape
        for side in sorted({side for d in detectors.values() for side in passes_of(d, shape)}):
            bench.passes[scene.relpath, side] = base.pass_candidates(image, side)


def score(bench: BenchSet, detector: CenterFaceDetector) -> dict:
    faces = found = unmatched = 0
    by_size = [[0, 0] for _ in SIZE_BUCKETS]
    for scene in bench.scenes.images:
        shape = bench.shapes[scene.relpath]
        parts = []
        for side in detector.long_sides(shape):
            boxes, scores, points = bench.passes[scene.relpath, pass_size(side, shape, detector.upscale)]
            keep = detector.kept_by_pass(side, shape, boxes)
            parts.append((boxes[keep], scores[keep], points[keep]))
        boxes, scores, points = (np.concatenate(column) for column in zip(*parts, strict=True))
        keep = scores > detector.threshold
        detections = select_faces(boxes[keep], scores[keep], points[keep], shape, detector.nms_iou)
        known = [face.box for face in scene.faces if face.label is not None]
        unknown = [face.box for face in scene.faces if face.label is None]
        matching = match_detections([d.box for d in detections], [d.score for d in detections], known,
                                    iou=bench.iou, ignored_faces=unknown)
        faces += len(known)
        found += len(matching.found)
        unmatched += len(matching.false_positives)
        for index, box in enumerate(known):
            size = ((box[2] - box[0]) * (box[3] - box[1])) ** 0.5
            bucket = next(i for i, (low, high) in enumerate(SIZE_BUCKETS) if low <= size < high)
            by_size[bucket][0] += 1
            by_size[bucket][1] += index in matching.found
    return {"recall": found / faces, "missed": faces - found, "unmatched": unmatched,
            "by_size": [f"{hit / total:.3f} ({total})" if total else "-" for total, hit in by_size]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=data_root(), help="the folder holding the data sets")
    parser.add_argument("--heldout", default="kaggle-scenes-face-mask-4k:val",
                        help="CROPSET:SPLIT: the kaggle-scenes photos scored (a validation split)")
    parser.add_argument("--only", nargs="*", help="names of the settings to run (default: all)")
    parser.add_argument("--runs", type=int, default=10, help="timed detections per setting and image size")
    args = parser.parse_args()
    chosen = {name: options for name, options in SETTINGS.items() if not args.only or name in args.only}
    detectors = {name: CenterFaceDetector(**options) for name, options in chosen.items()}
    base = CenterFaceDetector(threshold=min(d.threshold for d in detectors.values()))
    if any(d.pad for d in detectors.values()):
        raise SystemExit("settings with a border (pad) are not supported here: use bench_scene_detectors.py")

    kaggle = load_scene_set(args.data / "kaggle-scenes")
    photos = held_out_photos(*args.heldout.split(":")).get(kaggle.root.resolve(), set())
    kaggle = replace(kaggle, images=[image for image in kaggle.images if image.relpath in photos], problems=[])
    sets = [BenchSet("ilc-dev", load_scene_set(args.data / "ilc-dev"), 0.4),
            BenchSet("scenes-dev", load_scene_set(args.data / "scenes-dev"), 0.5),
            BenchSet(f"kaggle-scenes {args.heldout}", kaggle, 0.5)]
    start = time.perf_counter()
    for bench in sets:
        run_passes(bench, detectors, base)
    print(f"passes run in {time.perf_counter() - start:.0f} s; load average {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} CPUs")
    photo = next(np.asarray(load_rgb(sets[0].scenes.root / s.relpath)) for s in sets[0].scenes.images
                 if max(sets[0].shapes[s.relpath]) == 800)
    frame = test_frame()
    header = " | ".join(f"{b.name} ({len(b.scenes.images)} photos) recall / <24, 24-48, >=48 / unmatched"
                        for b in sets)
    print(f"| setting | {header} | ms per 800 px photo | ms per 640x480 frame |")
    print("|---" * (len(sets) + 3) + "|")
    for name, detector in detectors.items():
        cells = []
        for bench in sets:
            result = score(bench, detector)
            cells.append(f"{result['recall']:.3f} ({result['missed']} missed) / {', '.join(result['by_size'])} "
                         f"/ {result['unmatched']}")
        print(f"| {name} | {' | '.join(cells)} | {median_ms(detector, photo, args.runs):.0f} "
              f"| {median_ms(detector, frame, args.runs):.0f} |", flush=True)
    print(f"load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
