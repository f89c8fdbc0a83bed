"""Detector settings on a boxed-photo set: recall, false positives, accuracy, mAP50 and ms per 640x480 frame.

Usage: python benchmarks/bench_scene_detectors.py [--data DIR] [--heldout CROPSET:SPLIT] [--model M] [--runs 30]
                                                  [--only NAME ...]

Each row is one CenterFace setting run through the whole product pipeline (detect -> crop ->
classify with the model) by :func:`maskdet.evaluation.scenes.evaluate_scenes` at IoU 0.5, plus the median
time of one detection on a 640x480 frame with 2 onnxruntime threads (the Photo page) and with 1
(the Webcam page). Choose settings on scenes-dev (the default ``--data``) and on the photos a crop set held out
for validation (``--data ../shared/datasets/kaggle-scenes --heldout kaggle-scenes-face-mask-4k:val``), never
on a test set.
Other processes on the machine slow the timings: the load average is printed alongside.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_detect import median_ms, test_frame  # noqa: E402

from maskdet.inference.predictor import AUTO_BACKEND, load_classifier  # noqa: E402
from maskdet.training.crops import held_out_photos  # noqa: E402
from maskdet.inference.detector import DETECTORS, CenterFaceDetector  # noqa: E402
from maskdet.inference.pipeline import FacePipeline  # noqa: E402
from maskdet.data.annotations import load_scene_set
from maskdet.evaluation.scenes import evaluate_scenes
from maskdet.settings import REPO_ROOT, data_root  # noqa: E402

BEFORE = dict(DETECTORS["centerface-480"].options)
SETTINGS: dict[str, dict] = {
    "before: 480 px": BEFORE,
    "480 px, threshold 0.25": {**BEFORE, "threshold": 0.25},
    "own size (no upscaling), 480 px cap": {**BEFORE, "upscale": False},
    "480 px + 10% border": {**BEFORE, "pad": 0.1},
    "480 px + 160 px second scale": {**BEFORE, "extra_long_sides": (160,)},
    "480 px + 160 px, 10% border": {**BEFORE, "pad": 0.1, "extra_long_sides": (160,)},
    "480 px + 160 px, threshold 0.4 (last round)": {**BEFORE, "threshold": 0.4, "extra_long_sides": (160,)},
    "640 + 160 px, threshold 0.4": {**BEFORE, "threshold": 0.4, "input_long_side": 640, "extra_long_sides": (160,)},
    "480 + 160 + 800 px, threshold 0.4": {**BEFORE, "threshold": 0.4, "extra_long_sides": (160, 800)},
    "480 + 160 px + 2x zoom up to 512 px, 0.4": {**BEFORE, "threshold": 0.4, "extra_long_sides": (160,),
                                                 "zoom_below": 512},
    "product (centerface)": dict(DETECTORS["centerface"].options),
}


def frame_ms(options: dict, threads: int, runs: int) -> float:
    return median_ms(CenterFaceDetector(**options, threads=threads), test_frame(), runs)


def pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(data_root() / "scenes-dev"))
    parser.add_argument("--model", default=str(REPO_ROOT / "models" / "mobilenet_v2"))
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--only", nargs="*", help="names of the settings to run (default: all)")
    parser.add_argument("--heldout", help="CROPSET:SPLIT: only the photos of --data that crop set put in SPLIT")
    args = parser.parse_args()
    classifier = load_classifier(args.model, backend=AUTO_BACKEND)
    scenes = load_scene_set(args.data)
    if args.heldout:
        photos = held_out_photos(*args.heldout.split(":")).get(Path(args.data).resolve(), set())
        scenes = replace(scenes, images=[image for image in scenes.images if image.relpath in photos], problems=[])
    print(f"{args.model} on {args.data} ({len(scenes.images)} photos), IoU 0.5; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print("| setting | recall | false positives | accuracy on detected | end to end | mAP50 | ms/frame (2 thr) "
          "| ms/frame (1 thr) |")
    print("|---|---|---|---|---|---|---|---|")
    for name, options in SETTINGS.items():
        if args.only and name not in args.only:
            continue
        metrics = evaluate_scenes(FacePipeline(classifier, CenterFaceDetector(**options)), scenes).to_json()
        missed = sum(error["kind"] == "missed" for error in metrics["errors"])
        print(f"| {name} | {pct(metrics['detection_recall'])} ({missed} missed) "
              f"| {metrics['false_positives']} | {pct(metrics['accuracy_on_detected'])} "
              f"| {pct(metrics['end_to_end_accuracy'])} | {pct(metrics['map50'])} "
              f"| {frame_ms(options, 2, args.runs):.1f} | {frame_ms(options, 1, args.runs):.1f} |", flush=True)


if __name__ == "__main__":
    main()
